"""Suspension (효력정지): a hold is a revoked row with reason certificateHold (6), so no column
is new; this index lets the job that makes holds older than ``suspension_max_days`` permanent
find them by ``revoked_at`` without scanning every revoked certificate.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = "state = 'revoked' AND revocation_reason = 6"


def upgrade() -> None:
    op.create_index("ix_certificates_held_revoked_at", "certificates", ["revoked_at"],
                    sqlite_where=sa.text(_HELD), postgresql_where=sa.text(_HELD))


def downgrade() -> None:
    op.drop_index("ix_certificates_held_revoked_at", table_name="certificates")
