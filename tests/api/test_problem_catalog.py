"""Each operation documents exactly the problem codes its handler can raise (the static lists
of app/routers/problem_catalog.py), every code raised in the code base is documented somewhere,
every documented code exists and has a page at its ``type`` URI; a wrong media type is 415, and
413 carries the request id (issue 18, item 1)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.openapi_doc import current_document
from app.routers import problem_catalog
from app.routers.problem_catalog import (
    HIDDEN_ROUTE_CODES,
    ROUTE_CODES,
    documented_codes,
    example_reply,
)
from app.routers.problem_codes import ANY_PATH, CODES, CSC_CODES, NOT_IN_REPLIES
from app.routers.schemas import Problem
from tests.support.app import Service
from tests.support.bank import Bank

APP = Path(__file__).resolve().parents[2] / "app"
PROBLEM = "application/problem+json"
PUBLIC_BASE_URL = "http://certcloud.test"  # tests/conftest.py make_settings
ERROR_CLASSES = {"DomainError", "InvalidInput", "NotFound", "Conflict", "PinInvalid",
                 "PinLocked", "Unauthenticated", "Forbidden", "RateLimited",
                 "DependencyUnavailable", "CscRequestError"}
# What the f-string codes can become: the states that reach them, and the limits' names.
STATE_CODES = {"certificate_": {"revoked", "expired", "suspended"},
               "verification_": {"verified", "used", "failed", "expired"}}
# The HTTP edge's own codes (app/routers/problems.py): FastAPI's 400 for an undecodable body,
# Starlette's 404/405/406, the body limit's 413, validation's 422 (two codes), and a bug's 500.
EDGE_CODES = {"bad_request", "not_found", "method_not_allowed", "not_acceptable",
              "body_too_large", "invalid_request", "malformed_json", "http_error",
              "internal_error"}


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def raised_codes() -> set[str]:
    """Every problem code the code base can raise, read from its syntax tree."""
    trees = [ast.parse(path.read_text()) for path in APP.rglob("*.py")]
    calls = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Call)]
    limits = {n.args[0].value for n in calls if _call_name(n) == "Limit" and n.args
              and isinstance(n.args[0], ast.Constant)}
    defaults = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in ERROR_CLASSES:
                for item in node.body:
                    if (isinstance(item, ast.Assign) and ast.unparse(item.targets[0]) == "code"
                            and isinstance(item.value, ast.Constant)):
                        defaults[node.name] = item.value.value
    found = set(EDGE_CODES)
    for call in calls:
        name = _call_name(call)
        if name in ERROR_CLASSES:
            code = next((k.value for k in call.keywords if k.arg == "code"), None)
            if code is None:
                found.add(defaults.get(name) or defaults["DomainError"])
            elif isinstance(code, ast.Constant):
                found.add(code.value)
            else:
                assert isinstance(code, ast.JoinedStr), ast.unparse(code)
                prefix = code.values[0]
                assert isinstance(prefix, ast.Constant), ast.unparse(code)
                if prefix.value == "rate_limited_":
                    found.update(f"rate_limited_{limit}" for limit in limits)
                else:
                    assert prefix.value in STATE_CODES, f"new f-string code {ast.unparse(code)}"
                    found.update(prefix.value + state for state in STATE_CODES[prefix.value])
        elif name in ("problem", "_refusal"):
            words = [a.value for a in call.args if isinstance(a, ast.Constant)
                     and isinstance(a.value, str) and a.value.replace("_", "").isalpha()
                     and a.value.islower()]
            if words:
                found.add(words[0])
    return found


def _operations() -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for ops in current_document()["paths"].values()
            for op in ops.values()}


def test_each_operation_documents_exactly_the_codes_its_handler_raises() -> None:
    operations = _operations()
    assert set(operations) == set(ROUTE_CODES), "every operation needs a code list"
    for operation_id, operation in operations.items():
        assert documented_codes(operation) == set(ROUTE_CODES[operation_id]), operation_id


def test_every_documented_code_exists_in_the_code_base() -> None:
    raised = raised_codes()
    listed = {c for codes in (*ROUTE_CODES.values(), *HIDDEN_ROUTE_CODES.values())
              for c in codes}
    assert listed - raised == set()
    assert set(CODES) - raised == set()
    assert set(CSC_CODES) - raised == set()
    assert raised >= NOT_IN_REPLIES


def test_every_code_raised_in_the_code_base_is_documented_for_a_route() -> None:
    listed = {c for codes in (*ROUTE_CODES.values(), *HIDDEN_ROUTE_CODES.values())
              for c in codes}
    assert raised_codes() - listed - NOT_IN_REPLIES - ANY_PATH == set()
    for operation_id, codes in {**ROUTE_CODES, **HIDDEN_ROUTE_CODES}.items():
        # A problem reply's type is a page; CSC replies name their cause in CSC_CODES.
        known = {*CODES, *CSC_CODES} if operation_id.startswith("csc_") else set(CODES)
        assert set(codes) <= known, (operation_id, set(codes) - known)
    assert set(CODES) >= ANY_PATH


def test_the_examples_fit_the_problem_schema_and_name_their_page() -> None:
    for code in CODES:
        reply = example_reply(code)
        assert Problem.model_validate(reply).model_dump(exclude_none=True) == reply, code
        assert reply["type"].endswith(f"/problems/{code}")
    # Undeclared fields fail schemathesis' check of error replies against the document.
    assert current_document()["components"]["schemas"]["Problem"]["additionalProperties"] is False


def test_csc_operations_document_their_own_shape_not_422() -> None:
    for operation_id, operation in _operations().items():
        if not operation_id.startswith("csc_"):
            continue
        responses = operation["responses"]
        assert "422" not in responses, operation_id
        for status in ("400", "401", "403", "503"):
            content = responses[status]["content"]
            assert list(content) == ["application/json"], (operation_id, status)
            assert content["application/json"]["schema"] == problem_catalog.CSC_ERROR_SCHEMA


async def test_a_problem_page_answers_for_every_documented_code(service: Service) -> None:
    for code in sorted(CODES):
        reply = await service.http.get(f"/problems/{code}")
        assert reply.status_code == 200, code
        assert reply.headers["content-type"].startswith("text/html"), code
        assert f"<code>{code}</code>" in reply.text
        assert CODES[code].meaning.split("`")[0][:30] in reply.text.replace("&#x27;", "'")
        assert f"{PUBLIC_BASE_URL}/problems/{code}" in reply.text  # the example's type
    index = await service.http.get("/problems")
    assert index.status_code == 200 and all(f'"/problems/{c}"' in index.text for c in CODES)


async def test_an_unknown_problem_code_is_a_404_problem(service: Service) -> None:
    for code in ("no_such_code", "<script>", "PIN_INVALID"):
        reply = await service.http.get(f"/problems/{code}")
        assert reply.status_code == 404
        assert reply.headers["content-type"] == PROBLEM
        assert reply.json()["code"] == "not_found"


async def test_the_type_of_a_real_reply_is_its_page(bank: Bank) -> None:
    reply = await bank.get("/v1/verifications/00000000-0000-0000-0000-000000000000")
    body = reply.json()
    assert reply.status_code == 404 and body["code"] == "verification_not_found"
    example = example_reply("verification_not_found", PUBLIC_BASE_URL)
    assert {k: body[k] for k in ("type", "title", "status", "detail", "code")} == {
        k: example[k] for k in ("type", "title", "status", "detail", "code")}
    assert body["type"] == f"{PUBLIC_BASE_URL}/problems/verification_not_found"
    page = await bank.http.get(httpx.URL(body["type"]).path)
    assert page.status_code == 200 and "<code>verification_not_found</code>" in page.text


@pytest.mark.parametrize("content_type, content", [
    ("text/plain", b'{"phone": "+821055550001", "channel": "sms"}'),
    ("application/x-www-form-urlencoded", b"phone=%2B821055550001&channel=sms"),
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="phone"'
                                        b"\r\n\r\n+821055550001\r\n--x--\r\n"),
    ("application/xml", b"<verification/>"),
])
async def test_a_json_route_given_another_media_type_is_415(bank: Bank, content_type: str,
                                                            content: bytes) -> None:
    reply = await bank.http.post("/v1/verifications", content=content,
                                 headers={**bank.headers, "Content-Type": content_type})
    assert reply.status_code == 415, reply.text
    body = reply.json()
    assert reply.headers["content-type"] == PROBLEM
    assert body["code"] == "unsupported_media_type"
    assert body["request_id"] == reply.headers["x-request-id"]
    assert body["type"] == f"{PUBLIC_BASE_URL}/problems/unsupported_media_type"


async def test_json_and_its_suffix_types_are_still_accepted(bank: Bank) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "application/merge-patch+json"):
        reply = await bank.http.post(
            "/v1/verifications", content=b'{"phone": "+821055550001", "channel": "sms"}',
            headers={**bank.headers, "Content-Type": content_type})
        assert reply.status_code == 201, (content_type, reply.text)
    broken = await bank.http.post("/v1/verifications", content=b'{"phone": 1}',
                                  headers={**bank.headers, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["code"] == "invalid_request"


async def test_a_413_carries_the_request_id(bank: Bank) -> None:
    big = b'{"phone": "' + b"1" * (70 * 1024) + b'"}'

    async def streamed() -> Any:
        yield big[:1024]
        yield big[1024:]

    for content in (big, streamed()):
        reply = await bank.http.post("/v1/verifications", content=content,
                                     headers={**bank.headers, "Content-Type": "application/json",
                                              "X-Request-ID": "req-413-check-0001"})
        assert reply.status_code == 413, reply.text
        body = reply.json()
        assert body["code"] == "body_too_large"
        assert body["request_id"] == "req-413-check-0001" == reply.headers["x-request-id"]
        assert body["type"] == f"{PUBLIC_BASE_URL}/problems/body_too_large"
