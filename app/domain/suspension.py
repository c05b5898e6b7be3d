"""Suspension (효력정지) and resumption: the rules of a certificate on hold.

A certificate moves ``active -> suspended -> active`` (a resumption) or ``suspended ->
revoked`` (a revocation by the holder or the CA, or the hold running out). Relying parties see
a suspended certificate as revoked with reason certificateHold (RFC 5280 §5.3.1), so it is
stored as exactly that: state ``revoked``, reason ``certificate_hold``, ``revoked_at`` the
time of the hold. A resumption clears all three; the next CRL leaves the entry out and OCSP
says ``good`` again (RFC 5280 §3.3 lets a held certificate come back).

A hold not resumed within ``max_hold`` (30 days by default, the ``suspension_max_days``
setting) becomes a permanent revocation with reason cessationOfOperation: RFC 5280 allows any
reason for a hold made permanent; the holder gave none, and nothing suggests the key was
compromised (the key never left the cloud; a suspension is typically a lost phone), so
keyCompromise would overstate it and unspecified says nothing. ``revoked_at`` stays the time
of the hold: the certificate has not been valid since then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain.certificates import Certificate, CertificateStatus, RevocationReason
from app.domain.errors import Conflict

DEFAULT_MAX_HOLD = timedelta(days=30)
HOLD_REASON = RevocationReason.CERTIFICATE_HOLD
LAPSED_HOLD_REASON = RevocationReason.CESSATION_OF_OPERATION


def _conflict(status: CertificateStatus) -> Conflict:
    return Conflict(f"certificate is {status.value}", code=f"certificate_{status.value}")


def check_suspendable(certificate: Certificate, now: datetime) -> None:
    """Only a live certificate is suspended; a lockout does not stop it (a verification
    suspends a locked certificate, a PIN cannot).

    :raises Conflict: ``certificate_suspended`` (already), ``certificate_revoked``,
        ``certificate_expired``.
    """
    status = certificate.status_at(now)
    if status is not CertificateStatus.ACTIVE:
        raise _conflict(status)


def check_resumable(certificate: Certificate, now: datetime, max_hold: timedelta) -> None:
    """Only a suspended certificate, inside its validity and its hold period, is resumed.

    :raises Conflict: ``certificate_not_suspended`` (active), ``certificate_revoked``,
        ``certificate_expired`` (its validity ended while on hold; nothing to resume), or
        ``suspension_lapsed`` (held longer than ``max_hold``: revoked for good).
    """
    status = certificate.status_at(now)
    if status is CertificateStatus.ACTIVE:
        raise Conflict("certificate is not suspended", code="certificate_not_suspended")
    if status is not CertificateStatus.SUSPENDED:
        raise _conflict(status)
    if now >= certificate.not_after:
        raise _conflict(CertificateStatus.EXPIRED)
    if hold_lapsed(certificate, now, max_hold):
        raise Conflict(f"the suspension lasted over {max_hold.days} days; the certificate is "
                       "revoked for good", code="suspension_lapsed")


def hold_lapsed(certificate: Certificate, now: datetime, max_hold: timedelta) -> bool:
    """A hold older than ``max_hold`` is due to become a permanent revocation."""
    return (certificate.suspended and certificate.revoked_at is not None
            and now >= certificate.revoked_at + max_hold)


def lapse_cutoff(now: datetime, max_hold: timedelta) -> datetime:
    """Holds placed before this are due (``revoked_at <= cutoff``)."""
    return now - max_hold
