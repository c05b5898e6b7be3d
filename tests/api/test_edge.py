"""The HTTP edge under bad input: malformed bodies, wrong types, oversized bodies, unknown
paths and methods. Every error is problem+json with a stable code, and never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import func, select

from app.storage.tables import certificates, persons, verifications
from tests.support.app import Service
from tests.support.bank import Bank, issue_body
from tests.support.people import PIN, person
from tests.support.problems import assert_problem

LIMIT = 64 * 1024
ANY_ID = "00000000-0000-0000-0000-000000000000"


async def _counts(service: Service) -> tuple[int, int, int]:
    async with service.container.db.transaction(write=False) as conn:
        return tuple([  # type: ignore[return-value]
            int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in (verifications, persons, certificates)])


async def _raw(bank: Bank, path: str, content: bytes | str,
               content_type: str | None = "application/json",
               method: str = "POST") -> httpx.Response:
    headers = dict(bank.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await bank.http.request(method, path, content=content, headers=headers)


# --- malformed bodies --------------------------------------------------------------------


async def test_malformed_json_is_422_malformed_json(service: Service, bank: Bank) -> None:
    for content in (b'{"phone": "+821055550001", "channel": ', b"{", b"}", b'{"phone": +8210}',
                    b"{'phone': '+821055550001', 'channel': 'sms'}",
                    b'{"phone": "+821055550001",}',
                    b'{"phone": "+821055550001", "channel": "sms"} trailing', b"nul\x00l"):
        assert_problem(await _raw(bank, "/v1/verifications", content), 422, "malformed_json")
    assert await _counts(service) == (0, 0, 0)


async def test_undecodable_bodies_are_4xx(service: Service, bank: Bank) -> None:
    for content in (
        b'{"phone": "\xff\xfe", "channel": "sms"}',  # not UTF-8
        b"[" * 20000 + b"]" * 20000,  # deeper than any parser recursion limit
        b'{"phone": "+821055550001", "channel": "sms", "n": ' + b"9" * 5000 + b"}",
    ):
        reply = await _raw(bank, "/v1/verifications", content)
        assert 400 <= reply.status_code < 500, reply.text
        assert_problem(reply, reply.status_code)
    assert await _counts(service) == (0, 0, 0)


async def test_a_body_that_is_not_an_object_is_422(service: Service, bank: Bank) -> None:
    for content in (b"", b"null", b"[]", b'"sms"', b"1", b"true",
                    b'[{"phone": "+821055550001", "channel": "sms"}]'):
        assert_problem(await _raw(bank, "/v1/verifications", content), 422, "invalid_request")
    assert await _counts(service) == (0, 0, 0)


async def test_a_body_that_is_not_json_is_4xx(service: Service, bank: Bank) -> None:
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded",
                         "application/xml", "multipart/form-data"):
        reply = await _raw(bank, "/v1/verifications", "phone=%2B821055550001&channel=sms",
                           content_type)
        assert 400 <= reply.status_code < 500, (content_type, reply.text)
        assert_problem(reply, reply.status_code)
    assert await _counts(service) == (0, 0, 0)


# --- wrong types and missing fields ------------------------------------------------------


async def test_wrong_types_and_missing_fields_name_the_field(service: Service,
                                                             bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    good = issue_body(holder, verification_id, PIN)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({**good, "pin": 902714}, ["body", "pin"]),
        ({**good, "terms_accepted": "true"}, ["body", "terms_accepted"]),
        ({**good, "terms_accepted": 1}, ["body", "terms_accepted"]),
        ({**good, "verification_id": 12}, ["body", "verification_id"]),
        ({**good, "person": "홍길동"}, ["body", "person"]),
        ({**good, "person": {**holder, "rrn": 9001011000001}}, ["body", "person", "rrn"]),
        ({**good, "person": {**holder, "name": None}}, ["body", "person", "name"]),
        ({k: v for k, v in good.items() if k != "pin"}, ["body", "pin"]),
        ({k: v for k, v in good.items() if k != "person"}, ["body", "person"]),
        ({k: v for k, v in good.items() if k != "verification_id"},
         ["body", "verification_id"]),
        ({**good, "bank_checks": {"account_password_verified": "yes",
                                  "contact_confirmed": True}},
         ["body", "bank_checks", "account_password_verified"]),
    ]
    for body, loc in cases:
        problem = assert_problem(await bank.post("/v1/certificates", body), 422, "invalid_request")
        assert loc in [error["loc"] for error in problem["errors"]], problem
        # The submitted values are never echoed: they may be a PIN or an RRN.
        said = json.dumps({k: v for k, v in problem.items() if k != "request_id"})
        assert PIN not in said and "9001011000001" not in said
    assert await _counts(service) == (1, 0, 0)
    assert (await bank.post("/v1/certificates", good)).status_code == 201


async def test_fields_past_their_length_are_422(service: Service, bank: Bank) -> None:
    for path, body in [
        ("/v1/verifications", {"phone": "+82" + "1" * 40, "channel": "sms"}),
        (f"/v1/verifications/{ANY_ID}/confirm", {"code": "1" * 17}),
        ("/v1/certificates/lookup", {"rrn": "9" * 15}),
        (f"/v1/certificates/{ANY_ID}/pin", {"pin": "1" * 17, "new_pin": "417093"}),
        (f"/v1/certificates/{ANY_ID}/revoke", {"verification_id": "x" * 65}),
    ]:
        assert_problem(await bank.post(path, body), 422, "invalid_request")


async def test_extra_fields_are_ignored_not_fatal(service: Service, bank: Bank) -> None:
    reply = await bank.post("/v1/verifications", {"phone": "+821055550001", "channel": "sms",
                                                  "admin": True, "status": "verified"})
    assert reply.status_code == 201 and reply.json()["status"] == "pending"


# --- oversized bodies --------------------------------------------------------------------


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        yield b" " * part
        sent += part


BODY_PATHS = ["/v1/verifications", "/v1/certificates", "/oauth2/token",
              f"/sandbox/ars/{ANY_ID}/keypad", "/v1/certificates/lookup",
              f"/v1/certificates/{ANY_ID}/revoke"]


async def test_oversized_body_by_content_length_is_413(service: Service, bank: Bank) -> None:
    padding = " " * LIMIT
    content = '{"phone": "+821055550001", "channel": "sms", "x": "' + padding + '"}'
    for path in BODY_PATHS:
        reply = await _raw(bank, path, content)
        assert int(reply.request.headers["content-length"]) > LIMIT
        assert_problem(reply, 413, "body_too_large")
    assert await _counts(service) == (0, 0, 0)


async def test_oversized_chunked_body_is_413(service: Service, bank: Bank) -> None:
    for path in BODY_PATHS:
        content_type = ("application/x-www-form-urlencoded" if path == "/oauth2/token"
                        else "application/json")
        headers = {**bank.headers, "Content-Type": content_type}
        reply = await bank.http.post(path, content=_chunks(LIMIT + 1), headers=headers)
        assert "content-length" not in reply.request.headers
        assert reply.request.headers["transfer-encoding"] == "chunked"
        assert_problem(reply, 413, "body_too_large")
    assert await _counts(service) == (0, 0, 0)


async def test_a_body_at_the_limit_is_read(service: Service, bank: Bank) -> None:
    head = b'{"phone": "+821055550001", "channel": "sms", "x": "'
    content = head + b"a" * (LIMIT - len(head) - 2) + b'"}'
    assert len(content) == LIMIT
    reply = await _raw(bank, "/v1/verifications", content)
    assert reply.status_code == 201, reply.text
    headers = {**bank.headers, "Content-Type": "application/json"}
    chunked = await bank.http.post("/v1/verifications", content=_chunks(LIMIT), headers=headers)
    assert_problem(chunked, 422, "malformed_json")  # all spaces: read in full, then refused


# --- unknown paths and methods -----------------------------------------------------------


async def test_unknown_paths_are_404_problems(service: Service, bank: Bank) -> None:
    for path in ("/", "/nope", "/v1", "/v1/nope", "/v2/certificates",
                 f"/v1/certificates/{ANY_ID}/nope", "/oauth2", "/sandbox", "/sandbox/ars",
                 "/%2e%2e/etc/passwd", "/v1/status", "/v1/verifications/..%2f..%2fhealthz"):
        for method in ("GET", "POST", "DELETE"):
            reply = await bank.http.request(method, path, headers=bank.headers)
            assert_problem(reply, 404, "not_found")


async def test_wrong_method_is_405_problem(service: Service, bank: Bank) -> None:
    for method, path, allowed in [
        ("GET", "/oauth2/token", "POST"),
        ("GET", "/v1/verifications", "POST"),
        ("DELETE", f"/v1/verifications/{ANY_ID}", "GET"),
        ("PUT", f"/v1/verifications/{ANY_ID}/confirm", "POST"),
        ("DELETE", f"/v1/certificates/{ANY_ID}", "GET"),
        ("PATCH", f"/v1/certificates/{ANY_ID}", "GET"),
        ("GET", f"/v1/certificates/{ANY_ID}/revoke", "POST"),
        ("GET", f"/v1/certificates/{ANY_ID}/reissue", "POST"),
        ("POST", "/v1/status/abc", "GET"),
        ("POST", "/healthz", "GET"),
        ("OPTIONS", "/v1/certificates", "POST"),
    ]:
        reply = await bank.http.request(method, path, headers=bank.headers)
        assert_problem(reply, 405, "method_not_allowed")
        assert allowed in reply.headers["allow"], (method, path, reply.headers)


# --- never a 500 -------------------------------------------------------------------------


async def test_bad_ids_in_paths_are_404_not_500(service: Service, bank: Bank) -> None:
    for bad in ("%00", "a%00b", "%ff", "%C3%28", "%2e%2e", "%20", "x" * 2000, "😀",
                "'; DROP TABLE certificates; --"):
        assert_problem(await bank.get(f"/v1/verifications/{bad}"), 404, "verification_not_found")
        assert_problem(await bank.post(f"/v1/verifications/{bad}/confirm", {"code": "123456"}), 404,
                       "verification_not_found")
        assert_problem(await service.http.post(f"/sandbox/ars/{bad}/keypad",
                                         json={"digits": "123456"}),
                       404, "verification_not_found")
    assert await _counts(service) == (0, 0, 0)


async def test_nul_in_certificate_ids_is_404_not_500(service: Service, bank: Bank) -> None:
    assert_problem(await bank.get("/v1/certificates/a%00b"), 404, "certificate_not_found")
    assert_problem(await bank.post("/v1/certificates/a%00b/revoke", {"pin": PIN}), 404,
                   "certificate_not_found")
    holder = person(1)
    body = issue_body(holder, "a\x00b", PIN)
    assert_problem(await bank.post("/v1/certificates", body), 404, "verification_not_found")


async def test_odd_but_valid_json_never_500s(service: Service, bank: Bank) -> None:
    weird: list[Any] = ["", "\x00", "\u202e", "😀" * 8, "\ud800", None, 0, -1, 1e308, [], {},
                        True, "+821055550001" * 2, "a" * 64]
    paths = ["/v1/verifications", f"/v1/verifications/{ANY_ID}/confirm",
             "/v1/certificates/lookup", f"/v1/certificates/{ANY_ID}/pin",
             f"/v1/certificates/{ANY_ID}/revoke", f"/v1/certificates/{ANY_ID}/unlock",
             f"/v1/certificates/{ANY_ID}/reissue"]
    fields = ["phone", "channel", "purpose", "code", "rrn", "pin", "new_pin",
              "verification_id", "reason"]
    for path in paths:
        for value in weird:
            body = {name: value for name in fields}
            try:
                content = json.dumps(body)
            except (UnicodeEncodeError, ValueError):
                continue
            reply = await _raw(bank, path, content)
            assert 400 <= reply.status_code < 500, (path, value, reply.text)
            assert_problem(reply, reply.status_code)
    assert await _counts(service) == (0, 0, 0)


async def test_status_with_odd_serials(service: Service) -> None:
    for serial in ("0", "0x00ff", "FF", "abc"):
        reply = await service.http.get(f"/v1/status/{serial}")
        assert reply.status_code == 200 and reply.json()["status"] == "unknown"
    for serial in ("xyz", "-1", "%00", "a" * 65, "😀", "%20"):
        assert_problem(await service.http.get(f"/v1/status/{serial}"), 422, "serial_invalid")


async def test_lone_surrogates_are_4xx(service: Service, bank: Bank) -> None:
    """JSON may escape a lone UTF-16 surrogate; Python then holds a str that cannot be
    encoded, which must be refused as input, not crash a hash or the KDF."""
    holder = person(1)
    sms = await bank.start_verification(holder["phone"])
    ars = await bank.start_verification(holder["phone"], channel="ars")
    replies = [
        await _raw(bank, f"/v1/verifications/{sms['id']}/confirm", '{"code": "\\ud800"}'),
        await _raw(bank, f"/sandbox/ars/{ars['id']}/keypad", '{"digits": "\\udc00"}'),
        await _raw(bank, "/v1/certificates/lookup", '{"rrn": "\\ud800"}'),
    ]
    for reply in replies:
        assert 400 <= reply.status_code < 500, reply.text
        assert_problem(reply, reply.status_code)
