"""The ``certcloud`` operator command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from app.clock import SystemClock
from app.services.secrets import StartupError
from app.settings import Settings

T = TypeVar("T")


def _fail(message: str) -> None:
    click.echo(f"certcloud: {message}", err=True)
    sys.exit(1)


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        _fail(f"invalid configuration: {str(exc).splitlines()[0]}")
        raise


def _run(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except StartupError as exc:
        _fail(str(exc))
        raise


@click.group()
def main() -> None:
    """Certcloud: a certificate cloud (issue, hold, sign, revoke; OCSP, CRL, status)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with uvicorn (uvloop + httptools)."""
    import uvicorn

    from app.bootstrap import preflight

    settings = _settings()
    try:
        # Once, before any worker starts: workers then find everything in place.
        asyncio.run(preflight(settings, SystemClock()))
    except StartupError as exc:
        _fail(f"cannot start: {exc}")
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                loop="uvloop", http="httptools", log_config=None, access_log=False)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations (default: every head)."""
    from app.storage import migrate

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url, revision)
    click.echo(f"database at {revision}")


@main.group()
def ca() -> None:
    """The issuing CA."""


@ca.command("init")
def ca_init() -> None:
    """Create the issuing CA (RSA-3072) and, if missing, the local key ring."""
    from app.bootstrap import init_ca
    from app.storage.keyring import LocalKeyRing

    settings = _settings()
    clock = SystemClock()
    try:
        init_ca(settings, clock)
    except StartupError as exc:
        _fail(str(exc))
    if not settings.keyring_path.exists():
        LocalKeyRing.create(settings.keyring_path, clock.now())
        click.echo(f"key ring created at {settings.keyring_path}")
    click.echo(f"CA created in {settings.ca_dir}")


@main.group()
def clients() -> None:
    """OAuth2 clients of bank front-ends."""


async def _with_auth(action: Callable[[Any], Awaitable[T]]) -> T:
    from app.bootstrap import check_configuration
    from app.services.auth import AuthService
    from app.storage.db import Database, make_engine

    settings = _settings()
    secrets_ = check_configuration(settings)
    db_ = Database(make_engine(settings.resolved_database_url))
    try:
        return await action(AuthService(db_, secrets_, settings.oauth, SystemClock()))
    finally:
        await db_.dispose()


@clients.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True,
              help="Repeat for several; default: the four bank scopes.")
def clients_create(name: str, scopes: tuple[str, ...]) -> None:
    """Register a client; prints {"client_id", "client_secret", "scopes"} once."""
    from app.domain.errors import DomainError

    try:
        created = _run(lambda: _with_auth(lambda auth: auth.create_client(name, scopes)))
    except DomainError as exc:
        _fail(exc.detail)
        return
    click.echo(json.dumps({"client_id": created.client_id,
                           "client_secret": created.client_secret, "scopes": created.scopes}))


@clients.command("list")
def clients_list() -> None:
    """List clients (never their secrets), one JSON object a line."""
    for row in _run(lambda: _with_auth(lambda auth: auth.list_clients())):
        click.echo(json.dumps(row))


@clients.command("disable")
@click.argument("client_id")
def clients_disable(client_id: str) -> None:
    """Disable a client: its tokens stop working at once."""
    from app.domain.errors import DomainError

    try:
        _run(lambda: _with_auth(lambda auth: auth.set_disabled(client_id, True)))
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"client {client_id} disabled")
