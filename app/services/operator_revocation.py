"""A CA-side revocation by the operator: no PIN, no verification; published to OCSP and the
CRL like every revocation, and audited with the operator as the actor."""

from __future__ import annotations

import logging
from datetime import datetime

from app.domain.certificates import Certificate, RevocationReason, revocation_update
from app.domain.errors import InvalidInput, NotFound
from app.domain.ports import Clock, RevocationRecorder, UnitOfWorkFactory
from app.domain.repositories import Records

log = logging.getLogger(__name__)


async def store_revocation(repo: Records, certificate_id: str, reason: RevocationReason,
                           now: datetime) -> RevocationReason | None:
    """Revoke the row, or update the reason of a revoked one where RFC 5280 allows it; the
    reason stored, or None when nothing changed."""
    if await repo.revoke(certificate_id, reason, now):
        return reason
    current = await repo.get_certificate(certificate_id)
    assert current is not None
    changed = revocation_update(current.revocation_reason, reason)
    if changed is not None:
        await repo.set_revocation_reason(certificate_id, changed, now)
    return changed


class OperatorRevocation:
    def __init__(self, uow: UnitOfWorkFactory, revocations: RevocationRecorder,
                 clock: Clock) -> None:
        self.uow, self.revocations, self.clock = uow, revocations, clock

    async def revoke(self, id_or_serial: str, reason: RevocationReason) -> Certificate:
        if reason is RevocationReason.CERTIFICATE_HOLD:
            raise InvalidInput("certificate_hold is a suspension, not a revocation",
                               code="reason_invalid")
        now = self.clock.now()
        published: int | None = None
        async with self.uow() as uow:
            # By id, else by serial (lowercase hex, as the API prints it).
            certificate = (await uow.records.get_certificate(id_or_serial)
                           or await uow.records.get_certificate_by_serial(id_or_serial.lower()))
            if certificate is None:
                raise NotFound(f"no certificate {id_or_serial}", code="certificate_not_found")
            changed = await store_revocation(uow.records, certificate.id, reason, now)
            if changed is not None:
                published = await self.revocations.record(uow, certificate.id)
                await uow.audit(now=now, action="revoke", client_id=None,
                                certificate_id=certificate.id, reason=changed.api_name,
                                actor="operator")
            await uow.commit()
        await self.revocations.publish(published)
        log.info("certificate revoked by the operator",
                 extra={"certificate_id": certificate.id, "reason": reason.api_name})
        async with self.uow(write=False) as uow:
            revoked = await uow.records.get_certificate(certificate.id)
        assert revoked is not None
        return revoked
