"""``certcloud clients rotate-secret`` and ``clients enable`` (the inverse of ``disable``)."""

from __future__ import annotations

import json

import click


def _call(action: str, client_id: str) -> str | None:
    from app.cli import _fail, _run, _with_auth
    from app.domain.errors import DomainError

    try:
        if action == "rotate":
            return _run(lambda: _with_auth(lambda auth: auth.rotate_secret(client_id)))
        _run(lambda: _with_auth(lambda auth: auth.set_disabled(client_id, False)))
    except DomainError as exc:
        _fail(exc.detail)
    return None


@click.command("rotate-secret")
@click.argument("client_id")
def clients_rotate_secret(client_id: str) -> None:
    """A new client secret, printed once as {"client_id", "client_secret"}; the old secret
    stops working at once (tokens already issued run to their expiry)."""
    secret = _call("rotate", client_id)
    click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))


@click.command("enable")
@click.argument("client_id")
def clients_enable(client_id: str) -> None:
    """Enable a disabled client again."""
    _call("enable", client_id)
    click.echo(f"client {client_id} enabled")
