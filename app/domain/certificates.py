"""Certificate lifecycle rules: status, revocation, lockout and the renewal window."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.errors import Conflict, InvalidInput, PinInvalid, PinLocked

VALIDITY = timedelta(days=3 * 365)
RENEWAL_WINDOW = timedelta(days=30)
MAX_WRONG_PINS = 5


class RevocationReason(enum.IntEnum):
    """RFC 5280 CRLReason codes; the API uses their snake_case names."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_api_name(cls, name: str) -> RevocationReason:
        """:raises InvalidInput: for an unknown name, or one a holder cannot ask for."""
        try:
            reason = cls[name.upper()]
        except KeyError:
            raise InvalidInput(f"unknown revocation reason {name!r}",
                               code="reason_invalid") from None
        if reason not in HOLDER_REASONS:
            raise InvalidInput(f"revocation reason {name!r} cannot be requested",
                               code="reason_invalid")
        return reason


# Reasons a holder may give; hold/removeFromCRL and CA-side reasons are not for them.
HOLDER_REASONS = frozenset({
    RevocationReason.UNSPECIFIED, RevocationReason.KEY_COMPROMISE,
    RevocationReason.AFFILIATION_CHANGED, RevocationReason.SUPERSEDED,
    RevocationReason.CESSATION_OF_OPERATION, RevocationReason.PRIVILEGE_WITHDRAWN,
})


class StoredState(enum.StrEnum):
    """What the database holds. ``expired`` is never stored: it is derived from the clock."""

    PENDING = "pending"  # row written before the CA signs; never visible to clients
    ACTIVE = "active"
    REVOKED = "revoked"


class CertificateStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # stored as revoked with reason certificateHold (app.domain.suspension)
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass
class Certificate:
    id: str
    person_id: str
    serial: str
    state: StoredState
    not_before: datetime
    not_after: datetime
    certificate_der: bytes
    issued_by_client: str
    replaces_id: str | None
    revocation_reason: RevocationReason | None
    revoked_at: datetime | None
    wrong_pins: int

    def status_at(self, now: datetime) -> CertificateStatus:
        if self.suspended:
            return CertificateStatus.SUSPENDED
        if self.state is StoredState.REVOKED:
            return CertificateStatus.REVOKED
        if now >= self.not_after:
            return CertificateStatus.EXPIRED
        return CertificateStatus.ACTIVE

    @property
    def suspended(self) -> bool:
        """On hold (효력정지): revoked with reason certificateHold, which only a suspension
        stores; a resumption makes it active again, a revocation makes it permanent."""
        return (self.state is StoredState.REVOKED
                and self.revocation_reason is RevocationReason.CERTIFICATE_HOLD)

    @property
    def locked(self) -> bool:
        return self.wrong_pins >= MAX_WRONG_PINS

    def in_renewal_window(self, now: datetime) -> bool:
        return self.not_after - RENEWAL_WINDOW <= now < self.not_after

    def renewal_due(self, now: datetime) -> bool:
        """Automatic renewal: a live, unlocked certificate used inside its renewal window (the
        last 30 days) is renewed. Past ``not_after`` it can neither sign nor renew: reissue."""
        return (self.status_at(now) is CertificateStatus.ACTIVE and not self.locked
                and self.in_renewal_window(now))

    def check_can_use_key(self, now: datetime) -> None:
        """Signing, PIN change and renewal need a live, unlocked certificate.

        :raises Conflict: revoked or expired.
        :raises PinLocked: five wrong PINs in a row.
        """
        status = self.status_at(now)
        if status is not CertificateStatus.ACTIVE:
            raise Conflict(f"certificate is {status.value}", code=f"certificate_{status.value}")
        if self.locked:
            raise_locked()

    def check_reissuable(self, is_latest: bool) -> None:
        """Reissue starts from the person's latest certificate, whatever its state; an older,
        already superseded one would fork the chain of replacements.

        A suspended certificate is reissued neither: it changes only by a resumption or a
        revocation (the same phone verification that would reissue it can resume it).

        :raises Conflict: code ``certificate_superseded``, or ``certificate_suspended``.
        """
        if self.suspended:
            raise Conflict("certificate is suspended; resume it first",
                           code="certificate_suspended")
        if not is_latest:
            raise Conflict("certificate was superseded; reissue from its successor",
                           code="certificate_superseded")


def raise_locked() -> None:
    raise PinLocked("certificate is locked after five wrong PINs; unlock it with a phone "
                    "verification or reissue", remaining_attempts=0)


def wrong_pin_error(wrong_pins: int) -> PinInvalid:
    remaining = max(MAX_WRONG_PINS - wrong_pins, 0)
    detail = "wrong PIN" if remaining else "wrong PIN; the certificate is now locked"
    return PinInvalid(detail, remaining_attempts=remaining)


def revocation_update(
    current_reason: RevocationReason | None, requested: RevocationReason
) -> RevocationReason | None:
    """For a certificate already revoked: the reason to store, or None to change nothing.
    Only a change to keyCompromise updates an existing revocation (RFC 5280 §5.3.1 allows it),
    and any reason makes a hold (a suspension) permanent (RFC 5280 §5.3.1: a hold may be
    followed by a revocation with another reason)."""
    if current_reason is RevocationReason.CERTIFICATE_HOLD:
        return None if requested is RevocationReason.CERTIFICATE_HOLD else requested
    if requested is RevocationReason.KEY_COMPROMISE and current_reason is not requested:
        return requested
    return None
