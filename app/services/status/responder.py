"""The delegated OCSP responder: its key (wrapped under the master key) and certificate.

One replica issues a new responder when the newest nears its end; the others load that one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.domain.serials import serial_hex
from app.pki import ocsp_responder
from app.pki.ocsp import ResponderIdentity
from app.services.custody import responder_binding
from app.services.status.context import StatusContext

log = logging.getLogger(__name__)

# A stored response is served only while it has this much validity left; else it is re-signed.
# A responder is used only while it has this much left, so no response outlives its signer.
MIN_REMAINING = timedelta(minutes=5)


@dataclass(frozen=True)
class Responder:
    id: str
    identity: ResponderIdentity

    @property
    def not_after(self) -> datetime:
        return self.identity.not_after


class ResponderKeys:
    def __init__(self, ctx: StatusContext) -> None:
        self._ctx = ctx
        self._current: Responder | None = None
        self._lock = asyncio.Lock()

    def usable(self) -> Responder | None:
        """The responder to sign with now, or None (answer tryLater, or store nothing)."""
        responder = self._current
        if responder is None or responder.not_after - self._ctx.clock.now() <= MIN_REMAINING:
            return None
        return responder

    @property
    def certificate(self) -> x509.Certificate | None:
        return None if self._current is None else self._current.identity.certificate

    async def ensure(self) -> None:
        """Load the newest responder, or issue a new one when it is within
        ``responder_renew_before_seconds`` of its end (one replica does; the others load it)."""
        renew_before = timedelta(seconds=self._ctx.settings.responder_renew_before_seconds)
        async with self._lock:
            now = self._ctx.clock.now()
            current = self._current
            if current is not None and current.not_after - now > renew_before:
                return
            async with self._ctx.uow(write=False) as uow:
                row = await uow.status.newest_responder()
            if row is not None and (current is None or row.id != current.id):
                self._current = await self._load(row)
                if row.not_after - now > renew_before:
                    return
            self._current = await self._issue(now, renew_before)

    async def _load(self, row: Any) -> Responder:
        pkcs8 = await self._ctx.protector.unwrap(row.master_key_id, bytes(row.wrapped_key),
                                                 responder_binding(row.id))
        key = serialization.load_der_private_key(pkcs8, None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the responder key must be RSA or EC")
        certificate = x509.load_der_x509_certificate(bytes(row.certificate_der))
        return Responder(row.id, ResponderIdentity(key, certificate, self._ctx.ca.below_root))

    async def _issue(self, now: datetime, renew_before: timedelta) -> Responder:
        ctx = self._ctx
        algorithm = ctx.settings.responder_key_algorithm
        key = await asyncio.to_thread(ocsp_responder.generate_responder_key, algorithm)
        responder_id = str(uuid.uuid4())
        serial = x509.random_serial_number()
        not_after = now + timedelta(seconds=ctx.settings.responder_validity_seconds)
        certificate = await asyncio.to_thread(
            ocsp_responder.issue_responder_certificate, ca_key=ctx.ca.key,
            ca_certificate=ctx.ca.certificate, public_key=key.public_key(), serial=serial,
            not_before=ocsp_responder.backdated(now), not_after=not_after)
        pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        master_key_id, wrapped = await ctx.protector.wrap(pkcs8,
                                                          responder_binding(responder_id))
        async with ctx.uow() as uow:
            repo = uow.status
            await repo.lock_state()
            newest = await repo.newest_responder()
            if newest is not None and newest.not_after - now > renew_before:
                winner = newest  # another replica rolled over first
            else:
                await repo.add_responder(
                    responder_id=responder_id, serial=serial_hex(serial),
                    key_algorithm=algorithm,
                    certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                    master_key_id=master_key_id, wrapped_key=wrapped,
                    not_before=ocsp_responder.backdated(now), not_after=not_after, now=now)
                winner = None
            await uow.commit()
        if winner is not None:
            return await self._load(winner)
        log.info("issued an OCSP responder certificate",
                 extra={"responder_id": responder_id, "not_after": not_after.isoformat()})
        return Responder(responder_id, ResponderIdentity(key, certificate, ctx.ca.below_root))
