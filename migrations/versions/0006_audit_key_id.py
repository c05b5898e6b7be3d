"""The audit chain gets a key of its own: each row names the key that made its hash.

Rows written before are "legacy" (keyed from the code key) and still verify; the service seals
them with a row under the chain's own key when it starts (see ``app/services/audit.py``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("key_id", sa.String(64), nullable=False,
                                            server_default=sa.text("'legacy'")))


def downgrade() -> None:
    op.drop_column("audit_events", "key_id")
