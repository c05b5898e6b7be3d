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

from app.routers.body_limit import read_der_body
from app.routers.problem_catalog import responses_for
from app.services.tsa import MAX_REQUEST_BYTES, TimeStampService

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"


async def tsa_post(request: Request) -> Response:
    der = await read_der_body(request, media_type=TIMESTAMP_QUERY, what="TimeStampReq",
                              requests="time-stamp requests", limit=MAX_REQUEST_BYTES)
    if isinstance(der, Response):
        return der
    service: TimeStampService = request.app.state.container.tsa
    # The peer's address (uvicorn takes X-Forwarded-For only from --forwarded-allow-ips).
    source = request.client.host if request.client else "unknown"
    reply = await service.reply(der, source=source)
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
