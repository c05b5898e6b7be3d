"""Fixtures of the resilience suites: real server processes over one shared database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import BACKEND, create_pg_database, drop_pg_database
from tests.support.bank import Bank, remote_bank
from tests.support.processes import (
    Inspector,
    Server,
    make_template,
    prepare,
    server_env,
    start_all,
    stop_all,
)


def report(suite: str, **counts: Any) -> None:
    """Appends what a suite tried and saw to $CERTCLOUD_RESILIENCE_REPORT (JSON lines), when
    set; the closing note of issue 6 is written from it."""
    path = os.environ.get("CERTCLOUD_RESILIENCE_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"suite": suite, "backend": BACKEND, **counts}) + "\n")


@pytest.fixture(scope="session")
def server_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("server-template"))


@dataclass
class Cluster:
    """Servers sharing one database and one data directory."""

    servers: list[Server]
    data_dir: Path
    database_url: str
    env: dict[str, str]
    inspector: Inspector
    banks: list[Bank] = field(default_factory=list)

    async def bank(self, name: str, scopes: list[str] | None = None) -> Bank:
        bank = await remote_bank(self.servers, self.data_dir, self.database_url, name,
                                        scopes)
        self.banks.append(bank)
        return bank


async def new_database_url(tmp_path: Path) -> str:
    if BACKEND == "postgres":
        return await create_pg_database()
    return f"sqlite+aiosqlite:///{tmp_path / 'certcloud.db'}"


async def drop_database_url(url: str) -> None:
    if BACKEND == "postgres":
        await drop_pg_database(url)


async def open_cluster(base: Path, template: Path, count: int,
                       **extra_env: str) -> Cluster:
    data_dir = base / "var"
    shutil.copytree(template, data_dir)
    url = await new_database_url(base)
    env = server_env(data_dir, url, **extra_env)
    servers = [Server(f"replica-{i}", env, base / f"replica-{i}.log") for i in range(count)]
    try:
        await asyncio.to_thread(prepare, data_dir, url)
        await asyncio.to_thread(start_all, servers)
    except BaseException:
        stop_all(servers)
        await drop_database_url(url)
        raise
    return Cluster(servers, data_dir, url, env, Inspector(url))


@contextlib.asynccontextmanager
async def running_cluster(base: Path, template: Path, count: int,
                          **extra_env: str) -> AsyncIterator[Cluster]:
    """:func:`open_cluster`, closed on the way out."""
    cluster = await open_cluster(base, template, count, **extra_env)
    try:
        yield cluster
    finally:
        await close_cluster(cluster)


async def close_cluster(cluster: Cluster) -> None:
    stop_all(cluster.servers)
    for bank in cluster.banks:
        await bank.aclose()
    await cluster.inspector.aclose()
    await drop_database_url(cluster.database_url)


@pytest.fixture(scope="module")
async def replicas(server_template: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[Cluster]:
    """Two `certcloud serve` processes on one database, for the whole module."""
    async with running_cluster(tmp_path_factory.mktemp("replicas"), server_template, 2) as cluster:
        yield cluster
