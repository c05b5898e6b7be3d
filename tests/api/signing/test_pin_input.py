"""Requests that cannot be right cost the holder nothing: a malformed PIN (not exactly 6 ASCII
digits) is refused before a try is reserved or a KDF runs, and the per-certificate signature
limit counts only valid requests (and applies to CSC credentials/authorize as well)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.settings import Settings
from app.storage.ops_tables import audit_events
from tests.support.app import FixedClock, Service, running, with_limits
from tests.support.bank import Bank, Holder, issue_holder, make_bank
from tests.support.people import PIN, digits_as
from tests.support.signing import b64

# Empty, letters, too short, too long, and digits that are not ASCII (fullwidth, Arabic-Indic,
# one fullwidth digit among ASCII ones): int() takes the last three, the PIN rule must not.
MALFORMED = ["", "abc", "90271", "9027145", digits_as(PIN, 0xFF10), digits_as(PIN, 0x0660),
             "90271" + digits_as("4", 0xFF10), "902714\n"]
SIGNATURES_PER_MINUTE = 2


def _digest() -> str:
    return b64(hashlib.sha256(b"a document").digest())


async def _pin_checks(service: Service) -> int:
    async with service.container.db.transaction(write=False) as conn:
        return int((await conn.execute(select(func.count()).select_from(audit_events)
                                       .where(audit_events.c.action == "pin_check"))).scalar_one())


async def _remaining(bank: Bank, certificate_id: str) -> int:
    reply = await bank.get(f"/v1/certificates/{certificate_id}")
    return int(reply.json()["remaining_pin_attempts"])


async def test_malformed_pins_are_refused_without_a_try(service: Service, bank: Bank,
                                                        holder: Holder) -> None:
    path = f"/v1/certificates/{holder.id}"
    for pin in MALFORMED:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("/signatures", {"pin": pin, "digest": _digest(), "format": "raw"}),
            ("/pin", {"pin": pin, "new_pin": "417093"}),
            ("/revoke", {"pin": pin}),
        ]
        for suffix, body in calls:
            reply = await bank.post(path + suffix, body)
            assert reply.status_code == 422, (suffix, pin, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["code"] == "pin_malformed", (suffix, pin)
        authorized = await bank.post("/csc/v1/credentials/authorize", {
            "credentialID": holder.id, "numSignatures": 1, "hash": [_digest()], "PIN": pin})
        assert authorized.status_code == 400, authorized.text
        assert authorized.json()["error"] == "invalid_request"
        assert "PIN" in authorized.json()["error_description"]
    assert await _remaining(bank, holder.id) == 5
    assert await _pin_checks(service) == 0  # no try was reserved, no key opened
    state = await bank.get(path)
    assert state.json()["status"] == "active"
    signed = await bank.post(path + "/signatures",
                             {"pin": holder.pin, "digest": _digest(), "format": "raw"})
    assert signed.status_code == 200, signed.text


@pytest.fixture
async def quota(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    strict = with_limits(settings, signatures_per_certificate_per_minute=SIGNATURES_PER_MINUTE)
    async with running(strict, clock) as started:
        yield started


async def test_invalid_signature_requests_do_not_use_the_quota(quota: Service) -> None:
    bank = await make_bank(quota.http, quota.container)
    holder = await issue_holder(bank, 2)
    path = f"/v1/certificates/{holder.id}/signatures"
    garbage = [
        {"pin": holder.pin, "data": "not base64!", "format": "raw"},
        {"pin": holder.pin, "format": "raw"},
        {"pin": holder.pin, "digest": b64(b"short"), "format": "raw"},
        {"pin": holder.pin, "digest": _digest(), "format": "cms"},
        {"pin": "abc", "digest": _digest(), "format": "raw"},
    ]
    for body in garbage * SIGNATURES_PER_MINUTE:
        assert (await bank.post(path, body)).status_code == 422
    valid = {"pin": holder.pin, "digest": _digest(), "format": "raw"}
    statuses = [(await bank.post(path, valid)).status_code
                for _ in range(SIGNATURES_PER_MINUTE + 1)]
    assert statuses == [200] * SIGNATURES_PER_MINUTE + [429]


async def test_csc_authorize_has_the_signature_limit(quota: Service) -> None:
    bank = await make_bank(quota.http, quota.container)
    holder = await issue_holder(bank, 3)

    async def authorize(**body: Any) -> httpx.Response:
        return await bank.post("/csc/v1/credentials/authorize", {
            "credentialID": holder.id, "numSignatures": 1, "hash": [_digest()],
            "PIN": holder.pin, **body})

    for bad in ({"hash": ["not base64!"]}, {"PIN": "12345"}, {"numSignatures": 2}):
        assert (await authorize(**bad)).status_code == 400
    statuses = [(await authorize()).status_code for _ in range(SIGNATURES_PER_MINUTE)]
    assert statuses == [200] * SIGNATURES_PER_MINUTE
    refused = await authorize()
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "rate_limited" and "type" not in refused.json()
    assert int(refused.headers["retry-after"]) >= 1
    # One quota per certificate, whichever API signs.
    sign = await bank.post(f"/v1/certificates/{holder.id}/signatures",
                           {"pin": holder.pin, "digest": _digest(), "format": "raw"})
    assert sign.status_code == 429
