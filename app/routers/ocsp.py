"""Relying parties, no account: the OCSP responder (RFC 6960 / RFC 5019) and the CRL.

OCSP-level problems (garbage, an unknown issuer, an outage) are OCSP error responses;
HTTP-level ones (wrong media type, too large) are problem+json.

Speed: an OCSP request seen before is answered by :class:`OcspFastLane`, an outermost ASGI
middleware, from the status service's in-process cache: no routing, no request objects, no
other middleware (it counts the reply in the app's metrics itself). Everything else (a miss, a
nonce, bad input) falls through to the routes below, which :func:`install` puts straight on the
app: an included router would cost a second routing pass per request.
"""

from __future__ import annotations

import binascii
import time
from base64 import b64decode
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routers.ocsp_headers import crl_wire, ocsp_wire
from app.routers.problem_catalog import responses_for
from app.routers.problems import problem
from app.services.status import MAX_REQUEST_BYTES, OcspReply, StatusService

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"
GET_TEMPLATE = "/ocsp/{encoded:path}"
# Base64 of MAX_REQUEST_BYTES, plus room for URL-encoding slack.
_MAX_GET_CHARS = (MAX_REQUEST_BYTES + 2) // 3 * 4 + 16

_OCSP_OK: dict[int | str, dict[str, Any]] = {200: {
    "description": "An OCSP response: successful, or malformedRequest, unauthorized or "
                   "tryLater (never an HTTP 5xx for a bad request)",
    "content": {OCSP_RESPONSE: {"schema": {"type": "string", "format": "binary"}}}}}


def _status(request: Request) -> StatusService:
    service: StatusService = request.app.state.container.status
    return service


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def _decode_get_path(encoded: str) -> bytes:
    """The DER request of a GET path; empty (so: malformedRequest) when it is not base64."""
    try:
        return b64decode(encoded.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _matches(if_none_match: str | None, etag: str | None) -> bool:
    if if_none_match is None or etag is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return etag in tags or "*" in tags


def _count(state: Any, method: str, template: str, status: int, label: str,
           seconds: float | None = None) -> None:
    """The app's Prometheus metrics (app/observability.py), when it has them."""
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        return
    try:
        metrics.ocsp.labels(label).inc()
        if seconds is not None:  # a fast-lane reply: the request middleware never saw it
            metrics.requests.labels(method, template, str(status)).inc()
            metrics.latency.labels(method, template).observe(seconds)
    except (AttributeError, ValueError):
        pass


# --- routes ----------------------------------------------------------------------------------


async def ocsp_post(request: Request) -> Response:
    if _media_type(request.headers.get("content-type", "")) != OCSP_REQUEST:
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       f"send the DER OCSPRequest as {OCSP_REQUEST}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return _too_large()
    der = bytearray()
    async for chunk in request.stream():  # counted as it arrives, also without a length
        der += chunk
        if len(der) > MAX_REQUEST_BYTES:
            return _too_large()
    status = _status(request)
    reply = status.cached(bytes(der)) or await status.answer(bytes(der))
    _count(request.app.state, "POST", "/ocsp", 200, reply.label)
    return Response(reply.der, media_type=OCSP_RESPONSE)


async def ocsp_get(request: Request) -> Response:
    encoded: str = request.path_params["encoded"]
    if len(encoded) > _MAX_GET_CHARS:
        return problem(414, "uri_too_long", "URI too long",
                       f"OCSP requests are limited to {MAX_REQUEST_BYTES} bytes")
    der = _decode_get_path(encoded)
    status = _status(request)
    reply = status.cached(der) or await status.answer(der)
    _count(request.app.state, "GET", GET_TEMPLATE, 200, reply.label)
    wire = reply.wire or ocsp_wire(reply)
    if _matches(request.headers.get("if-none-match"), wire.etag):
        return Response(status_code=304, headers=wire.headers)
    return Response(reply.der, media_type=OCSP_RESPONSE, headers=wire.headers)


def _too_large() -> Response:
    return problem(413, "body_too_large", "Body too large",
                   f"OCSP requests are limited to {MAX_REQUEST_BYTES} bytes")


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
    """Add the routes to ``app`` itself and the fast lane as the outermost middleware (call it
    after every other ``add_middleware``)."""
    for path, endpoint, method, options in ROUTES:
        app.add_api_route(path, endpoint, methods=[method], response_class=Response,
                          tags=["status"], **options)
    app.add_middleware(OcspFastLane)


# --- the fast lane -----------------------------------------------------------------------------


class OcspFastLane:
    """Answers OCSP requests whose reply is in the status service's memory (see
    :meth:`StatusService.cached`) before the rest of the stack runs; passes everything else on
    untouched (a POST body it read is replayed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/ocsp" and scope["method"] == "POST":
                await self._post(scope, receive, send)
                return
            if path.startswith("/ocsp/") and scope["method"] == "GET":
                await self._get(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _service(scope: Scope) -> StatusService | None:
        container = getattr(scope["app"].state, "container", None)
        return None if container is None else getattr(container, "status", None)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        content_type = length = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if (_media_type(content_type.decode("latin-1")) != OCSP_REQUEST
                or (length.isdigit() and int(length) > MAX_REQUEST_BYTES)):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST_BYTES or not message.get("more_body", False):
                break
        service = self._service(scope)
        reply = service.cached(body) if service is not None else None
        if reply is None or len(body) > MAX_REQUEST_BYTES:
            await self.app(scope, _replay(messages, receive), send)
            return
        wire = reply.wire or ocsp_wire(reply)
        await send({"type": "http.response.start", "status": 200, "headers": wire.post_raw})
        await send({"type": "http.response.body", "body": reply.der})
        _count(scope["app"].state, "POST", "/ocsp", 200, reply.label,
               time.perf_counter() - started)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        encoded: str = scope["path"][len("/ocsp/"):]
        service = self._service(scope)
        reply: OcspReply | None = None
        if service is not None and len(encoded) <= _MAX_GET_CHARS:
            der = _decode_get_path(encoded)
            reply = service.cached(der) if der else None
        if reply is None:
            await self.app(scope, receive, send)
            return
        wire = reply.wire or ocsp_wire(reply)
        if_none_match = next((value.decode("latin-1") for name, value in scope["headers"]
                              if name == b"if-none-match"), None)
        if _matches(if_none_match, wire.etag):
            headers = [item for item in wire.get_raw if item[0] != b"content-length"]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            status = 304
        else:
            await send({"type": "http.response.start", "status": 200, "headers": wire.get_raw})
            await send({"type": "http.response.body", "body": reply.der})
            status = 200
        _count(scope["app"].state, "GET", GET_TEMPLATE, status, reply.label,
               time.perf_counter() - started)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that first gives back what was already read, then reads on."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
