"""The status service as the rest of the app sees it: one object per process (a replica) that
wires the parts of this package together and runs what spans them (start, close, publishing a
revocation, pre-signing an issuance)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from cryptography import x509

from app.clock import SystemClock
from app.domain.ports import Clock, KeyProtector, UnitOfWork, UnitOfWorkFactory
from app.domain.records import CrlMeta
from app.pki import ocsp as ocsp_pki
from app.pki.ca import CertificateAuthority
from app.pki.ocsp import CertId
from app.services.status.answers import Answer, OcspAnswers
from app.services.status.background import Background
from app.services.status.cache import OcspMemory
from app.services.status.context import Coherence, StatusContext
from app.services.status.crl import CrlUpdater
from app.services.status.crl_served import ServedCrl
from app.services.status.refresher import OcspRefresher, RefreshReport
from app.services.status.replicas import Replicas
from app.services.status.replies import CrlCopy, OcspReply
from app.services.status.responder import Responder, ResponderKeys
from app.services.status.revocations import RevocationLedger
from app.services.status.signer import OcspSigner
from app.settings import StatusSettings

log = logging.getLogger(__name__)


class StatusService:
    """OCSP, CRL and revocation publishing for one process (a replica); the
    :class:`~app.domain.ports.RevocationRecorder` of the certificate use cases.

    :param distribution_point: the CRL URL certificates carry; the CRL's issuingDistributionPoint.
    :param wall_clock: real time for leases between replicas (the business ``clock`` may be a
        test's fixed clock); the system clock by default.
    """

    def __init__(self, uow: UnitOfWorkFactory, ca: CertificateAuthority, protector: KeyProtector,
                 settings: StatusSettings, *, distribution_point: str, clock: Clock,
                 wall_clock: Clock | None = None) -> None:
        self.uow, self.ca, self.protector, self.clock = uow, ca, protector, clock
        self.wall_clock = wall_clock or SystemClock()
        self.distribution_point = distribution_point
        self.issuer = ocsp_pki.IssuerHashes.of(ca.certificate)
        ctx = self._ctx = StatusContext(uow, ca, protector, settings, clock, self.wall_clock,
                                        distribution_point)
        self._memory = OcspMemory(ctx)
        self._keys = ResponderKeys(ctx)
        signer = self._signer = OcspSigner(ctx, self.issuer)
        self._answers = OcspAnswers(ctx, self._memory, self._keys, signer)
        self._ledger = RevocationLedger(ctx, self._keys, signer)
        self._served = ServedCrl(ctx)
        self._crl_updater = CrlUpdater(ctx, self._served)
        self._replicas = Replicas(ctx, self._memory, self._served)
        self._refresher = OcspRefresher(ctx, self._keys, signer)
        self._background = Background(ctx, self._keys, self._crl_updater, self._refresher,
                                      self._replicas)
        # The hot path is the memory's own method: a hit costs no call through this object.
        self.cached: Callable[[bytes], OcspReply | None] = self._memory.get
        # Pre-signing goes through this attribute (a test makes it fail).
        self._single: Callable[[CertId, Responder], Awaitable[Answer]] = self._answers.single

    @property
    def settings(self) -> StatusSettings:
        return self._ctx.settings

    @settings.setter
    def settings(self, settings: StatusSettings) -> None:
        self._ctx.settings = settings

    # --- life cycle -------------------------------------------------------------------------

    async def start(self, *, replica: bool = True) -> None:
        """Make sure the state row, a responder and a CRL exist; as a ``replica`` (a serving
        process), take a lease and start the background loops."""
        async with self.uow() as uow:
            await uow.status.ensure_state()
            await uow.commit()
        await self.ensure_responder()
        async with self.uow(write=False) as uow:
            stored = await uow.status.latest_crl_meta()
        if stored is None:
            await self.regenerate_crl()
        if replica:
            self._ctx.coherence.replica = True
            await self.sync()
            self._background.start()

    async def close(self) -> None:
        await self._background.stop()
        await self._crl_updater.finish()
        with contextlib.suppress(Exception):
            await self._replicas.leave()
        self._crl_updater.close_pool()

    # --- OCSP (``cached``, the hot path, is set in __init__) ---------------------------------

    async def answer(self, der: bytes) -> OcspReply:
        """The OCSP reply for a DER request (see :mod:`.answers`); never raises."""
        return await self._answers.answer(der)

    # --- the revocation recorder ------------------------------------------------------------

    async def record(self, uow: UnitOfWork, certificate_id: str) -> int | None:
        """In the revoking transaction (see :mod:`.revocations`)."""
        return await self._ledger.record(uow, certificate_id)

    async def presign(self, serial: str) -> None:
        """Sign and store the good answer of a certificate just issued, so that even its first
        query costs no signature. Best effort: the issuance has committed, and the refresher
        pre-signs whatever this missed."""
        responder = self._keys.usable()
        if not self.settings.presign or responder is None:
            return
        try:
            await self._single(self._signer.cert_id("sha1", serial), responder)
        except Exception as exc:
            log.warning("pre-signing left to the refresher",
                        extra={"serial": serial, "cause": type(exc).__name__})

    async def publish(self, generation: int | None) -> None:
        """After the revoking commit: drop the serial here, have a CRL that covers it stored,
        and wait until every live replica has applied both. Bounded by
        ``publish_timeout_seconds``; a failure is logged, the background loops catch up."""
        if generation is None:
            return
        deadline = time.monotonic() + self.settings.publish_timeout_seconds
        try:
            await self.sync()
            await asyncio.wait_for(self.ensure_crl(generation),
                                   max(0.1, deadline - time.monotonic()))
            target = await self._replicas.current_generation()
            await self.sync()
            await self.await_replicas(target, deadline)
        except Exception:
            log.exception("revocation not yet published everywhere; the status loops retry",
                          extra={"generation": generation})

    # --- replicas ---------------------------------------------------------------------------

    async def sync(self) -> None:
        """Apply new status changes to memory, then acknowledge them and renew the lease."""
        await self._replicas.sync()

    async def await_all_replicas(self) -> bool:
        """Wait until every live replica has applied every change made so far."""
        return await self._replicas.await_all()

    async def await_replicas(self, generation: int, deadline: float) -> bool:
        """Wait until every other replica with a live lease has applied ``generation``."""
        return await self._replicas.await_generation(generation, deadline)

    def lease_valid(self) -> bool:
        return self._replicas.lease_valid()

    @property
    def replica_id(self) -> str:
        return self._ctx.coherence.replica_id

    # --- responder, refresher, maintenance --------------------------------------------------

    async def ensure_responder(self) -> None:
        await self._keys.ensure()

    @property
    def responder_certificate(self) -> x509.Certificate | None:
        return self._keys.certificate

    async def refresh_ocsp(self, limit: int = 500) -> RefreshReport:
        return await self._refresher.refresh(limit)

    async def maintain(self) -> RefreshReport:
        return await self._background.maintain()

    # --- CRL --------------------------------------------------------------------------------

    async def current_crl(self) -> CrlCopy:
        return await self._served.current()

    @property
    def served_crl_this_update(self) -> datetime | None:
        """thisUpdate of the CRL this replica serves from memory (for the CRL-age metric)."""
        return self._served.this_update

    async def ensure_crl(self, generation: int) -> None:
        await self._crl_updater.ensure(generation)

    async def regenerate_crl(self, *, coalesce: bool = False) -> CrlMeta:
        return await self._crl_updater.regenerate(coalesce=coalesce)

    async def crl_due(self) -> bool:
        return await self._crl_updater.due()

    @property
    def last_crl_timings(self) -> dict[str, float]:
        """read, build, store (seconds) of the last CRL this process built."""
        return self._crl_updater.last_timings

    # --- introspection for tests and operators ----------------------------------------------
    # (the private names are the ones the status tests reach for: lease, loops, copies)

    @property
    def memory_size(self) -> int:
        return len(self._memory)

    def _forget_all(self) -> None:
        self._memory.forget_all()

    @property
    def _co(self) -> Coherence:
        return self._ctx.coherence

    @property
    def _tasks(self) -> list[asyncio.Task[None]]:
        return self._background.tasks

    @property
    def _crl(self) -> CrlCopy | None:
        return self._served.copy

    @_crl.setter
    def _crl(self, copy: CrlCopy | None) -> None:
        self._served.copy = copy
