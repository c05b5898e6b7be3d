"""Hostile input from the app's own OpenAPI document: schemathesis generates requests for
every operation (in-process, over ASGI) with a valid bank token, and checks that no reply is a
5xx and that every reply matches what the document declares (status code, content type,
body schema). Bounded: a few examples per operation, and an overall time budget."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.openapi_doc import current_document
from app.routers.problem_catalog import ROUTE_CODES
from app.services.auth import BANK_SCOPES, Scope
from tests.resilience.conftest import report
from tests.support.app import Service, make_settings, truncate_all
from tests.support.bank import Bank, make_bank
from tests.support.processes import create_client

EXAMPLES_PER_OPERATION = 20
TIME_BUDGET_SECONDS = 45.0  # past it, the remaining operations run one example each
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


# The OCSP request body is DER: sent as the raw bytes schemathesis generates for it.
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")
schemathesis.serializer.alias("application/timestamp-query", "application/octet-stream")


class Run:
    token = ""
    started = 0.0
    calls: dict[str, int] = {}  # one run per process
    error_replies = 0  # 4xx/5xx replies checked against their documented schema


@pytest.fixture(scope="module")
def client(template_dir: Path, database_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app, served in-process by schemathesis' ASGI client (its lifespan runs in
    schemathesis' own event loop), and a token with every scope."""
    data_dir = tmp_path_factory.mktemp("schemathesis") / "var"
    shutil.copytree(template_dir, data_dir)
    asyncio.run(truncate_all(database_url))
    # The system clock (tokens must stay valid while the run lasts); INFO logs only.
    settings_ = make_settings(data_dir, database_url, log_level="INFO")
    client_id, secret = asyncio.run(create_client(
        data_dir, database_url, "schemathesis",
        [s.value for s in BANK_SCOPES] + [Scope.AUDIT.value, Scope.IDENTITY_CHECK.value]))
    app: Any = create_app(settings_)
    try:
        with schemathesis_asgi.get_client(app) as session:
            reply = session.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(client_id, secret))
            assert reply.status_code == 200, reply.text
            Run.token = reply.json()["access_token"]
            Run.started = time.monotonic()
            yield session
    finally:
        schemathesis_asgi.shutdown_lifespans()
        report("schemathesis", operations=len(Run.calls), requests=sum(Run.calls.values()),
               error_replies_validated=Run.error_replies, per_operation=Run.calls,
               seconds=round(time.monotonic() - Run.started, 1))


# The document as development serves it (the committed openapi/openapi.json is checked against
# the same by tests/test_openapi.py); building it starts nothing.
schema = schemathesis.openapi.from_dict(current_document())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_holds_to_its_document(case: Any, client: Any) -> None:
    label = f"{case.method} {case.path}"
    if time.monotonic() - Run.started > TIME_BUDGET_SECONDS and Run.calls.get(label):
        return  # over budget: this operation has had its example
    Run.calls[label] = Run.calls.get(label, 0) + 1
    headers = {"Authorization": f"Bearer {Run.token}"}
    response = case.call(base_url=f"http://{schemathesis_asgi.HOST}", session=client,
                         headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    if response.status_code >= 400:
        Run.error_replies += 1
        if response.headers.get("content-type") == "application/problem+json":
            # The code is one the operation documents (app/routers/problem_catalog.py).
            operation_id = case.operation.definition.raw["operationId"]
            code = response.json()["code"]
            assert code in ROUTE_CODES[operation_id], (operation_id, code)


def test_every_error_reply_is_declared_with_a_schema_to_check() -> None:
    """response_schema_conformance checks a reply only against a declared schema: so every
    documented 4xx/5xx has one (Problem, or the CSC/RFC 6749 error object), and Problem
    admits no undeclared field."""
    document = current_document()
    assert document["components"]["schemas"]["Problem"]["additionalProperties"] is False
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    content = response.get("content")
                    assert content, (method, path, status)
                    assert all(media.get("schema") for media in content.values()), (
                        method, path, status)


async def test_csc_routes_answer_an_undecodable_body_in_the_csc_shape(bank: Bank) -> None:
    for method in ("credentials/list", "credentials/info", "credentials/authorize",
                   "signatures/signHash"):
        reply = await bank.http.post(f"/csc/v1/{method}", content=b"\xff\xfe{",
                                     headers={**bank.headers,
                                              "Content-Type": "application/json"})
        assert reply.status_code == 400, method
        assert reply.headers["content-type"] == "application/json", method
        assert reply.json()["error"] == "invalid_request", method


async def test_found_by_schemathesis_an_int64_overflow_is_not_a_500(service: Service) -> None:
    """GET /v1/audit?after=2**63 reached PostgreSQL as a BIGINT it cannot hold: a 500 until
    app/storage/db.py turned the database's data exceptions (SQLSTATE class 22) into 422."""
    auditor = await make_bank(service.http, service.container, "auditor", [Scope.AUDIT.value])
    for after in (2**63, 2**64 + 1):
        reply = await auditor.get("/v1/audit", params={"after": str(after)})
        assert reply.status_code == 422, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
