"""The pure suspension rules (app.domain.suspension): active <-> suspended -> revoked, with the
time passed in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.certificates import (
    VALIDITY,
    Certificate,
    CertificateStatus,
    RevocationReason,
    StoredState,
    revocation_update,
)
from app.domain.errors import Conflict
from app.domain.suspension import (
    DEFAULT_MAX_HOLD,
    LAPSED_HOLD_REASON,
    check_resumable,
    check_suspendable,
    hold_lapsed,
    lapse_cutoff,
)
from tests.unit.test_domain_rules import T0, _certificate

HELD_AT = T0 + timedelta(days=10)


def _held(**changes: object) -> Certificate:
    return _certificate(state=StoredState.REVOKED, revocation_reason=RevocationReason.
                        CERTIFICATE_HOLD, revoked_at=HELD_AT, **changes)


def _code(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(Conflict) as caught:
        call(*args)
    return caught.value.code


def test_a_hold_is_suspended_whatever_the_clock_and_only_a_hold() -> None:
    held = _held()
    assert held.suspended
    for now in (HELD_AT, T0 + VALIDITY + timedelta(days=1)):
        assert held.status_at(now) is CertificateStatus.SUSPENDED
    revoked = _certificate(state=StoredState.REVOKED, revoked_at=HELD_AT,
                           revocation_reason=RevocationReason.UNSPECIFIED)
    assert not revoked.suspended and revoked.status_at(HELD_AT) is CertificateStatus.REVOKED
    assert not _certificate().suspended


def test_only_an_active_certificate_is_suspended() -> None:
    check_suspendable(_certificate(), HELD_AT)
    check_suspendable(_certificate(wrong_pins=5), HELD_AT)  # a lockout does not stop it
    assert _code(check_suspendable, _held(), HELD_AT) == "certificate_suspended"
    assert _code(check_suspendable, _certificate(state=StoredState.REVOKED), HELD_AT) == (
        "certificate_revoked")
    assert _code(check_suspendable, _certificate(), T0 + VALIDITY) == "certificate_expired"


def test_only_a_suspended_certificate_in_its_hold_and_validity_is_resumed() -> None:
    check_resumable(_held(), HELD_AT + DEFAULT_MAX_HOLD - timedelta(seconds=1),
                    DEFAULT_MAX_HOLD)
    assert _code(check_resumable, _certificate(), HELD_AT, DEFAULT_MAX_HOLD) == (
        "certificate_not_suspended")
    assert _code(check_resumable, _certificate(state=StoredState.REVOKED), HELD_AT,
                 DEFAULT_MAX_HOLD) == "certificate_revoked"
    assert _code(check_resumable, _held(), HELD_AT + DEFAULT_MAX_HOLD, DEFAULT_MAX_HOLD) == (
        "suspension_lapsed")
    near_end = _held(not_after=HELD_AT + timedelta(days=1))
    assert _code(check_resumable, near_end, HELD_AT + timedelta(days=1), DEFAULT_MAX_HOLD) == (
        "certificate_expired")


def test_the_hold_lapses_at_the_maximum() -> None:
    max_hold = timedelta(days=30)
    assert not hold_lapsed(_held(), HELD_AT + max_hold - timedelta(microseconds=1), max_hold)
    assert hold_lapsed(_held(), HELD_AT + max_hold, max_hold)
    assert not hold_lapsed(_certificate(), HELD_AT + max_hold, max_hold)
    assert lapse_cutoff(HELD_AT + max_hold, max_hold) == HELD_AT
    assert LAPSED_HOLD_REASON is RevocationReason.CESSATION_OF_OPERATION


@pytest.mark.parametrize("requested", [r for r in RevocationReason
                                       if r is not RevocationReason.CERTIFICATE_HOLD])
def test_any_reason_makes_a_hold_permanent(requested: RevocationReason) -> None:
    assert revocation_update(RevocationReason.CERTIFICATE_HOLD, requested) is requested


def test_holding_again_changes_nothing() -> None:
    hold = RevocationReason.CERTIFICATE_HOLD
    assert revocation_update(hold, hold) is None
    assert revocation_update(RevocationReason.UNSPECIFIED, hold) is None
