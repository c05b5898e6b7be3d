"""PIN lineages: the wrong-PIN count follows the PIN a key is sealed under, not the row.

An automatic renewal seals the successor's new key under the same PIN as its predecessor, so
both blobs open with one PIN; each kept five tries of its own (revoke by PIN works on a
superseded certificate), which doubled the guesses. A certificate now names the lineage it
belongs to: NULL is a lineage of its own (issue, reissue, a PIN change), and a renewal's
successor names its predecessor's. The lineage's count and PIN checks in flight live in the
row of the certificate that names it, so every existing row is a lineage of its own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("certificates", sa.Column("pin_lineage_id", sa.String(36), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) and PostgreSQL both drop a column in place.
    op.drop_column("certificates", "pin_lineage_id")
