"""Relying parties, no account: the OCSP responder (RFC 6960 / RFC 5019) and the CRL.

The handlers take the bare ``Request``: a cache hit must cost no more than routing and a dict
lookup, so nothing here goes through body or parameter validation. OCSP-level problems
(garbage, unknown issuer, an outage) are OCSP error responses; HTTP-level ones (wrong media
type, too large) are problem+json.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.pki.ocsp import MAX_REQUEST_BYTES
from app.routers.problems import problem, problem_responses
from app.services.status import OcspReply, StatusService

router = APIRouter(tags=["status"])

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"
# Base64 of MAX_REQUEST_BYTES, plus room for URL-encoding slack.
_MAX_GET_CHARS = (MAX_REQUEST_BYTES + 2) // 3 * 4 + 16

_OCSP_OK: dict[int | str, dict[str, Any]] = {200: {
    "description": "An OCSP response: successful, or malformedRequest, unauthorized or "
                   "tryLater (never an HTTP 5xx for a bad request)",
    "content": {OCSP_RESPONSE: {"schema": {"type": "string", "format": "binary"}}}}}


def _status(request: Request) -> StatusService:
    service: StatusService = request.app.state.container.status
    return service


@router.post(
    "/ocsp", response_class=Response, operation_id="ocsp_post",
    summary="OCSP request (DER body, application/ocsp-request)",
    openapi_extra={"requestBody": {"required": True, "content": {OCSP_REQUEST: {
        "schema": {"type": "string", "format": "binary"}}}}},
    responses={**_OCSP_OK, **problem_responses(413, 415)})
async def ocsp_post(request: Request) -> Response:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != OCSP_REQUEST:
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       f"send the DER OCSPRequest as {OCSP_REQUEST}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return _too_large()
    der = await request.body()
    if len(der) > MAX_REQUEST_BYTES:
        return _too_large()
    status = _status(request)
    reply = status.cached(der) or await status.answer(der)
    return Response(reply.der, media_type=OCSP_RESPONSE)


@router.get(
    "/ocsp/{encoded:path}", response_class=Response, operation_id="ocsp_get",
    summary="OCSP request in the URL (RFC 6960 A.1: URL-encoded base64 of the DER request)",
    openapi_extra={"parameters": [{
        "name": "encoded", "in": "path", "required": True,
        "description": "standard base64 of the DER OCSPRequest, URL-encoded (it may hold "
                       "`/`, `+` and `=`)", "schema": {"type": "string"}}]},
    responses={**_OCSP_OK, 304: {"description": "Not modified (If-None-Match)"},
               **problem_responses(414)})
async def ocsp_get(request: Request) -> Response:
    encoded: str = request.path_params["encoded"]
    if len(encoded) > _MAX_GET_CHARS:
        return problem(414, "uri_too_long", "URI too long",
                       f"OCSP requests are limited to {MAX_REQUEST_BYTES} bytes")
    status = _status(request)
    try:
        der = b64decode(encoded.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        der = b""  # answered as malformedRequest
    reply = status.cached(der) or await status.answer(der)
    return _get_reply(request, reply)


def _get_reply(request: Request, reply: OcspReply) -> Response:
    if reply.etag is not None and request.headers.get("if-none-match") == reply.etag:
        return Response(status_code=304, headers=reply.headers)
    return Response(reply.der, media_type=OCSP_RESPONSE, headers=reply.headers)


def _too_large() -> Response:
    return problem(413, "body_too_large", "Body too large",
                   f"OCSP requests are limited to {MAX_REQUEST_BYTES} bytes")


@router.get(
    "/crl", response_class=Response, operation_id="crl",
    summary="The CRL (DER), served from the stored copy with ETag",
    responses={200: {"content": {PKIX_CRL: {"schema": {"type": "string", "format": "binary"}}}},
               304: {"description": "Not modified (If-None-Match)"},
               **problem_responses(503)})
async def crl(request: Request) -> Response:
    copy = await _status(request).current_crl()
    if request.headers.get("if-none-match") == copy.etag:
        return Response(status_code=304, headers=copy.headers)
    return Response(copy.der, media_type=PKIX_CRL, headers=copy.headers)
