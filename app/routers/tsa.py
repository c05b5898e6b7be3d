"""POST /tsa: the RFC 3161 time-stamping authority (no account; limited per source address).

Refusals a time-stamp client reads are in the protocol: a body that is not a TimeStampReq, an
imprint algorithm other than SHA-256/384/512, another policy, or request extensions get a
200 ``application/timestamp-reply`` with status rejection and the PKIFailureInfo bit
(badDataFormat, badAlg, unacceptedPolicy, unacceptedExtension; timeNotAvailable when no TSA
certificate is valid). HTTP-level refusals, before any parsing, are problem+json: a wrong
media type (415), a body over 4096 bytes (413), the per-address limit (429).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.routers.problem_catalog import responses_for
from app.routers.problems import problem
from app.services.tsa import MAX_REQUEST_BYTES, TimeStampService

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def _too_large() -> Response:
    return problem(413, "body_too_large", "Body too large",
                   f"time-stamp requests are limited to {MAX_REQUEST_BYTES} bytes")


async def tsa_post(request: Request) -> Response:
    if _media_type(request.headers.get("content-type", "")) != TIMESTAMP_QUERY:
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       f"send the DER TimeStampReq as {TIMESTAMP_QUERY}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return _too_large()
    der = bytearray()
    async for chunk in request.stream():  # counted as it arrives, also without a length
        der += chunk
        if len(der) > MAX_REQUEST_BYTES:
            return _too_large()
    service: TimeStampService = request.app.state.container.tsa
    # The peer's address (uvicorn takes X-Forwarded-For only from --forwarded-allow-ips).
    source = request.client.host if request.client else "unknown"
    reply = await service.reply(bytes(der), source=source)
    return Response(reply, media_type=TIMESTAMP_REPLY, headers={"Cache-Control": "no-store"})


_BINARY = {"schema": {"type": "string", "format": "binary"}}


def install(app: FastAPI) -> None:
    options: dict[str, Any] = {
        "operation_id": "tsa_post",
        "summary": "RFC 3161 time-stamp (DER TimeStampReq as application/timestamp-query)",
        "description": (
            "No account; limited per source address. The reply is a DER TimeStampResp "
            "(`application/timestamp-reply`): status granted with a token signed by the TSA "
            "certificate the CA issued (EKU timeStamping, critical), the nonce echoed, the "
            "configured policy (`CERTCLOUD_TSA__POLICY_OID`), accuracy stated, ordering "
            "false, random 127-bit serial numbers, and the TSA certificate and CA chain "
            "when `certReq` is true. A request the TSA will not stamp is still a 200 "
            "timestamp-reply, with status rejection and the PKIFailureInfo bit: "
            "badDataFormat (not a DER TimeStampReq, or an imprint of the wrong length), "
            "badAlg (an imprint other than SHA-256, SHA-384 or SHA-512), unacceptedPolicy, "
            "unacceptedExtension, timeNotAvailable. Only HTTP-level refusals are "
            f"problem+json: another media type (415), a body over {MAX_REQUEST_BYTES} bytes "
            "(413), the per-address limit (429)."),
        "openapi_extra": {"requestBody": {"required": True,
                                          "content": {TIMESTAMP_QUERY: _BINARY}}},
        "responses": {200: {"description": "A DER TimeStampResp (granted or rejection)",
                            "content": {TIMESTAMP_REPLY: _BINARY}},
                      **responses_for("tsa_post")},
    }
    app.add_api_route("/tsa", tsa_post, methods=["POST"], response_class=Response,
                      tags=["status"], **options)
