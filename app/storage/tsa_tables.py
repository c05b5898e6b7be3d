"""The time-stamping authority's signers (migration 0011): like ``ocsp_responders``, a
certificate the CA issued and its key wrapped by the KeyProtector; the newest usable one signs.
Time-stamp serial numbers are random (see app/pki/tsp.py), so nothing is written per token."""

from __future__ import annotations

from sqlalchemy import Table

from app.storage.tables import metadata, signer_columns

tsa_signers = Table(
    "tsa_signers", metadata, *signer_columns(),
)
