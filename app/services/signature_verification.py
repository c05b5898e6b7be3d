"""The relying party's check of a signature: valid, why not, and the signer's status then and
now (``POST /v1/signatures/verify``).

No account is needed, so each source address may ask only so many per minute (every check
hashes and verifies what the caller sent). The signer's certificate comes from the CMS, or the
caller (PEM or serial); it must have been issued by one of the CA certificates this service
trusts (the current one, the chain above it, and earlier CA certificates still kept), and be
the one the CA's records hold under its serial.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.domain.certificates import Certificate, CertificateStatus
from app.domain.errors import InvalidInput
from app.domain.ports import Clock
from app.domain.serials import parse_serial, serial_hex
from app.domain.signature_validity import SignerRecord, status_at, status_reasons
from app.pki import verify
from app.pki.signing import HashName, SigningInputError, check_digest, digest
from app.pki.verify import ParsedCms
from app.services.limits import Limit, RateLimiter
from app.settings import LimitsSettings

log = logging.getLogger(__name__)


class CertificateRecords(Protocol):
    """The CA's records of issued certificates (``CertificateService`` is one)."""

    async def by_serial(self, serial: str) -> Certificate | None: ...


class TimeSource(enum.StrEnum):
    SIGNED_ATTRIBUTES = "signed_attributes"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class VerifyRequest:
    signature: bytes = field(repr=False)
    format: str  # "cms" | "raw"
    data: bytes | None = field(default=None, repr=False)
    digest: bytes | None = None
    hash_name: HashName = "sha256"
    pss: bool = False
    certificate_pem: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class Revocation:
    revoked_at: datetime
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    valid: bool
    reasons: list[str]
    signer: x509.Certificate | None
    signing_time: datetime | None
    time_source: TimeSource | None
    status_at_signing: CertificateStatus | None
    status_now: CertificateStatus | None
    revocation: Revocation | None


def check_request(request: VerifyRequest) -> None:
    """The request-shape rules, before anything is counted.

    :raises InvalidInput: data and digest both given, a digest of the wrong length, raw
        without data or digest or without the signer's certificate, or a certificate given
        both as PEM and as serial.
    """
    if request.data is not None and request.digest is not None:
        raise InvalidInput("give data or digest, not both", code="payload_required")
    if request.certificate_pem is not None and request.serial is not None:
        raise InvalidInput("give certificate_pem or serial, not both",
                           code="certificate_required")
    if request.digest is not None:
        try:
            check_digest(request.digest, request.hash_name)
        except SigningInputError as exc:
            raise InvalidInput(str(exc), code="digest_length_invalid") from None
    if request.format == "raw":
        if request.data is None and request.digest is None:
            raise InvalidInput("a raw signature needs data or digest", code="payload_required")
        if request.certificate_pem is None and request.serial is None:
            raise InvalidInput("a raw signature needs certificate_pem or serial",
                               code="certificate_required")


