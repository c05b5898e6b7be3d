"""Table definitions used by the queries. Alembic migrations create the schema; a test checks
that the migrated database matches these definitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive text) alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

clients = Table(
    "clients", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(255), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated, as in OAuth2
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime, nullable=False),
)

persons = Table(
    "persons", metadata,
    Column("id", String(36), primary_key=True),
    Column("rrn_hmac", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("email", String(320), nullable=False),
    # Keyed hashes of the birth-date digit patterns a PIN must not contain.
    Column("birth_patterns", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The phone (and name) the current phone replaced: it may start a reissue for 30 days.
    Column("previous_phone", String(20), nullable=True),
    Column("previous_name", String(200), nullable=True),
    Column("phone_replaced_at", UtcDateTime, nullable=True),
)

# The outbox of SMS notices: written in the transaction of the change they tell of, sent
# after it commits, sent again by the background loop while the provider fails.
notices = Table(
    "notices", metadata,
    Column("id", String(36), primary_key=True),
    Column("phone", String(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("client_id", String(64), nullable=True),
    Column("text", Text, nullable=False),  # never a code, a PIN or an RRN
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Whoever is sending it holds it until then; a crashed sender's claim simply runs out.
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_notices_sent_at_claimed_until", "sent_at", "claimed_until"),
)

certificates = Table(
    "certificates", metadata,
    Column("id", String(36), primary_key=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("certificate_der", LargeBinary, nullable=True),
    Column("key_algorithm", String(16), nullable=False),
    Column("issued_by_client", String(64), ForeignKey("clients.id"), nullable=False),
    Column("replaces_id", String(36), ForeignKey("certificates.id"), nullable=True),
    Column("revocation_reason", Integer, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("wrong_pins", Integer, nullable=False, server_default=text("0")),
    # PIN checks reserved and not yet settled; the lease bounds one a crash never settled.
    Column("pin_checks_in_flight", Integer, nullable=False, server_default=text("0")),
    Column("pin_checks_lease_until", UtcDateTime, nullable=True),
    # The PIN lineage (certificates sealed under one PIN, as a renewal's successor is): the
    # id of the certificate whose row keeps its PIN counts above; NULL is this row itself.
    Column("pin_lineage_id", String(36), nullable=True),
    Column("master_key_id", String(64), nullable=True, index=True),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # One active certificate per person, whatever bank issued it.
    Index("uq_certificates_one_active_per_person", "person_id", unique=True,
          sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
    Index("ix_certificates_state_not_after", "state", "not_after"),
    Index("ix_certificates_replaces_id", "replaces_id"),
    # Holds (suspensions) by age, for the job that makes the old ones permanent (0009).
    Index("ix_certificates_held_revoked_at", "revoked_at",
          sqlite_where=text("state = 'revoked' AND revocation_reason = 6"),
          postgresql_where=text("state = 'revoked' AND revocation_reason = 6")),
)

verifications = Table(
    "verifications", metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.id"), nullable=False),
    Column("phone", String(20), nullable=False, index=True),
    Column("channel", String(8), nullable=False),
    Column("purpose", String(16), nullable=True),
    Column("code_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("wrong_codes", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("verified_at", UtcDateTime, nullable=True),
    Column("used_at", UtcDateTime, nullable=True),
)


def signer_columns() -> list[Column[Any]]:
    """The columns of a table of service signers the CA issued (``ocsp_responders``,
    ``tsa_signers``): the certificate, its key wrapped by the KeyProtector, and its validity
    (the newest usable one signs). New objects on each call: a Column belongs to one table."""
    return [
        Column("id", String(36), primary_key=True),
        Column("serial", String(64), nullable=False, unique=True),
        Column("key_algorithm", String(16), nullable=False),
        Column("certificate_der", LargeBinary, nullable=False),
        Column("master_key_id", String(64), nullable=False),
        Column("wrapped_key", LargeBinary, nullable=False),
        Column("not_before", UtcDateTime, nullable=False),
        Column("not_after", UtcDateTime, nullable=False, index=True),
        Column("created_at", UtcDateTime, nullable=False),
    ]
