"""Real ``certcloud serve`` processes for the resilience suites, and a bank that talks to them.

Every server of one test shares the database URL and the data directory (CA, key ring and the
development secrets), as replicas behind a load balancer do. Each writes its log to a file of
its own (no pipe to fill up), and every process is ended in the fixture's ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.bootstrap import unit_of_work
from app.clock import SystemClock
from app.pki.ca import create_ca, save_ca
from app.services.auth import AuthService
from app.services.limits import RateLimiter
from app.services.secrets import load_secrets
from app.settings import Settings
from app.storage import migrate
from app.storage.db import Database, make_engine
from app.storage.local_keyring import LocalKeyRing
from app.storage.rate_counters import DatabaseCounters
from app.storage.tables import certificates

CERTCLOUD = shutil.which("certcloud") or str(Path(sys.executable).parent / "certcloud")
PIN = "902714"
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_template(base: Path) -> Path:
    """A data directory with a CA and a local key ring, dated by the wall clock (the servers
    run on the system clock)."""
    now = datetime.now(UTC) - timedelta(days=1)
    save_ca(create_ca(common_name="Certcloud Resilience CA", organization="Certcloud",
                      country="KR", now=now, validity_years=20), base / "ca")
    LocalKeyRing.create(base / "keyring.json", now)
    return base


def server_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")}
    env.update({
        "CERTCLOUD_DATA_DIR": str(data_dir), "CERTCLOUD_DATABASE_URL": database_url,
        "CERTCLOUD_PUBLIC_BASE_URL": "http://certcloud.test",
        "CERTCLOUD_ARGON2__TIME_COST": "1", "CERTCLOUD_ARGON2__MEMORY_KIB": "1024",
        "CERTCLOUD_ARGON2__PARALLELISM": "1",
        # P-256 user and responder keys: key generation is not what these suites test.
        "CERTCLOUD_CA__USER_KEY_ALGORITHM": "p256",
        "CERTCLOUD_STATUS__RESPONDER_KEY_ALGORITHM": "p256",
        # The races need many verifications of one phone; the limits have tests of their own.
        "CERTCLOUD_LIMITS__VERIFICATIONS_PER_PHONE_PER_10_MINUTES": "1000",
        "CERTCLOUD_LIMITS__VERIFICATIONS_PER_CLIENT_PER_MINUTE": "5000",
        "CERTCLOUD_LIMITS__SIGNATURES_PER_CERTIFICATE_PER_MINUTE": "1000",
        "CERTCLOUD_LIMITS__TOKEN_ATTEMPTS_PER_ADDRESS_PER_MINUTE": "100000",
        "CERTCLOUD_LIMITS__LOOKUPS_PER_CLIENT_PER_MINUTE": "5000",
        "CERTCLOUD_LOG_LEVEL": "INFO",
    })
    env.update(extra)
    return env


@dataclass
class Server:
    """One ``certcloud serve`` process."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [CERTCLOUD, "serve", "--port", str(self.port)], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no rollback, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def unexpected_errors(self) -> list[str]:
        """Log lines of errors that escaped as a 500 (the edge logs them as "unhandled error")
        or out of the ASGI app (uvicorn's "Exception in ASGI application")."""
        found = []
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                if entry.get("message") in ("unhandled error", "Exception in ASGI application"):
                    found.append(line[:2000])
            elif "Traceback" in line or "Exception in ASGI application" in line:
                found.append(line[:2000])
        return found


def prepare(data_dir: Path, database_url: str) -> None:
    """What the first development start would create, made once before the replicas start
    together: the schema and the development secrets."""
    migrate.upgrade(database_url)
    load_secrets(settings_for(data_dir, database_url))


def start_all(servers: Iterable[Server]) -> None:
    """Starts them together (after :func:`prepare`) and waits until each is ready."""
    servers = list(servers)
    for server in servers:
        server.start()
    for server in servers:
        server.wait_ready()


def stop_all(servers: Iterable[Server]) -> None:
    """SIGINT to all at once, then wait for each (SIGKILL after 20 s)."""
    servers = list(servers)
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGINT)
    for server in servers:
        try:
            server.stop()
        except Exception:  # the next one must still be stopped
            server.kill()


def settings_for(data_dir: Path, database_url: str) -> Settings:
    return Settings(environment="development", data_dir=data_dir, database_url=database_url)


async def create_client(data_dir: Path, database_url: str, name: str,
                        scopes: list[str] | None = None) -> tuple[str, str]:
    """Registers a bank client straight in the shared database (as `certcloud clients
    create` does), with the secrets the servers use."""
    settings = settings_for(data_dir, database_url)
    db = Database(make_engine(database_url))
    try:
        secrets_ = load_secrets(settings)
        auth = AuthService(unit_of_work(db, secrets_.audit_key), secrets_, settings.oauth,
                           SystemClock(), RateLimiter(DatabaseCounters(db)), settings.limits)
        created = await auth.create_client(name, scopes)
    finally:
        await db.dispose()
    return created.client_id, created.client_secret


