"""Start-up checks: what development creates by itself and what production refuses, each
problem named in one line (``certcloud serve`` and ``create_app`` run them; so do the CLI
commands, through :mod:`app.bootstrap`)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.ca_setup import init_ca, pending_problem
from app.domain.errors import DomainError
from app.domain.ports import Clock, KeyProtector
from app.pki.ca import CertificateAuthority, ca_exists, ca_key_reference, ca_pending, load_ca
from app.services.secrets import ServerSecrets, StartupError, load_secrets
from app.settings import Settings
from app.storage import migrate
from app.storage.db import Database, make_engine, translate_errors
from app.storage.files import PRIVATE_DIRECTORY, private_directory, tighten
from app.storage.keyring_protector import KeyRingFile
from app.storage.local_keyring import LocalKeyRing
from app.storage.redis_counters import is_redis_url

__all__ = ["init_ca"]  # re-exported for app.bootstrap

log = logging.getLogger(__name__)
T = TypeVar("T")


def check_configuration(settings: Settings) -> ServerSecrets:
    """Everything that can be refused before anything is touched.

    :raises StartupError: one line naming every problem found.
    """
    problems: list[str] = []
    if settings.is_production and settings.verifier.kind == "sandbox":
        problems.append("the sandbox phone verifier is refused in production; set "
                        "CERTCLOUD_VERIFIER__KIND=provider")
    if settings.limits.redis_url and not is_redis_url(settings.limits.redis_url):
        # Never echo the URL: it may hold a password.
        problems.append("CERTCLOUD_LIMITS__REDIS_URL is not a Redis URL "
                        "(redis://, rediss:// or unix://)")
    if settings.is_production:
        problems += production_weaknesses(settings)
    try:
        secrets_ = load_secrets(settings)
    except StartupError as exc:
        problems.append(str(exc))
    if problems:
        raise StartupError("; ".join(problems))
    return secrets_


# RFC 9106 §4: the second recommended option (t=3, 64 MiB) or the first (t=1, 2 GiB).
ARGON2_MINIMUMS = ((3, 64 * 1024), (1, 2 * 1024 * 1024))


def production_weaknesses(settings: Settings) -> list[str]:
    """Settings production refuses: a PIN KDF below RFC 9106's options, a provider verifier
    without credentials."""
    problems = []
    argon = settings.argon2
    if not any(argon.time_cost >= t and argon.memory_kib >= m for t, m in ARGON2_MINIMUMS):
        problems.append(f"Argon2id t={argon.time_cost}, m={argon.memory_kib} KiB is below "
                        "RFC 9106's options (need CERTCLOUD_ARGON2__TIME_COST>=3 and "
                        "__MEMORY_KIB>=65536, or >=2097152)")
    if settings.verifier.kind == "provider":
        sens, twilio = settings.verifier.sens, settings.verifier.twilio
        given = {"SENS__SERVICE_ID": sens.service_id, "SENS__SENDER": sens.sender,
                 "SENS__ACCESS_KEY": sens.access_key.get_secret_value(),
                 "SENS__SECRET_KEY": sens.secret_key.get_secret_value(),
                 "TWILIO__ACCOUNT_SID": twilio.account_sid, "TWILIO__CALLER_ID": twilio.caller_id,
                 "TWILIO__AUTH_TOKEN": twilio.auth_token.get_secret_value()}
        empty = [f"CERTCLOUD_VERIFIER__{name}" for name, value in given.items()
                 if not value.strip()]
        if empty:
            problems.append(f"the provider verifier needs credentials: {', '.join(empty)} "
                            "empty")
    return problems


def prepare_token_secrets(settings: Settings, secrets_: ServerSecrets, *,
                          create_if_missing: bool, generate_rrn_key: bool = False) -> list[str]:
    """With ``CERTCLOUD_KEYS__KIND=pkcs11``: the token's audit chain key and RRN lookup key
    are there (development makes the audit key and imports its RRN key; production refuses).
    Returns what it made.

    :raises StartupError: one line naming the problem.
    """
    from app.domain.errors import DependencyUnavailable
    from app.storage.pkcs11 import TokenError, token_session
    from app.storage.token_hmac import TokenHmacKey, generate_hmac_key, import_hmac_key

    made: list[str] = []
    try:
        token = token_session(settings.keys)
    except TokenError as exc:
        raise StartupError(str(exc)) from None
    try:
        audit_key = TokenHmacKey(token, settings.keys.audit_key_label)
        if not audit_key.present():
            if not create_if_missing:
                raise StartupError(f"no audit chain key labelled {audit_key.label!r} on the "
                                   f"PKCS#11 token {token.token_label!r}; run `certcloud keys "
                                   "init-token-hmac`")
            generate_hmac_key(token, audit_key.label)
            made.append(audit_key.label)
        rrn_key = TokenHmacKey(token, settings.keys.rrn_key_label)
        env_rrn = settings.rrn_hmac_key.get_secret_value() if settings.rrn_hmac_key else None
        if rrn_key.present():
            if env_rrn is not None and not rrn_key.matches(env_rrn.encode()):
                raise StartupError("CERTCLOUD_RRN_HMAC_KEY differs from the RRN key in the "
                                   f"PKCS#11 token ({rrn_key.label!r}); unset it")
        elif create_if_missing and secrets_.rrn_hmac_key:  # the key persons are indexed with
            import_hmac_key(token, rrn_key.label, secrets_.rrn_hmac_key)
            made.append(rrn_key.label)
        elif create_if_missing and generate_rrn_key:  # a new installation
            generate_hmac_key(token, rrn_key.label)
            made.append(rrn_key.label)
        elif env_rrn is None:
            raise StartupError(f"no RRN lookup key labelled {rrn_key.label!r} on the PKCS#11 "
                               f"token {token.token_label!r}; run `certcloud keys "
                               "init-token-hmac` with CERTCLOUD_RRN_HMAC_KEY set")
    except DependencyUnavailable:
        raise StartupError(f"the PKCS#11 token {token.token_label!r} failed while its HMAC "
                           f"keys were checked ({token.last_error})") from None
    except ValueError as exc:
        raise StartupError(f"{exc} (token {token.token_label!r})") from None
    return made


def bootstrap_development(settings: Settings, clock: Clock) -> None:
    """First start in development: schema, CA and key ring, each only if missing."""
    private_directory(settings.data_dir)
    migrate.upgrade(settings.resolved_database_url)
    if settings.keys.kind == "local" and not settings.keyring_path.exists():
        try:
            LocalKeyRing.create(settings.keyring_path, clock.now())
            log.info("created a local key ring", extra={"path": str(settings.keyring_path)})
        except FileExistsError:  # another process started first and made it
            pass
    if not ca_exists(settings.ca_dir) and not ca_pending(settings.ca_dir):
        init_ca(settings, clock)
        log.info("created a development CA", extra={"path": str(settings.ca_dir)})


async def check_schema(db: Database, settings: Settings) -> None:
    """Production never migrates by itself: the schema must already be at head."""
    heads = set(ScriptDirectory.from_config(
        migrate.alembic_config(settings.resolved_database_url)).get_heads())
    async with translate_errors(), db.engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads()))
    if current != heads:
        raise StartupError("the database schema is not current; run `certcloud db upgrade`")


def load_key_protector(settings: Settings, clock: Clock | None = None) -> KeyProtector:
    """The master-key layer the settings choose (``CERTCLOUD_KEYS__KIND``). Development makes
    the first token master key itself; production only checks that it is there.

    :raises StartupError: one line naming the problem (module, token, PIN, key label).
    """
    if settings.keys.kind == "pkcs11":
        from app.clock import SystemClock
        from app.storage.pkcs11 import TokenError
        from app.storage.pkcs11_protector import open_protector

        try:
            return open_protector(settings.keys, settings.keyring_path,
                                  create_if_missing=not settings.is_production,
                                  now=(clock or SystemClock()).now())
        except TokenError as exc:
            raise StartupError(str(exc)) from None
    try:
        return KeyRingFile(settings.keyring_path)
    except FileNotFoundError:
        raise StartupError(f"no key ring at {settings.keyring_path}; run `certcloud ca init` "
                           "(it creates the key ring too)") from None


def load_issuing_ca(settings: Settings) -> CertificateAuthority:
    """The CA with its key from the file or the token, as ``certcloud ca init`` left it.

    :raises StartupError: one line naming the problem.
    """
    if ca_pending(settings.ca_dir):
        raise StartupError(pending_problem(settings))
    reference = ca_key_reference(settings.ca_dir)
    if reference is None:
        if settings.ca.key_store == "pkcs11":
            raise StartupError(f"the CA key in {settings.ca_dir} is a file, but "
                               "CERTCLOUD_CA__KEY_STORE=pkcs11")
        return load_ca(settings.ca_dir)
    from app.storage.pkcs11 import TokenError
    from app.storage.pkcs11_ca import load_token_ca

    try:
        return load_token_ca(settings, reference)
    except TokenError as exc:
        raise StartupError(str(exc)) from None




def open_database(settings: Settings) -> Database:
    """The database, with the statement timeout the settings give (every entry point)."""
    return Database(make_engine(settings.resolved_database_url,
                                timeout_seconds=settings.database_timeout_seconds))


def configuration_problems(settings: Settings) -> tuple[ServerSecrets | None, list[str]]:
    """:func:`check_configuration`'s findings as a list (empty when all is well)."""
    try:
        return check_configuration(settings), []
    except StartupError as exc:
        return None, str(exc).split("; ")


