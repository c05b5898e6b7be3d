"""Identity binding (KISA VID): each certificate's random R and the holder's RRN, both wrapped
by the master-key layer (never in clear), so relying parties can be given R and the service can
recompute a VID, and a renewal or reissue can bind its successor with a new R.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.tables import UtcDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vid_randoms",
        sa.Column("certificate_id", sa.String(36), sa.ForeignKey(
            "certificates.id", name="fk_vid_randoms_certificate_id_certificates"),
            nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("certificate_id", name="pk_vid_randoms"),
    )
    op.create_table(
        "person_rrns",
        sa.Column("person_id", sa.String(36), sa.ForeignKey(
            "persons.id", name="fk_person_rrns_person_id_persons"), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("person_id", name="pk_person_rrns"),
    )


def downgrade() -> None:
    op.drop_table("person_rrns")
    op.drop_table("vid_randoms")
