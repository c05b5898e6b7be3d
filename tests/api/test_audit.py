"""The audit trail: every lifecycle event, hash-chained, tamper-evident, pageable."""

from __future__ import annotations

import json
from itertools import pairwise

from sqlalchemy import delete, update

from app.services import audit
from app.storage.audit_log import AuditLog
from app.storage.ops_tables import audit_events
from tests.conftest import Bank, Service, make_bank, person


async def _verify(service: Service) -> audit.ChainReport:
    async with service.container.db.transaction(write=False) as conn:
        return await audit.verify_chain(AuditLog(conn), service.container.auth.secrets.audit_key)


async def _lifecycle(bank: Bank) -> dict[str, str]:
    holder = person(51)
    cert = (await bank.issue(holder)).json()
    await bank.post(f"/v1/certificates/{cert['id']}/pin", {"pin": "000000", "new_pin": "417093"})
    await bank.post(f"/v1/certificates/{cert['id']}/pin", {"pin": "902714", "new_pin": "417093"})
    await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"pin": "417093"})
    return dict(cert)


async def test_lifecycle_is_audited_and_the_chain_verifies(service: Service, bank: Bank) -> None:
    cert = await _lifecycle(bank)
    operator = await make_bank(service.http, service.container, "ops", ["audit:read"])
    assert (await bank.get("/v1/audit")).status_code == 403  # bank scopes don't include it
    page = await operator.get("/v1/audit", params={"limit": 1000})
    assert page.status_code == 200
    events = page.json()["data"]
    actions = [(e["action"], e["result"]) for e in events]
    for expected in [("client_create", "ok"), ("verification_start", "ok"),
                     ("verification_confirm", "ok"), ("issue", "ok"),
                     ("pin_check", "failure"), ("pin_change", "ok"), ("revoke", "ok")]:
        assert expected in actions, expected
    issue = next(e for e in events if e["action"] == "issue")
    assert issue["certificate_id"] == cert["id"] and issue["client_id"] == bank.client_id
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["prev_hash"] == p["hash"] for p, e in pairwise(events))
    text = json.dumps(events)
    assert "902714" not in text and "417093" not in text and "1000051" not in text

    first = await operator.get("/v1/audit", params={"limit": 2})
    assert first.json()["next_after"] == 2
    rest = await operator.get("/v1/audit", params={"after": 2, "limit": 1000})
    assert rest.json()["data"][0]["seq"] == 3

    report = await _verify(service)
    assert report.intact and report.checked == len(events)


async def test_verify_detects_edits_deletions_and_truncation(service: Service,
                                                             bank: Bank) -> None:
    await _lifecycle(bank)
    db = service.container.db
    async with db.transaction() as conn:
        await conn.execute(update(audit_events).where(audit_events.c.seq == 3)
                           .values(result="failure"))
    report = await _verify(service)
    assert not report.intact and "row 3 was edited" in report.problems

    async with db.transaction() as conn:  # put it back, then delete a row in the middle
        await conn.execute(update(audit_events).where(audit_events.c.seq == 3)
                           .values(result="ok"))
    assert (await _verify(service)).intact
    async with db.transaction() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 4))
    report = await _verify(service)
    assert any("row 4 is missing" in p for p in report.problems)


async def test_verify_detects_a_removed_tail(service: Service, bank: Bank) -> None:
    await _lifecycle(bank)
    last = (await service.container.audit.page(after=0, limit=10_000))[-1]["seq"]
    async with service.container.db.transaction() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == last))
    report = await _verify(service)
    assert any("removed from the end" in p for p in report.problems)


def test_audit_details_refuse_secret_names() -> None:
    import asyncio
    from datetime import UTC, datetime

    import pytest

    with pytest.raises(ValueError, match="secrets"):
        asyncio.run(audit.append(None, b"k", now=datetime.now(UTC),  # type: ignore[arg-type]
                                 action="x", new_pin="1"))
