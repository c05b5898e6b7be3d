"""Notices and the previous phone: an outbox of SMS notices, and the phone on record that a
new one replaced, which may still start a reissue for 30 days.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("persons", sa.Column("previous_phone", sa.String(20), nullable=True))
    op.add_column("persons", sa.Column("previous_name", sa.String(200), nullable=True))
    op.add_column("persons", sa.Column("phone_replaced_at", UtcDateTime(), nullable=True))
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
    )
    op.create_index("ix_notices_sent_at_claimed_until", "notices",
                    ["sent_at", "claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_notices_sent_at_claimed_until", table_name="notices")
    op.drop_table("notices")
    op.drop_column("persons", "phone_replaced_at")
    op.drop_column("persons", "previous_name")
    op.drop_column("persons", "previous_phone")
