"""PIN checks in flight, counted apart from wrong PINs.

A try is reserved before the slow PIN check. Counting reservations as wrong PINs locked a
certificate when several checks with the right PIN ran at once; now a reservation only waits
for a slot, and only settled wrong PINs lock. The lease bounds a reservation that a crashed
process never settled.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("certificates", sa.Column("pin_checks_in_flight", sa.Integer(),
                                            server_default=sa.text("0"), nullable=False))
    op.add_column("certificates", sa.Column("pin_checks_lease_until", UtcDateTime(),
                                            nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) and PostgreSQL both drop a column in place.
    op.drop_column("certificates", "pin_checks_lease_until")
    op.drop_column("certificates", "pin_checks_in_flight")
