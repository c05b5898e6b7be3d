"""Alembic environment (async template). The URL is set by app.storage.migrate or taken from
the settings (CERTCLOUD_DATABASE_URL / the default SQLite file)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.storage.migrate import MIGRATION_LOCK_KEY
from app.storage.schema import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.settings import Settings

    return Settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        # Replicas that start together migrate one at a time: each waits for this session
        # lock, then reads the version the one before it left (SQLite needs none: one file,
        # one host, and its writers queue on the file lock).
        locked = connection.dialect.name == "postgresql"
        if locked:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"),
                                     {"key": MIGRATION_LOCK_KEY})
            await connection.commit()
        try:
            await connection.run_sync(do_run_migrations)
        finally:
            if locked:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                         {"key": MIGRATION_LOCK_KEY})
                await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
