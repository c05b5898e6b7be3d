"""Relying-party status: OCSP responders and pre-signed responses, CRLs, the status generation
and the replica leases that keep in-process caches coherent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    state = op.create_table(
        "status_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_state"),
    )
    op.bulk_insert(state, [{"id": 1, "generation": 0, "crl_number": 0}])
    op.create_table(
        "status_changes",
        sa.Column("generation", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("generation", name="pk_status_changes"),
    )
    op.create_index("ix_status_changes_created_at", "status_changes", ["created_at"])
    op.create_index("ix_status_changes_kind_generation", "status_changes",
                    ["kind", "generation"])
    op.create_table(
        "status_replicas",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("acked_generation", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_replicas"),
    )
    op.create_index("ix_status_replicas_lease_until", "status_replicas", ["lease_until"])
    op.create_table(
        "ocsp_responders",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("key_algorithm", sa.String(16), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("not_after", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ocsp_responders"),
        sa.UniqueConstraint("serial", name="uq_ocsp_responders_serial"),
    )
    op.create_index("ix_ocsp_responders_not_after", "ocsp_responders", ["not_after"])
    op.create_table(
        "ocsp_responses",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("hash_algorithm", sa.String(8), nullable=False),
        sa.Column("cert_status", sa.String(8), nullable=False),
        sa.Column("response_der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", UtcDateTime(), nullable=False),
        sa.Column("next_update", UtcDateTime(), nullable=False),
        sa.Column("responder_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("serial", "hash_algorithm", name="pk_ocsp_responses"),
    )
    op.create_index("ix_ocsp_responses_next_update", "ocsp_responses", ["next_update"])
    op.create_table(
        "crls",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("this_update", UtcDateTime(), nullable=False),
        sa.Column("next_update", UtcDateTime(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("crl_der", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_crls"),
    )


def downgrade() -> None:
    op.drop_table("crls")
    op.drop_index("ix_ocsp_responses_next_update", table_name="ocsp_responses")
    op.drop_table("ocsp_responses")
    op.drop_index("ix_ocsp_responders_not_after", table_name="ocsp_responders")
    op.drop_table("ocsp_responders")
    op.drop_index("ix_status_replicas_lease_until", table_name="status_replicas")
    op.drop_table("status_replicas")
    op.drop_index("ix_status_changes_kind_generation", table_name="status_changes")
    op.drop_index("ix_status_changes_created_at", table_name="status_changes")
    op.drop_table("status_changes")
    op.drop_table("status_state")