class SignatureVerificationService:
    def __init__(self, records: CertificateRecords, ca_certificates: Sequence[x509.Certificate],
                 clock: Clock, limiter: RateLimiter, limits: LimitsSettings | None = None
                 ) -> None:
        self.records, self.cas, self.clock, self.limiter = (records, tuple(ca_certificates),
                                                            clock, limiter)
        limits = limits or LimitsSettings()
        self.per_address = Limit("signature_checks_per_address",
                                 limits.signature_checks_per_address_per_minute, 60)

    async def verify(self, request: VerifyRequest, *, source: str) -> VerifyResult:
        """:raises InvalidInput: see :func:`check_request`; unreadable DER
            (``signature_malformed`` and kin), a detached CMS without data or digest
            (``payload_required``), an unreadable ``certificate_pem``.
        :raises RateLimited: the address's checks of this minute are used up.
        """
        check_request(request)
        given = None
        if request.certificate_pem is not None:
            given = verify.load_certificate_pem(request.certificate_pem)
        serial = None if request.serial is None else normalize_serial(request.serial)
        parsed = None
        if request.format == "cms":
            parsed = verify.parse_cms(request.signature)
            if parsed.content is None and request.data is None and request.digest is None:
                raise InvalidInput("a detached signature needs data or digest",
                                   code="payload_required")
        now = self.clock.now()
        await self.limiter.hit(self.per_address, source, now)
        record = None
        if serial is not None:
            record = await self.records.by_serial(serial)
            if record is None:
                return _unknown(["certificate_unknown"])
            given = x509.load_der_x509_certificate(record.certificate_der)
        signer = given if parsed is None else (given or verify.find_signer(parsed))
        if signer is None:
            return _unknown(["certificate_unknown"])
        reasons = await asyncio.to_thread(self._check_signature, request, parsed, signer)
        signing_time, source_of_time = None, None
        if parsed is not None and parsed.timestamp_token is not None:
            stamp = verify.check_timestamp(parsed.timestamp_token, parsed.signature, self.cas)
            if stamp.problem is not None:
                reasons.append(stamp.problem)
            else:
                signing_time, source_of_time = stamp.time, TimeSource.TIMESTAMP
        if signing_time is None and parsed is not None and parsed.signing_time is not None:
            signing_time, source_of_time = parsed.signing_time, TimeSource.SIGNED_ATTRIBUTES
        result = await self._judge(signer, record, reasons, signing_time, now)
        log.info("signature verified", extra={"valid": not result.reasons,
                                              "reasons": ",".join(result.reasons),
                                              "format": request.format})
        return VerifyResult(valid=not result.reasons, reasons=result.reasons, signer=signer,
                            signing_time=signing_time, time_source=source_of_time,
                            status_at_signing=result.status_at_signing,
                            status_now=result.status_now, revocation=result.revocation)

    def _check_signature(self, request: VerifyRequest, parsed: ParsedCms | None,
                         signer: x509.Certificate) -> list[str]:
        if parsed is not None:
            return verify.check_cms(parsed, signer, request.data, request.digest)
        value = request.digest if request.digest is not None else digest(
            request.data or b"", request.hash_name)
        return verify.check_raw(request.signature, signer, value, request.hash_name,
                                pss=request.pss)

    async def _judge(self, signer: x509.Certificate, record: Certificate | None,
                     reasons: list[str], signing_time: datetime | None, now: datetime
                     ) -> VerifyResult:
        if verify.issuer_among(signer, self.cas) is None:
            return _unknown([*reasons, "not_issued_here"], signer)
        if record is None:
            record = await self.records.by_serial(serial_hex(signer.serial_number))
        der = signer.public_bytes(serialization.Encoding.DER)
        if record is None or record.certificate_der != der:
            return _unknown([*reasons, "certificate_unknown"], signer)
        facts = SignerRecord(not_before=signer.not_valid_before_utc,
                             not_after=signer.not_valid_after_utc,
                             revoked_at=record.revoked_at)
        reasons = [*reasons, *status_reasons(facts, signing_time, now)]
        revocation = None
        if record.revoked_at is not None and record.revocation_reason is not None:
            revocation = Revocation(record.revoked_at, record.revocation_reason.api_name)
        return VerifyResult(
            valid=not reasons, reasons=reasons, signer=signer, signing_time=signing_time,
            time_source=None,
            status_at_signing=None if signing_time is None else status_at(facts, signing_time),
            status_now=status_at(facts, now), revocation=revocation)


def _unknown(reasons: list[str], signer: x509.Certificate | None = None) -> VerifyResult:
    return VerifyResult(valid=False, reasons=reasons, signer=signer, signing_time=None,
                        time_source=None, status_at_signing=None, status_now=None,
                        revocation=None)


def normalize_serial(serial: str) -> str:
    """The serial as the records hold it (:func:`app.domain.serials.parse_serial`).

    :raises InvalidInput: ``serial_invalid``, not hex.
    """
    parsed = parse_serial(serial)
    if parsed is None:
        raise InvalidInput("serial is a hexadecimal number", code="serial_invalid")
    return parsed
