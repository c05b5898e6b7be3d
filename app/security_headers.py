"""Headers on every reply: no MIME sniffing, no referrer, no framing (no page of the service
is meant to be framed); and ``Cache-Control: no-store`` on every reply that sets no caching
of its own, since API replies carry personal data (certificates, lookups, verifications,
signatures, audit). Replies meant to be cached (CA certificate, OCSP GET, CRL, docs assets)
say so themselves."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Raw ASGI headers, made once. The OCSP fast lane puts them into its pre-built replies.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_NO_STORE)
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
