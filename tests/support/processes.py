"""Real ``certcloud`` processes: one-off commands, and ``certcloud serve`` servers (the
resilience suites run several of them as replicas).

Every server of one test shares the database URL and the data directory (CA, key ring and the
development secrets), as replicas behind a load balancer do. Each writes its log to a file of
its own (no pipe to fill up), and every process is ended in the fixture's ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
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
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a development ``certcloud`` on ``data_dir`` and ``database_url``
    (no CERTCLOUD_* of the caller's; cheap Argon2)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")}
    env.update({"CERTCLOUD_DATA_DIR": str(data_dir), "CERTCLOUD_DATABASE_URL": database_url,
                "CERTCLOUD_ARGON2__TIME_COST": "1", "CERTCLOUD_ARGON2__MEMORY_KIB": "1024",
                "CERTCLOUD_ARGON2__PARALLELISM": "1"})
    env.update(extra)
    return env


def certcloud(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CERTCLOUD, *args], env=env, capture_output=True, text=True,
                          timeout=120)


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


def wait_ready(url: str, process: subprocess.Popen[Any], timeout: float = 60, *,
               name: str = "certcloud serve", log: Callable[[], str] = lambda: "") -> None:
    """Until ``url``/readyz answers 200; fails if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{log()}".rstrip(":\n"))
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{name} did not become ready:\n{log()}".rstrip(":\n"))


@contextlib.contextmanager
def serving(data_dir: Path, database_url: str, **extra: str) -> Iterator[str]:
    """A development ``certcloud serve`` on a free port (its public URL its own), ready; yields
    its base URL and stops it on the way out."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(data_dir, database_url, CERTCLOUD_PUBLIC_BASE_URL=base, **extra)
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        yield base
    finally:
        stop_process(server)


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
        assert self.process is not None
        wait_ready(self.url, self.process, timeout, name=self.name, log=self.log_tail)

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no rollback, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

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
