"""Five wrong PINs in a row lock the certificate; a correct PIN resets the count; concurrent
wrong PINs, on any number of replicas, never add up to more than five tries."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.services import pin_gate
from app.storage.tables import certificates
from tests.conftest import BACKEND, Bank, Service
from tests.signing.conftest import Holder, b64

BODY = {"data": b64(b"login challenge"), "format": "raw"}


async def _sign(bank: Bank, holder: Holder, pin: str) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{holder.id}/signatures", {"pin": pin, **BODY})


async def _remaining(bank: Bank, holder: Holder) -> int:
    return int((await bank.get(f"/v1/certificates/{holder.id}")).json()[
        "remaining_pin_attempts"])


async def test_five_wrong_pins_lock_and_a_correct_pin_resets(bank: Bank, holder: Holder) -> None:
    for expected in (4, 3):
        wrong = await _sign(bank, holder, "000000")
        assert wrong.status_code == 403, wrong.text
        assert wrong.json()["code"] == "pin_invalid"
        assert wrong.json()["remaining_attempts"] == expected
    ok = await _sign(bank, holder, holder.pin)
    assert ok.status_code == 200, ok.text
    assert await _remaining(bank, holder) == 5  # reset

    for expected in (4, 3, 2, 1, 0):
        wrong = await _sign(bank, holder, "000000")
        assert wrong.status_code == 403 and wrong.json()["remaining_attempts"] == expected
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["locked"] is True and state["remaining_pin_attempts"] == 0

    for pin in (holder.pin, "000000"):  # locked: even the right PIN signs nothing
        locked = await _sign(bank, holder, pin)
        assert locked.status_code == 423, locked.text
        assert locked.headers["content-type"] == "application/problem+json"
        assert locked.json()["code"] == "pin_locked"
        assert "signature" not in locked.json()

    proof = await bank.verified(holder.person["phone"], "unlock")
    unlocked = await bank.post(f"/v1/certificates/{holder.id}/unlock",
                               {"verification_id": proof})
    assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
    again = await _sign(bank, holder, holder.pin)  # the PIN stayed the same
    assert again.status_code == 200, again.text


async def test_a_pin_change_with_a_wrong_pin_counts_too(bank: Bank, holder: Holder) -> None:
    wrong = await bank.post(f"/v1/certificates/{holder.id}/pin",
                            {"pin": "000000", "new_pin": "417093"})
    assert wrong.status_code == 403
    sign = await _sign(bank, holder, "000000")
    assert sign.json()["remaining_attempts"] == 3


async def test_concurrent_wrong_pins_never_exceed_five(bank: Bank, holder: Holder,
                                                       replica: httpx.AsyncClient) -> None:
    """Many wrong PINs at once, spread over two replicas. On PostgreSQL each request runs on
    its own pooled connection, truly concurrently; the conditional update still admits five."""
    other = Bank(replica, bank.client_id, bank.client_secret, bank.token)
    attempts = 24
    replies = await asyncio.gather(*[
        _sign(bank if i % 2 else other, holder, "000000") for i in range(attempts)])
    statuses = Counter(r.status_code for r in replies)
    assert set(statuses) <= {403, 423}, [r.text for r in replies if r.status_code >= 500]
    assert statuses[403] == 5, statuses  # exactly five tries were made
    remaining = sorted(r.json()["remaining_attempts"] for r in replies if r.status_code == 403)
    assert remaining == [0, 1, 2, 3, 4]
    assert statuses[423] == attempts - 5
    assert await _remaining(bank, holder) == 0
    final = await _sign(bank, holder, holder.pin)
    assert final.status_code == 423


@pytest.mark.skipif(BACKEND != "postgres", reason="needs separate PostgreSQL connections")
@pytest.mark.postgres
async def test_concurrent_wrong_and_right_pins_on_postgres(bank: Bank, holder: Holder,
                                                           replica: httpx.AsyncClient) -> None:
    """Wrong and right PINs racing: whatever the interleaving, no more than five wrong tries
    are ever counted before a lock, and every reply is 200, 403 or 423."""
    other = Bank(replica, bank.client_id, bank.client_secret, bank.token)
    pins = ["000000"] * 12 + [holder.pin] * 4
    replies = await asyncio.gather(*[
        _sign(bank if i % 2 else other, holder, pin) for i, pin in enumerate(pins)])
    assert {r.status_code for r in replies} <= {200, 403, 423}
    wrong = [r for r in replies if r.status_code == 403]
    assert all(0 <= r.json()["remaining_attempts"] <= 4 for r in wrong)
    assert 0 <= await _remaining(bank, holder) <= 5


async def _hold_pin_checks(service: Service, holder: Holder, in_flight: int) -> None:
    """Leave ``in_flight`` reservations in the row, as requests still checking (or a process
    killed mid-check) would."""
    async with service.container.db.transaction() as conn:
        await conn.execute(update(certificates).where(certificates.c.id == holder.id).values(
            pin_checks_in_flight=in_flight,
            pin_checks_lease_until=service.clock.now() + timedelta(seconds=60)))


async def test_a_full_set_of_pin_checks_in_flight_makes_a_request_wait_not_lock(
        service: Service, bank: Bank, holder: Holder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pin_gate, "PIN_CHECK_WAIT", timedelta(milliseconds=200))
    await _hold_pin_checks(service, holder, in_flight=5)
    busy = await _sign(bank, holder, holder.pin)
    assert busy.status_code == 429, busy.text
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["code"] == "pin_checks_busy"
    assert busy.headers["Retry-After"] == "1"
    csc = await bank.post("/csc/v1/credentials/authorize", {
        "credentialID": holder.id, "numSignatures": 1, "PIN": holder.pin,
        "hash": [b64(hashlib.sha256(b"a document").digest())]})
    assert csc.status_code == 429 and csc.json()["error"] == "rate_limited", csc.text
    assert csc.headers["Retry-After"] == "1"
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["locked"] is False and state["remaining_pin_attempts"] == 5

    # Four in flight leave one slot: a wrong PIN takes it and counts; then none is free.
    await _hold_pin_checks(service, holder, in_flight=4)
    wrong = await _sign(bank, holder, "000000")
    assert wrong.status_code == 403 and wrong.json()["remaining_attempts"] == 4
    assert (await _sign(bank, holder, "000000")).status_code == 429

    # The reservations were never settled (their process died): they end with their lease.
    service.clock.advance(timedelta(seconds=61))
    ok = await _sign(bank, holder, holder.pin)
    assert ok.status_code == 200, ok.text
    assert await _remaining(bank, holder) == 5
