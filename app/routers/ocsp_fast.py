"""The OCSP fast lane: a cache hit answered before the framework runs at all.

:class:`CertcloudApp` is FastAPI with one change: its ASGI entry point first offers each request
to :class:`OcspFastLane`. A POST ``/ocsp`` or GET ``/ocsp/...`` whose reply is in the status
service's memory (:meth:`StatusService.cached`) is answered there, from pre-rendered header
lists (RFC 5019 headers and the security headers, app/routers/ocsp_headers.py): no
Starlette/FastAPI entry (telemetry check, error middleware, request context, routing), no
request objects. Everything else (a miss, a nonce, bad input, every other path) goes to FastAPI
untouched (a POST body the lane read is replayed).

Measured with py-spy on a loaded ``certcloud serve --workers 1`` (bench/status.py): inside
Starlette's stack the lane cost about 40 µs a hit above a bare ASGI app on the same uvicorn,
a quarter of it Prometheus ``labels()`` lookups, and a bound child's ``inc()`` and
``observe()`` still cost ~5 µs (locks, a bucket scan). So the lane tallies its replies in
plain integers and adds them to the app's metrics (children bound once) at each scrape.
"""

from __future__ import annotations

import binascii
import time
from base64 import b64decode
from bisect import bisect_left
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routers.ocsp_headers import ocsp_wire
from app.services.status import MAX_REQUEST_BYTES, OcspReply, StatusService

OCSP_REQUEST = "application/ocsp-request"
_OCSP_REQUEST_RAW = OCSP_REQUEST.encode()
GET_TEMPLATE = "/ocsp/{encoded:path}"
# Base64 of MAX_REQUEST_BYTES, plus room for URL-encoding slack.
MAX_GET_CHARS = (MAX_REQUEST_BYTES + 2) // 3 * 4 + 16


class CertcloudApp(FastAPI):
    """FastAPI whose OCSP cache hits never enter Starlette (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ocsp_fast_lane = OcspFastLane(super().__call__, self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ocsp_fast_lane(scope, receive, send)


class _Tally:
    """The fast-lane replies of one kind (method, status, answer) since the last flush: counts
    and latency buckets in plain integers (a hit costs no locks), added to the app's metrics
    children, bound once, whenever the registry is collected (``Metrics.flushers``)."""

    __slots__ = ("bounds", "buckets", "count", "latency", "ocsp", "requests", "total")

    def __init__(self, metrics: Any, method: str, template: str, status: int,
                 label: str) -> None:
        self.ocsp = metrics.ocsp.labels(label)
        self.requests = metrics.requests.labels(method, template, str(status))
        self.latency = metrics.latency.labels(method, template)
        self.bounds: tuple[float, ...] = tuple(self.latency._upper_bounds)  # ends with +Inf
        self.count, self.total = 0, 0.0
        self.buckets = [0] * len(self.bounds)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.buckets[bisect_left(self.bounds, seconds)] += 1  # Prometheus buckets are <=

    def flush(self) -> None:
        count, total, buckets = self.count, self.total, self.buckets
        if not count:
            return
        self.count, self.total, self.buckets = 0, 0.0, [0] * len(self.bounds)
        self.ocsp.inc(count)
        self.requests.inc(count)
        # Histogram.observe() per hit costs ~3 µs; the child's sum and buckets take the lot.
        self.latency._sum.inc(total)
        for index, hits in enumerate(buckets):
            if hits:
                self.latency._buckets[index].inc(hits)


class OcspFastLane:
    """Answers OCSP requests whose reply is in memory; passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self._state = owner.state
        self._tallies: dict[tuple[str, int, str], _Tally | None] = {}
        self._flushed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/ocsp":
                if scope["method"] == "POST":
                    await self._post(scope, receive, send)
                    return
            elif path.startswith("/ocsp/") and scope["method"] == "GET":
                await self._get(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _service(self) -> StatusService | None:
        container = getattr(self._state, "container", None)
        return None if container is None else getattr(container, "status", None)

    def _count(self, method: str, template: str, status: int, label: str,
               seconds: float) -> None:
        """Count the reply for the app's Prometheus metrics (app/observability.py), when it has
        them: the answer, and the request and its latency (the request middleware never sees a
        fast-lane reply)."""
        key = (method, status, label)
        tally = self._tallies.get(key)
        if tally is None:
            if key in self._tallies:
                return
            metrics = getattr(self._state, "metrics", None)
            tally = None
            if metrics is not None:
                try:
                    tally = _Tally(metrics, method, template, status, label)
                    if not self._flushed:
                        metrics.flushers.append(self.flush)  # at every collection
                        self._flushed = True
                except (AttributeError, ValueError):
                    tally = None
            self._tallies[key] = tally
            if tally is None:
                return
        tally.add(seconds)

    def flush(self) -> None:
        for tally in self._tallies.values():
            if tally is not None:
                tally.flush()

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        content_type = length = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if ((content_type != _OCSP_REQUEST_RAW
             and _media_type(content_type.decode("latin-1")) != OCSP_REQUEST)
                or (length.isdigit() and int(length) > MAX_REQUEST_BYTES)):
            await self.app(scope, receive, send)
            return
        message = await receive()
        messages = [message]
        body: bytes = message.get("body", b"")
        while message["type"] == "http.request" and message.get("more_body", False):
            if len(body) > MAX_REQUEST_BYTES:
                break
            message = await receive()
            messages.append(message)
            if message["type"] == "http.request":
                body += message.get("body", b"")
        service = self._service()
        reply = service.cached(body) if service is not None else None
        if reply is None or len(body) > MAX_REQUEST_BYTES:
            await self.app(scope, _replay(messages, receive), send)
            return
        wire = reply.wire or ocsp_wire(reply)
        await send({"type": "http.response.start", "status": 200, "headers": wire.post_raw})
        await send({"type": "http.response.body", "body": reply.der})
        self._count("POST", "/ocsp", 200, reply.label, time.perf_counter() - started)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        encoded: str = scope["path"][len("/ocsp/"):]
        service = self._service()
        reply: OcspReply | None = None
        if service is not None and len(encoded) <= MAX_GET_CHARS:
            der = decode_get_path(encoded)
            reply = service.cached(der) if der else None
        if reply is None:
            await self.app(scope, receive, send)
            return
        wire = reply.wire or ocsp_wire(reply)
        if_none_match = next((value.decode("latin-1") for name, value in scope["headers"]
                              if name == b"if-none-match"), None)
        if matches(if_none_match, wire.etag):
            headers = [item for item in wire.get_raw if item[0] != b"content-length"]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            status = 304
        else:
            await send({"type": "http.response.start", "status": 200, "headers": wire.get_raw})
            await send({"type": "http.response.body", "body": reply.der})
            status = 200
        self._count("GET", GET_TEMPLATE, status, reply.label, time.perf_counter() - started)


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def decode_get_path(encoded: str) -> bytes:
    """The DER request of a GET path; empty (so: malformedRequest) when it is not base64."""
    try:
        return b64decode(encoded.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        return b""


def matches(if_none_match: str | None, etag: str | None) -> bool:
    if if_none_match is None or etag is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return etag in tags or "*" in tags


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that first gives back what was already read, then reads on."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
