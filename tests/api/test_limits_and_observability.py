"""Abuse limits (429 with Retry-After), request ids, and the metrics an operator reads."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from app.logs import JsonFormatter
from app.settings import Settings
from tests.support.app import FixedClock, Service, redis_url_or_skip, running, with_limits
from tests.support.bank import Bank, make_bank
from tests.support.people import PIN, person
from tests.support.problems import assert_problem


@pytest.fixture(params=["database", "redis"])
async def strict(request: pytest.FixtureRequest, settings: Settings,
                 clock: FixedClock) -> AsyncIterator[Service]:
    """Low limits, with the counters in the database or in Redis."""
    store: dict[str, object] = {}
    if request.param == "redis":
        store = {"redis_url": redis_url_or_skip(),
                 "redis_key_prefix": f"certcloud-test:{uuid.uuid4().hex}:"}
    limited = with_limits(
        settings, verifications_per_phone_per_10_minutes=2, wrong_codes_per_phone_per_hour=3,
        verifications_per_client_per_minute=4, wrong_codes_per_client_per_hour=4, **store)
    async with running(limited, clock) as started:
        yield started


async def test_verifications_per_phone_are_limited(strict: Service) -> None:
    bank = await make_bank(strict.http, strict.container)
    phone = person(61)["phone"]
    for _ in range(2):
        await bank.start_verification(phone)
    third = await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"})
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/problem+json"
    assert third.json()["code"] == "rate_limited_verifications_per_phone"
    assert 1 <= int(third.headers["retry-after"]) <= 600
    assert third.headers["ratelimit-remaining"] == "0"
    assert len((await strict.http.get("/sandbox/messages",
                                      params={"phone": phone})).json()) == 2  # nothing sent
    strict.clock.advance(timedelta(minutes=10))
    bank = await make_bank(strict.http, strict.container, "again")
    assert (await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"})
            ).status_code == 201


async def test_verifications_per_client_are_limited(strict: Service) -> None:
    bank = await make_bank(strict.http, strict.container)
    codes = [(await bank.post("/v1/verifications",
                              {"phone": person(70 + n)["phone"], "channel": "sms"})).status_code
             for n in range(5)]
    assert codes == [201, 201, 201, 201, 429]


async def test_wrong_codes_per_phone_are_limited_across_verifications(strict: Service) -> None:
    bank = await make_bank(strict.http, strict.container)
    phone = person(62)["phone"]
    first = await bank.start_verification(phone)
    statuses = [(await bank.post(f"/v1/verifications/{first['id']}/confirm",
                                 {"code": "000000"})).status_code for _ in range(3)]
    assert statuses == [422, 422, 422]
    second = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    blocked = await bank.post(f"/v1/verifications/{second['id']}/confirm", {"code": code})
    assert_problem(blocked, 429, "rate_limited_wrong_codes_per_phone")


async def test_wrong_codes_per_client_are_limited_across_phones(strict: Service) -> None:
    bank = await make_bank(strict.http, strict.container)
    for n in (63, 64):  # two wrong codes on each of two phones: under the per-phone limit
        started = await bank.start_verification(person(n)["phone"])
        for _ in range(2):
            wrong = await bank.post(f"/v1/verifications/{started['id']}/confirm",
                                    {"code": "000000"})
            assert wrong.status_code == 422, wrong.text
    phone = person(65)["phone"]
    third = await bank.start_verification(phone)
    blocked = await bank.post(f"/v1/verifications/{third['id']}/confirm",
                              {"code": await bank.sms_code(phone)})
    assert_problem(blocked, 429, "rate_limited_wrong_codes_per_client")
    other = await make_bank(strict.http, strict.container, "other bank")
    fresh = await other.start_verification(phone)
    confirmed = await other.post(f"/v1/verifications/{fresh['id']}/confirm",
                                 {"code": await other.sms_code(phone)})
    assert confirmed.status_code == 200, confirmed.text  # another bank is not held back


async def test_request_id_in_header_problem_and_logs(service: Service, bank: Bank,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    reply = await service.http.get("/v1/certificates/unknown",
                                   headers={**bank.headers, "X-Request-ID": "req-12345678"})
    assert reply.status_code == 404
    assert reply.headers["x-request-id"] == "req-12345678"
    assert reply.json()["request_id"] == "req-12345678"
    fresh = await service.http.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    bad = await service.http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"


async def test_a_503_log_line_names_the_problem_code(service: Service, bank: Bank,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The code (a stable word, never a secret) is what tells an operator which dependency is
    down; the redaction of keys like `code` must not hide it."""
    @asynccontextmanager
    async def refused() -> AsyncIterator[None]:
        raise ConnectionRefusedError("connection refused")
        yield

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    monkeypatch.setattr(service.container.db, "_connection", refused)
    try:
        reply = await bank.get("/v1/certificates/unknown")
    finally:
        monkeypatch.undo()
        logging.getLogger().removeHandler(handler)
    assert_problem(reply, 503, "database_unavailable")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    logged = [line for line in lines if line["message"] == "dependency unavailable"]
    assert len(logged) == 1, lines
    assert logged[0]["problem_code"] == "database_unavailable"
    assert logged[0]["cause"] == "ConnectionRefusedError"
    assert "[redacted]" not in json.dumps(logged[0])


async def test_metrics_show_requests_and_lifecycle_events(service: Service, bank: Bank) -> None:
    await bank.issue(person(63))
    await bank.get("/v1/certificates/missing")
    text = (await service.http.get("/metrics")).text
    assert 'certcloud_http_requests_total{method="POST",route="/v1/certificates",status="201"}' \
        in text
    assert 'route="/v1/certificates/{certificate_id}",status="404"' in text
    assert 'certcloud_lifecycle_events_total{action="issue",result="ok"} 1.0' in text
    assert "certcloud_http_request_seconds_bucket" in text
    assert "certcloud_crl_age_seconds" in text


async def test_signatures_per_certificate_are_limited(settings: Settings,
                                                      clock: FixedClock) -> None:
    async with running(with_limits(settings, signatures_per_certificate_per_minute=2),
                       clock) as limited:
        bank = await make_bank(limited.http, limited.container)
        cert = (await bank.issue(person(64))).json()
        body = {"pin": PIN, "data": "aGVsbG8=", "format": "raw"}
        path = f"/v1/certificates/{cert['id']}/signatures"
        statuses = [(await bank.post(path, body)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        clock.advance(timedelta(minutes=1))
        assert (await bank.post(path, body)).status_code == 200
