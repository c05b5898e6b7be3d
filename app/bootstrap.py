"""The wiring: what ``create_app`` (through :func:`build_container`) and every ``certcloud``
command (through :class:`Wiring`) are made of, each part built one way, here. The start-up
checks they run first are in :mod:`app.startup`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import httpx

from app.domain.ports import Clock, KeyProtector, PhoneVerifier
from app.pki.ca import CertificateAuthority, Profile, load_previous_cas
from app.pki.keys import KdfParams
from app.services import audit
from app.services.auth import AuthService
from app.services.cades import CmsExtras
from app.services.certificates import CertificateService
from app.services.csc import CscService
from app.services.custody import KeyCustody, key_binding, responder_binding, tsa_binding
from app.services.identity_binding import IdentityBinding, random_binding, rrn_binding
from app.services.identity_check import IdentityCheckService
from app.services.issuer import Issuer
from app.services.kdf_pool import KdfPool
from app.services.limits import CounterStore, RateLimiter
from app.services.lookup import LookupService
from app.services.notices import Notices
from app.services.pin_gate import PinGate
from app.services.rotation import KeyRotation, ManagedKeyProtector
from app.services.secrets import AuditKeys, ServerSecrets
from app.services.signature_verification import SignatureVerificationService
from app.services.signing import SigningService
from app.services.status import StatusService
from app.services.suspension import SuspensionService
from app.services.tsa import TimeStampService
from app.services.verifications import VerificationService
from app.settings import LimitsSettings, Settings
from app.startup import (
    Started,
    check_configuration,
    init_ca,
    load_issuing_ca,
    load_key_protector,
    open_database,
    preflight,
    prepare_token_secrets,
    start_up,
)
from app.storage.db import Database
from app.storage.idempotency import IdempotencyStore, ReplyKeys
from app.storage.identity_tables import person_rrns, vid_randoms
from app.storage.rate_counters import DatabaseCounters
from app.storage.redis_counters import RedisCounters
from app.storage.status_listener import PgChangeListener, asyncpg_dsn
from app.storage.status_tables import ocsp_responders
from app.storage.tables import certificates as certificate_rows
from app.storage.tsa_tables import tsa_signers
from app.storage.unit_of_work import SqlUnitOfWorkFactory
from app.storage.wrapped_blobs import BlobTable, SqlWrappedBlobs
from app.verifiers.registry import build_notifier, build_verifier

__all__ = ["Container", "Wiring", "build_container", "check_configuration", "command_wiring",
           "init_ca", "load_issuing_ca", "load_key_protector", "preflight",
           "prepare_token_secrets", "unit_of_work", "wrapped_blobs"]


def _counter_store(limits: LimitsSettings, db: Database) -> CounterStore:
    if not limits.redis_url:
        return DatabaseCounters(db)
    return RedisCounters(limits.redis_url, timeout_seconds=limits.redis_timeout_seconds,
                         prefix=limits.redis_key_prefix)


class Wiring:
    """The parts both entry points share, each made once, on first use; :meth:`close` closes
    what was made. A CLI command asks only for what it uses (``clients create`` loads no CA)."""

    def __init__(self, settings: Settings, clock: Clock, started: Started | None = None
                 ) -> None:
        self.settings, self.clock = settings, clock
        secrets_ = started.secrets if started else None
        self._configured, self._secrets = secrets_, secrets_
        self._db: Database | None = None
        self._protector: KeyProtector | None = started.protector if started else None
        self._ca: CertificateAuthority | None = started.ca if started else None
        self._limiter: RateLimiter | None = None
        self._status: StatusService | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.settings)
        return self._db

    def configuration(self) -> ServerSecrets:
        """The server secrets from the settings, after every configuration check.

        :raises StartupError: one line naming every problem."""
        if self._configured is None:
            self._configured = check_configuration(self.settings)
        return self._configured

    async def secrets(self) -> ServerSecrets:
        """:meth:`configuration`, with the token's HMAC keys checked (made in development)
        when the keys are in a PKCS#11 token."""
        if self._secrets is None:
            secrets_ = self.configuration()
            if self.settings.keys.kind == "pkcs11":
                await asyncio.to_thread(prepare_token_secrets, self.settings, secrets_,
                                        create_if_missing=not self.settings.is_production)
            self._secrets = secrets_
        return self._secrets

    async def protector(self) -> KeyProtector:
        if self._protector is None:
            self._protector = await asyncio.to_thread(load_key_protector, self.settings,
                                                      self.clock)
        return self._protector

    async def ca(self) -> CertificateAuthority:
        if self._ca is None:
            self._ca = await asyncio.to_thread(load_issuing_ca, self.settings)
        return self._ca

    async def issuer(self) -> Issuer:
        settings = self.settings
        return Issuer(await self.ca(), Profile(settings.ca.policy_oid, settings.public_base_url),
                      settings.ca.user_key_algorithm)

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter(_counter_store(self.settings.limits, self.db))
        return self._limiter

    def auth(self) -> AuthService:
        settings, clock, limiter = self.settings, self.clock, self.limiter
        secrets_ = self.configuration()
        return AuthService(unit_of_work(self.db, secrets_.audit_key), secrets_, settings.oauth,
                           clock, limiter, settings.limits)

    def status_service(self, ca: CertificateAuthority, protector: KeyProtector,
                       issuer: Issuer, uow: SqlUnitOfWorkFactory) -> StatusService:
        """Not started: the server starts it as a replica, a command without (no lease, no
        background loops)."""
        settings, clock = self.settings, self.clock
        status = StatusService(uow, ca, protector, settings.status,
                               distribution_point=issuer.profile.crl_url, clock=clock,
                               changes=self._change_signal())
        self._status = status
        return status

    def _change_signal(self) -> PgChangeListener | None:
        """On PostgreSQL, the LISTEN/NOTIFY listener a replica syncs on (it starts only with
        a replica); None on SQLite, where replicas poll."""
        dsn = asyncpg_dsn(self.settings.resolved_database_url)
        return None if dsn is None else PgChangeListener(
            dsn, timeout_seconds=self.settings.database_timeout_seconds)

    async def status(self, *, audited: bool = False) -> StatusService:
        """A status service for one command: it makes sure a responder and a CRL exist.
        ``audited``: its unit of work can audit (with the chain key)."""
        if self._status is None:
            self.configuration()
            protector = await self.protector()
            audit_key = (await self.secrets()).audit_key if audited else None
            status = self.status_service(await self.ca(), protector, await self.issuer(),
                                         unit_of_work(self.db, audit_key))
            await status.start(replica=False)
        assert self._status is not None
        return self._status

    async def rotation(self) -> KeyRotation:
        protector = await self.protector()
        grace = timedelta(seconds=2 * self.settings.keys.refresh_seconds)
        audit_key = (await self.secrets()).audit_key
        return KeyRotation(wrapped_blobs(self.db), cast(ManagedKeyProtector, protector),
                           retire_grace=grace, uow=unit_of_work(self.db, audit_key))

    def idempotency(self) -> IdempotencyStore:
        """Keys derived from the server's code secret, so every replica derives the same."""
        return IdempotencyStore(self.db, ReplyKeys(self.configuration().code_hmac_key))

    async def close(self) -> None:
        if self._status is not None:
            await self._status.close()
        if self._limiter is not None:
            await self._limiter.store.close()
        if self._db is not None:
            await self._db.dispose()


