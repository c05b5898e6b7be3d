"""Indexes for the periodic jobs at national scale (issue 17).

The sweeper deletes spent rate-limit windows by ``window_start``, which is the second column
of the counters' primary key, so every round read the whole table. ``EXPLAIN`` of every
request-path and periodic-job query on a seeded database (tests/integration/
test_query_plans.py) found no other scan of a big table.

On PostgreSQL, CREATE INDEX here takes a lock that blocks writes to the table while it
builds; Alembic runs the migration in a transaction, where CREATE INDEX CONCURRENTLY is not
allowed. On a large live table an operator may build it first, outside any transaction:
``CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_rate_counters_window_start ON rate_counters
(window_start)``; this migration then finds it and skips it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("rate_counters")}
    if "ix_rate_counters_window_start" not in existing:
        op.create_index("ix_rate_counters_window_start", "rate_counters", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_counters_window_start", table_name="rate_counters")
