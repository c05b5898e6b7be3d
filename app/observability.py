"""Request ids on every log line and problem reply, one JSON access line per request, and
Prometheus metrics at /metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# What the access line may say about the caller, filled in by the auth dependency. A mutable
# holder, so that a value set in a copied context (a dependency) reaches the middleware.
request_client_var: ContextVar[dict[str, str] | None] = ContextVar("request_client",
                                                                    default=None)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
access_log = logging.getLogger("certcloud.access")


def note_client(client_id: str) -> None:
    """Name the authenticated bank client on this request's access line."""
    holder = request_client_var.get()
    if holder is not None:
        holder["client_id"] = client_id


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _Flush:
    """A collector of no metrics: collecting it runs the flushers."""

    def __init__(self, flushers: list[Callable[[], None]]) -> None:
        self._flushers = flushers

    def collect(self) -> Iterator[Metric]:
        for flush in self._flushers:
            flush()
        return iter(())


class Metrics:
    """The service's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # First in the registry, so every collection (a scrape, a test's get_sample_value)
        # first adds the counts kept aside (the OCSP fast lane's tallies).
        self.flushers: list[Callable[[], None]] = []
        self.registry.register(_Flush(self.flushers))
        self.requests = Counter("certcloud_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "certcloud_http_request_seconds", "HTTP request latency", ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.events = Counter("certcloud_lifecycle_events",
                              "Lifecycle events (issue, renew, sign, lock, revoke, …) by result",
                              ["action", "result"], registry=self.registry)
        self.notices = Counter("certcloud_notices", "SMS notices by delivery result (sent, "
                               "failed: tried again later)", ["result"],
                               registry=self.registry)
        self.ocsp = Counter("certcloud_ocsp_responses", "OCSP answers by certificate status",
                            ["status"], registry=self.registry)
        self.crl_age = Gauge("certcloud_crl_age_seconds", "Age of the CRL being served",
                             registry=self.registry)
        self.provider_up = Gauge("certcloud_provider_up",
                                 "1 when the last phone-provider call succeeded",
                                 registry=self.registry)
        self.pool_checked_out = Gauge("certcloud_db_pool_checked_out",
                                      "Database connections in use", registry=self.registry)
        self.database_up = Gauge("certcloud_database_up", "1 when the last readiness "
                                 "check reached the database", registry=self.registry)
        self.provider_up.set(1)
        # The process (CPU, memory, open files), the garbage collector and the Python version.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def watch_crl(self, age_seconds: Callable[[], float | None]) -> None:
        """The CRL age is asked for at each scrape, so it is right from start and never stale
        (NaN while no CRL is known)."""
        def age() -> float:
            seconds = age_seconds()
            return float("nan") if seconds is None else seconds
        self.crl_age.set_function(age)


class RequestContextMiddleware:
    """Gives each request an id (a sane incoming X-Request-ID is kept), echoes it in the reply
    headers, counts requests by route template and status, and logs one access line: method,
    route template (never the raw path or query), status, duration, request id and bank
    client. Never a header, a body or a query value."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_requests: bool = True) -> None:
        self.app, self.metrics, self.log_requests = app, metrics, log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        client: dict[str, str] = {}
        client_token = request_client_var.set(client)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            seconds = time.perf_counter() - started
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(seconds)
            if self.log_requests:
                access_log.info("request", extra={
                    "method": method, "route": template, "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client_id": client.get("client_id")})
            request_client_var.reset(client_token)
            request_id_var.reset(token)
