"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ContainerDep
from app.domain.errors import DomainError
from app.routers.problem_catalog import responses_for
from app.routers.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, operation_id="healthz",
            summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, operation_id="readyz",
            summary="The database, the key store and the rate-limit store are reachable",
            responses=responses_for("readyz"))
async def readyz(container: ContainerDep, request: Request) -> Health:
    database_up = request.app.state.metrics.database_up
    try:
        await container.db.ping()
    except DomainError:
        database_up.set(0)
        raise
    database_up.set(1)
    # The key store too: a failing token (protector or CA key) raises DependencyUnavailable,
    # which the edge turns into 503 problem+json.
    await container.limiter.store.check()
    for part in (container.protector, container.issuer.ca.key):
        check = getattr(part, "check", None)
        if check is not None:
            await check()
    return Health(status="ok")
