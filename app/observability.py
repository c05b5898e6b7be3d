"""Request ids on every log line and problem reply, and Prometheus metrics at /metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class Metrics:
    """The service's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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


class RequestContextMiddleware:
    """Gives each request an id (a sane incoming X-Request-ID is kept), echoes it in the reply
    headers, and counts requests by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
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
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(
                time.perf_counter() - started)
            request_id_var.reset(token)
