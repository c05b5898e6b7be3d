"""PostgreSQL: a status change notifies the replicas (LISTEN/NOTIFY) when it commits.

A trigger on ``status_state`` sends ``NOTIFY certcloud_status, '<generation>'`` whenever the
status generation moves (a revocation, a stored CRL), whoever makes the change (a serving
replica, an operator command). PostgreSQL delivers it to every listening replica at commit,
so replicas need not poll the generation (app/storage/status_listener.py). Nothing on SQLite:
replicas there keep polling.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "certcloud_status"  # app/storage/status_listener.py listens on it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE FUNCTION certcloud_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.generation::text);
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER status_state_notify AFTER UPDATE OF generation ON status_state
        FOR EACH ROW WHEN (NEW.generation IS DISTINCT FROM OLD.generation)
        EXECUTE FUNCTION certcloud_status_notify()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS status_state_notify ON status_state")
    op.execute("DROP FUNCTION IF EXISTS certcloud_status_notify()")
