"""OAuth2 client credentials: the token endpoint (RFC 6749 errors) and Bearer checks per route."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
from jose import jwt

from app.services.auth import BANK_SCOPES, Scope
from tests.support.app import Service
from tests.support.bank import Bank, make_bank
from tests.support.people import PIN, person
from tests.support.problems import assert_problem

TOKEN = "/oauth2/token"
GRANT = {"grant_type": "client_credentials"}
ANY_ID = "00000000-0000-0000-0000-000000000000"

# Every bank route of /v1 with the scope it needs and a body that would pass validation.
ROUTES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/verifications", {"phone": "+821055550001", "channel": "sms"}, Scope.ISSUE),
    ("GET", f"/v1/verifications/{ANY_ID}", None, Scope.ISSUE),
    ("POST", f"/v1/verifications/{ANY_ID}/confirm", {"code": "123456"}, Scope.ISSUE),
    ("POST", "/v1/certificates", {
        "verification_id": ANY_ID, "person": person(1), "terms_accepted": True,
        "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
        "pin": PIN}, Scope.ISSUE),
    ("POST", f"/v1/certificates/{ANY_ID}/reissue",
     {"verification_id": ANY_ID, "pin": PIN}, Scope.ISSUE),
    ("POST", f"/v1/certificates/{ANY_ID}/unlock", {"verification_id": ANY_ID}, Scope.ISSUE),
    ("GET", f"/v1/certificates/{ANY_ID}", None, Scope.READ),
    ("POST", "/v1/certificates/lookup", {"rrn": "900101-1234567"}, Scope.READ),
    ("POST", f"/v1/certificates/{ANY_ID}/pin", {"pin": PIN, "new_pin": "417093"},
     Scope.SIGN),
    ("POST", f"/v1/certificates/{ANY_ID}/revoke", {"pin": PIN}, Scope.REVOKE),
]


def _oauth_error(reply: httpx.Response, status: int, error: str) -> None:
    """RFC 6749 §5.2: JSON (not problem+json) with ``error``, never cached."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"] == error, reply.json()
    assert set(reply.json()) <= {"error", "error_description", "error_uri"}
    assert reply.headers["cache-control"] == "no-store"
    if status == 401:
        assert reply.headers["www-authenticate"].lower().startswith("basic")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def _call(http: httpx.AsyncClient, method: str, path: str, body: Any,
                headers: dict[str, str] | None = None) -> httpx.Response:
    return await http.request(method, path, json=body, headers=headers)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(service: Service, client_id: str, **changes: Any) -> dict[str, Any]:
    now = int(service.clock.now().timestamp())
    settings = service.settings.oauth
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": client_id,
              "scope": " ".join(BANK_SCOPES), "iat": now, "nbf": now, "exp": now + 600,
              "jti": "x"}
    claims.update(changes)
    return claims


def _signed(service: Service, claims: dict[str, Any], *, kid: str | None = None,
            key: bytes | None = None) -> str:
    real = service.container.auth.secrets.token_keys[0]
    return jwt.encode(claims, (key or real.secret).decode(), algorithm="HS256",
                      headers={"kid": kid or real.kid})


# --- the token endpoint ------------------------------------------------------------------


