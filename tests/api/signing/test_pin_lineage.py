"""The five tries follow the PIN a key is sealed under, not the certificate row.

An automatic renewal seals the successor's new key under the SAME PIN, and a superseded
predecessor still opens with it (revoke by PIN): two blobs under one PIN. Both belong to one
PIN lineage, which counts the wrong PINs and holds the PIN checks in flight for both; a PIN
change (or a reissue) starts a lineage of its own, so the old PIN's blobs cannot reset it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.domain.certificates import VALIDITY
from app.storage.ops_tables import audit_events
from tests.support.app import START, Service
from tests.support.bank import Bank, Holder, refresh_token
from tests.support.signing import b64

WRONG = "000000"
NEW_PIN = "417093"


async def _sign(bank: Bank, certificate_id: str, pin: str) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{certificate_id}/signatures",
                           {"pin": pin, "data": b64(b"lineage"), "format": "raw"})


async def _revoke(bank: Bank, certificate_id: str, pin: str) -> httpx.Response:
    """Revoke by PIN: on a superseded certificate, a change of reason to key_compromise still
    needs the proof, so it tries the predecessor's own blob."""
    return await bank.post(f"/v1/certificates/{certificate_id}/revoke",
                           {"pin": pin, "reason": "key_compromise"})


async def _renewed(service: Service, bank: Bank, holder: Holder) -> str:
    """Sign inside the renewal window; returns the successor's id (same PIN, new key)."""
    service.clock.set(START + VALIDITY - timedelta(days=10))
    await refresh_token(bank)
    reply = await _sign(bank, holder.id, holder.pin)
    assert reply.status_code == 200, reply.text
    renewed = reply.json()["renewed"]
    assert renewed is not None and renewed["replaces_id"] == holder.id
    return str(renewed["id"])


async def _wrong_pins_counted(service: Service) -> int:
    async with service.container.db.transaction(write=False) as conn:
        return int((await conn.execute(
            select(func.count()).select_from(audit_events)
            .where(audit_events.c.action == "pin_check",
                   audit_events.c.result == "failure"))).scalar_one())


async def _remaining(bank: Bank, certificate_id: str) -> int:
    return int((await bank.get(f"/v1/certificates/{certificate_id}")).json()
               ["remaining_pin_attempts"])


async def test_wrong_pins_over_predecessor_and_successor_add_up_to_five(
        service: Service, bank: Bank, holder: Holder) -> None:
    successor = await _renewed(service, bank, holder)
    tries = [await _revoke(bank, holder.id, WRONG) for _ in range(3)]
    tries += [await _sign(bank, successor, WRONG) for _ in range(2)]
    assert [r.status_code for r in tries] == [403] * 5
    assert [r.json()["remaining_attempts"] for r in tries] == [4, 3, 2, 1, 0]
    # Locked under that PIN, whichever blob is tried next, with the right PIN too.
    assert (await _sign(bank, successor, holder.pin)).status_code == 423
    assert (await _revoke(bank, holder.id, WRONG)).status_code == 423
    assert (await _revoke(bank, holder.id, holder.pin)).status_code == 423
    assert await _wrong_pins_counted(service) == 5
    assert await _remaining(bank, successor) == 0
    assert (await bank.get(f"/v1/certificates/{successor}")).json()["locked"] is True
    # An unlock of the successor clears the lineage's count (the PIN stays).
    proof = await bank.verified(holder.person["phone"], "unlock")
    unlocked = await bank.post(f"/v1/certificates/{successor}/unlock",
                               {"verification_id": proof})
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["remaining_pin_attempts"] == 5
    assert (await _sign(bank, successor, holder.pin)).status_code == 200


async def test_a_right_pin_on_either_blob_resets_the_shared_count(
        service: Service, bank: Bank, holder: Holder) -> None:
    successor = await _renewed(service, bank, holder)
    for _ in range(4):
        assert (await _sign(bank, successor, WRONG)).status_code == 403
    assert (await _revoke(bank, holder.id, holder.pin)).status_code == 200
    assert await _remaining(bank, successor) == 5


async def test_a_pin_change_leaves_the_old_pins_lineage(service: Service, bank: Bank,
                                                        holder: Holder) -> None:
    """The predecessor keeps the old PIN: its tries neither lock the successor's new PIN nor,
    with the old PIN, reset the new PIN's count (which would give unlimited guesses)."""
    successor = await _renewed(service, bank, holder)
    changed = await bank.post(f"/v1/certificates/{successor}/pin",
                              {"pin": holder.pin, "new_pin": NEW_PIN})
    assert changed.status_code == 200, changed.text
    for _ in range(4):
        assert (await _sign(bank, successor, WRONG)).status_code == 403
    assert await _remaining(bank, successor) == 1
    assert (await _revoke(bank, holder.id, holder.pin)).status_code == 200  # the old PIN
    assert await _remaining(bank, successor) == 1
    assert await _remaining(bank, holder.id) == 5
    assert (await _sign(bank, successor, NEW_PIN)).status_code == 200


async def test_concurrent_wrong_pins_over_both_blobs_never_exceed_five(
        service: Service, bank: Bank, holder: Holder, replica: httpx.AsyncClient) -> None:
    successor = await _renewed(service, bank, holder)
    other = Bank([replica], bank.client_id, bank.client_secret, bank.token)
    attempts = 16
    replies = await asyncio.gather(*[
        (_sign(bank if i % 4 else other, successor, WRONG) if i % 2
         else _revoke(other if i % 4 else bank, holder.id, WRONG)) for i in range(attempts)])
    statuses = Counter(r.status_code for r in replies)
    assert set(statuses) <= {403, 423}, [r.text for r in replies if r.status_code >= 500]
    assert statuses[403] == 5, statuses
    assert sorted(r.json()["remaining_attempts"] for r in replies
                  if r.status_code == 403) == [0, 1, 2, 3, 4]
    assert await _wrong_pins_counted(service) == 5
