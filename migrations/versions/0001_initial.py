"""Initial schema: clients, persons, certificates, verifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
    )
    op.create_table(
        "persons",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rrn_hmac", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("birth_patterns", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.UniqueConstraint("rrn_hmac", name="uq_persons_rrn_hmac"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("not_after", UtcDateTime(), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=True),
        sa.Column("key_algorithm", sa.String(16), nullable=False),
        sa.Column("issued_by_client", sa.String(64), nullable=False),
        sa.Column("replaces_id", sa.String(36), nullable=True),
        sa.Column("revocation_reason", sa.Integer(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("wrong_pins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"],
                                name="fk_certificates_person_id_persons"),
        sa.ForeignKeyConstraint(["issued_by_client"], ["clients.id"],
                                name="fk_certificates_issued_by_client_clients"),
        sa.ForeignKeyConstraint(["replaces_id"], ["certificates.id"],
                                name="fk_certificates_replaces_id_certificates"),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
        sa.UniqueConstraint("serial", name="uq_certificates_serial"),
    )
    op.create_index("ix_certificates_person_id", "certificates", ["person_id"])
    op.create_index("ix_certificates_master_key_id", "certificates", ["master_key_id"])
    op.create_index("ix_certificates_state_not_after", "certificates", ["state", "not_after"])
    op.create_index("uq_certificates_one_active_per_person", "certificates", ["person_id"],
                    unique=True, sqlite_where=sa.text("state = 'active'"),
                    postgresql_where=sa.text("state = 'active'"))
    op.create_table(
        "verifications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wrong_codes", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("verified_at", UtcDateTime(), nullable=True),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"],
                                name="fk_verifications_client_id_clients"),
        sa.PrimaryKeyConstraint("id", name="pk_verifications"),
    )
    op.create_index("ix_verifications_phone", "verifications", ["phone"])


def downgrade() -> None:
    op.drop_index("ix_verifications_phone", table_name="verifications")
    op.drop_table("verifications")
    op.drop_index("uq_certificates_one_active_per_person", table_name="certificates")
    op.drop_index("ix_certificates_state_not_after", table_name="certificates")
    op.drop_index("ix_certificates_master_key_id", table_name="certificates")
    op.drop_index("ix_certificates_person_id", table_name="certificates")
    op.drop_table("certificates")
    op.drop_table("persons")
    op.drop_table("clients")
