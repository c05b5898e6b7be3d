"""The signing use case: check the PIN by opening the key, sign, drop the key.

The holder's private key is unwrapped only here (through ``PinGate.open_key`` or a
renewal), used for the signatures of one request, and dropped before the reply goes out. Every
input check (the PIN's format included) runs before the per-certificate signature limit is
counted and the PIN is tried, so a malformed request neither signs anything nor costs the holder
one of the five tries or a signature of the minute's quota.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from app.domain.certificates import Certificate, CertificateStatus
from app.domain.errors import Conflict, DependencyUnavailable, InvalidInput, PinInvalid
from app.domain.identity import check_pin_format
from app.domain.ports import Clock, UnitOfWorkFactory
from app.pki.cms import build_signed_data
from app.pki.keys import UserPrivateKey
from app.pki.signing import (
    Mechanism,
    Padding,
    SigningInputError,
    check_digest,
    check_mechanism,
    digest,
    sign_digest,
    sign_digests,
)
from app.services.cades import CmsExtras
from app.services.certificates import CertificateService
from app.services.identity_binding import IdentityBinding
from app.services.limits import Limit, RateLimiter
from app.services.pin_gate import PinGate
from app.services.tsa import Stamper
from app.settings import LimitsSettings

log = logging.getLogger(__name__)

MAX_BATCH = 100  # items (or CSC hashes) under one PIN check


class SignatureFormat(enum.StrEnum):
    RAW = "raw"  # PKCS#1 v1.5 / PSS (RSA) or DER ECDSA over the digest
    CMS = "cms"  # DER CMS SignedData (CAdES-BES), attached or detached


@dataclass(frozen=True)
class Payload:
    """One thing to sign: the data, or only its digest."""

    data: bytes | None = None
    digest: bytes | None = None


@dataclass(frozen=True)
class SignOptions:
    format: SignatureFormat
    mechanism: Mechanism
    detached: bool = False
    timestamp: bool = False  # cms only: add a signature time-stamp (CAdES-T)
    include_r: bool = False  # return the certificate's VID random R (KFTC's rValue)


@dataclass(frozen=True)
class Signed:
    """The signatures in request order, the certificate that made them, and the renewed
    certificate when this request renewed the one it named (then they are the same)."""

    signatures: list[bytes]
    certificate: Certificate
    renewed: Certificate | None
    # The signing certificate's VID random R, only when asked (``include_r``).
    random_r: bytes | None = field(default=None, repr=False)


def check_payloads(payloads: Sequence[Payload], options: SignOptions) -> None:
    """The request-shape rules, before any PIN try.

    :raises InvalidInput: nothing or too much to sign, an item with both or neither of data and
        digest, a digest of the wrong length, a digest for an attached CMS signature, or
        ``detached`` asked of a raw signature.
    """
    if not payloads:
        raise InvalidInput("give data, digest or items", code="payload_required")
    if len(payloads) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} items can be signed at once",
                           code="too_many_items")
    if options.detached and options.format is SignatureFormat.RAW:
        raise InvalidInput("detached applies to cms signatures only", code="detached_invalid")
    if options.timestamp and options.format is SignatureFormat.RAW:
        raise InvalidInput("timestamp applies to cms signatures only",
                           code="timestamp_requires_cms")
    for index, payload in enumerate(payloads):
        where = "" if len(payloads) == 1 else f" (item {index})"
        if (payload.data is None) == (payload.digest is None):
            raise InvalidInput(f"give either data or digest{where}", code="payload_required")
        if payload.digest is None:
            continue
        if options.format is SignatureFormat.CMS and not options.detached:
            raise InvalidInput(f"a digest can only be signed as raw or as detached cms{where}",
                               code="digest_requires_detached")
        try:
            check_digest(payload.digest, options.mechanism.hash_name)
        except SigningInputError as exc:
            raise InvalidInput(f"{exc}{where}", code="digest_length_invalid") from None


class SigningService:
    def __init__(self, uow: UnitOfWorkFactory, certificates: CertificateService,
                 pin_gate: PinGate, clock: Clock, limiter: RateLimiter,
                 limits: LimitsSettings | None = None, cms: CmsExtras | None = None, *,
                 binding: IdentityBinding | None = None) -> None:
        self.uow, self.certificates, self.pin_gate = uow, certificates, pin_gate
        self.clock, self.limiter = clock, limiter
        self.cms = cms or CmsExtras()
        self.binding = binding or certificates.binding
        limits = limits or LimitsSettings()
        self.per_certificate = Limit("signatures_per_certificate",
                                     limits.signatures_per_certificate_per_minute, 60)

    async def sign(self, *, client_id: str, certificate_id: str, pin: str,
                   payloads: Sequence[Payload], options: SignOptions) -> Signed:
        """Sign each payload under one PIN check, in order; renew the certificate first when it
        is inside its renewal window, and then sign with the renewed one.

        :raises InvalidInput: see :func:`check_payloads`; PSS asked of an EC key; a malformed
            PIN (``pin_malformed``).
        :raises NotFound: no such certificate.
        :raises Conflict: revoked or expired (an expired certificate neither signs nor renews).
        :raises RateLimited: the certificate's signatures of this minute are used up.
        :raises PinInvalid: wrong PIN (the try counts); ``PinLocked``: five in a row.
        """
        check_pin_format(pin)
        check_payloads(payloads, options)
        await self._check_key_type(certificate_id, options.mechanism)
        stamp = await self.cms.stamper(options.timestamp)  # 503 before the PIN is tried
        await self._count_signature(certificate_id)
        certificate, key = await self.pin_gate.open_key(certificate_id, pin,
                                                        client_id=client_id,
                                                        audit_action="sign")
        renewed: Certificate | None = None
        try:
            now = self.clock.now()
            if certificate.renewal_due(now):
                try:
                    certificate, key, renewed = await self._renew(client_id, certificate, pin)
                except DependencyUnavailable:
                    # Renewal is opportunistic (30 days of window): the certificate is still
                    # valid, so sign with it and renew on a later signature.
                    log.warning("automatic renewal failed; signing with the current "
                                "certificate", extra={"certificate_id": certificate.id})
            signatures = await asyncio.to_thread(
                _sign_payloads, key, certificate.certificate_der, payloads, options, now,
                self.cms.chain_der, stamp)
        finally:
            del key  # the only reference: the key goes with this frame
        log.info("signed", extra={"certificate_id": certificate.id, "count": len(signatures),
                                  "format": options.format.value,
                                  "renewed": renewed is not None})
        random_r = None
        if options.include_r:  # only after the PIN opened the key: R is the holder's to give
            random_r = await self.binding.random_of(certificate.id)
        return Signed(signatures, certificate, renewed, random_r)

    async def sign_digests(self, *, client_id: str, certificate_id: str, pin: str,
                           digests: Sequence[bytes], mechanism: Mechanism
                           ) -> tuple[Certificate, list[bytes]]:
        """Raw signatures over digests with the certificate's own key, never a renewed one
        (the CSC API: the caller has already built its signed attributes around this
        certificate).

        :raises InvalidInput: a digest of the wrong length, or more than ``MAX_BATCH``; a
            malformed PIN.
        :raises RateLimited: the certificate's signatures of this minute are used up.
        """
        check_pin_format(pin)
        if not digests or len(digests) > MAX_BATCH:
            raise InvalidInput(f"give 1 to {MAX_BATCH} digests", code="too_many_items")
        try:
            for value in digests:
                check_digest(value, mechanism.hash_name)
        except SigningInputError as exc:
            raise InvalidInput(str(exc), code="digest_length_invalid") from None
        await self._check_key_type(certificate_id, mechanism)
        await self._count_signature(certificate_id)
        certificate, key = await self.pin_gate.open_key(certificate_id, pin,
                                                        client_id=client_id,
                                                        audit_action="sign")
        try:
            signatures = await asyncio.to_thread(sign_digests, key, digests, mechanism)
        finally:
            del key
        log.info("signed", extra={"certificate_id": certificate.id, "count": len(signatures),
                                  "format": "csc", "renewed": False})
        return certificate, signatures

    async def _count_signature(self, certificate_id: str) -> None:
        """The per-certificate signature limit: counted once the request is valid, before the
        PIN is tried (so it also bounds how fast tries follow one another)."""
        await self.limiter.hit(self.per_certificate, certificate_id, self.clock.now())

    async def _check_key_type(self, certificate_id: str, mechanism: Mechanism) -> None:
        """PSS is for RSA keys: refuse it for an EC key before the PIN is tried. (Every key
        does PKCS#1 v1.5 or ECDSA, so the default needs no extra read.)"""
        if mechanism.padding is not Padding.PSS:
            return
        certificate = await self.certificates.get(certificate_id)
        public_key = x509.load_der_x509_certificate(certificate.certificate_der).public_key()
        try:
            check_mechanism(public_key, mechanism)
        except SigningInputError as exc:
            raise InvalidInput(str(exc), code="padding_unsupported") from None

    async def _renew(self, client_id: str, certificate: Certificate, pin: str
                     ) -> tuple[Certificate, UserPrivateKey, Certificate]:
        """The successor and its key. When a concurrent request renewed first, its successor
        is used instead (opened with the same PIN); while that one is still being made, or when
        a reissue replaced the certificate, 409."""
        outcome = await self.certificates.renew(client_id=client_id, certificate=certificate,
                                                pin=pin)
        if outcome is not None:
            renewed, new_key = outcome
            return renewed, new_key, renewed
        successor = await self._active_successor(certificate)
        if successor is None:
            raise Conflict("the certificate is being renewed by a concurrent request; retry",
                           code="concurrent_change")
        try:
            renewed, new_key = await self.pin_gate.open_key(successor.id, pin,
                                                            client_id=client_id)
        except PinInvalid:  # a reissue under another PIN won the race, not a renewal
            raise Conflict("the certificate was replaced by a concurrent reissue",
                           code="certificate_superseded") from None
        return renewed, new_key, renewed

    async def _active_successor(self, certificate: Certificate) -> Certificate | None:
        now = self.clock.now()
        async with self.uow(write=False) as uow:
            mine = await uow.records.certificates_of_person(certificate.person_id)
        for candidate in mine:
            if (candidate.replaces_id == certificate.id
                    and candidate.status_at(now) is CertificateStatus.ACTIVE):
                return candidate
        return None


def _sign_payloads(key: UserPrivateKey, certificate_der: bytes, payloads: Sequence[Payload],
                   options: SignOptions, now: datetime, chain: Sequence[bytes] = (),
                   stamp: Stamper | None = None) -> list[bytes]:
    """CPU work, run in a worker thread."""
    signatures = []
    for payload in payloads:
        if options.format is SignatureFormat.RAW:
            value = payload.digest if payload.digest is not None else digest(
                payload.data or b"", options.mechanism.hash_name)
            signatures.append(sign_digest(key, value, options.mechanism))
        else:
            signatures.append(build_signed_data(
                key=key, certificate_der=certificate_der, mechanism=options.mechanism,
                signed_at=now, content=payload.data, content_digest=payload.digest,
                detached=options.detached, extra_certificates=chain, stamp=stamp))
    return signatures
