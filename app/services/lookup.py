"""Finding a person's certificates by resident registration number (RRN).

An RRN is guessable (a birth date and a few more digits), so a lookup is an oracle for "is
this person a customer": each bank client may ask only so many per minute, and every lookup,
found or not, is an audited fact naming the keyed hash of the RRN (never the RRN), so an
enumeration is visible afterwards.
"""

from __future__ import annotations

import logging

from app.domain.certificates import Certificate
from app.domain.identity import parse_rrn
from app.domain.ports import Clock, UnitOfWorkFactory
from app.services.limits import Limit, RateLimiter
from app.services.secrets import ServerSecrets
from app.settings import LimitsSettings

log = logging.getLogger(__name__)


class LookupService:
    def __init__(self, uow: UnitOfWorkFactory, secrets_: ServerSecrets, clock: Clock,
                 limiter: RateLimiter, limits: LimitsSettings | None = None) -> None:
        self.uow, self.secrets, self.clock, self.limiter = uow, secrets_, clock, limiter
        limits = limits or LimitsSettings()
        self.per_client = Limit("lookups_per_client", limits.lookups_per_client_per_minute, 60)

    async def lookup(self, *, client_id: str, rrn: str, via: str) -> list[Certificate]:
        """The person's certificates, newest first (none for an unknown RRN).

        :param via: the API that asked (``v1`` or ``csc``), for the audit trail.
        :raises InvalidInput: ``rrn_invalid`` (not counted: it can find nobody).
        :raises RateLimited: the client's lookups of this minute are used up.
        """
        now = self.clock.now()
        digits = parse_rrn(rrn, today=now.date()).digits
        # Counted on a connection of its own, before the transaction below takes one.
        await self.limiter.hit(self.per_client, client_id, now)
        subject_hmac = await self.secrets.rrn_lookup_hmac(digits)
        async with self.uow() as uow:
            person = await uow.records.person_by_rrn_hmac(subject_hmac)
            found = [] if person is None else await uow.records.certificates_of_person(person.id)
            await uow.audit(now=now, action="lookup", client_id=client_id, via=via,
                            subject_hmac=subject_hmac, found=person is not None,
                            count=len(found))
            await uow.commit()
        log.info("certificates looked up", extra={"client_id": client_id, "via": via,
                                                  "count": len(found)})
        return found
