"""The edge: every error becomes application/problem+json (RFC 9457) with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain.errors import DomainError
from app.observability import request_id_var

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
STATUS_BY_KIND = {
    "invalid": 422, "not_found": 404, "conflict": 409, "pin_invalid": 403, "pin_locked": 423,
    "unauthenticated": 401, "forbidden": 403, "rate_limited": 429, "unavailable": 503,
}
_CODE_BY_STATUS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden",
                   404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
                   413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request",
                   429: "rate_limited", 503: "dependency_unavailable"}


# Where the ``type`` URIs point: GET /problems/{code} of this service. Set by install() from
# CERTCLOUD_PUBLIC_BASE_URL (a process serves one app; the middlewares that answer problems
# themselves have no settings at hand).
_type_base = ["http://127.0.0.1:8000"]


def problem_type(code: str) -> str:
    return f"{_type_base[0]}/problems/{code}"


def problem(status: int, code: str, title: str, detail: str,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": problem_type(code), "title": title, "status": status,
            "detail": detail, "code": code, **extra}
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = STATUS_BY_KIND.get(exc.kind, 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and "retry_after" in exc.extra:
        retry = str(exc.extra["retry_after"])
        headers = {"Retry-After": retry}
        if "limit" in exc.extra:
            headers.update({"RateLimit-Limit": str(exc.extra["limit"]),
                            "RateLimit-Remaining": "0", "RateLimit-Reset": retry})
    if status == 503:
        cause = exc.__cause__
        log.warning("dependency unavailable", extra={
            "problem_code": exc.code, "cause": None if cause is None else type(cause).__name__})
    return problem(status, exc.code, exc.title, exc.detail, headers, **exc.extra)


def _refused_media_type(request: Request, exc: RequestValidationError) -> bool:
    """The JSON body failed because it was sent as another media type (FastAPI then validates
    the raw bytes and would say 422). A body without Content-Type is read as JSON."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    if not any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors()):
        return False
    sent = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return not (not sent or sent == "application/json"
                or (sent.startswith("application/") and sent.endswith("+json")))


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if _refused_media_type(request, exc):
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       "this operation takes application/json")
    errors = []
    for error in exc.errors():
        # Echo where and why, never the submitted value (it may be a PIN or an RRN).
        errors.append({"loc": [str(part) for part in error.get("loc", ())],
                       "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))})
    malformed = any(e["type"] == "json_invalid" for e in errors)
    code = "malformed_json" if malformed else "invalid_request"
    detail = "the request body is not valid JSON" if malformed else "; ".join(
        f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
    return problem(422, code, "Invalid request", detail, errors=errors)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, code.replace("_", " ").capitalize(), str(exc.detail),
                   dict(exc.headers) if exc.headers else None)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred")


def install(app: FastAPI, public_base_url: str = "http://127.0.0.1:8000") -> None:
    _type_base[0] = public_base_url.rstrip("/")
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
