"""Run the Alembic migrations programmatically (``certcloud db upgrade``, development start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.storage.db import prepare_sqlite_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The PostgreSQL advisory lock that `db upgrade` holds while it migrates (migrations/env.py):
# a fixed signed 64-bit key (the ASCII of "ccmigrat", shifted) that nothing else takes.
MIGRATION_LOCK_KEY = int.from_bytes(b"ccmigrat", "big") - 2**63


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking; it runs its own event loop, so call it from a thread when one is running."""
    prepare_sqlite_file(database_url)  # before Alembic's engine creates the file 0644
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
