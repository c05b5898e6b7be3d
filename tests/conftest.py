"""Shared fixtures. The database is SQLite by default; CERTCLOUD_TEST_DB=postgres runs the same
suite on the real PostgreSQL server (a throwaway database per run). CERTCLOUD_TEST_KEYS=pkcs11
runs it with the master keys and the CA key inside a SoftHSM2 token (tests/hsm/softhsm.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.bootstrap import Container
from app.main import create_app
from app.pki.ca import create_ca, save_ca
from app.services.audit import GENESIS
from app.settings import Settings
from app.storage import migrate
from app.storage.local_keyring import LocalKeyRing
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


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a CA and a key ring, made once (RSA-3072 keygen is slow)."""
    base = tmp_path_factory.mktemp("template")
    if KEYS == "pkcs11":
        from tests.hsm.softhsm import token_template

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


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is audit_head:
                await conn.execute(table.update().values(seq=0, hash=GENESIS))
            else:
                await conn.execute(table.delete())
    await engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


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
        from tests.hsm.softhsm import SUITE_OVERRIDES

        values.update(SUITE_OVERRIDES)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's SoftHSM2 (tests/hsm/softhsm.py); skips without softhsm2 installed."""
    from tests.hsm.softhsm import SoftHsm

    return SoftHsm.get(tmp_path_factory.getbasetemp() / "softhsm")


@pytest.fixture
async def settings(tmp_path: Path, template_dir: Path, database_url: str) -> Settings:
    data_dir = tmp_path / "var"
    shutil.copytree(template_dir, data_dir)
    await truncate_all(database_url)
    return make_settings(data_dir, database_url)


@dataclass
class Bank:
    """A bank front-end: an OAuth2 client with a token, and the steps of the API flow."""

    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    token: str
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.http.post(path, json=body, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.http.get(path, headers=headers, **kwargs)

    async def start_verification(self, phone: str, purpose: str | None = "issue",
                                 channel: str = "sms") -> dict[str, Any]:
        body: dict[str, Any] = {"phone": phone, "channel": channel}
        if purpose is not None:
            body["purpose"] = purpose
        reply = await self.post("/v1/verifications", body)
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    async def sms_code(self, phone: str) -> str:
        messages = (await self.http.get("/sandbox/messages", params={"phone": phone})).json()
        return str(next(m["code"] for m in messages if m["code"] is not None))

    async def verified(self, phone: str, purpose: str | None = "issue") -> str:
        verification = await self.start_verification(phone, purpose)
        reply = await self.post(f"/v1/verifications/{verification['id']}/confirm",
                                {"code": await self.sms_code(phone)})
        assert reply.status_code == 200, reply.text
        return str(verification["id"])

    async def issue(self, person: dict[str, str], pin: str = "902714",
                    verification_id: str | None = None) -> httpx.Response:
        if verification_id is None:
            verification_id = await self.verified(person["phone"])
        return await self.post("/v1/certificates", issue_body(person, verification_id, pin))


def issue_body(person: dict[str, str], verification_id: str, pin: str) -> dict[str, Any]:
    return {"verification_id": verification_id, "person": person, "terms_accepted": True,
            "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
            "pin": pin}


def person(n: int = 1) -> dict[str, str]:
    """A distinct valid person (born 1990-01-0n)."""
    return {"name": f"홍길동{n}", "rrn": f"90010{n % 10}-1{n:06d}",
            "phone": f"+8210{5555_0000 + n:08d}", "email": f"person{n}@example.com"}


async def make_bank(http: httpx.AsyncClient, container: Container, name: str = "bank",
                    scopes: list[str] | None = None) -> Bank:
    created = await container.auth.create_client(name, scopes)
    reply = await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(created.client_id, created.client_secret))
    assert reply.status_code == 200, reply.text
    return Bank(http, created.client_id, created.client_secret, reply.json()["access_token"])


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


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGINT (a clean shutdown), then SIGKILL if it has not ended in ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
async def service(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    async with running(settings, clock) as started:
        yield started


@pytest.fixture
async def bank(service: Service) -> Bank:
    return await make_bank(service.http, service.container)

