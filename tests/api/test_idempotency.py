"""Idempotency-Key: a retry returns the first reply and does nothing again."""

from __future__ import annotations

import asyncio

from tests.conftest import Bank, Service, issue_body, make_bank, person


async def test_retry_returns_the_first_reply(service: Service, bank: Bank) -> None:
    holder = person(81)
    proof = await bank.verified(holder["phone"])
    body = issue_body(holder, proof, "902714")
    key = {"Idempotency-Key": "issue-81-a"}
    first = await bank.post("/v1/certificates", body, headers={**bank.headers, **key})
    assert first.status_code == 201
    again = await bank.post("/v1/certificates", body, headers={**bank.headers, **key})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert found.json()["count"] == 1  # issued once

    other_body = {**body, "pin": "417093"}
    reused = await bank.post("/v1/certificates", other_body, headers={**bank.headers, **key})
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


async def test_errors_are_replayed_too_and_keys_are_per_client(service: Service,
                                                               bank: Bank) -> None:
    key = {"Idempotency-Key": "revoke-unknown"}
    first = await bank.post("/v1/certificates/nope/revoke", {"pin": "902714"},
                            headers={**bank.headers, **key})
    again = await bank.post("/v1/certificates/nope/revoke", {"pin": "902714"},
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
    body = issue_body(holder, proof, "902714")
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
