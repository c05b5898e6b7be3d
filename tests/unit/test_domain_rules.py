"""The pure lifecycle rules: verifications, certificate status, revocation and lockout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.certificates import (
    HOLDER_REASONS,
    MAX_WRONG_PINS,
    RENEWAL_WINDOW,
    VALIDITY,
    Certificate,
    CertificateStatus,
    RevocationReason,
    StoredState,
    raise_locked,
    revocation_update,
    wrong_pin_error,
)
from app.domain.errors import Conflict, InvalidInput, PinInvalid, PinLocked
from app.domain.verification import (
    CODE_TTL,
    MAX_WRONG_CODES,
    USE_WINDOW,
    Channel,
    Purpose,
    Verification,
    VerificationStatus,
    normalize_phone,
)
from tests.support.people import digits_as

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PHONE = "+821055550001"
BANK = "cc_bank"


def _verification(**changes: object) -> Verification:
    base = Verification(
        id="v1", client_id=BANK, phone=PHONE, channel=Channel.SMS, purpose=Purpose.ISSUE,
        status=VerificationStatus.PENDING, wrong_codes=0, created_at=T0,
        expires_at=T0 + CODE_TTL, verified_at=None, used_at=None)
    return replace(base, **changes)  # type: ignore[arg-type]


def _verified(at: datetime = T0 + timedelta(minutes=1), **changes: object) -> Verification:
    return _verification(status=VerificationStatus.VERIFIED, verified_at=at, **changes)


def _conflict(code: str, call: object, *args: object, **kwargs: object) -> None:
    assert callable(call)
    with pytest.raises(Conflict) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail


# --- verification constants and status -------------------------------------------------


def test_verification_limits_are_the_documented_ones() -> None:
    assert CODE_TTL.total_seconds() == 3 * 60
    assert MAX_WRONG_CODES == 5
    assert USE_WINDOW > CODE_TTL


def test_pending_verification_expires_exactly_at_three_minutes() -> None:
    v = _verification()
    assert v.status_at(T0) is VerificationStatus.PENDING
    assert v.status_at(T0 + CODE_TTL - timedelta(microseconds=1)) is VerificationStatus.PENDING
    assert v.status_at(T0 + CODE_TTL) is VerificationStatus.EXPIRED
    assert v.status_at(T0 + timedelta(days=400)) is VerificationStatus.EXPIRED
    assert v.status is VerificationStatus.PENDING  # derived, the stored state is untouched


def test_verified_verification_expires_when_the_use_window_ends() -> None:
    at = T0 + timedelta(minutes=2)
    v = _verified(at)
    # Verified just before the code would have expired: still good past the code's expiry.
    assert v.status_at(T0 + CODE_TTL + timedelta(minutes=1)) is VerificationStatus.VERIFIED
    assert v.status_at(at + USE_WINDOW - timedelta(microseconds=1)) is VerificationStatus.VERIFIED
    assert v.status_at(at + USE_WINDOW) is VerificationStatus.EXPIRED


@pytest.mark.parametrize("status", [VerificationStatus.USED, VerificationStatus.FAILED])
def test_used_and_failed_are_final_whatever_the_time(status: VerificationStatus) -> None:
    v = _verification(status=status, verified_at=T0)
    for later in (T0, T0 + CODE_TTL, T0 + USE_WINDOW, T0 + timedelta(days=30)):
        assert v.status_at(later) is status


# --- confirmable -------------------------------------------------------------------------


def test_pending_verification_is_confirmable_by_its_bank_only() -> None:
    v = _verification()
    v.check_confirmable(T0, BANK)
    _conflict("verification_not_yours", v.check_confirmable, T0, "cc_other")


@pytest.mark.parametrize(("verification", "now", "code"), [
    (_verification(), T0 + CODE_TTL, "verification_expired"),
    (_verified(), T0 + timedelta(minutes=1), "verification_verified"),
    (_verification(status=VerificationStatus.USED), T0, "verification_used"),
    (_verification(status=VerificationStatus.FAILED, wrong_codes=5), T0,
     "verification_failed"),
])
def test_only_a_live_pending_verification_is_confirmable(
        verification: Verification, now: datetime, code: str) -> None:
    _conflict(code, verification.check_confirmable, now, BANK)


# --- usable ------------------------------------------------------------------------------


def _usable(v: Verification, now: datetime = T0 + timedelta(minutes=2), *,
            client_id: str = BANK, phone: str = PHONE,
            purpose: Purpose = Purpose.ISSUE) -> None:
    v.check_usable(now, client_id=client_id, phone=phone, purpose=purpose)


def test_verified_verification_is_usable_for_its_bank_phone_and_purpose() -> None:
    _usable(_verified())


@pytest.mark.parametrize("purpose", list(Purpose))
def test_verification_without_a_purpose_counts_for_any(purpose: Purpose) -> None:
    _usable(_verified(purpose=None), purpose=purpose)


@pytest.mark.parametrize("purpose", [p for p in Purpose if p is not Purpose.ISSUE])
def test_verification_for_one_purpose_does_not_count_for_another(purpose: Purpose) -> None:
    with pytest.raises(Conflict) as caught:
        _usable(_verified(), purpose=purpose)
    assert caught.value.code == "verification_purpose_mismatch"


def test_verification_of_another_bank_or_phone_does_not_count() -> None:
    with pytest.raises(Conflict) as caught:
        _usable(_verified(), client_id="cc_other")
    assert caught.value.code == "verification_not_yours"
    with pytest.raises(Conflict) as caught:
        _usable(_verified(), phone="+821055550002")
    assert caught.value.code == "verification_phone_mismatch"


@pytest.mark.parametrize(("verification", "now", "code"), [
    (_verification(), T0, "verification_unconfirmed"),
    (_verification(), T0 + CODE_TTL, "verification_expired"),
    (_verified(), T0 + timedelta(minutes=1) + USE_WINDOW, "verification_expired"),
    (_verification(status=VerificationStatus.USED, verified_at=T0, used_at=T0), T0,
     "verification_used"),
    (_verification(status=VerificationStatus.FAILED), T0, "verification_failed"),
])
def test_verification_not_verified_now_does_not_count(
        verification: Verification, now: datetime, code: str) -> None:
    with pytest.raises(Conflict) as caught:
        _usable(verification, now)
    assert caught.value.code == code


def test_another_banks_verification_is_refused_before_its_state_is_told() -> None:
    # A bank learns nothing about another bank's verification beyond "not yours".
    with pytest.raises(Conflict) as caught:
        _usable(_verification(status=VerificationStatus.USED), client_id="cc_other")
    assert caught.value.code == "verification_not_yours"


# --- phone numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(("given", "normal"), [
    ("+821055550001", "+821055550001"),
    ("+82 10-5555-0001", "+821055550001"),
    ("+82-10-5555-0001", "+821055550001"),
    ("+14155550100", "+14155550100"),
])
def test_phone_is_normalized_to_e164(given: str, normal: str) -> None:
    assert normalize_phone(given) == normal


@pytest.mark.parametrize("phone", [
    "", "01055550001", "821055550001", "+0821055550001", "+8210", "+1234567",
    "+82105555000112345", "+82(10)55550001", "+82.10.5555.0001", "tel:+821055550001",
    "+821055550001\n", "+821055550001\x00", "\t+821055550001",
    "+82" + digits_as("1055550001", 0xFF10), "+" + digits_as("821055550001", 0x0660),
])
def test_phone_not_in_e164_is_refused(phone: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(phone)
    assert caught.value.code == "phone_invalid"


@pytest.mark.parametrize("phone", [None, 821055550001, ["+821055550001"]])
def test_phone_not_a_string_is_refused(phone: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(phone)
    assert caught.value.code == "phone_invalid"


# --- certificate status ------------------------------------------------------------------


def _certificate(**changes: object) -> Certificate:
    base = Certificate(
        id="c1", person_id="p1", serial="abc", state=StoredState.ACTIVE, not_before=T0,
        not_after=T0 + VALIDITY, certificate_der=b"", issued_by_client=BANK, replaces_id=None,
        revocation_reason=None, revoked_at=None, wrong_pins=0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_expired_is_never_a_stored_state() -> None:
    assert "expired" not in {state.value for state in StoredState}
    assert CertificateStatus.EXPIRED.value == "expired"


def test_certificate_expires_at_not_after_by_the_clock() -> None:
    c = _certificate()
    assert c.status_at(T0) is CertificateStatus.ACTIVE
    assert c.status_at(c.not_after - timedelta(microseconds=1)) is CertificateStatus.ACTIVE
    assert c.status_at(c.not_after) is CertificateStatus.EXPIRED
    assert c.state is StoredState.ACTIVE


def test_revoked_stays_revoked_after_expiry() -> None:
    c = _certificate(state=StoredState.REVOKED, revoked_at=T0,
                     revocation_reason=RevocationReason.KEY_COMPROMISE)
    assert c.status_at(T0) is CertificateStatus.REVOKED
    assert c.status_at(c.not_after + timedelta(days=1)) is CertificateStatus.REVOKED


def test_validity_is_three_years_and_renewal_the_last_thirty_days() -> None:
    assert VALIDITY.days == 3 * 365 and VALIDITY.seconds == 0
    c = _certificate()
    assert not c.in_renewal_window(c.not_after - RENEWAL_WINDOW - timedelta(seconds=1))
    assert c.in_renewal_window(c.not_after - RENEWAL_WINDOW)
    assert c.in_renewal_window(c.not_after - timedelta(seconds=1))
    assert not c.in_renewal_window(c.not_after)


def test_key_use_needs_a_live_unlocked_certificate() -> None:
    _certificate(wrong_pins=MAX_WRONG_PINS - 1).check_can_use_key(T0)
    _conflict("certificate_revoked", _certificate(state=StoredState.REVOKED).check_can_use_key,
              T0)
    c = _certificate()
    _conflict("certificate_expired", c.check_can_use_key, c.not_after)
    with pytest.raises(PinLocked) as caught:
        _certificate(wrong_pins=MAX_WRONG_PINS).check_can_use_key(T0)
    assert caught.value.code == "pin_locked" and caught.value.extra["remaining_attempts"] == 0


def test_revoked_and_locked_says_revoked() -> None:
    _conflict("certificate_revoked",
              _certificate(state=StoredState.REVOKED, wrong_pins=5).check_can_use_key, T0)


def test_reissue_only_from_the_latest_certificate() -> None:
    _certificate().check_reissuable(is_latest=True)
    _certificate(state=StoredState.REVOKED).check_reissuable(is_latest=True)
    _conflict("certificate_superseded", _certificate().check_reissuable, False)


# --- lockout -----------------------------------------------------------------------------


def test_five_wrong_pins_lock() -> None:
    assert MAX_WRONG_PINS == 5
    assert not _certificate(wrong_pins=4).locked
    assert _certificate(wrong_pins=5).locked
    assert _certificate(wrong_pins=6).locked


@pytest.mark.parametrize(("wrong", "remaining"), [(1, 4), (2, 3), (4, 1), (5, 0), (9, 0)])
def test_wrong_pin_error_counts_down(wrong: int, remaining: int) -> None:
    error = wrong_pin_error(wrong)
    assert isinstance(error, PinInvalid)
    assert error.code == "pin_invalid"
    assert error.extra == {"remaining_attempts": remaining}
    assert ("locked" in error.detail) is (remaining == 0)


def test_raise_locked_is_pin_locked_with_no_attempts_left() -> None:
    with pytest.raises(PinLocked) as caught:
        raise_locked()
    assert caught.value.kind == "pin_locked" and caught.value.extra["remaining_attempts"] == 0


# --- revocation --------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "requested", "stored"), [
    (RevocationReason.UNSPECIFIED, RevocationReason.KEY_COMPROMISE,
     RevocationReason.KEY_COMPROMISE),
    (RevocationReason.SUPERSEDED, RevocationReason.KEY_COMPROMISE,
     RevocationReason.KEY_COMPROMISE),
    (RevocationReason.CESSATION_OF_OPERATION, RevocationReason.KEY_COMPROMISE,
     RevocationReason.KEY_COMPROMISE),
    (None, RevocationReason.KEY_COMPROMISE, RevocationReason.KEY_COMPROMISE),
    (RevocationReason.KEY_COMPROMISE, RevocationReason.KEY_COMPROMISE, None),
    (RevocationReason.KEY_COMPROMISE, RevocationReason.UNSPECIFIED, None),
    (RevocationReason.KEY_COMPROMISE, RevocationReason.SUPERSEDED, None),
    (RevocationReason.UNSPECIFIED, RevocationReason.SUPERSEDED, None),
    (RevocationReason.SUPERSEDED, RevocationReason.UNSPECIFIED, None),
    (RevocationReason.UNSPECIFIED, RevocationReason.AFFILIATION_CHANGED, None),
])
def test_only_a_change_to_key_compromise_updates_a_revocation(
        current: RevocationReason | None, requested: RevocationReason,
        stored: RevocationReason | None) -> None:
    assert revocation_update(current, requested) is stored


@pytest.mark.parametrize("name", ["unspecified", "key_compromise", "affiliation_changed",
                                  "superseded", "cessation_of_operation",
                                  "privilege_withdrawn"])
def test_holder_reasons_parse_by_api_name(name: str) -> None:
    reason = RevocationReason.from_api_name(name)
    assert reason.api_name == name and reason in HOLDER_REASONS


@pytest.mark.parametrize("name", ["", "bogus", "certificate_hold", "remove_from_crl",
                                  "ca_compromise", "aa_compromise", "key compromise",
                                  "keyCompromise", "1"])
def test_unknown_or_non_holder_reasons_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RevocationReason.from_api_name(name)
    assert caught.value.code == "reason_invalid"


def test_reason_codes_are_rfc5280s() -> None:
    assert {r.name: r.value for r in RevocationReason} == {
        "UNSPECIFIED": 0, "KEY_COMPROMISE": 1, "CA_COMPROMISE": 2, "AFFILIATION_CHANGED": 3,
        "SUPERSEDED": 4, "CESSATION_OF_OPERATION": 5, "CERTIFICATE_HOLD": 6,
        "REMOVE_FROM_CRL": 8, "PRIVILEGE_WITHDRAWN": 9, "AA_COMPROMISE": 10}
