"""What an operator reads: one JSON access line per request (with no secret in it), process
metrics, /readyz naming the component that is down, and the CRL age from the first scrape."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import pytest

from app.logs import JsonFormatter
from app.observability import RequestIdFilter
from app.settings import Settings
from tests.support.app import KEYS, FixedClock, Service, running
from tests.support.bank import Bank
from tests.support.people import person


@contextmanager
def _collect() -> Iterator[list[dict[str, Any]]]:
    """The access logger's lines, formatted as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("certcloud.access")
    logger.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


async def test_each_request_has_one_access_line_without_secrets(
        service: Service, bank: Bank) -> None:
    someone = person(71)
    pin = "583920"
    with _collect() as lines:
        issued = await bank.issue(someone, pin=pin)
        assert issued.status_code == 201, issued.text
        certificate_id = issued.json()["id"]
        shown = await bank.get(f"/v1/certificates/{certificate_id}",
                               headers={"X-Request-ID": "access-req-0001"})
        assert shown.status_code == 200
        messages = await service.http.get("/sandbox/messages",
                                          params={"phone": someone["phone"]})
        code = next(m["code"] for m in messages.json() if m["code"])  # not a notice
        anonymous = await service.http.get("/v1/certificates/missing")
        assert anonymous.status_code == 401
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    by_route: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:  # the first line of each route
        by_route.setdefault((line["method"], line["route"]), line)

    issue_line = by_route[("POST", "/v1/certificates")]
    assert issue_line["message"] == "request" and issue_line["logger"] == "certcloud.access"
    assert issue_line["status"] == 201 and issue_line["client_id"] == bank.client_id
    assert isinstance(issue_line["duration_ms"], float) and issue_line["duration_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", issue_line["request_id"])
    shown_line = by_route[("GET", "/v1/certificates/{certificate_id}")]  # the template
    assert shown_line["request_id"] == "access-req-0001" and shown_line["status"] == 200
    assert certificate_id not in text  # no raw path
    assert shown_line["client_id"] == bank.client_id
    assert by_route[("GET", "/sandbox/messages")]["client_id"] is None
    assert [line["status"] for line in lines if line["route"] == "/v1/certificates/{certificate_id}"
            ] == [200, 401]  # one line per request, the anonymous one without a client
    # Never a body, a query value or a secret.
    for secret in (pin, someone["rrn"], someone["rrn"].replace("-", ""), someone["phone"],
                   someone["name"], code, bank.token, bank.client_secret):
        assert secret not in text, secret
    assert "[redacted]" not in text  # no field even needed redacting


async def test_the_access_line_can_be_turned_off(settings: Settings, clock: FixedClock) -> None:
    quiet = settings.model_copy(update={"access_log": False})
    async with running(quiet, clock) as service:
        with _collect() as lines:
            assert (await service.http.get("/healthz")).status_code == 200
    assert lines == []


async def test_metrics_have_process_and_platform_collectors(service: Service) -> None:
    text = (await service.http.get("/metrics")).text
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "python_info", "python_gc_objects_collected_total"):
        assert re.search(rf"^{name}(\{{.*\}})? ", text, re.MULTILINE), name


async def test_readyz_names_every_component(service: Service) -> None:
    ready = await service.http.get("/readyz")
    assert ready.status_code == 200
    expected = {"database": "up", "counter_store": "up", "key_store": "up"}
    if KEYS == "pkcs11":  # a CA key in the token has a check of its own
        expected["ca_key"] = "up"
    assert ready.json() == {"status": "ok", "components": expected}


async def test_readyz_names_the_database_when_it_is_down(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    @asynccontextmanager
    async def refused() -> AsyncIterator[None]:
        raise ConnectionRefusedError("connection refused")
        yield

    monkeypatch.setattr(service.container.db, "_connection", refused)
    ready = await service.http.get("/readyz")
    monkeypatch.undo()
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    body = ready.json()
    assert body["code"] == "database_unavailable" and body["component"] == "database"
    assert body["components"]["database"] == "down"
    assert "database" in body["detail"] and body["request_id"]
    assert 'certcloud_database_up 0.0' in (await service.http.get("/metrics")).text
    assert (await service.http.get("/readyz")).status_code == 200


def _crl_age(text: str) -> float:
    found = re.search(r"^certcloud_crl_age_seconds (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


async def test_crl_age_is_right_from_start(settings: Settings, clock: FixedClock) -> None:
    # The first start builds the CRL; no one has fetched it when the scraper comes.
    async with running(settings, clock) as first:
        clock.advance(timedelta(hours=1))
        assert _crl_age((await first.http.get("/metrics")).text) == 3600
    # A later start finds it stored, and says its age before any rebuild or fetch too.
    clock.advance(timedelta(hours=1))
    async with running(settings, clock) as second:
        assert _crl_age((await second.http.get("/metrics")).text) == 7200
        assert (await second.http.get("/crl")).status_code == 200
        clock.advance(timedelta(seconds=30))
        assert _crl_age((await second.http.get("/metrics")).text) == 7230