@dataclass(frozen=True)
class Started:
    """What the checks loaded, for the wiring to use rather than load again."""

    secrets: ServerSecrets
    protector: KeyProtector
    ca: CertificateAuthority


async def preflight(settings: Settings, clock: Clock) -> ServerSecrets:
    """Everything ``certcloud serve`` checks before it binds a port (see :func:`start_up`).

    :raises StartupError: one line naming every problem found.
    """
    return (await start_up(settings, clock)).secrets


async def start_up(settings: Settings, clock: Clock) -> Started:
    """Development creates what is missing; production only checks that the operator has done
    it, and names every problem it finds (settings, CA, key ring or master key, token keys,
    schema) in one error.

    :raises StartupError: one line naming every problem found.
    """
    secrets_, problems = configuration_problems(settings)
    if not settings.is_production:
        if problems:  # nothing is created from a configuration that is refused
            raise StartupError("; ".join(problems))
        await asyncio.to_thread(bootstrap_development, settings, clock)
    elif settings.data_dir.is_dir():  # production creates nothing, but closes what is there
        tighten(settings.data_dir, PRIVATE_DIRECTORY)

    def attempt(step: Callable[[], T]) -> T | None:
        try:
            return step()
        except StartupError as exc:
            problems.append(str(exc))
            return None

    protector = await asyncio.to_thread(attempt, lambda: load_key_protector(settings, clock))
    # A token that failed for the master keys is named once, not again for each key on it.
    token_failed = settings.keys.kind == "pkcs11" and protector is None
    if settings.keys.kind == "pkcs11" and secrets_ is not None and not token_failed:
        await asyncio.to_thread(attempt, lambda: prepare_token_secrets(
            settings, secrets_, create_if_missing=not settings.is_production))
    ca = None
    if ca_pending(settings.ca_dir):
        problems.append(pending_problem(settings))
    elif not ca_exists(settings.ca_dir):
        problems.append(f"no CA in {settings.ca_dir}; run `certcloud ca init`")
    elif not (token_failed and ca_key_reference(settings.ca_dir) is not None):
        ca = await asyncio.to_thread(attempt, lambda: load_issuing_ca(settings))
    if settings.is_production:
        db = open_database(settings)
        try:
            await check_schema(db, settings)
        except StartupError as exc:
            problems.append(str(exc))
        except DomainError as exc:
            problems.append(f"cannot reach the database: {exc.detail}")
        finally:
            await db.dispose()
    if problems or secrets_ is None or protector is None or ca is None:
        raise StartupError("; ".join(dict.fromkeys(problems)))  # each problem once
    return Started(secrets_, protector, ca)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (a host name may resolve to anything: no)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def startup_warnings(settings: Settings) -> list[str]:
    """What start-up accepts but an operator should hear about (one line each)."""
    warnings = []
    host = urlsplit(settings.public_base_url).hostname or ""
    if settings.is_production and is_loopback_host(host):
        warnings.append(f"the public base URL {settings.public_base_url} is a loopback "
                        "address: certificates name it for OCSP and the CRL, and nobody else "
                        "reaches it; set CERTCLOUD_PUBLIC_BASE_URL")
    return warnings
