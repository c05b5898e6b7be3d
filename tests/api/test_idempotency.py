"""Idempotency-Key: a retry returns the first reply and does nothing again."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from app.storage.idempotency import canonical_body, is_pin_field
from app.storage.ops_tables import idempotency_keys
from tests.support.app import Service
from tests.support.bank import Bank, issue_body, make_bank
from tests.support.people import PIN, person


async def test_retry_returns_the_first_reply(service: Service, bank: Bank) -> None:
    holder = person(81)
    proof = await bank.verified(holder["phone"])
    body = issue_body(holder, proof, PIN)
    key = {"Idempotency-Key": "issue-81-a"}
    first = await bank.post("/v1/certificates", body, headers={**bank.headers, **key})
    assert first.status_code == 201
    again = await bank.post("/v1/certificates", body, headers={**bank.headers, **key})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert found.json()["count"] == 1  # issued once

    other_body = {**body, "person": {**holder, "email": "someone-else@example.com"}}
    reused = await bank.post("/v1/certificates", other_body, headers={**bank.headers, **key})
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    # Another PIN is not another request (the PIN is not part of the fingerprint: issue 11,
    # findings 1 and 5): it gets the first reply, and nothing is issued again.
    other_pin = await bank.post("/v1/certificates", {**body, "pin": "417093"},
                                headers={**bank.headers, **key})
    assert other_pin.status_code == 201 and other_pin.json() == first.json()
    assert other_pin.headers["idempotent-replayed"] == "true"
    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert found.json()["count"] == 1


async def test_errors_are_replayed_too_and_keys_are_per_client(service: Service,
                                                               bank: Bank) -> None:
    key = {"Idempotency-Key": "revoke-unknown"}
    first = await bank.post("/v1/certificates/nope/revoke", {"pin": PIN},
                            headers={**bank.headers, **key})
    again = await bank.post("/v1/certificates/nope/revoke", {"pin": PIN},
                            headers={**bank.headers, **key})
    assert first.status_code == again.status_code == 404
    assert again.headers["idempotent-replayed"] == "true"
    other = await make_bank(service.http, service.container, "other")
    theirs = await other.post("/v1/certificates/nope/revoke", {"pin": "1"},
                              headers={**other.headers, **key})
    assert theirs.status_code == 404 and "idempotent-replayed" not in theirs.headers


async def test_same_key_twice_at_once(service: Service, bank: Bank) -> None:
    holder = person(82)
    proof = await bank.verified(holder["phone"])
    body = issue_body(holder, proof, PIN)
    key = {**bank.headers, "Idempotency-Key": "concurrent-82"}
    replies = await asyncio.gather(*[bank.post("/v1/certificates", body, headers=key)
                                     for _ in range(4)])
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
    ids = {r.json()["id"] for r in replies if r.status_code == 201}
    assert len(ids) == 1
    for reply in replies:
        if reply.status_code == 409:
            assert reply.json()["code"] == "idempotency_in_progress"
    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert found.json()["count"] == 1


async def test_bad_keys_are_refused(service: Service, bank: Bank) -> None:
    reply = await bank.post("/v1/verifications", {"phone": "+821055550099", "channel": "sms"},
                            headers={**bank.headers, "Idempotency-Key": "x" * 300})
    assert reply.status_code == 422 and reply.json()["code"] == "idempotency_key_invalid"
    nothing = await service.http.get("/sandbox/messages", params={"phone": "+821055550099"})
    assert nothing.json() == []


@pytest.mark.parametrize("name", ["pin", "PIN", "Pin", "new_pin", "NEW_PIN", "OTP", "otp",
                                  "current-pin", "old_pin"])
def test_pin_fields_are_recognised(name: str) -> None:
    assert is_pin_field(name)


@pytest.mark.parametrize("name", ["pinned", "spin", "digest", "hash", "SAD", "code",
                                  "verification_id", "topping"])
def test_other_fields_are_not_pin_fields(name: str) -> None:
    assert not is_pin_field(name)


def test_the_canonical_body_has_no_pin_and_no_layout() -> None:
    one = json.dumps({"pin": PIN, "digest": "AAAA", "format": "raw",
                      "items": [{"PIN": PIN, "data": "x"}],
                      "nested": {"New_Pin": "417093", "OTP": "1"}}).encode()
    other = (b'{ "format" : "raw", "digest":"AAAA", "pin":"111111",'
             b' "items":[{"data":"x","PIN":"222222"}], "nested":{"new_pin":"3","otp":"4"} }')
    assert canonical_body(one) == canonical_body(other) == (
        b'{"digest":"AAAA","format":"raw","items":[{"data":"x"}],"nested":{}}')
    assert canonical_body(b"") == b""
    assert b"902714" not in (canonical_body(one) or b"")
    # Anything but a JSON object has no fingerprint (it is not recorded at all).
    for body in (b'"902714"', b"[1, 2]", b"902714", b"null", b"{bad json", b"\xff\xfe{",
                 b"[" * 100_000 + b"]" * 100_000, b'{"pin": "902714"'):
        assert canonical_body(body) is None, body[:20]
    # Members other than the PIN still tell requests apart, types included.
    assert canonical_body(b'{"n": 1}') != canonical_body(b'{"n": "1"}')
    assert canonical_body(b'{"n": 1, "n": 2}') == canonical_body(b'{"n": 2}')  # as routes read


async def test_a_body_that_is_not_a_json_object_is_not_recorded(service: Service,
                                                                bank: Bank) -> None:
    key = {**bank.headers, "Idempotency-Key": "not-an-object",
           "Content-Type": "application/json"}
    for body in (b'"902714"', b'["902714"]', b"pin=902714"):
        replies = [await bank.http.post("/v1/certificates/nope/revoke", content=body,
                                        headers=key) for _ in range(2)]
        for reply in replies:
            assert reply.status_code == 422, reply.text
            assert reply.headers["content-type"] == "application/problem+json"
            assert "idempotent-replayed" not in reply.headers
    async with service.container.db.transaction(write=False) as conn:
        stored = (await conn.execute(select(func.count()).select_from(idempotency_keys).where(
            idempotency_keys.c.key == "not-an-object"))).scalar_one()
    assert stored == 0
