"""Suspension (효력정지) and resumption use cases, and the job that makes a hold permanent
after ``suspension_max_days`` (rules: app.domain.suspension).

Each transition goes the way a revocation goes: the row changes, the status recorder is told
in the same transaction (the pre-signed OCSP answers are replaced, the status generation
bumped so every replica drops the serial), the phone on record gets a notice from the outbox,
the audit chain gets an event; after the commit the change is published (a CRL that covers
it is stored and every live replica has applied it) before the reply.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from app.domain.certificates import Certificate
from app.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from app.domain.notices import NoticeKind
from app.domain.ports import NO_RECORDER, Clock, RevocationRecorder, UnitOfWork, UnitOfWorkFactory
from app.domain.records import OutboxNotice
from app.domain.suspension import (
    HOLD_REASON,
    LAPSED_HOLD_REASON,
    check_resumable,
    check_suspendable,
    hold_lapsed,
    lapse_cutoff,
)
from app.domain.verification import Purpose
from app.services.certificates import CertificateService
from app.services.notices import Notices
from app.services.pin_gate import PinGate
from app.services.verifications import consume

log = logging.getLogger(__name__)
_LAPSE_BATCH = 100


class SuspensionService:
    """:param certificates: the reads; :param pin_gate: the PIN proof (``open_key``).
    :param max_hold: how long a certificate may stay suspended before it is revoked."""

    def __init__(self, uow: UnitOfWorkFactory, certificates: CertificateService,
                 pin_gate: PinGate, clock: Clock, *, notices: Notices, max_hold: timedelta,
                 revocations: RevocationRecorder | None = None) -> None:
        self.uow, self.certificates, self.pin_gate, self.clock = uow, certificates, pin_gate, clock
        self.notices, self.max_hold = notices, max_hold
        self.revocations = revocations or NO_RECORDER

    async def suspend(self, *, client_id: str, certificate_id: str, pin: str | None,
                      verification_id: str | None) -> Certificate:
        """Proven by the PIN (a wrong one counts towards the lockout) or a fresh phone
        verification made for ``suspend``.

        :raises Conflict: ``certificate_suspended`` (again), ``certificate_revoked``,
            ``certificate_expired``; before any PIN try or verification is spent.
        """
        if (pin is None) == (verification_id is None):
            raise InvalidInput("give either pin or verification_id", code="proof_required")
        check_suspendable(await self.certificates.get(certificate_id), self.clock.now())
        if pin is not None:
            await self.pin_gate.open_key(certificate_id, pin, client_id=client_id)
        now = self.clock.now()
        async with self.uow() as uow:
            certificate, phone = await _locked(uow, certificate_id)
            check_suspendable(certificate, now)  # a concurrent change may have won
            if verification_id is not None:
                await consume(uow, verification_id, client_id=client_id, phone=phone,
                              purpose=Purpose.SUSPEND, now=now)
            if not await uow.records.revoke(certificate_id, HOLD_REASON, now):
                raise Conflict("certificate is no longer active", code="certificate_revoked")
            generation = await self.revocations.record(uow, certificate_id)
            queued = await self.notices.enqueue(uow, NoticeKind.SUSPEND, client_id=client_id,
                                                phone=phone, now=now)
            await uow.audit(now=now, action="suspend", client_id=client_id,
                            certificate_id=certificate_id,
                            proof="pin" if pin is not None else "verification")
            await uow.commit()
        await self.revocations.publish(generation)
        await self.notices.deliver(queued)
        log.info("certificate suspended", extra={"certificate_id": certificate_id})
        return await self.certificates.get(certificate_id)

    async def resume(self, *, client_id: str, certificate_id: str,
                     verification_id: str) -> Certificate:
        """Proven by a fresh phone verification made for ``resume``.

        :raises Conflict: ``certificate_not_suspended``, ``certificate_revoked``,
            ``certificate_expired``, ``suspension_lapsed``.
        """
        check_resumable(await self.certificates.get(certificate_id), self.clock.now(),
                        self.max_hold)
        now = self.clock.now()
        async with self.uow() as uow:
            certificate, phone = await _locked(uow, certificate_id)
            check_resumable(certificate, now, self.max_hold)
            await consume(uow, verification_id, client_id=client_id, phone=phone,
                          purpose=Purpose.RESUME, now=now)
            # Issuance supersedes a held certificate under this same row lock, so none is
            # active here; checked anyway, as the one-active-per-person index would refuse.
            if await uow.records.active_certificate_of(certificate.person_id) is not None:
                raise Conflict("the person has another active certificate",
                               code="certificate_superseded")
            if not await uow.suspensions.release(certificate_id, now):
                raise Conflict("certificate is no longer suspended", code="certificate_revoked")
            generation = await self.revocations.record(uow, certificate_id)
            queued = await self.notices.enqueue(uow, NoticeKind.RESUME, client_id=client_id,
                                                phone=phone, now=now)
            await uow.audit(now=now, action="resume", client_id=client_id,
                            certificate_id=certificate_id, verification_id=verification_id)
            await uow.commit()
        await self.revocations.publish(generation)
        await self.revocations.presign(certificate.serial)
        await self.notices.deliver(queued)
        log.info("certificate resumed", extra={"certificate_id": certificate_id})
        return await self.certificates.get(certificate_id)

    # --- holds that run out ----------------------------------------------------------------

    async def lapse_due(self, now: datetime) -> int:
        """Revoke (reason cessationOfOperation) every certificate held longer than the
        maximum; each in its own transaction, published, its holder told. Returns how many.
        Every replica may run it: the row lock and the re-check make it happen once."""
        async with self.uow(write=False) as uow:
            due = await uow.suspensions.holds_placed_before(
                lapse_cutoff(now, self.max_hold), _LAPSE_BATCH)
        lapsed = 0
        for certificate_id in due:
            queued: list[OutboxNotice] = []
            generation: int | None = None
            async with self.uow() as uow:
                certificate, phone = await _locked(uow, certificate_id)
                if not hold_lapsed(certificate, now, self.max_hold):
                    continue  # resumed or revoked meanwhile (nothing written to commit)
                await uow.records.set_revocation_reason(certificate_id, LAPSED_HOLD_REASON, now)
                generation = await self.revocations.record(uow, certificate_id)
                queued = await self.notices.enqueue(uow, NoticeKind.REVOKE, client_id=None,
                                                    phone=phone, now=now)
                await uow.audit(now=now, action="revoke", client_id=None,
                                certificate_id=certificate_id,
                                reason=LAPSED_HOLD_REASON.api_name, actor="system",
                                cause="suspension_lapsed")
                await uow.commit()
            await self.revocations.publish(generation)
            await self.notices.deliver(queued)
            lapsed += 1
        if lapsed:
            log.info("suspensions lapsed into revocations", extra={"count": lapsed})
        return lapsed

    async def run_periodically(self, interval_seconds: float) -> None:
        """The lifespan's background task, beside the sweeper."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.lapse_due(self.clock.now())
            except DomainError as exc:  # the database is down: try again next round
                log.warning("suspension lapse skipped", extra={"cause": exc.code})


async def _locked(uow: UnitOfWork, certificate_id: str) -> tuple[Certificate, str]:
    """The certificate and the phone on record, the person's row then the certificate's
    locked for the unit of work (the order issuance locks them in)."""
    found = await uow.records.get_certificate(certificate_id)
    if found is None:
        raise NotFound("no such certificate", code="certificate_not_found")
    person = await uow.records.get_person(found.person_id, for_update=True)
    certificate = await uow.records.get_certificate(certificate_id, for_update=True)
    assert person is not None and certificate is not None
    return certificate, str(person.phone)
