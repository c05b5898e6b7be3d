"""The contact record's previous phone (issue 11, finding 4): what a change keeps, and the
30-day window in which the previous phone still starts a reissue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.contact import ContactOnRecord
from app.domain.verification import PREVIOUS_PHONE_GRACE, PreviousPhone

T0 = datetime(2026, 12, 1, tzinfo=UTC)
VICTIM = ContactOnRecord("홍길동", "+821011110000", "v@example.com")


def test_a_new_phone_keeps_the_one_it_replaced() -> None:
    after = VICTIM.changed_to(name="임꺽정", phone="+821099990000", email="x@example.com", now=T0)
    assert after.previous == PreviousPhone("+821011110000", T0)
    assert after.previous_name == "홍길동"


def test_the_same_phone_keeps_the_previous_one() -> None:
    replaced = VICTIM.changed_to(name="임꺽정", phone="+821099990000", email="x", now=T0)
    renamed = replaced.changed_to(name="김철수", phone="+821099990000", email="y",
                                  now=T0 + timedelta(days=1))
    assert renamed.previous == replaced.previous and renamed.name == "김철수"


def test_a_second_change_inside_the_window_keeps_the_first_previous_phone() -> None:
    replaced = VICTIM.changed_to(name="임꺽정", phone="+821099990000", email="x", now=T0)
    again = replaced.changed_to(name="임꺽정", phone="+821088880000", email="x",
                                now=T0 + timedelta(days=3))
    assert again.previous == PreviousPhone(VICTIM.phone, T0)
    assert again.previous_name == VICTIM.name


def test_a_change_after_the_window_replaces_the_previous_phone() -> None:
    replaced = VICTIM.changed_to(name="임꺽정", phone="+821099990000", email="x", now=T0)
    later = T0 + PREVIOUS_PHONE_GRACE
    again = replaced.changed_to(name="임꺽정", phone="+821088880000", email="x", now=later)
    assert again.previous == PreviousPhone("+821099990000", later)


def test_returning_to_the_previous_phone_clears_it() -> None:
    replaced = VICTIM.changed_to(name="임꺽정", phone="+821099990000", email="x", now=T0)
    back = replaced.changed_to(name=VICTIM.name, phone=VICTIM.phone, email="x",
                               now=T0 + timedelta(days=1))
    assert back.previous is None and back.phone == VICTIM.phone


def test_the_previous_phone_counts_for_thirty_days() -> None:
    previous = PreviousPhone(VICTIM.phone, T0)
    assert previous.counts_at(T0 + PREVIOUS_PHONE_GRACE - timedelta(microseconds=1))
    assert not previous.counts_at(T0 + PREVIOUS_PHONE_GRACE)
