"""The ASGI application factory: ``app.main:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.bootstrap import build_container
from app.clock import SystemClock
from app.domain.ports import Clock, PhoneVerifier
from app.logs import configure_logging
from app.routers import certificates, health, oauth, problems, sandbox, status, verifications
from app.routers.limits import BodyLimitMiddleware
from app.routers.schemas import Problem
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        container = await build_container(settings, clock, verifier)
        app.state.container = container
        try:
            yield
        finally:
            await container.close()

    app = FastAPI(title="Certcloud", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", redoc_url=None)
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    for module in (oauth, verifications, certificates, status, health):
        app.include_router(module.router)
    app.include_router(sandbox.callbacks_router)
    if not settings.is_production:  # every /sandbox path is 404 in production
        app.include_router(sandbox.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
