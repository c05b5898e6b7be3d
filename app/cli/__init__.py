"""The ``certcloud`` operator command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import click

from app.cli_ca import ca_import, print_created
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
@click.version_option(package_name="certcloud", prog_name="certcloud")
def main() -> None:
    """Certcloud: a certificate cloud (issue, hold, sign, revoke; OCSP, CRL, status)."""


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--allow-remote-development", is_flag=True,
              help="Let development mode (the sandbox verifier, /sandbox/messages with every "
                   "code, generated secrets) listen on a non-loopback --host.")
def serve(host: str, port: int, workers: int, allow_remote_development: bool) -> None:
    """Serve the API with uvicorn (uvloop + httptools)."""
    import uvicorn

    from app.bootstrap import preflight

    settings = _settings()
    if not settings.is_production and not _is_loopback(host):
        if not allow_remote_development:
            _fail(f"cannot start: development mode shows every SMS code at /sandbox/messages, "
                  f"so it listens on loopback only, not {host}; set "
                  f"CERTCLOUD_ENVIRONMENT=production, or pass --allow-remote-development")
        click.echo(f"certcloud: warning: development mode on {host}: anyone who reaches it "
                   "reads every SMS code at /sandbox/messages", err=True)
    try:
        # Once, before any worker starts: workers then find everything in place.
        asyncio.run(preflight(settings, SystemClock()))
    except StartupError as exc:
        _fail(f"cannot start: {exc}")
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                loop="uvloop", http="httptools", log_config=None, access_log=False,
                server_header=False)  # no banner naming the server software


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations (default: to head)."""
    from app.storage import migrate
    from app.storage.files import private_directory

    settings = _settings()
    private_directory(settings.data_dir)
    migrate.upgrade(settings.resolved_database_url, revision)
    click.echo(f"database at {revision}")


@main.group()
def ca() -> None:
    """The issuing CA."""


@ca.command("init")
@click.option("--pkcs11", "pkcs11_", is_flag=True,
              help="Generate the CA key inside the PKCS#11 token (CERTCLOUD_KEYS__PKCS11_MODULE, "
                   "__TOKEN_LABEL, __PIN or __PIN_FILE); it never leaves the token.")
@click.option("--key-algorithm", type=click.Choice(["rsa3072", "rsa4096", "p256", "p384"]),
              default=None, help="For --pkcs11 (default: CERTCLOUD_CA__KEY_ALGORITHM).")
@click.option("--csr", "csr_file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Under the bank's own root: write a CSR for the CA key to this file instead "
                   "of a self-signed certificate; the CA is pending until `certcloud ca import`.")
def ca_init(pkcs11_: bool, key_algorithm: str | None, csr_file: str | None) -> None:
    """Create the issuing CA (RSA-3072, or in the token with --pkcs11), self-signed or, with
    --csr, pending the root's certificate, and, if missing, the first master key (the local
    key ring, or a token key with CERTCLOUD_KEYS__KIND=pkcs11)."""
    from pathlib import Path

    from app.bootstrap import init_ca, load_key_protector
    from app.storage.keyring import LocalKeyRing

    settings = _settings()
    if key_algorithm is not None:
        settings.ca.key_algorithm = key_algorithm  # type: ignore[assignment]
    clock = SystemClock()
    try:
        created = init_ca(settings, clock, pkcs11=pkcs11_,
                          csr_path=Path(csr_file) if csr_file else None)
    except StartupError as exc:
        _fail(str(exc))
        return
    if settings.keys.kind == "pkcs11":
        settings_dev = settings.model_copy(update={"environment": "development"})
        try:  # makes the first master key in the token if there is none
            protector = load_key_protector(settings_dev, clock)
        except StartupError as exc:
            _fail(str(exc))
        click.echo(f"master key in the token: {protector.current_key_id()}")
        _init_token_hmac(settings, generate_rrn_key=True, strict=False)
    elif not settings.keyring_path.exists():
        LocalKeyRing.create(settings.keyring_path, clock.now())
        click.echo(f"key ring created at {settings.keyring_path}")
    print_created(created, settings.ca_dir)


