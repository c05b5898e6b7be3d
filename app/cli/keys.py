"""``certcloud keys``: server master keys (rotate, rewrap, status, retire) and the token's HMAC
keys (init-token-hmac)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.cli.common import fail, load_settings, run_wired
from app.clock import SystemClock
from app.domain.errors import DomainError
from app.services.secrets import StartupError
from app.settings import Settings

if TYPE_CHECKING:
    from app.services.rotation import KeyRotation, RewrapReport

T = TypeVar("T")


def _with_rotation(action: Callable[[KeyRotation], Awaitable[T]]) -> T:
    async def rotated(wiring: Any) -> T:
        return await action(await wiring.rotation())

    return run_wired(rotated)


@click.group("keys")
def keys_group() -> None:
    """Server master keys: rotate, rewrap, status, retire."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Add a new master key (key ring or token); new blobs use it, old ones still open."""
    settings = load_settings()
    try:
        key_id = _with_rotation(lambda rotation: rotation.rotate(SystemClock().now()))
    except DomainError as exc:
        fail(exc.detail)
    click.echo(f"new master key {key_id}; running services wrap with it within "
               f"{settings.keys.refresh_seconds:g} s. Then move the stored blobs onto it with "
               "`certcloud keys rewrap`.")


@keys_group.command("rewrap")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
def keys_rewrap(batch_size: int) -> None:
    """Move every stored blob onto the newest master key, in batches. Needs no PIN (only the
    outer layer changes), is safe while the service runs, and resumes where a crash left it."""

    async def rewrap(rotation: KeyRotation) -> RewrapReport:
        total = await rotation.count_pending()
        with click.progressbar(length=total, label="rewrapping", file=sys.stderr,
                               show_pos=True) as bar:
            return await rotation.rewrap(batch_size=batch_size, progress=bar.update)

    try:
        report = _with_rotation(rewrap)
    except DomainError as exc:
        fail(f"rewrap stopped: {exc.detail}; what was done is kept, run it again to resume")
    click.echo(f"{report.moved} blob(s) moved to {report.target}; {report.skipped} changed "
               f"meanwhile and left as they are; {len(report.failed)} did not open")
    for failed in report.failed:
        click.echo(f"did not open: {failed}", err=True)
    sys.exit(1 if report.failed else 0)


def init_token_hmac(settings: Settings, *, generate_rrn_key: bool, strict: bool = True) -> None:
    """The token's audit chain key and RRN lookup key, made or imported if missing."""
    from app.startup import check_configuration, prepare_token_secrets

    try:
        made = prepare_token_secrets(settings, check_configuration(settings),
                                     create_if_missing=True, generate_rrn_key=generate_rrn_key)
    except StartupError as exc:
        if strict:
            fail(str(exc))
        click.echo(f"token HMAC keys not made ({exc}); run `certcloud keys init-token-hmac`",
                   err=True)
        return
    for label in made:
        click.echo(f"HMAC key in the token: {label}")


@keys_group.command("init-token-hmac")
@click.option("--generate-rrn-key", is_flag=True,
              help="A new installation without CERTCLOUD_RRN_HMAC_KEY: make a new RRN key "
                   "in the token (persons indexed with another key are not found again).")
def keys_init_token_hmac(generate_rrn_key: bool) -> None:
    """With CERTCLOUD_KEYS__KIND=pkcs11: make the audit chain key in the token, and import
    CERTCLOUD_RRN_HMAC_KEY there (sensitive, non-extractable), if they are not there yet.
    Afterwards unset CERTCLOUD_RRN_HMAC_KEY: lookups are computed in the token."""
    settings = load_settings()
    if settings.keys.kind != "pkcs11":
        fail("CERTCLOUD_KEYS__KIND is not pkcs11; the HMAC keys stay in the environment")
    init_token_hmac(settings, generate_rrn_key=generate_rrn_key)
    click.echo("token HMAC keys in place")


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def keys_status(as_json: bool) -> None:
    """Master keys held and blob counts per key id; a key is retired only at zero."""

    async def read(rotation: KeyRotation) -> tuple[Any, Any]:
        return await rotation.status(), rotation.retire_grace

    try:
        status, grace = _with_rotation(read)
    except DomainError as exc:
        fail(exc.detail)
    now = SystemClock().now()
    retirable = {key.id: status.retire_refusal(key.id, now, grace) is None
                 for key in status.keys}
    if as_json:
        body = status.as_json()
        for key in body["keys"]:
            key["retirable"] = retirable[key["id"]]
        click.echo(json.dumps(body))
        return
    totals = status.totals
    click.echo(f"{'KEY_ID':<48} {'WHERE':<7} {'CREATED':<16} {'BLOBS':>9} CURRENT RETIRABLE")
    for key in status.keys:
        created = key.created_at.strftime("%Y-%m-%d %H:%M") if key.created_at else "?"
        click.echo(f"{key.id:<48} {key.location:<7} {created:<16} {totals.get(key.id, 0):>9} "
                   f"{'yes' if key.current else 'no':<7} {'yes' if retirable[key.id] else 'no'}")
    for key_id in status.missing:
        click.echo(f"{key_id:<48} MISSING {'':<16} {totals[key_id]:>9} no      no (cannot open)")
    click.echo(f"{status.pending} blob(s) not on the current key")


@keys_group.command("retire")
@click.argument("key_id")
def keys_retire(key_id: str) -> None:
    """Retire a master key that no blob uses any more (destroyed in the token, or removed
    from the key ring)."""
    try:
        _with_rotation(lambda rotation: rotation.retire(key_id, SystemClock().now()))
    except DomainError as exc:
        fail(exc.detail)
    click.echo(f"master key {key_id} retired")
