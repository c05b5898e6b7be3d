"""The time-stamping authority's signers: certificate and wrapped key, like OCSP responders.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tsa_signers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("key_algorithm", sa.String(16), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("not_after", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tsa_signers"),
        sa.UniqueConstraint("serial", name="uq_tsa_signers_serial"),
    )
    op.create_index("ix_tsa_signers_not_after", "tsa_signers", ["not_after"])


def downgrade() -> None:
    op.drop_index("ix_tsa_signers_not_after", table_name="tsa_signers")
    op.drop_table("tsa_signers")