@asynccontextmanager
async def command_wiring(settings: Settings, clock: Clock) -> AsyncIterator[Wiring]:
    """The wiring of one CLI command, closed when it is done."""
    wiring = Wiring(settings, clock)
    try:
        yield wiring
    finally:
        await wiring.close()


def unit_of_work(db: Database, audit_keys: AuditKeys | bytes | None) -> SqlUnitOfWorkFactory:
    """What every service takes: ``uow()`` is one transaction with the repositories and the
    audit trail (under ``audit_keys``; None for a wiring that never audits) bound to it."""
    bind = audit.refusing_binder() if audit_keys is None else audit.binder(audit_keys)
    return SqlUnitOfWorkFactory(db, bind)


def wrapped_blobs(db: Database) -> SqlWrappedBlobs:
    """Every table holding blobs wrapped under a master key (what rotation covers), with the
    associated data each was wrapped with."""
    return SqlWrappedBlobs(db, [
        BlobTable("certificates.wrapped_key", certificate_rows, "id", "master_key_id",
                  "wrapped_key", key_binding),
        BlobTable("ocsp_responders.wrapped_key", ocsp_responders, "id", "master_key_id",
                  "wrapped_key", responder_binding),
        BlobTable("tsa_signers.wrapped_key", tsa_signers, "id", "master_key_id", "wrapped_key",
                  tsa_binding),
        BlobTable("vid_randoms.wrapped", vid_randoms, "certificate_id", "master_key_id",
                  "wrapped", random_binding),
        BlobTable("person_rrns.wrapped", person_rrns, "person_id", "master_key_id", "wrapped",
                  rrn_binding),
    ])


