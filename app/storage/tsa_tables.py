"""The time-stamping authority's signers (migration 0011): like ``ocsp_responders``, a
certificate the CA issued and its key wrapped by the KeyProtector; the newest usable one signs.
Time-stamp serial numbers are random (see app/pki/tsp.py), so nothing is written per token."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, String, Table

from app.storage.tables import UtcDateTime, metadata

tsa_signers = Table(
    "tsa_signers", metadata,
    Column("id", String(36), primary_key=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("key_algorithm", String(16), nullable=False),
    Column("certificate_der", LargeBinary, nullable=False),
    Column("master_key_id", String(64), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
)
