"""Time-stamp replies for POST /tsa, and signature time-stamps for CAdES-T CMS signatures.

Every anonymous request counts against its source address before anything is parsed or
signed. A request the TSA will not stamp is a TimeStampResp with status rejection and the
PKIFailureInfo bit (RFC 3161 §2.4.2), which is what time-stamp clients read; only HTTP-level
faults (media type, size, the rate limit) are problem+json, in the router.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from app.domain.errors import DependencyUnavailable
from app.domain.ports import Clock, KeyProtector, UnitOfWorkFactory
from app.pki import tsp
from app.pki.ca import CertificateAuthority, Profile
from app.pki.signing import HashName
from app.services.limits import Limit, RateLimiter
from app.services.tsa.signers import Signer, TsaSigners
from app.settings import TsaSettings

log = logging.getLogger(__name__)

# Signs a time-stamp over a signature value: (signature, hash) -> DER TimeStampToken.
Stamper = Callable[[bytes, HashName], bytes]


class TimeStampService:
    def __init__(self, uow: UnitOfWorkFactory, ca: CertificateAuthority,
                 protector: KeyProtector, settings: TsaSettings, profile: Profile, clock: Clock,
                 limiter: RateLimiter) -> None:
        self.settings, self._clock, self._limiter = settings, clock, limiter
        self.signers = TsaSigners(uow, ca, protector, settings, profile, clock)
        self.per_address = Limit("tsa_requests_per_address",
                                 settings.requests_per_address_per_minute, 60)

    async def start(self) -> None:
        """A TSA certificate exists before the first request."""
        await self.signers.ensure()

    async def reply(self, der: bytes, *, source: str) -> bytes:
        """The DER TimeStampResp for a DER TimeStampReq.

        :raises RateLimited: this address has used up the minute's requests.
        """
        await self._limiter.hit(self.per_address, source, self._clock.now())
        try:
            request = tsp.parse_request(der, self.settings.policy_oid)
        except tsp.Refusal as refusal:
            return tsp.rejection(refusal.failure, refusal.text)
        signer = await self._signer()
        if signer is None:
            return tsp.unavailable("no TSA certificate is valid now; retry later")
        token = await asyncio.to_thread(self._token, signer, request, self._clock.now())
        return tsp.granted(token)

    async def stamper(self) -> Stamper | None:
        """A synchronous signer of signature time-stamps (to run in the signing worker
        thread), or None when no TSA certificate is valid now."""
        signer = await self._signer()
        if signer is None:
            return None

        def stamp(signature: bytes, hash_name: HashName) -> bytes:
            return self._token(signer, tsp.signature_value_imprint(signature, hash_name),
                               self._clock.now())
        return stamp

    async def _signer(self) -> Signer | None:
        """The signer now; a failed renewal keeps the current one while it is valid."""
        try:
            await self.signers.ensure()
        except DependencyUnavailable:
            if self.signers.usable(self._clock.now()) is None:
                raise
            log.warning("could not renew the TSA certificate; signing with the current one")
        return self.signers.usable(self._clock.now())

    def _token(self, signer: Signer, request: tsp.TimeStampRequest, now: datetime) -> bytes:
        return tsp.build_token(signer.identity, request, serial=tsp.new_serial(), gen_time=now,
                               policy_oid=self.settings.policy_oid,
                               accuracy_seconds=self.settings.accuracy_seconds)
