"""Tables of relying-party status (OCSP, CRL) on the shared ``metadata``; migration 0002.

* ``status_state``: one row (id 1). ``generation`` counts status changes; every revocation,
  stored CRL and new responder adds one, in the transaction that makes the change, so the order
  of generations is the order of commits (the row lock serialises them). ``crl_number`` hands
  out cRLNumbers.
* ``status_changes``: what each generation changed, read by replicas to drop exactly those
  entries from their in-process caches.
* ``status_replicas``: each serving process, the generation it has applied, and its lease.
* ``ocsp_responders``: delegated responder certificates; the key wrapped by the KeyProtector.
* ``ocsp_responses``: pre-signed responses per (serial, CertID shape), shared by all replicas.
* ``crls``: the CRLs as stored and served (the newest few).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, text

from app.storage.tables import UtcDateTime, metadata, signer_columns

STATE_ROW_ID = 1

status_state = Table(
    "status_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
    Column("crl_number", BigInteger, nullable=False, server_default=text("0")),
)

status_changes = Table(
    "status_changes", metadata,
    Column("generation", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # serial | crl | responder
    Column("detail", String(64), nullable=True),  # the serial, or the CRL number
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Index("ix_status_changes_kind_generation", "kind", "generation"),
)

status_replicas = Table(
    "status_replicas", metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("acked_generation", BigInteger, nullable=False),
    # Wall-clock time (the system clock, not the business clock) the lease runs to.
    Column("lease_until", UtcDateTime, nullable=False, index=True),
    Column("started_at", UtcDateTime, nullable=False),
)

ocsp_responders = Table(
    "ocsp_responders", metadata, *signer_columns(),
)

ocsp_responses = Table(
    "ocsp_responses", metadata,
    Column("serial", String(64), primary_key=True),
    Column("hash_algorithm", String(8), primary_key=True),  # the CertID shape: ocsp.shape_key
    Column("cert_status", String(8), nullable=False),
    Column("response_der", LargeBinary, nullable=False),
    Column("this_update", UtcDateTime, nullable=False),
    Column("next_update", UtcDateTime, nullable=False),
    Column("responder_id", String(36), nullable=False),
    Index("ix_ocsp_responses_next_update", "next_update"),
)

crls = Table(
    "crls", metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("this_update", UtcDateTime, nullable=False),
    Column("next_update", UtcDateTime, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("crl_der", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
