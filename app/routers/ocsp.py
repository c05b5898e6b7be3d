"""Relying parties, no account: the OCSP responder (RFC 6960 / RFC 5019) and the CRL.

OCSP-level problems (garbage, an unknown issuer, an outage) are OCSP error responses;
HTTP-level ones (wrong media type, too large) are problem+json.

Speed: an OCSP request seen before is answered by the fast lane (app/routers/ocsp_fast.py),
in front of the whole framework, from the status service's in-process cache. Everything else
(a miss, a nonce, bad input) falls through to the routes below, which :func:`install` puts
straight on the app: an included router would cost a second routing pass per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.routers.body_limit import read_der_body
from app.routers.ocsp_fast import GET_TEMPLATE, MAX_GET_CHARS, OCSP_REQUEST
from app.routers.ocsp_fast import decode_get_path as _decode_get_path
from app.routers.ocsp_fast import matches as _matches
from app.routers.ocsp_headers import crl_wire, ocsp_wire
from app.routers.problem_catalog import responses_for
from app.routers.problems import problem
from app.services.status import MAX_REQUEST_BYTES, StatusService

OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"

_OCSP_OK: dict[int | str, dict[str, Any]] = {200: {
    "description": "An OCSP response: successful, or malformedRequest, unauthorized or "
                   "tryLater (never an HTTP 5xx for a bad request)",
    "content": {OCSP_RESPONSE: {"schema": {"type": "string", "format": "binary"}}}}}


def _status(request: Request) -> StatusService:
    service: StatusService = request.app.state.container.status
    return service


def _count(state: Any, label: str) -> None:
    """The answer in the app's Prometheus metrics (app/observability.py), when it has them
    (the request middleware counts the request)."""
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        return
    with contextlib.suppress(AttributeError, ValueError):
        metrics.ocsp.labels(label).inc()


# --- routes ----------------------------------------------------------------------------------


async def ocsp_post(request: Request) -> Response:
    der = await read_der_body(request, media_type=OCSP_REQUEST, what="OCSPRequest",
                              requests="OCSP requests", limit=MAX_REQUEST_BYTES)
    if isinstance(der, Response):
        return der
    status = _status(request)
    reply = status.cached(der) or await status.answer(der)
    _count(request.app.state, reply.label)
    return Response(reply.der, media_type=OCSP_RESPONSE)


async def ocsp_get(request: Request) -> Response:
    encoded: str = request.path_params["encoded"]
    if len(encoded) > MAX_GET_CHARS:
        return problem(414, "uri_too_long", "URI too long",
                       f"OCSP requests are limited to {MAX_REQUEST_BYTES} bytes")
    der = _decode_get_path(encoded)
    status = _status(request)
    reply = status.cached(der) or await status.answer(der)
    _count(request.app.state, reply.label)
    wire = reply.wire or ocsp_wire(reply)
    if _matches(request.headers.get("if-none-match"), wire.etag):
        return Response(status_code=304, headers=wire.headers)
    return Response(reply.der, media_type=OCSP_RESPONSE, headers=wire.headers)


async def crl(request: Request) -> Response:
    copy = await _status(request).current_crl()
    wire = copy.wire or crl_wire(copy)
    if _matches(request.headers.get("if-none-match"), wire.etag):
        return Response(status_code=304, headers=wire.headers)
    return Response(copy.der, media_type=PKIX_CRL, headers=wire.headers)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
ROUTES: list[tuple[str, Callable[..., Any], str, dict[str, Any]]] = [
    ("/ocsp", ocsp_post, "POST", {
        "operation_id": "ocsp_post", "summary": "OCSP request (DER body, application/ocsp-request)",
        "openapi_extra": {"requestBody": {"required": True, "content": {OCSP_REQUEST: _BINARY}}},
        "responses": {**_OCSP_OK, **responses_for("ocsp_post")}}),
    (GET_TEMPLATE, ocsp_get, "GET", {
        "operation_id": "ocsp_get",
        "summary": "OCSP request in the URL (RFC 6960 A.1: URL-encoded base64 of the DER request)",
        "openapi_extra": {"parameters": [{
            "name": "encoded", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "standard base64 of the DER OCSPRequest, URL-encoded (it may hold "
                           "`/`, `+` and `=`)"}]},
        "responses": {**_OCSP_OK, 304: {"description": "Not modified (If-None-Match)"},
                      **responses_for("ocsp_get")}}),
    ("/crl", crl, "GET", {
        "operation_id": "crl", "summary": "The CRL (DER), served from the stored copy with ETag",
        "responses": {200: {"content": {PKIX_CRL: _BINARY}},
                      304: {"description": "Not modified (If-None-Match)"},
                      **responses_for("crl")}}),
]


def install(app: FastAPI) -> None:
    """Add the routes to ``app`` itself (the fast lane is :class:`~.ocsp_fast.CertcloudApp`)."""
    for path, endpoint, method, options in ROUTES:
        app.add_api_route(path, endpoint, methods=[method], response_class=Response,
                          tags=["status"], **options)
