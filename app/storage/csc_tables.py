"""Tables of the CSC API (remote signing), on the shared ``metadata`` of ``app.storage.tables``.

Migration 0003 creates them.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String, Table, Text

from app.storage.tables import UtcDateTime, metadata

# One row per Signature Activation Data (credentials/authorize). The SAD itself is never stored:
# ``id`` is its SHA-256, and ``sealed`` (the signatures made at authorisation) is encrypted under
# a key derived from the SAD, so a database reader learns nothing usable. A row is consumed once,
# by a conditional update that sets ``used_at``; rows are purged some time after they expire.
csc_sads = Table(
    "csc_sads", metadata,
    Column("id", String(64), primary_key=True),
    Column("credential_id", String(36), ForeignKey("certificates.id"), nullable=False,
           index=True),
    Column("client_id", String(64), ForeignKey("clients.id"), nullable=False),
    Column("hash_algorithm", String(16), nullable=False),
    Column("hashes", Text, nullable=False),  # JSON list of base64 digests, in request order
    Column("sealed", LargeBinary, nullable=True),  # emptied when the SAD is used
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index("ix_csc_sads_expires_at", "expires_at"),
)