class Problems:
    """Counts what came back, so the closing note can report it."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []

    def note(self, reply: httpx.Response) -> None:
        self.statuses[reply.status_code] = self.statuses.get(reply.status_code, 0) + 1
        if reply.status_code >= 500:
            self.errors.append(f"{reply.request.method} {reply.request.url.path}: "
                               f"{reply.status_code} {reply.text[:300]}")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@dataclass
class RemoteBank:
    """A bank front-end spreading its calls over several servers (a load balancer)."""

    clients: list[httpx.AsyncClient]
    client_id: str
    client_secret: str
    token: str = ""
    seen: Problems = field(default_factory=Problems)

    @classmethod
    async def connect(cls, servers: list[Server], data_dir: Path, database_url: str,
                      name: str, scopes: list[str] | None = None,
                      timeout: float = 60.0) -> RemoteBank:
        client_id, secret = await create_client(data_dir, database_url, name, scopes)
        clients = [httpx.AsyncClient(base_url=s.url, timeout=timeout) for s in servers]
        bank = cls(clients, client_id, secret)
        reply = await clients[0].post("/oauth2/token", data={"grant_type": "client_credentials"},
                                      auth=(client_id, secret))
        assert reply.status_code == 200, reply.text
        bank.token = reply.json()["access_token"]
        return bank

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def at(self, index: int) -> httpx.AsyncClient:
        return self.clients[index % len(self.clients)]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, index: int, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        reply = await self.at(index).post(path, json=body,
                                          headers={**self.headers, **(headers or {})})
        self.seen.note(reply)
        return reply

    async def get(self, index: int, path: str) -> httpx.Response:
        reply = await self.at(index).get(path, headers=self.headers)
        self.seen.note(reply)
        return reply

    async def verified(self, index: int, phone: str, purpose: str = "issue") -> str:
        """A confirmed SMS verification, started on one server and confirmed on the next. The
        sandbox outbox lives in the memory of the process that sent the SMS (development only;
        a real provider delivers to the phone), so the code is read where it was sent."""
        started = await self.post(index, "/v1/verifications",
                                  {"phone": phone, "channel": "sms", "purpose": purpose})
        assert started.status_code == 201, started.text
        verification_id = started.json()["id"]
        code = await self.sms_code(index, phone)
        confirmed = await self.post(index + 1, f"/v1/verifications/{verification_id}/confirm",
                                    {"code": code})
        assert confirmed.status_code == 200, confirmed.text
        return str(verification_id)

    async def sms_code(self, index: int, phone: str) -> str:
        """The newest code sent to the phone (the sandbox lists them newest first)."""
        messages = (await self.at(index).get("/sandbox/messages",
                                             params={"phone": phone})).json()
        return str(next(m["code"] for m in messages if m["code"] is not None))

    async def verified_many(self, phone: str, count: int, purpose: str = "issue") -> list[str]:
        """``count`` confirmed verifications of one phone. The sandbox can only tell the newest
        code of a phone, so they are made one after the other, alternating servers."""
        return [await self.verified(i, phone, purpose) for i in range(count)]

    async def issue(self, index: int, person: dict[str, str], pin: str = PIN,
                    verification_id: str | None = None) -> httpx.Response:
        if verification_id is None:
            verification_id = await self.verified(index, person["phone"])
        return await self.post(index, "/v1/certificates",
                               issue_body(person, verification_id, pin))


def issue_body(person: dict[str, str], verification_id: str, pin: str = PIN) -> dict[str, Any]:
    return {"verification_id": verification_id, "person": person, "terms_accepted": True,
            "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
            "pin": pin}


def resident(n: int) -> dict[str, str]:
    """A distinct valid person (born in March 1985), distinct from tests.conftest.person."""
    return {"name": f"김민준{n}", "rrn": f"8503{n % 28 + 1:02d}-1{n:06d}",
            "phone": f"+8210{7777_0000 + n:08d}", "email": f"resident{n}@example.com"}


async def gather(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls))


class Inspector:
    """Reads the shared database directly, as an auditor would."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_async_engine(database_url)

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar_one()

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def count_certificates(self, **where: Any) -> int:
        query = select(func.count()).select_from(certificates)
        for column, value in where.items():
            query = query.where(certificates.c[column] == value)
        return int(await self.scalar(query))

    async def max_active_per_person(self) -> int:
        per_person = (select(func.count().label("n")).select_from(certificates)
                      .where(certificates.c.state == "active")
                      .group_by(certificates.c.person_id).subquery())
        return int(await self.scalar(select(func.coalesce(func.max(per_person.c.n), 0))))

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


def audit_verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CERTCLOUD, "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
