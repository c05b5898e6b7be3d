"""The HTTP edge's headers (issue 11, finding 15): security headers on every reply, no caching
of replies with personal data, /metrics behind an operator scope in production, and docs as a
setting, served from the package (their browser test is tests/browser/)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import create_app
from app.services.auth import BANK_SCOPES, Scope
from app.settings import Settings
from tests.support.app import FixedClock, Service
from tests.support.bank import Bank, make_bank
from tests.support.people import PIN, person
from tests.support.status import OCSP_REQUEST, get_path, ocsp_request

SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "x-frame-options": "DENY"}


def _secured(reply: httpx.Response) -> httpx.Response:
    for name, value in SECURITY.items():
        assert reply.headers.get_list(name) == [value], (reply.request.url, name, reply.headers)
    assert "server" not in reply.headers
    return reply


def _not_stored(reply: httpx.Response) -> httpx.Response:
    assert reply.headers.get_list("cache-control") == ["no-store"], (
        reply.request.url, reply.status_code, reply.headers)
    return _secured(reply)


async def test_replies_with_personal_data_are_never_stored(service: Service,
                                                           bank: Bank) -> None:
    holder = person(71)
    started = _not_stored(await bank.post("/v1/verifications",
                                          {"phone": holder["phone"], "channel": "ars"}))
    _not_stored(await bank.get(f"/v1/verifications/{started.json()['id']}"))
    issued = _not_stored(await bank.issue(holder))
    assert issued.status_code == 201
    cert = issued.json()
    _not_stored(await bank.get(f"/v1/certificates/{cert['id']}"))
    _not_stored(await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]}))
    _not_stored(await bank.post(f"/v1/certificates/{cert['id']}/signatures",
                                {"pin": PIN, "data": "aGVsbG8=", "format": "raw"}))
    operator = await make_bank(service.http, service.container, "ops", [Scope.AUDIT.value])
    _not_stored(await operator.get("/v1/audit"))
    _not_stored(await service.http.get(f"/v1/status/{cert['serial']}"))
    # Problems and operations replies too: nothing says they may be cached.
    _not_stored(await bank.get("/v1/certificates/unknown"))
    _not_stored(await service.http.get("/no/such/path"))
    _not_stored(await service.http.get("/healthz"))
    _not_stored(await service.http.get("/metrics"))
    too_large = await bank.post("/v1/verifications", content=b"{" + b" " * 70_000 + b"}",
                                headers={"Content-Type": "application/json"})
    assert too_large.status_code == 413
    _not_stored(too_large)


async def test_public_replies_keep_their_own_caching_and_get_the_headers(service: Service,
                                                                         bank: Bank) -> None:
    ca = _secured(await service.http.get("/ca/certificate"))
    assert ca.headers["cache-control"] == "public, max-age=86400"
    _secured(await service.http.get("/crl"))
    issued = (await bank.issue(person(72))).json()
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    miss = _secured(await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST))
    hit = _secured(await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST))
    assert "x-request-id" not in hit.headers  # the fast lane answered, headers and all
    assert hit.content == miss.content
    got = _secured(await service.http.get(get_path(request_der)))
    assert "x-request-id" not in got.headers
    assert got.headers["cache-control"].startswith("max-age=")
    not_modified = await service.http.get(get_path(request_der),
                                          headers={"If-None-Match": got.headers["etag"]})
    assert not_modified.status_code == 304
    _secured(not_modified)


def test_metrics_read_is_an_operator_scope_never_a_bank_default() -> None:
    assert Scope.METRICS.value == "metrics:read"
    assert Scope.METRICS not in BANK_SCOPES


async def test_a_bank_cannot_get_a_metrics_token(service: Service, bank: Bank) -> None:
    reply = await service.http.post("/oauth2/token", data={
        "grant_type": "client_credentials", "scope": "metrics:read"},
        auth=(bank.client_id, bank.client_secret))
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_scope"


# --- docs ----------------------------------------------------------------------------------

# What a page makes the browser fetch: src/href/spec-url attributes and Swagger's url.
_LOADS = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


async def test_docs_pages_load_only_this_origins_files(service: Service) -> None:
    for page, assets in (("/docs", {"/docs/assets/swagger-ui-bundle.js",
                                    "/docs/assets/swagger-ui.css", "/docs/assets/favicon.png",
                                    "/openapi.json"}),
                         ("/redoc", {"/docs/assets/redoc.standalone.js",
                                     "/docs/assets/favicon.png", "/openapi.json"})):
        reply = _not_stored(await service.http.get(page))
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
        loaded = {a or b for a, b in _LOADS.findall(reply.text)}
        assert loaded == assets, (page, loaded)
        assert "cdn." not in reply.text and "fonts.googleapis" not in reply.text
        policy = reply.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        for asset in assets:
            served = _secured(await service.http.get(asset))
            assert served.status_code == 200 and served.content, asset
    assert '"validatorUrl": null' in (await service.http.get("/docs")).text
    script = await service.http.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["cache-control"] == "public, max-age=86400"
    assert "javascript" in script.headers["content-type"]


@pytest.fixture
async def no_docs(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"docs_enabled": False}), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            yield http


async def test_docs_can_be_turned_off(no_docs: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        reply = _not_stored(await no_docs.get(path))
        assert reply.status_code == 404, path
        assert reply.headers["content-type"] == "application/problem+json"
    assert (await no_docs.get("/healthz")).status_code == 200


def test_docs_are_off_in_production_unless_turned_on() -> None:
    assert Settings(environment="development").serves_docs is True
    assert Settings(environment="production").serves_docs is False
    assert Settings(environment="production", docs_enabled=True).serves_docs is True
    assert Settings(environment="development", docs_enabled=False).serves_docs is False
