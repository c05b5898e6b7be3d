"""Alembic is the one source of the schema: up, down, up again, and it matches the tables."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.storage import migrate
from app.storage.schema import metadata
from tests.support.app import BACKEND, create_pg_database, drop_pg_database


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


@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres", reason="the advisory lock is PostgreSQL's")
async def test_replicas_upgrading_together_take_turns(tmp_path: Path) -> None:
    """Replicas that start together each run `certcloud db upgrade`: one migrates, the others
    wait on the advisory lock and then find the schema at head (none fails on a table or a
    version row the first one made)."""
    url = await create_pg_database()
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")},
               "CERTCLOUD_DATABASE_URL": url, "CERTCLOUD_DATA_DIR": str(tmp_path / "var")}
        certcloud = shutil.which("certcloud") or str(Path(sys.executable).parent / "certcloud")
        processes = [subprocess.Popen([certcloud, "db", "upgrade"], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for _ in range(4)]
        results = [(process.wait(timeout=180), *process.communicate()) for process in processes]
        assert [code for code, _out, _err in results] == [0] * 4, results
        head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))
                        ).scalars().all()
        await engine.dispose()
        assert versions == [head]
        assert await _tables(url) == set(metadata.tables)
        assert await _diff(url) == []
    finally:
        await drop_pg_database(url)
