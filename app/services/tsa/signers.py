"""The TSA's signer: its key (wrapped under the master key, like the OCSP responder's, so it
is inside the PKCS#11 token's protection when the keys are) and its certificate from the CA.

One replica issues a new signer when the newest nears its end; the others load that one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.domain.ports import Clock, KeyProtector, UnitOfWorkFactory
from app.domain.records import StoredTsaSigner
from app.domain.serials import serial_hex
from app.pki import tsp
from app.pki.ca import CertificateAuthority, Profile
from app.pki.ocsp_responder import backdated
from app.services.custody import tsa_binding
from app.settings import TsaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signer:
    id: str
    identity: tsp.TsaIdentity

    @property
    def not_after(self) -> datetime:
        return self.identity.certificate.not_valid_after_utc


class TsaSigners:
    def __init__(self, uow: UnitOfWorkFactory, ca: CertificateAuthority,
                 protector: KeyProtector, settings: TsaSettings, profile: Profile,
                 clock: Clock) -> None:
        self._uow, self._ca, self._protector = uow, ca, protector
        self.settings, self._profile, self._clock = settings, profile, clock
        self._current: Signer | None = None
        self._lock = asyncio.Lock()

    def usable(self, now: datetime) -> Signer | None:
        """The signer to use now, or None (no certificate valid at ``now``)."""
        signer = self._current
        if signer is None or signer.not_after <= now:
            return None
        return signer

    async def ensure(self) -> None:
        """Load the newest signer, or issue one when it is within ``renew_before_seconds`` of
        its end (one replica does; the others load it). Cheap when the current one is fine."""
        renew_before = timedelta(seconds=self.settings.renew_before_seconds)
        current = self._current
        if current is not None and current.not_after - self._clock.now() > renew_before:
            return
        async with self._lock:
            now = self._clock.now()
            current = self._current
            if current is not None and current.not_after - now > renew_before:
                return
            async with self._uow(write=False) as uow:
                row = await uow.tsa.newest_signer()
            if row is not None and (current is None or row.id != current.id):
                self._current = await self._load(row)
                if row.not_after - now > renew_before:
                    return
            self._current = await self._issue(now, renew_before)

    async def _load(self, row: StoredTsaSigner) -> Signer:
        pkcs8 = await self._protector.unwrap(row.master_key_id, row.wrapped_key,
                                             tsa_binding(row.id))
        key = serialization.load_der_private_key(pkcs8, None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the TSA key must be RSA or EC")
        certificate = x509.load_der_x509_certificate(row.certificate_der)
        return Signer(row.id, tsp.TsaIdentity(key, certificate, self._ca.below_root))

    async def _issue(self, now: datetime, renew_before: timedelta) -> Signer:
        settings, ca = self.settings, self._ca
        key = await asyncio.to_thread(tsp.generate_tsa_key, settings.key_algorithm)
        signer_id = str(uuid.uuid4())
        serial = x509.random_serial_number()
        not_before = backdated(now)
        not_after = min(now + timedelta(seconds=settings.certificate_validity_seconds),
                        ca.certificate.not_valid_after_utc)  # never past the CA's own end
        certificate = await asyncio.to_thread(
            tsp.issue_tsa_certificate, ca_key=ca.key, ca_certificate=ca.certificate,
            public_key=key.public_key(), serial=serial, not_before=not_before,
            not_after=not_after, policy_oid=settings.policy_oid,
            crl_url=self._profile.crl_url, ca_issuers_url=self._profile.ca_issuers_url)
        pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        master_key_id, wrapped = await self._protector.wrap(pkcs8, tsa_binding(signer_id))
        async with self._uow() as uow:
            await uow.status.lock_state()  # one replica issues at a time
            repo = uow.tsa
            newest = await repo.newest_signer()
            if newest is not None and newest.not_after - now > renew_before:
                winner = newest  # another replica rolled over first
            else:
                await repo.add_signer(
                    signer_id=signer_id, serial=serial_hex(serial),
                    key_algorithm=settings.key_algorithm,
                    certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                    master_key_id=master_key_id, wrapped_key=wrapped, not_before=not_before,
                    not_after=not_after, now=now)
                winner = None
            await uow.commit()
        if winner is not None:
            return await self._load(winner)
        log.info("issued a TSA certificate",
                 extra={"tsa_signer_id": signer_id, "not_after": not_after.isoformat()})
        return Signer(signer_id, tsp.TsaIdentity(key, certificate, ca.below_root))
