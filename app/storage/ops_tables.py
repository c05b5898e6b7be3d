"""Operational tables: the hash-chained audit trail, idempotency records, rate counters."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from app.storage.tables import UtcDateTime, metadata

audit_events = Table(
    "audit_events", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("client_id", String(64), nullable=True, index=True),
    Column("action", String(48), nullable=False),
    Column("certificate_id", String(36), nullable=True, index=True),
    Column("result", String(16), nullable=False),
    Column("details", Text, nullable=False),  # JSON; never a secret or an RRN
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Which key made ``hash``: "legacy" (derived from the code key) or the chain's own key.
    Column("key_id", String(64), nullable=False, server_default=text("'legacy'")),
)

# One row: the chain's head. Appenders lock it, so the chain has one order across replicas.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # in_progress | done
    Column("status_code", Integer, nullable=True),
    Column("content_type", String(100), nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False, index=True),
)

rate_counters = Table(
    "rate_counters", metadata,
    Column("bucket", String(200), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # epoch seconds
    Column("count", Integer, nullable=False),
    Index("ix_rate_counters_window_start", "window_start"),  # the sweeper's deletes
)
