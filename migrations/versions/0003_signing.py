"""Remote signing: single-use CSC Signature Activation Data.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "csc_sads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("hash_algorithm", sa.String(16), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["credential_id"], ["certificates.id"],
                                name="fk_csc_sads_credential_id_certificates"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"],
                                name="fk_csc_sads_client_id_clients"),
        sa.PrimaryKeyConstraint("id", name="pk_csc_sads"),
    )
    op.create_index("ix_csc_sads_credential_id", "csc_sads", ["credential_id"])
    op.create_index("ix_csc_sads_expires_at", "csc_sads", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_csc_sads_expires_at", table_name="csc_sads")
    op.drop_index("ix_csc_sads_credential_id", table_name="csc_sads")
    op.drop_table("csc_sads")
