"""The app in process for the tests: the database backend and key store the run uses, a
fixed clock, settings, and the app through its lifespan with a client that talks to it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.bootstrap import Container
from app.logs import JsonFormatter
from app.main import create_app
from app.services.audit import GENESIS
from app.settings import Settings
from app.storage.ops_tables import audit_head
from app.storage.schema import metadata

BACKEND = os.environ.get("CERTCLOUD_TEST_DB", "sqlite")
PG_SERVER = os.environ.get("CERTCLOUD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEYS = os.environ.get("CERTCLOUD_TEST_KEYS", "local")  # or "pkcs11"
# Redis for the rate-limit counters (a database number of its own; keys get a unique prefix).
REDIS_URL = os.environ.get("CERTCLOUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_url_or_skip() -> str:
    """The test Redis; skips when none answers, unless CERTCLOUD_REQUIRE_REDIS=1 (CI)."""
    parsed = urllib.parse.urlsplit(REDIS_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379),
                                 timeout=1).close()
    except OSError:
        if os.environ.get("CERTCLOUD_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis at {parsed.hostname}:{parsed.port}")
    return REDIS_URL


class FixedClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: datetime = START) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


async def create_pg_database() -> str:
    """A new empty PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"certcloud_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return f"{PG_SERVER}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@contextlib.asynccontextmanager
async def fresh_database(directory: Path, name: str = "serve.db") -> AsyncIterator[str]:
    """An empty database of the run's backend (a new PostgreSQL database, dropped on the way
    out, or a SQLite file in ``directory``); yields its URL."""
    if BACKEND == "postgres":
        url = await create_pg_database()
        try:
            yield url
        finally:
            await drop_pg_database(url)
    else:
        yield f"sqlite+aiosqlite:///{directory / name}"


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is audit_head:
                await conn.execute(table.update().values(seq=0, hash=GENESIS))
            else:
                await conn.execute(table.delete())
    await engine.dispose()


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development", "data_dir": data_dir, "database_url": database_url,
        "public_base_url": "http://certcloud.test",
        "argon2": {"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
        # Tests reuse phones far more than people do; the limits have tests of their own.
        "limits": {"verifications_per_phone_per_10_minutes": 1000,
                   "wrong_codes_per_phone_per_hour": 1000,
                   "wrong_codes_per_client_per_hour": 100_000,
                   "signatures_per_certificate_per_minute": 100_000,
                   "token_attempts_per_address_per_minute": 100_000,
                   "lookups_per_client_per_minute": 100_000},
        "log_level": "DEBUG",
    }
    if KEYS == "pkcs11":
        from tests.support.softhsm import SUITE_OVERRIDES

        values.update(SUITE_OVERRIDES)
    values.update(overrides)
    return Settings(**values)


@dataclass
class Service:
    app: Any
    http: httpx.AsyncClient
    container: Container
    clock: FixedClock
    settings: Settings


async def database_bytes(service: Service) -> bytes:
    """Everything the database holds, for tests that search it for secrets: on SQLite the
    files themselves (free pages keep deleted rows), and on every backend each row's values."""
    url = service.settings.resolved_database_url
    dump = bytearray()
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for part in (path, Path(f"{path}-wal")):
            if part.exists():
                dump += part.read_bytes()
    async with service.container.db.transaction(write=False) as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
                    dump += b"\x00"
    return bytes(dump)


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    """The app in process, through its lifespan, with a client that talks to it."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            yield Service(app, http, app.state.container, clock, settings)


def with_limits(settings: Settings, **limits: Any) -> Settings:
    """The settings with some abuse limits set (the suite lifts them all by default)."""
    return settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})


@dataclass
class Recording:
    """What the app logged (also through its JSON formatter) and the replies' bodies."""

    stream: io.StringIO
    caplog: pytest.LogCaptureFixture
    replies: list[bytes] = field(default_factory=list)

    def logs(self) -> bytes:
        return (self.stream.getvalue() + self.caplog.text).encode()


@contextlib.contextmanager
def recording(service: Service, caplog: pytest.LogCaptureFixture) -> Iterator[Recording]:
    """Records every log record at DEBUG (caplog and a JsonFormatter handler on the root
    logger) and the body of every reply but the sandbox's, for the tests that search them for
    secrets."""
    caplog.set_level(logging.DEBUG)
    seen = Recording(io.StringIO(), caplog)
    handler = logging.StreamHandler(seen.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)

    async def record(response: Any) -> None:
        if not str(response.request.url.path).startswith("/sandbox"):
            await response.aread()
            seen.replies.append(response.content)

    service.http.event_hooks["response"].append(record)
    try:
        yield seen
    finally:
        root.removeHandler(handler)
        service.http.event_hooks["response"].remove(record)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """Wraps ``owner.name`` (for the test) so each call appends 1 to the returned list."""
    calls: list[int] = []
    real = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls
