"""A key store that fails is the service's fault, never the holder's: 503, no try counted."""

from __future__ import annotations

import pytest

from app.domain.errors import DependencyUnavailable
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.people import PIN, person
from tests.support.problems import assert_problem


async def test_key_store_outage_costs_no_pin_try(service: Service, bank: Bank,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cert = (await bank.issue(person(95))).json()
    wrong = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                            {"pin": "000000", "new_pin": "417093"})
    assert wrong.json()["remaining_attempts"] == 4

    async def failing_open(*_args: object, **_kwargs: object) -> None:
        raise DependencyUnavailable("the key store is unavailable", code="key_store_unavailable")

    monkeypatch.setattr(service.container.certificates.custody, "open", failing_open)
    for _ in range(6):
        reply = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                                {"pin": PIN, "new_pin": "417093"})
        assert_problem(reply, 503, "key_store_unavailable")
    monkeypatch.undo()
    state = (await bank.get(f"/v1/certificates/{cert['id']}")).json()
    assert state["locked"] is False and state["remaining_pin_attempts"] == 4
    changed = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                              {"pin": PIN, "new_pin": "417093"})
    assert changed.status_code == 200
