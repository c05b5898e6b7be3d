"""Problem replies (RFC 9457 application/problem+json naming the problem by a stable ``code``)."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"
PUBLIC_BASE_URL = "http://certcloud.test"  # tests/support/app.py make_settings, server_env

# What a reply must never carry: internals of the server.
LEAKS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "sqlite3", "Exception")


def assert_problem(response: httpx.Response, status: int, code: str | None = None,
                   base_url: str = PUBLIC_BASE_URL) -> dict[str, Any]:
    """A well-formed problem of ``status`` naming ``code`` (any code when None): the media
    type, the five members, a ``type`` URI under the public base URL (the app's page on the
    code), the request id, no internals. Returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict)
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert body["status"] == status, body
    assert body["type"] == f"{base_url}/problems/{body['code']}", body
    assert body.get("request_id") == response.headers["x-request-id"], body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    assert isinstance(body["code"], str) and body["code"].replace("_", "").isalpha()
    if code is not None:
        assert body["code"] == code, body
    for leak in LEAKS:
        assert leak not in response.text, response.text
    return body