ca.add_command(ca_import)


@main.group()
def clients() -> None:
    """OAuth2 clients of bank front-ends."""


async def _with_auth(action: Callable[[Any], Awaitable[T]]) -> T:
    from app.bootstrap import check_configuration
    from app.services.auth import AuthService
    from app.services.limits import RateLimiter
    from app.storage.db import Database, make_engine
    from app.storage.rate_counters import DatabaseCounters

    settings = _settings()
    secrets_ = check_configuration(settings)
    db_ = Database(make_engine(settings.resolved_database_url))
    try:
        return await action(AuthService(db_, secrets_, settings.oauth, SystemClock(),
                                        RateLimiter(DatabaseCounters(db_)), settings.limits))
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


@main.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


async def _audit_secrets(settings: Settings) -> Any:
    """The server secrets, with the token's HMAC keys checked (made in development)."""
    from app.bootstrap import check_configuration, prepare_token_secrets

    secrets_ = check_configuration(settings)
    if settings.keys.kind == "pkcs11":
        await asyncio.to_thread(prepare_token_secrets, settings, secrets_,
                                create_if_missing=not settings.is_production)
    return secrets_


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False),
              help="Also check the chain against this signed checkpoint "
                   "(from `certcloud audit checkpoint`).")
def audit_verify(checkpoint_file: str | None) -> None:
    """Check every row of the chain; exits 1 if a row was edited, removed or reordered, or
    the chain does not match the checkpoint."""
    from pathlib import Path

    from app.bootstrap import load_issuing_ca
    from app.services import audit, audit_checkpoint
    from app.storage.db import Database, make_engine

    given = Path(checkpoint_file).read_bytes() if checkpoint_file is not None else None

    async def verify() -> audit.ChainReport:
        settings = _settings()
        keys = (await _audit_secrets(settings)).audit_key
        point: tuple[int, str] | None = None
        if given is not None:
            ca_ = await asyncio.to_thread(load_issuing_ca, settings)
            try:
                point = audit_checkpoint.check_signature(json.loads(given), ca_.certificate)
            except ValueError as exc:  # CheckpointError, bad JSON or UTF-8
                raise StartupError(f"checkpoint refused: {exc}") from None
        db_ = Database(make_engine(settings.resolved_database_url))
        try:
            async with db_.transaction(write=False) as conn:
                report = await audit.verify_chain(conn, keys)
                if point is not None:
                    report.problems.extend(await audit_checkpoint.chain_problems(conn, *point))
                return report
        finally:
            await db_.dispose()

    report = _run(verify)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(f"{report.checked} audit events checked: "
               f"{'intact' if report.intact else 'TAMPERED'}")
    sys.exit(0 if report.intact else 1)


@audit_group.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also write the checkpoint to this file (keep it somewhere else).")
def audit_checkpoint_command(out: str | None) -> None:
    """Sign the chain's head with the CA key and print it as JSON (seq, hash, time, signer
    fingerprint, signature); refuses a chain that does not verify."""
    from pathlib import Path

    from app.bootstrap import load_issuing_ca
    from app.services import audit, audit_checkpoint
    from app.storage.db import Database, make_engine

    async def make() -> dict[str, Any]:
        settings = _settings()
        keys = (await _audit_secrets(settings)).audit_key
        ca_ = await asyncio.to_thread(load_issuing_ca, settings)
        db_ = Database(make_engine(settings.resolved_database_url))
        try:
            async with db_.transaction(write=False) as conn:
                report = await audit.verify_chain(conn, keys)
                seq, head_hash = await audit_checkpoint.head(conn)
        finally:
            await db_.dispose()
        if not report.intact:
            raise StartupError(f"the chain does not verify ({report.problems[0]}); no "
                               "checkpoint made")
        return await asyncio.to_thread(audit_checkpoint.sign_checkpoint, ca_, seq, head_hash,
                                       SystemClock().now())

    checkpoint = _run(make)
    text = json.dumps(checkpoint)
    if out:
        Path(out).write_text(text + "\n")
    click.echo(text)


