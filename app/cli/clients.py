"""``certcloud clients``: OAuth2 clients of bank front-ends (create, list, disable, enable,
rotate-secret)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from app.cli.common import fail, run_wired
from app.domain.errors import DomainError

if TYPE_CHECKING:
    from app.services.auth import AuthService

T = TypeVar("T")


def _with_auth(action: Callable[[AuthService], Awaitable[T]]) -> T:
    """``action`` with the auth service; a refusal is the command's one error line."""
    try:
        return run_wired(lambda wiring: action(wiring.auth()))
    except DomainError as exc:
        fail(exc.detail)


@click.group()
def clients() -> None:
    """OAuth2 clients of bank front-ends."""


@clients.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True,
              help="Repeat for several; default: the four bank scopes.")
def clients_create(name: str, scopes: tuple[str, ...]) -> None:
    """Register a client; prints {"client_id", "client_secret", "scopes"} once."""
    created = _with_auth(lambda auth: auth.create_client(name, scopes))
    click.echo(json.dumps({"client_id": created.client_id,
                           "client_secret": created.client_secret, "scopes": created.scopes}))


@clients.command("list")
def clients_list() -> None:
    """List clients (never their secrets), one JSON object a line."""
    for row in _with_auth(lambda auth: auth.list_clients()):
        click.echo(json.dumps(row))


@clients.command("disable")
@click.argument("client_id")
def clients_disable(client_id: str) -> None:
    """Disable a client: its tokens stop working at once."""
    _with_auth(lambda auth: auth.set_disabled(client_id, True))
    click.echo(f"client {client_id} disabled")


@clients.command("enable")
@click.argument("client_id")
def clients_enable(client_id: str) -> None:
    """Enable a disabled client again."""
    _with_auth(lambda auth: auth.set_disabled(client_id, False))
    click.echo(f"client {client_id} enabled")


@clients.command("rotate-secret")
@click.argument("client_id")
def clients_rotate_secret(client_id: str) -> None:
    """A new client secret, printed once as {"client_id", "client_secret"}; the old secret
    stops working at once (tokens already issued run to their expiry)."""
    secret = _with_auth(lambda auth: auth.rotate_secret(client_id))
    click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
