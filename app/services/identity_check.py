"""``POST /v1/identity/check``: is this RRN the one bound in the certificate's VID?

Each answer is an RRN oracle, so only clients holding the ``identity:check`` scope may ask
(never a default bank scope), each only so many a minute, and every check is audited with the
keyed hash of the RRN (never the RRN) and its answer. The VID is recomputed from the RRN and the
certificate's R (unwrapped from the master-key layer) and compared in constant time.
"""

from __future__ import annotations

import asyncio
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.domain.certificates import Certificate
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.identity import parse_rrn
from app.domain.ports import Clock, UnitOfWorkFactory
from app.domain.serials import serial_hex
from app.pki import vid
from app.pki.verify import load_certificate_pem
from app.services.identity_binding import IdentityBinding
from app.services.limits import Limit, RateLimiter
from app.services.secrets import ServerSecrets
from app.services.signature_verification import CertificateRecords, normalize_serial
from app.settings import LimitsSettings

log = logging.getLogger(__name__)


class IdentityCheckService:
    def __init__(self, uow: UnitOfWorkFactory, records: CertificateRecords,
                 binding: IdentityBinding,
                 secrets_: ServerSecrets, clock: Clock, limiter: RateLimiter,
                 limits: LimitsSettings | None = None) -> None:
        self.uow, self.records, self.binding = uow, records, binding
        self.secrets, self.clock, self.limiter = secrets_, clock, limiter
        limits = limits or LimitsSettings()
        self.per_client = Limit("identity_checks_per_client",
                                limits.identity_checks_per_client_per_minute, 60)

    async def check(self, *, client_id: str, serial: str | None, certificate_pem: str | None,
                    rrn: str) -> bool:
        """:raises InvalidInput: ``rrn_invalid``; neither or both of serial and certificate
            (``certificate_required``); an unreadable PEM (``certificate_invalid``).
        :raises RateLimited: the client's checks of this minute are used up.
        :raises NotFound: ``certificate_not_found``, not a certificate issued here.
        :raises Conflict: ``certificate_without_vid``, issued before VIDs existed.
        """
        now = self.clock.now()
        digits = parse_rrn(rrn, today=now.date()).digits
        if (serial is None) == (certificate_pem is None):
            raise InvalidInput("give serial or certificate_pem", code="certificate_required")
        given = None if certificate_pem is None else load_certificate_pem(certificate_pem)
        wanted = (normalize_serial(serial) if serial is not None
                  else serial_hex(given.serial_number) if given is not None else "")
        await self.limiter.hit(self.per_client, client_id, now)
        record = await self.records.by_serial(wanted)
        if record is None or (given is not None and record.certificate_der != given.public_bytes(
                serialization.Encoding.DER)):
            raise NotFound("no such certificate", code="certificate_not_found")
        match = await self._matches(record, digits)
        subject_hmac = await self.secrets.rrn_lookup_hmac(digits)
        async with self.uow() as uow:
            await uow.audit(now=now, action="identity_check", client_id=client_id,
                            certificate_id=record.id, subject_hmac=subject_hmac, match=match)
            await uow.commit()
        log.info("identity checked", extra={"client_id": client_id,
                                            "certificate_id": record.id})
        return match

    async def _matches(self, record: Certificate, digits: str) -> bool:
        random_r = await self.binding.random_of(record.id)
        if random_r is None:
            raise Conflict("the certificate carries no VID (issued before identity binding)",
                           code="certificate_without_vid")
        certificate = x509.load_der_x509_certificate(record.certificate_der)
        return await asyncio.to_thread(vid.matches, certificate, digits, random_r)


