"""Concurrent writers on one person: the database keeps one active certificate.

On PostgreSQL the requests run on separate pooled connections at the same time; on SQLite
the write lock queues them. Either way the invariant must hold and nothing may be a 5xx.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.storage.tables import certificates
from tests.support.app import Service
from tests.support.bank import Bank, issue_body, make_bank
from tests.support.people import PIN, person


async def _active_count(service: Service) -> int:
    async with service.container.db.transaction(write=False) as conn:
        return int((await conn.execute(select(func.count()).select_from(certificates)
                                       .where(certificates.c.state == "active"))).scalar_one())


async def test_concurrent_issuances_for_one_person(service: Service, bank: Bank) -> None:
    other = await make_bank(service.http, service.container, "other")
    holder = person(21)
    proofs = [await bank.verified(holder["phone"]) for _ in range(3)]
    proofs_other = [await other.verified(holder["phone"]) for _ in range(3)]
    replies = await asyncio.gather(
        *[bank.post("/v1/certificates", issue_body(holder, v, PIN)) for v in proofs],
        *[other.post("/v1/certificates", issue_body(holder, v, PIN))
          for v in proofs_other])
    statuses = sorted(r.status_code for r in replies)
    assert all(s in (201, 409) for s in statuses), [r.text for r in replies]
    assert statuses.count(201) >= 1
    assert await _active_count(service) == 1
    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})).json()
    active = [c for c in found["data"] if c["status"] == "active"]
    assert len(active) == 1
    superseded = [c for c in found["data"] if c["status"] == "revoked"]
    assert all(c["revocation_reason"] == "superseded" for c in superseded)
    assert found["count"] == statuses.count(201)  # no half-written (pending) row is visible


async def test_one_verification_used_twice_at_once(service: Service, bank: Bank) -> None:
    holder = person(22)
    proof = await bank.verified(holder["phone"])
    replies = await asyncio.gather(
        bank.post("/v1/certificates", issue_body(holder, proof, PIN)),
        bank.post("/v1/certificates", issue_body(holder, proof, PIN)))
    assert sorted(r.status_code for r in replies) == [201, 409]
    loser = next(r for r in replies if r.status_code == 409)
    assert loser.json()["code"] in ("verification_used", "concurrent_change")
    assert await _active_count(service) == 1


async def test_concurrent_revocations(service: Service, bank: Bank) -> None:
    holder = person(23)
    cert = (await bank.issue(holder)).json()
    replies = await asyncio.gather(*[
        bank.post(f"/v1/certificates/{cert['id']}/revoke",
                  {"pin": PIN, "reason": reason})
        for reason in ("unspecified", "key_compromise", "unspecified", "key_compromise")])
    assert {r.status_code for r in replies} == {200}
    final = (await bank.get(f"/v1/certificates/{cert['id']}")).json()
    assert final["status"] == "revoked" and final["revocation_reason"] == "key_compromise"
    assert len({r.json()["revoked_at"] for r in replies}) == 1
