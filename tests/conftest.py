"""Shared fixtures. The database is SQLite by default; CERTCLOUD_TEST_DB=postgres runs the same
suite on the real PostgreSQL server (a throwaway database per run). CERTCLOUD_TEST_KEYS=pkcs11
runs it with the master keys and the CA key inside a SoftHSM2 token (tests/support/softhsm.py).
The helpers are in tests/support; this file holds only fixtures."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.pki.ca import create_ca, save_ca
from app.settings import Settings
from app.storage import migrate
from app.storage.local_keyring import LocalKeyRing
from tests.support.app import (
    BACKEND,
    KEYS,
    START,
    FixedClock,
    Service,
    create_pg_database,
    drop_pg_database,
    fresh_database,
    make_settings,
    running,
    truncate_all,
)
from tests.support.bank import Bank, make_bank


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a CA and a key ring, made once (RSA-3072 keygen is slow)."""
    base = tmp_path_factory.mktemp("template")
    if KEYS == "pkcs11":
        from tests.support.softhsm import token_template

        token_template(base, tmp_path_factory.getbasetemp() / "softhsm", START - timedelta(days=1))
        return base
    save_ca(create_ca(common_name="Certcloud Test CA", organization="Certcloud", country="KR",
                      now=START - timedelta(days=1), validity_years=20), base / "ca")
    LocalKeyRing.create(base / "keyring.json", START)
    return base


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if BACKEND == "postgres":
        url = await create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'certcloud.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    yield url
    if BACKEND == "postgres":
        await drop_pg_database(url)


@pytest.fixture
async def fresh_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for a real server of the test (tests/support/app.fresh_database)."""
    async with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's SoftHSM2 (tests/support/softhsm.py); skips without softhsm2 installed."""
    from tests.support.softhsm import SoftHsm

    return SoftHsm.get(tmp_path_factory.getbasetemp() / "softhsm")


@pytest.fixture
async def settings(tmp_path: Path, template_dir: Path, database_url: str) -> Settings:
    data_dir = tmp_path / "var"
    shutil.copytree(template_dir, data_dir)
    await truncate_all(database_url)
    return make_settings(data_dir, database_url)


@pytest.fixture
async def service(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    async with running(settings, clock) as started:
        yield started


@pytest.fixture
async def bank(service: Service) -> Bank:
    return await make_bank(service.http, service.container)

