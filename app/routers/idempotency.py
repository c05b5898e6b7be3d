"""The Idempotency-Key header on POSTs that create or change something: a retry with the same
key and request gets the first reply and does nothing again; the same key with another request
is 422; the same key while the first is still running is 409 (under /csc/v1 these refusals take
the CSC error shape).

"The same request" ignores every PIN-bearing field (the store the wiring gives, see
:mod:`app.storage.idempotency`): a
retry with another PIN gets the first reply too, so neither the stored record nor the answer to
a guess can tell one PIN from another. A body that is not a JSON object is passed through
without idempotency (the route refuses it) and nothing of it is stored."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import DomainError
from app.routers.problems import problem

log = logging.getLogger(__name__)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Reads, protocol endpoints and the sandbox need no idempotency keys.
_EXEMPT = ("/oauth2/", "/ocsp", "/sandbox/", "/callbacks/", "/v1/certificates/lookup")
_CSC = "/csc/"


def _refusal(path: str, status: int, code: str, title: str, detail: str,
             headers: dict[str, str] | None = None) -> Response:
    """problem+json, except under /csc/v1, whose clients know only the CSC (OAuth 2.0 style)
    error shape: there a refusal is 400 ``invalid_request`` (503 ``temporarily_unavailable``
    for an outage), with the same Retry-After."""
    if not path.startswith(_CSC):
        return problem(status, code, title, detail, headers)
    error, status = ("temporarily_unavailable", 503) if status == 503 else ("invalid_request",
                                                                             400)
    return JSONResponse({"error": error, "error_description": f"{title}: {detail}"},
                        status_code=status, headers=headers)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        raw_key = headers.get(b"idempotency-key")
        path: str = scope.get("path", "")
        if (raw_key is None or scope.get("method") != "POST" or path.startswith(_EXEMPT)):
            await self.app(scope, receive, send)
            return
        container = scope["app"].state.container
        key = raw_key.decode("latin-1")
        if not _KEY.match(key):
            await _refusal(path, 422, "idempotency_key_invalid", "Invalid Idempotency-Key",
                           "Idempotency-Key must be 1-255 visible ASCII characters"
                           )(scope, receive, send)
            return
        _scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        try:
            principal = await container.auth.authenticate(token.strip())
        except DomainError:
            await self.app(scope, receive, send)  # the route answers 401 itself
            return

        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        store: Any = container.idempotency  # app.bootstrap's: keys from the server secret
        request_hash = store.keys.fingerprint(scope["method"], path, scope.get("query_string", b""),
                                        bytes(body))
        if request_hash is None:  # not a JSON object: the route refuses it, nothing is kept
            await self.app(scope, replay_body, send)
            return
        try:
            claim = await store.claim(principal.client_id, key, request_hash,
                                      container.clock.now())
        except DomainError as exc:
            await _refusal(path, 503 if exc.kind == "unavailable" else 409, exc.code,
                           exc.title, exc.detail)(scope, receive, send)
            return
        if claim.outcome == "mismatch":
            await _refusal(path, 422, "idempotency_key_reused", "Idempotency-Key reused",
                           "this Idempotency-Key was used with another request"
                           )(scope, receive, send)
            return
        if claim.outcome == "in_progress":
            await _refusal(path, 409, "idempotency_in_progress", "Request in progress",
                           "a request with this Idempotency-Key is still being processed",
                           {"Retry-After": "1"})(scope, receive, send)
            return
        if claim.outcome == "replay":
            await self._replay(claim.status_code or 200, claim.content_type or "",
                               claim.body or b"", send)
            return

        status, content_type, chunks = 500, "", bytearray()

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await self._settle(store.release(principal.client_id, key))
            raise
        if status >= 500:
            await self._settle(store.release(principal.client_id, key))
        else:
            await self._settle(store.complete(principal.client_id, key, status, content_type,
                                              bytes(chunks)))

    @staticmethod
    async def _settle(step: Awaitable[None]) -> None:
        """Records the outcome. The reply has gone out already, so a database outage here must
        not raise (nor hide the request's own error): the key just stays claimed, and a retry
        is told 409 until the claim counts as abandoned."""
        try:
            await step
        except DomainError as exc:
            log.warning("idempotency record not updated", extra={"code_name": exc.code})

    @staticmethod
    async def _replay(status: int, content_type: str, body: bytes, send: Send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode("latin-1")),
                                (b"content-length", str(len(body)).encode()),
                                (b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": body})