@main.group("keys")
def keys_group() -> None:
    """Server master keys: rotate, rewrap, status, retire."""


async def _with_rotation(action: Callable[[Any], Awaitable[T]]) -> T:
    from datetime import timedelta

    from app.bootstrap import load_key_protector
    from app.services.rotation import KeyRotation, ManagedKeyProtector
    from app.storage.db import Database, make_engine

    settings = _settings()
    clock = SystemClock()
    protector = await asyncio.to_thread(load_key_protector, settings, clock)
    db_ = Database(make_engine(settings.resolved_database_url,
                               timeout_seconds=settings.database_timeout_seconds))
    grace = timedelta(seconds=2 * settings.keys.refresh_seconds)
    audit_key = (await _audit_secrets(settings)).audit_key
    try:
        return await action(KeyRotation(db_, cast(ManagedKeyProtector, protector),
                                        retire_grace=grace, audit_key=audit_key))
    finally:
        await db_.dispose()


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Add a new master key (key ring or token); new blobs use it, old ones still open."""
    from app.domain.errors import DomainError

    settings = _settings()
    try:
        key_id = _run(lambda: _with_rotation(
            lambda rotation: rotation.rotate(SystemClock().now())))
    except DomainError as exc:
        _fail(exc.detail)
        return
    click.echo(f"new master key {key_id}; running services wrap with it within "
               f"{settings.keys.refresh_seconds:g} s. Then move the stored blobs onto it with "
               "`certcloud keys rewrap`.")


@keys_group.command("rewrap")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
def keys_rewrap(batch_size: int) -> None:
    """Move every stored blob onto the newest master key, in batches. Needs no PIN (only the
    outer layer changes), is safe while the service runs, and resumes where a crash left it."""
    from app.domain.errors import DomainError
    from app.services.rotation import KeyRotation, RewrapReport

    async def rewrap(rotation: KeyRotation) -> RewrapReport:
        total = await rotation.count_pending()
        with click.progressbar(length=total, label="rewrapping", file=sys.stderr,
                               show_pos=True) as bar:
            return await rotation.rewrap(batch_size=batch_size, progress=bar.update)

    try:
        report = _run(lambda: _with_rotation(rewrap))
    except DomainError as exc:
        _fail(f"rewrap stopped: {exc.detail}; what was done is kept, run it again to resume")
        return
    click.echo(f"{report.moved} blob(s) moved to {report.target}; {report.skipped} changed "
               f"meanwhile and left as they are; {len(report.failed)} did not open")
    for failed in report.failed:
        click.echo(f"did not open: {failed}", err=True)
    sys.exit(1 if report.failed else 0)


def _init_token_hmac(settings: Settings, *, generate_rrn_key: bool, strict: bool = True
                     ) -> None:
    from app.bootstrap import check_configuration, prepare_token_secrets

    try:
        made = prepare_token_secrets(settings, check_configuration(settings),
                                     create_if_missing=True, generate_rrn_key=generate_rrn_key)
    except StartupError as exc:
        if strict:
            _fail(str(exc))
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
    settings = _settings()
    if settings.keys.kind != "pkcs11":
        _fail("CERTCLOUD_KEYS__KIND is not pkcs11; the HMAC keys stay in the environment")
    _init_token_hmac(settings, generate_rrn_key=generate_rrn_key)
    click.echo("token HMAC keys in place")


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def keys_status(as_json: bool) -> None:
    """Master keys held and blob counts per key id; a key is retired only at zero."""
    from app.domain.errors import DomainError

    async def read(rotation: Any) -> tuple[Any, Any]:
        return await rotation.status(), rotation.retire_grace

    try:
        status, grace = _run(lambda: _with_rotation(read))
    except DomainError as exc:
        _fail(exc.detail)
        return
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
    from app.domain.errors import DomainError

    try:
        _run(lambda: _with_rotation(lambda rotation: rotation.retire(key_id, SystemClock().now())))
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"master key {key_id} retired")


@main.command()
def sweep() -> None:
    """Remove unfinished pending certificates, old idempotency records and rate windows."""
    from app.clock import SystemClock
    from app.services.sweeper import sweep as run_sweep
    from app.storage.db import Database, make_engine

    async def run() -> None:
        settings = _settings()
        db_ = Database(make_engine(settings.resolved_database_url))
        try:
            report = await run_sweep(db_, SystemClock().now())
        finally:
            await db_.dispose()
        click.echo(json.dumps(vars(report)))

    _run(run)


async def _with_status(action: Callable[[Any], Awaitable[T]]) -> T:
    """A status service for one command: no lease, no background loops; it makes sure a
    responder and a CRL exist."""
    from app.bootstrap import check_configuration, load_issuing_ca, load_key_protector
    from app.pki.ca import Profile
    from app.services.status import StatusService
    from app.storage.db import Database, make_engine

    settings = _settings()
    check_configuration(settings)
    clock = SystemClock()
    protector = await asyncio.to_thread(load_key_protector, settings, clock)
    issuing_ca = await asyncio.to_thread(load_issuing_ca, settings)
    db_ = Database(make_engine(settings.resolved_database_url,
                               timeout_seconds=settings.database_timeout_seconds))
    status = StatusService(
        db_, issuing_ca, protector, settings.status, clock=clock,
        distribution_point=Profile(settings.ca.policy_oid, settings.public_base_url).crl_url)
    try:
        await status.start(replica=False)
        return await action(status)
    finally:
        await status.close()
        await db_.dispose()


@main.command("crl")
@click.option("--if-due", is_flag=True,
              help="Only when due: near nextUpdate, or older than the newest revocation.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also write the current CRL (DER) to this file.")
def crl_command(if_due: bool, out: str | None) -> None:
    """Issue a new CRL now (for cron: `certcloud crl --if-due`). Waits until every running
    replica serves it, then prints one JSON object."""
    from pathlib import Path

    async def action(status: Any) -> tuple[dict[str, Any], bytes]:
        issued = not if_due or await status.crl_due()
        if issued:
            await status.regenerate_crl()
        confirmed = await status.await_all_replicas()
        copy = await status.current_crl()
        meta = copy.meta
        return {"issued": issued, "crl_number": meta.number, "entries": meta.entries,
                "bytes": len(copy.der), "this_update": meta.this_update.isoformat(),
                "next_update": meta.next_update.isoformat(), "sha256": meta.sha256,
                "replicas_confirmed": confirmed}, copy.der

    summary, der = _run(lambda: _with_status(action))
    if out:
        Path(out).write_bytes(der)
    click.echo(json.dumps(summary))


@main.group("ocsp")
def ocsp_group() -> None:
    """The OCSP responder."""


@ocsp_group.command("refresh")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def ocsp_refresh(batch_size: int) -> None:
    """Roll the responder certificate over when due, re-sign pre-signed responses that near
    nextUpdate and pre-sign missing ones, until none is left; prints one JSON object."""

    async def action(status: Any) -> dict[str, Any]:
        totals = {"resigned": 0, "presigned": 0, "dropped": 0}
        while True:
            report = (await status.refresh_ocsp(batch_size)).as_dict()
            for name, count in report.items():
                totals[name] += count
            if report["resigned"] + report["dropped"] < batch_size and (
                    report["presigned"] < batch_size):
                break
        responder = status.responder_certificate
        return {**totals, "responder_serial": format(responder.serial_number, "x"),
                "responder_not_after": responder.not_valid_after_utc.isoformat()}

    click.echo(json.dumps(_run(lambda: _with_status(action))))


def _register_command_modules() -> None:
    from app.cli_certificates import certificates_group
    from app.cli_clients import clients_enable, clients_rotate_secret

    main.add_command(certificates_group)
    clients.add_command(clients_rotate_secret)
    clients.add_command(clients_enable)


_register_command_modules()
