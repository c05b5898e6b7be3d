"""The PIN gate on the fake unit of work: tries per PIN lineage, the lock, the slot given
back when the key store fails, and what is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.domain.certificates import MAX_WRONG_PINS
from app.domain.errors import DependencyUnavailable, PinInvalid, PinLocked, RateLimited
from app.pki.keys import WrongPin
from app.services import pin_gate
from app.services.pin_gate import PinGate
from tests.unit.builders import NOW, add_certificate
from tests.unit.fakes import FakeUnitOfWorkFactory, FixedClock

RIGHT = "417093"
WRONG = "417094"


class FakeCustody:
    """Opens a key for the right PIN; ``down`` makes the key store fail."""

    def __init__(self) -> None:
        self.down = False
        self.opened: list[str] = []

    async def open(self, certificate_id: str, master_key_id: str, wrapped: bytes,
                   pin: str) -> Any:
        if self.down:
            raise DependencyUnavailable("key store down", code="key_store_unavailable")
        if pin != RIGHT:
            raise WrongPin()
        self.opened.append(certificate_id)
        return f"key of {certificate_id}"


def _gate() -> tuple[PinGate, FakeUnitOfWorkFactory, FakeCustody]:
    uow, custody = FakeUnitOfWorkFactory(), FakeCustody()
    return PinGate(uow, custody, FixedClock(NOW)), uow, custody  # type: ignore[arg-type]


async def test_a_right_pin_opens_the_key_and_audits_what_it_was_opened_for() -> None:
    gate, uow, custody = _gate()
    add_certificate(uow.store)
    certificate, key = await gate.open_key("c1", RIGHT, client_id="bank", audit_action="sign")
    assert key == "key of c1" and certificate.wrong_pins == 0 and custody.opened == ["c1"]
    assert [e["action"] for e in uow.store.audit] == ["sign"]
    assert uow.store.certificates["c1"].pin_checks_in_flight == 0  # the slot is settled


async def test_wrong_pins_count_per_lineage_and_the_fifth_locks_every_certificate_of_it(
) -> None:
    gate, uow, _custody = _gate()
    add_certificate(uow.store, "c1")
    add_certificate(uow.store, "c2", serial="0a1c", lineage_of="c1")  # a renewal: same PIN
    for n in range(1, MAX_WRONG_PINS + 1):
        with pytest.raises(PinInvalid) as caught:
            await gate.open_key("c2" if n % 2 else "c1", WRONG, client_id="bank")
        assert caught.value.extra["remaining_attempts"] == MAX_WRONG_PINS - n
    assert uow.store.certificates["c1"].wrong_pins == MAX_WRONG_PINS
    assert uow.store.certificates["c2"].wrong_pins == 0  # the count lives in the lineage row
    with pytest.raises(PinLocked):
        await gate.open_key("c2", RIGHT)
    actions = [e["action"] for e in uow.store.audit]
    assert actions.count("pin_check") == MAX_WRONG_PINS and actions[-1] == "lock"
    assert all(e["result"] == "failure" for e in uow.store.audit if e["action"] == "pin_check")


async def test_a_right_pin_clears_the_lineage_count() -> None:
    gate, uow, _custody = _gate()
    add_certificate(uow.store)
    for _ in range(MAX_WRONG_PINS - 1):
        with pytest.raises(PinInvalid):
            await gate.open_key("c1", WRONG)
    await gate.open_key("c1", RIGHT)
    assert uow.store.certificates["c1"].wrong_pins == 0


async def test_a_key_store_failure_gives_the_slot_back_uncounted() -> None:
    gate, uow, custody = _gate()
    add_certificate(uow.store)
    custody.down = True
    with pytest.raises(DependencyUnavailable):
        await gate.open_key("c1", WRONG)
    row = uow.store.certificates["c1"]
    assert row.wrong_pins == 0 and row.pin_checks_in_flight == 0
    assert uow.store.audit == []


async def test_a_malformed_pin_reserves_nothing() -> None:
    gate, uow, _custody = _gate()
    add_certificate(uow.store)
    with pytest.raises(Exception) as caught:
        await gate.open_key("c1", "12ab")
    assert getattr(caught.value, "code", None) == "pin_malformed"
    assert uow.opened == []  # not even a read


async def test_every_slot_in_flight_waits_then_answers_busy(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setattr(pin_gate, "PIN_CHECK_WAIT", timedelta(milliseconds=50))
    gate, uow, custody = _gate()
    row = add_certificate(uow.store)
    row.wrong_pins, row.pin_checks_in_flight = 3, 2  # as many checks in flight as tries left
    row.pin_checks_lease_until = NOW + timedelta(seconds=30)
    with pytest.raises(RateLimited) as caught:
        await gate.open_key("c1", RIGHT)
    assert caught.value.code == "pin_checks_busy" and custody.opened == []


async def test_a_lapsed_lease_frees_the_slots_of_a_crashed_process() -> None:
    gate, uow, _custody = _gate()
    row = add_certificate(uow.store)
    row.wrong_pins, row.pin_checks_in_flight = 3, 2
    row.pin_checks_lease_until = NOW - timedelta(seconds=1)
    _certificate, key = await gate.open_key("c1", RIGHT)
    assert key == "key of c1"
