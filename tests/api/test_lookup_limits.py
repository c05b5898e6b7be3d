"""Lookups by RRN (v1 lookup, CSC credentials/list) are an oracle for "is this person a
customer": limited per bank client and audited, found or not, with a keyed hash of the RRN."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from app.domain.identity import parse_rrn
from app.settings import Settings
from app.storage.ops_tables import audit_events
from tests.support.app import START, FixedClock, Service, running, with_limits
from tests.support.bank import make_bank
from tests.support.people import person

LIMIT = 3


@pytest.fixture
async def limited(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    async with running(with_limits(settings, lookups_per_client_per_minute=LIMIT),
                       clock) as started:
        yield started


async def _lookups(service: Service) -> list[dict[str, Any]]:
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(audit_events).where(audit_events.c.action == "lookup")
                                   .order_by(audit_events.c.seq))).all()
    return [{"client_id": row.client_id, **json.loads(row.details)} for row in rows]


def _hmac(service: Service, rrn: str) -> str:
    return service.container.lookup.secrets.rrn_hmac(parse_rrn(rrn, today=START.date()).digits)


async def test_lookups_are_limited_per_bank_client(limited: Service) -> None:
    bank = await make_bank(limited.http, limited.container, "enumerator")
    other = await make_bank(limited.http, limited.container, "other-bank")
    guesses = [f"850505-1{n:06d}" for n in range(LIMIT + 1)]
    replies = [await bank.post("/v1/certificates/lookup", {"rrn": rrn}) for rrn in guesses]
    assert [r.status_code for r in replies] == [200] * LIMIT + [429]
    refused = replies[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited_lookups_per_client"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # CSC credentials/list counts against the same limit, and answers in its own shape.
    listed = await bank.post("/csc/v1/credentials/list", {"userID": guesses[0]})
    assert listed.status_code == 429, listed.text
    assert listed.json()["error"] == "rate_limited" and "type" not in listed.json()
    assert 1 <= int(listed.headers["retry-after"]) <= 60
    # Another bank has a window of its own; a malformed RRN finds nobody and is not counted.
    assert (await other.post("/v1/certificates/lookup", {"rrn": "123"})).status_code == 422
    assert (await other.post("/v1/certificates/lookup", {"rrn": guesses[0]})).status_code == 200


async def test_every_lookup_is_audited_with_the_rrn_hmac_and_the_result(
        service: Service) -> None:
    bank = await make_bank(service.http, service.container)
    holder = person(5)
    assert (await bank.issue(holder)).status_code == 201
    stranger = "850505-2000000"
    assert (await bank.post("/v1/certificates/lookup",
                            {"rrn": holder["rrn"]})).json()["count"] == 1
    assert (await bank.post("/v1/certificates/lookup", {"rrn": stranger})).json()["count"] == 0
    listed = await bank.post("/csc/v1/credentials/list", {"userID": holder["rrn"]})
    assert listed.status_code == 200 and len(listed.json()["credentialIDs"]) == 1

    events = await _lookups(service)
    assert [(e["via"], e["found"], e["count"]) for e in events] == [
        ("v1", True, 1), ("v1", False, 0), ("csc", True, 1)]
    assert [e["subject_hmac"] for e in events] == [
        _hmac(service, holder["rrn"]), _hmac(service, stranger), _hmac(service, holder["rrn"])]
    assert {e["client_id"] for e in events} == {bank.client_id}
    for rrn in (holder["rrn"], stranger):
        digits = rrn.replace("-", "")
        assert all(digits not in json.dumps(e) and rrn not in json.dumps(e) for e in events)