async def test_token_by_basic_and_by_form_fields(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    by_basic = await service.http.post(TOKEN, data=GRANT,
                                       headers=_basic(created.client_id, created.client_secret))
    by_form = await service.http.post(TOKEN, data={**GRANT, "client_id": created.client_id,
                                                   "client_secret": created.client_secret})
    # Media types are case-insensitive (RFC 9110 §8.3.1); a charset parameter is harmless.
    by_odd_type = await service.http.post(
        TOKEN, content="grant_type=client_credentials",
        headers={**_basic(created.client_id, created.client_secret),
                 "Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"})
    for reply in (by_basic, by_form, by_odd_type):
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["cache-control"] == "no-store"
        body = reply.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == service.settings.oauth.token_ttl_seconds
        assert set(body["scope"].split()) == {s.value for s in BANK_SCOPES}
        got = await service.http.get(f"/v1/verifications/{ANY_ID}",
                                     headers={"Authorization": f"Bearer {body['access_token']}"})
        assert_problem(got, 404, "verification_not_found")  # authenticated, the id is unknown


async def test_token_refuses_bad_client_credentials(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    cid, secret = created.client_id, created.client_secret
    cases: list[dict[str, Any]] = [
        {"headers": _basic(cid, secret + "x")},
        {"headers": _basic(cid, "")},
        {"headers": _basic("cc_unknown", secret)},
        {"headers": _basic(cid.upper(), secret)},
        {"headers": {"Authorization": "Basic !!!not-base64!!!"}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}},
        {"data": {"client_id": cid, "client_secret": secret[:-1]}},
        {"data": {"client_id": cid}},
        {"data": {"client_secret": secret}},
        {},
        {"headers": {"Authorization": f"Bearer {secret}"}},
    ]
    for case in cases:
        data = {**GRANT, **case.get("data", {})}
        reply = await service.http.post(TOKEN, data=data, headers=case.get("headers"))
        _oauth_error(reply, 401, "invalid_client")
        assert secret not in reply.text


async def test_token_refuses_two_authentication_methods(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    reply = await service.http.post(
        TOKEN, data={**GRANT, "client_id": created.client_id,
                     "client_secret": created.client_secret},
        headers=_basic(created.client_id, created.client_secret))
    _oauth_error(reply, 400, "invalid_request")


async def test_token_refuses_other_grants_and_bodies(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    auth = _basic(created.client_id, created.client_secret)
    for grant in ("password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"):
        reply = await service.http.post(TOKEN, data={"grant_type": grant}, headers=auth)
        _oauth_error(reply, 400, "unsupported_grant_type")
    for data in ({}, {"grant_type": ""}, {"scope": "certificates:read"}):
        _oauth_error(await service.http.post(TOKEN, data=data, headers=auth), 400,
                     "invalid_request")
    as_json = await service.http.post(TOKEN, json=GRANT, headers=auth)
    _oauth_error(as_json, 400, "invalid_request")
    as_multipart = await service.http.post(TOKEN, data=GRANT, files={"x": b"y"}, headers=auth)
    _oauth_error(as_multipart, 400, "invalid_request")


async def test_token_refuses_repeated_parameters(service: Service) -> None:
    """RFC 6749 §3.2: parameters must not be included more than once."""
    created = await service.container.auth.create_client("bank")
    auth = _basic(created.client_id, created.client_secret)
    for body in ("grant_type=client_credentials&grant_type=client_credentials",
                 "grant_type=password&grant_type=client_credentials",
                 "grant_type=client_credentials&scope=certificates:read&scope=audit:read"):
        reply = await service.http.post(
            TOKEN, content=body,
            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
        _oauth_error(reply, 400, "invalid_request")


async def test_token_scope_narrowing_and_bad_scopes(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    auth = _basic(created.client_id, created.client_secret)
    narrow = await service.http.post(TOKEN, data={**GRANT, "scope": "certificates:read"},
                                     headers=auth)
    assert narrow.status_code == 200 and narrow.json()["scope"] == "certificates:read"
    token = {"Authorization": f"Bearer {narrow.json()['access_token']}"}
    assert_problem(await service.http.post("/v1/verifications", headers=token,
                                     json={"phone": "+821055550001", "channel": "sms"}),
                   403, "scope_missing")
    assert_problem(await service.http.get(f"/v1/certificates/{ANY_ID}", headers=token), 404,
                   "certificate_not_found")
    for scope in ("audit:read", "certificates:read audit:read", "admin", "certificates:*",
                  "CERTIFICATES:READ"):
        _oauth_error(await service.http.post(TOKEN, data={**GRANT, "scope": scope},
                                             headers=auth), 400, "invalid_scope")


async def test_client_with_chosen_scopes_gets_only_those(service: Service) -> None:
    reader = await make_bank(service.http, service.container, "reader", ["certificates:read"])
    reply = await service.http.post(TOKEN, data={**GRANT, "scope": "certificates:issue"},
                                    auth=(reader.client_id, reader.client_secret))
    _oauth_error(reply, 400, "invalid_scope")
    assert_problem(await reader.post("/v1/verifications", {"phone": "+821055550001",
                                                     "channel": "sms"}), 403, "scope_missing")


async def test_disabled_client_loses_its_tokens(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    assert (await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"})
            ).status_code == 201
    await service.container.auth.set_disabled(bank.client_id, True)
    assert_problem(await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"}), 401,
                   "client_disabled")
    assert_problem(await bank.get(f"/v1/certificates/{ANY_ID}"), 401, "client_disabled")
    _oauth_error(await service.http.post(TOKEN, data=GRANT,
                                         auth=(bank.client_id, bank.client_secret)),
                 401, "invalid_client")
    await service.container.auth.set_disabled(bank.client_id, False)
    assert (await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"})
            ).status_code == 201


async def test_token_expires_by_the_service_clock(service: Service, bank: Bank) -> None:
    ttl = service.settings.oauth.token_ttl_seconds
    service.clock.advance(timedelta(seconds=ttl - 1))
    assert_problem(await bank.get(f"/v1/certificates/{ANY_ID}"), 404, "certificate_not_found")
    service.clock.advance(timedelta(seconds=1))
    body = assert_problem(await bank.get(f"/v1/certificates/{ANY_ID}"), 401, "token_invalid")
    assert "traceback" not in json.dumps(body).lower()


async def test_token_not_yet_valid_is_refused(service: Service, bank: Bank) -> None:
    service.clock.advance(timedelta(seconds=-10))
    assert_problem(await bank.get(f"/v1/certificates/{ANY_ID}"), 401, "token_invalid")


async def test_forged_tokens_are_refused(service: Service, bank: Bank) -> None:
    real = service.container.auth.secrets.token_keys[0]
    claims = _claims(service, bank.client_id)
    assert (await service.http.get(
        f"/v1/certificates/{ANY_ID}",
        headers={"Authorization": f"Bearer {_signed(service, claims)}"})).status_code == 404

    header, payload, signature = bank.token.split(".")
    escalated = _b64({**json.loads(base64.urlsafe_b64decode(payload + "==")),
                      "scope": "audit:read " + " ".join(BANK_SCOPES)})
    forged = [
        _signed(service, claims, key=b"another-secret-of-enough-length-0123456789"),
        _signed(service, claims, kid="other-kid"),
        _signed(service, claims, kid="other-kid", key=b"another-secret-0123456789abcdef"),
        _signed(service, _claims(service, bank.client_id, aud="someone-else")),
        _signed(service, _claims(service, bank.client_id, iss="someone-else")),
        _signed(service, _claims(service, "cc_nobody")),
        _signed(service, {k: v for k, v in claims.items() if k != "exp"}),
        _signed(service, _claims(service, bank.client_id, exp="soon")),
        _signed(service, _claims(service, bank.client_id, nbf=[1])),
        f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': real.kid})}.{_b64(claims)}.",
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        f"{_b64({'alg': 'HS512', 'kid': real.kid})}.{payload}.{signature}",
        f"{header}.{escalated}.{signature}",
        f"{header}.{payload}.",
        f"{header}.{payload}",
        "not-a-jwt", "a.b.c", "....", "é" * 10,
    ]
    for token in forged:
        reply = await service.http.get(f"/v1/certificates/{ANY_ID}",
                                       headers=[(b"authorization",
                                                 f"Bearer {token}".encode())])
        assert reply.status_code == 401, (token, reply.text)
        assert reply.json()["code"] in {"token_invalid", "client_disabled"}
        assert reply.headers["www-authenticate"] == "Bearer"


async def test_each_route_401_without_a_token_403_without_its_scope(service: Service) -> None:
    only = {scope.value: await make_bank(service.http, service.container, scope.value,
                                         [scope.value])
            for scope in BANK_SCOPES}
    for method, path, body, scope in ROUTES:
        route = f"{method} {path}"
        for headers in (None, {"Authorization": ""}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwYXNz"},
                        {"Authorization": "Token abc"}):
            reply = await _call(service.http, method, path, body, headers)
            assert reply.status_code == 401, (route, headers, reply.text)
            assert_problem(reply, 401, "token_missing")
            assert reply.headers["www-authenticate"] == "Bearer"
        reply = await _call(service.http, method, path, body,
                            {"Authorization": "Bearer not-a-token"})
        assert_problem(reply, 401, "token_invalid")

        for granted, bank in only.items():
            reply = await _call(service.http, method, path, body, bank.headers)
            if granted == scope:
                assert reply.status_code not in (401, 403), (route, reply.text)
            else:
                problem = assert_problem(reply, 403, "scope_missing")
                assert scope in problem["detail"], (route, problem)


async def test_relying_party_and_sandbox_routes_need_no_token(service: Service) -> None:
    assert (await service.http.get("/v1/status/abc")).json()["status"] == "unknown"
    assert (await service.http.get("/sandbox/messages")).status_code == 200
    assert (await service.http.get("/ca/certificate.pem")).status_code == 200


async def test_bearer_scheme_is_case_insensitive(service: Service, bank: Bank) -> None:
    for scheme in ("bearer", "BEARER"):
        reply = await service.http.get(f"/v1/certificates/{ANY_ID}",
                                       headers={"Authorization": f"{scheme} {bank.token}"})
        assert_problem(reply, 404, "certificate_not_found")


async def test_time_claims_that_are_not_integers_are_refused(service: Service,
                                                             bank: Bank) -> None:
    """Issue 11, finding 18: ``nbf`` of Infinity was a 500. Each time claim must be a
    plain integer in range: never a float, a string, a boolean or missing."""
    now = int(service.clock.now().timestamp())
    bad_values: list[Any] = [float("inf"), float("-inf"), float("nan"), 1e400, 10**30,
                             -(10**30), -1, float(now), str(now), True, None, {"n": now}]
    for claim in ("nbf", "exp", "iat"):
        for value in bad_values:
            token = _signed(service, _claims(service, bank.client_id, **{claim: value}))
            reply = await service.http.get(f"/v1/certificates/{ANY_ID}",
                                           headers={"Authorization": f"Bearer {token}"})
            body = assert_problem(reply, 401, "token_invalid")
            assert reply.headers["www-authenticate"] == "Bearer", (claim, value)
            assert "traceback" not in json.dumps(body).lower()
        missing = _signed(service, {k: v for k, v in _claims(service, bank.client_id).items()
                                    if k != claim})
        assert_problem(await service.http.get(f"/v1/certificates/{ANY_ID}",
                                        headers={"Authorization": f"Bearer {missing}"}),
                       401, "token_invalid")
    fine = _signed(service, _claims(service, bank.client_id))
    assert_problem(await service.http.get(f"/v1/certificates/{ANY_ID}",
                                    headers={"Authorization": f"Bearer {fine}"}),
                   404, "certificate_not_found")
