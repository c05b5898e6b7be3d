"""Alembic is the one source of the schema: up, down, up again, and it matches the tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.storage import migrate
from app.storage.schema import metadata
from tests.conftest import BACKEND, create_pg_database, drop_pg_database


@pytest.fixture
async def empty_url(tmp_path: Path):
    if BACKEND == "postgres":
        url = await create_pg_database()
        yield url
        await drop_pg_database(url)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def _diff(url: str) -> list[object]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    await engine.dispose()
    return list(diff)


async def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url)
    expected = set(metadata.tables)
    assert await _tables(empty_url) == expected
    await asyncio.to_thread(migrate.downgrade, empty_url, "base")
    assert await _tables(empty_url) == set()
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _tables(empty_url) == expected


async def test_migrated_schema_matches_the_table_definitions(empty_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _diff(empty_url) == []
