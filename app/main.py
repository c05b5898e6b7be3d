"""The ASGI application factory: ``app.main:create_app``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.bootstrap import build_container
from app.clock import SystemClock
from app.domain.ports import Clock, PhoneVerifier
from app.logs import configure_logging
from app.observability import Metrics, RequestContextMiddleware
from app.routers import (
    audit,
    ca_status,
    certificates,
    docs,
    health,
    metrics,
    oauth,
    ocsp,
    problem_pages,
    problems,
    relying_party,
    sandbox,
    tsa,
    verifications,
)
from app.routers import csc as csc_router
from app.routers import signatures as signatures_router
from app.routers.body_limit import BodyLimitMiddleware
from app.routers.idempotency import IdempotencyMiddleware
from app.routers.ocsp_fast import CertcloudApp
from app.routers.problem_catalog import finish as finish_problem_docs
from app.routers.schemas import Problem
from app.security_headers import SecurityHeadersMiddleware
from app.services import audit as audit_trail
from app.services import notices as notice_outbox
from app.services.sweeper import run_periodically
from app.settings import Settings

DESCRIPTION = """\
Certcloud issues, holds and signs with personal X.509 certificates (a cloud certificate in the
manner of the KFTC financial certificate), and answers their status to anyone.

* **Bank front-ends** authenticate with OAuth2 client credentials (`POST /oauth2/token`).
* **Relying parties** need no account: CA certificate, JSON status (and OCSP and CRL).
* Errors are `application/problem+json` with a stable `code`.
"""


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               verifier: PhoneVerifier | None = None) -> FastAPI:
    """Build the app. Every adapter is made in the lifespan, none at import time.

    :param clock: the clock to use (tests pass a fixed one); the system clock by default.
    :param verifier: a phone verifier to use instead of the one the settings name.
    """
    settings = settings or Settings()
    clock = clock or SystemClock()

    app_metrics = Metrics()

    def count_event(action: str, result: str) -> None:
        app_metrics.events.labels(action, result).inc()

    def count_notice(result: str) -> None:
        app_metrics.notices.labels(result).inc()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        container = await build_container(settings, clock, verifier)
        app.state.container = container
        app_metrics.watch_crl(await container.crl_age_source())
        audit_trail.event_listeners.append(count_event)
        notice_outbox.delivery_listeners.append(count_notice)
        sweeper = asyncio.create_task(run_periodically(
            container.uow, clock, settings.sweep_interval_seconds))
        redelivery = asyncio.create_task(container.notices.run_periodically(
            settings.sweep_interval_seconds))
        lapses = asyncio.create_task(container.suspensions.run_periodically(
            settings.sweep_interval_seconds))
        try:
            yield
        finally:
            sweeper.cancel()
            redelivery.cancel()
            lapses.cancel()
            notice_outbox.delivery_listeners.remove(count_notice)
            audit_trail.event_listeners.remove(count_event)
            await container.close()

    # FastAPI's own docs pages load from a CDN: app/routers/docs.py serves them offline.
    app = CertcloudApp(title="Certcloud", version="0.1.0", description=DESCRIPTION,
                       lifespan=lifespan, docs_url=None, redoc_url=None,
                       openapi_url="/openapi.json" if settings.serves_docs else None)
    problems.install(app, settings.public_base_url)
    app.state.metrics = app_metrics
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app_metrics,
                       log_requests=settings.access_log)
    app.add_middleware(SecurityHeadersMiddleware)
    ocsp.install(app)  # its cache hits are answered by CertcloudApp before any middleware
    tsa.install(app)
    for module in (oauth, verifications, certificates, ca_status, audit, health, metrics,
                   problem_pages):
        app.include_router(module.router)
    app.include_router(signatures_router.router)
    app.include_router(relying_party.router)
    app.include_router(csc_router.router)
    app.include_router(sandbox.callbacks_router)
    if not settings.is_production:  # every /sandbox path is 404 in production
        app.include_router(sandbox.router)
    if settings.serves_docs:
        docs.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem_schema = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components.update(problem_schema.pop("$defs", {}))
            components["Problem"] = problem_schema
            finish_problem_docs(schema)
            _declare_idempotency_key(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "A retry with the same key and body returns the first reply and does "
                   "nothing again; the same key with another body is 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _declare_idempotency_key(schema: dict[str, Any]) -> None:
    for path, operations in schema.get("paths", {}).items():
        post = operations.get("post")
        if post is None or not path.startswith(("/v1/", "/csc/v1/")) or path.endswith("/lookup"):
            continue
        post.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
