"""POST /oauth2/token: client credentials (RFC 6749 §4.4), errors as RFC 6749 §5.2."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import AuthDep
from app.routers.problem_catalog import responses_for
from app.routers.schemas import TokenReply
from app.services.auth import OAuthError

router = APIRouter(tags=["oauth2"])

_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"},
                                                  "error_description": {"type": "string"}}}


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="certcloud"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse({"error": exc.error, "error_description": exc.description},
                        status_code=exc.status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


@router.post(
    "/oauth2/token", response_model=TokenReply, operation_id="issue_token",
    summary="Get an access token (client credentials)",
    openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["grant_type"],
                "properties": {"grant_type": {"type": "string", "enum": ["client_credentials"]},
                               "scope": {"type": "string"},
                               "client_id": {"type": "string"},
                               "client_secret": {"type": "string", "format": "password"}}}}}}},
    responses={400: {"description": "RFC 6749 error",
                     "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
               401: {"description": "invalid_client",
                     "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
               429: {"description": "rate_limited: too many attempts from this address or "
                                    "failures of this client id; see Retry-After",
                     "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
               **responses_for("issue_token")},
)
async def issue_token(request: Request, auth: AuthDep) -> JSONResponse:
    try:
        content_type = request.headers.get("content-type", "").lower()  # RFC 9110 §8.3.1
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise OAuthError("invalid_request",
                             "the body must be application/x-www-form-urlencoded")
        form = await request.form()
        keys = [key for key, _ in form.multi_items()]
        if len(keys) != len(set(keys)):  # RFC 6749 §3.2; a dict would keep one silently
            raise OAuthError("invalid_request", "request parameters must not be repeated")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        if fields.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type" if fields.get("grant_type")
                             else "invalid_request", "grant_type must be client_credentials")
        basic = _basic_credentials(request.headers.get("authorization"))
        in_body = fields.get("client_id"), fields.get("client_secret")
        if basic and any(in_body):
            raise OAuthError("invalid_request", "use one client authentication method only")
        client_id, secret = basic or in_body
        if not client_id or not secret:
            raise OAuthError("invalid_client", "client authentication is required", 401)
        # The peer's address (uvicorn takes X-Forwarded-For only from --forwarded-allow-ips).
        source = request.client.host if request.client else "unknown"
        token = await auth.issue_token(client_id, secret, fields.get("scope"), source=source)
    except OAuthError as exc:
        return _oauth_error(exc)
    reply = TokenReply(access_token=token.access_token, expires_in=token.expires_in,
                       scope=token.scope)
    return JSONResponse(reply.model_dump(), headers={"Cache-Control": "no-store",
                                                     "Pragma": "no-cache"})