@dataclass
class Container:
    settings: Settings
    clock: Clock
    db: Database
    uow: SqlUnitOfWorkFactory
    http: httpx.AsyncClient
    verifier: PhoneVerifier
    protector: KeyProtector
    issuer: Issuer
    auth: AuthService
    verifications: VerificationService
    certificates: CertificateService
    suspensions: SuspensionService
    pin_gate: PinGate
    audit: audit.AuditService
    lookup: LookupService
    signing: SigningService
    csc: CscService
    status: StatusService
    tsa: TimeStampService
    limiter: RateLimiter
    custody: KeyCustody
    notices: Notices
    idempotency: IdempotencyStore
    signature_verification: SignatureVerificationService
    identity_check: IdentityCheckService

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """What ``/readyz`` reaches, by component name."""
        checks: dict[str, Callable[[], Awaitable[None]]] = {
            "database": self.db.ping, "counter_store": self.limiter.store.check}
        for name, part in (("key_store", self.protector), ("ca_key", self.issuer.ca.key)):
            check = getattr(part, "check", None)  # a file-held CA key has nothing to reach
            if check is not None:
                checks[name] = check
        return checks

    def connections_in_use(self) -> int | None:
        """Database connections checked out of the pool (None: a pool that does not say)."""
        checked_out = getattr(self.db.engine.pool, "checkedout", None)
        return checked_out() if callable(checked_out) else None

    async def crl_age_source(self) -> Callable[[], float | None]:
        """The age of the CRL this replica serves; until it holds one in memory (it loads the
        CRL at the first fetch), that of the newest stored at start, so the gauge is right
        from start."""
        async with self.uow(write=False) as uow:
            stored = await uow.status.latest_crl_meta()
        at_start = stored.this_update if stored is not None else None

        def age() -> float | None:
            this_update = self.status.served_crl_this_update or at_start
            return (None if this_update is None
                    else (self.clock.now() - this_update).total_seconds())
        return age

    async def close(self) -> None:
        await self.status.close()
        self.custody.close()
        await self.limiter.store.close()
        await self.http.aclose()
        await self.db.dispose()


async def build_container(settings: Settings, clock: Clock,
                          verifier: PhoneVerifier | None = None) -> Container:
    started = await start_up(settings, clock)  # what it loaded is not loaded again
    secrets_ = started.secrets
    wiring = Wiring(settings, clock, started)
    protector = await wiring.protector()
    ca = await wiring.ca()
    db = wiring.db
    http = httpx.AsyncClient(timeout=settings.verifier.timeout_seconds)
    verifier = verifier or build_verifier(settings, clock, http)
    issuer = await wiring.issuer()
    kdf = KdfParams(settings.argon2.time_cost, settings.argon2.memory_kib,
                    settings.argon2.parallelism)
    custody = KeyCustody(protector, kdf,
                         KdfPool(settings.argon2.workers, settings.argon2.max_waiting))
    uow = unit_of_work(db, secrets_.audit_key)
    status = wiring.status_service(ca, protector, issuer, uow)
    notices = Notices(uow, build_notifier(verifier), secrets_, clock)
    limiter = wiring.limiter
    verifications = VerificationService(uow, verifier, secrets_, clock, limiter, settings.limits)
    pin_gate = PinGate(uow, custody, clock)
    binding = IdentityBinding(uow, protector)
    certificates = CertificateService(uow, issuer, custody, secrets_, clock, notices=notices,
                                      pin_gate=pin_gate, verifications=verifications,
                                      revocations=status, binding=binding)
    tsa = TimeStampService(uow, ca, protector, settings.tsa, issuer.profile, clock, limiter)
    signing = SigningService(uow, certificates, pin_gate, clock, limiter, settings.limits,
                             CmsExtras.of(ca, tsa), binding=binding)
    trusted_cas = (ca.certificate, *ca.chain, *load_previous_cas(settings.ca_dir))
    verification = SignatureVerificationService(certificates, trusted_cas, clock, limiter,
                                                settings.limits)
    identity_check = IdentityCheckService(uow, certificates, binding, secrets_, clock, limiter,
                                          settings.limits)
    lookup = LookupService(uow, secrets_, clock, limiter, settings.limits)
    audit_service = audit.AuditService(uow, secrets_.audit_key)
    try:
        await audit_service.seal_legacy_rows(clock.now())  # rows from before the chain's key
        await status.start()  # a responder and a CRL exist before the first request
        await tsa.start()  # and a TSA certificate
    except BaseException:
        custody.close()
        await http.aclose()
        await wiring.close()
        raise
    return Container(
        settings=settings, clock=clock, db=db, uow=uow, http=http, verifier=verifier,
        protector=protector, issuer=issuer,
        auth=wiring.auth(),
        verifications=verifications, certificates=certificates, pin_gate=pin_gate,
        suspensions=SuspensionService(
            uow, certificates, pin_gate, clock, notices=notices,
            revocations=status, max_hold=timedelta(days=settings.suspension_max_days)),
        audit=audit_service, lookup=lookup, signing=signing,
        csc=CscService(uow, certificates, signing, lookup, clock), status=status, tsa=tsa,
        limiter=limiter, custody=custody, notices=notices, idempotency=wiring.idempotency(),
        signature_verification=verification, identity_check=identity_check)
