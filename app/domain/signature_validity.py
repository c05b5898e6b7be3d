"""Was the signer's certificate good when the signature was made? Pure rules, time passed in.

A certificate revoked *after* the signing time leaves the signature valid (the revocation is
reported beside it); one revoked at or before it, or used outside its validity period, does
not. Without a trustworthy signing time (a raw signature) the certificate must be good now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.certificates import CertificateStatus


@dataclass(frozen=True)
class SignerRecord:
    """What the CA's records say about the signer's certificate."""

    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None


def status_at(record: SignerRecord, moment: datetime) -> CertificateStatus:
    """The certificate's status at ``moment`` (revocation wins over expiry)."""
    if record.revoked_at is not None and record.revoked_at <= moment:
        return CertificateStatus.REVOKED
    if not record.not_before <= moment < record.not_after:
        return CertificateStatus.EXPIRED
    return CertificateStatus.ACTIVE


def status_reasons(record: SignerRecord, signing_time: datetime | None, now: datetime
                   ) -> list[str]:
    """The reason codes the certificate's status gives against the signature."""
    if signing_time is None:
        return {CertificateStatus.ACTIVE: [],
                CertificateStatus.REVOKED: ["certificate_revoked"],
                CertificateStatus.EXPIRED: ["certificate_expired"]}[status_at(record, now)]
    if signing_time > now:
        return ["signing_time_in_future"]
    status = status_at(record, signing_time)
    if status is CertificateStatus.REVOKED:
        return ["revoked_before_signing"]
    if status is CertificateStatus.EXPIRED:
        return ["expired_at_signing"]
    return []
