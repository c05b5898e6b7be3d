"""Phone verification rules: expiry, attempts, single use, binding to bank, phone and purpose."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.errors import Conflict, InvalidInput

CODE_TTL = timedelta(minutes=3)
USE_WINDOW = timedelta(minutes=10)  # how long a verified verification may wait to be used
MAX_WRONG_CODES = 5
# A phone replaced on record (say by another bank's issuance) can still start a reissue for
# this long, so that the person can take the certificate back.
PREVIOUS_PHONE_GRACE = timedelta(days=30)
_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")  # fullmatch, ASCII digits: \d takes any Unicode digit


class Channel(enum.StrEnum):
    SMS = "sms"
    ARS = "ars"


class Purpose(enum.StrEnum):
    ISSUE = "issue"
    REISSUE = "reissue"
    UNLOCK = "unlock"
    REVOKE = "revoke"
    SUSPEND = "suspend"
    RESUME = "resume"


class VerificationStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    USED = "used"
    FAILED = "failed"
    EXPIRED = "expired"


def normalize_phone(phone: object) -> str:
    """E.164 only (``+8210…``); Korean numbers given as ``010…`` are not guessed at."""
    if not isinstance(phone, str):
        raise InvalidInput("phone must be a string in E.164 form", code="phone_invalid")
    compact = phone.replace("-", "").replace(" ", "")
    if not _PHONE.fullmatch(compact):
        raise InvalidInput("phone must be in E.164 form, e.g. +821012345678", code="phone_invalid")
    return compact


@dataclass(frozen=True)
class PreviousPhone:
    """The phone on record before the current one, and when it was replaced."""

    phone: str
    replaced_at: datetime

    def counts_at(self, now: datetime) -> bool:
        return now < self.replaced_at + PREVIOUS_PHONE_GRACE


@dataclass
class Verification:
    id: str
    client_id: str
    phone: str
    channel: Channel
    purpose: Purpose | None
    status: VerificationStatus
    wrong_codes: int
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None
    used_at: datetime | None

    def status_at(self, now: datetime) -> VerificationStatus:
        """The status a client sees; expiry is derived from the clock, never stored."""
        if self.status is VerificationStatus.PENDING and now >= self.expires_at:
            return VerificationStatus.EXPIRED
        if self.status is VerificationStatus.VERIFIED and self.verified_at is not None and (
            now >= self.verified_at + USE_WINDOW
        ):
            return VerificationStatus.EXPIRED
        return self.status

    def check_confirmable(self, now: datetime, client_id: str) -> None:
        """:raises Conflict: when a code can no longer be checked against this verification."""
        if self.client_id != client_id:
            raise Conflict("verification belongs to another bank client",
                           code="verification_not_yours")
        status = self.status_at(now)
        if status is VerificationStatus.PENDING:
            return
        raise Conflict(f"verification is {status.value}", code=f"verification_{status.value}")

    def check_usable(self, now: datetime, *, client_id: str, phone: str, purpose: Purpose,
                     previous: PreviousPhone | None = None) -> None:
        """A verification counts only once, for its bank, its phone and its purpose. For a
        reissue, the ``previous`` phone on record counts too, inside its grace period.

        :raises Conflict: naming what does not match.
        """
        if self.client_id != client_id:
            raise Conflict("verification belongs to another bank client",
                           code="verification_not_yours")
        status = self.status_at(now)
        if status is VerificationStatus.PENDING:
            raise Conflict("verification is not confirmed yet", code="verification_unconfirmed")
        if status is not VerificationStatus.VERIFIED:
            raise Conflict(f"verification is {status.value}", code=f"verification_{status.value}")
        if self.phone != phone and not self.is_by_previous_phone(now, purpose, previous):
            raise Conflict("verification was made for another phone",
                           code="verification_phone_mismatch")
        if self.purpose is not None and self.purpose is not purpose:
            raise Conflict(f"verification was made for {self.purpose.value}, not {purpose.value}",
                           code="verification_purpose_mismatch")

    def is_by_previous_phone(self, now: datetime, purpose: Purpose,
                             previous: PreviousPhone | None) -> bool:
        """Made with the person's previous phone, for a reissue, while that phone counts."""
        return (purpose is Purpose.REISSUE and previous is not None
                and previous.phone == self.phone and previous.counts_at(now))
