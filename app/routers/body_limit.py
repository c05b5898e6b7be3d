"""A cap on request bodies, checked before anything reads them."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routers.problems import problem


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTPExceptions through its parser."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


class BodyLimitMiddleware:
    """413 problem+json for a body over ``limit`` bytes, by Content-Length or as it streams."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Inside RequestContextMiddleware: the reply carries the request id like any other.
        await problem(413, "body_too_large", "Body too large",
                      f"request bodies are limited to {self.limit} bytes")(scope, receive, send)


async def read_der_body(request: Request, *, media_type: str, what: str, requests: str,
                        limit: int) -> bytes | Response:
    """The DER body of a protocol POST (OCSP, time-stamp), or the problem+json refusing it:
    415 for another media type than ``media_type`` ("send the DER ``what`` as ..."), 413 over
    ``limit`` bytes ("``requests`` are limited to ..."), by Content-Length or as it streams."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != media_type:
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       f"send the DER {what} as {media_type}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return _body_too_large(requests, limit)
    der = bytearray()
    async for chunk in request.stream():  # counted as it arrives, also without a length
        der += chunk
        if len(der) > limit:
            return _body_too_large(requests, limit)
    return bytes(der)


def _body_too_large(requests: str, limit: int) -> Response:
    return problem(413, "body_too_large", "Body too large",
                   f"{requests} are limited to {limit} bytes")
