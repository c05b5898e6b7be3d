"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ContainerDep
from app.routers.problems import problem_responses
from app.routers.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, operation_id="healthz",
            summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, operation_id="readyz",
            summary="The database and the key store are reachable",
            responses=problem_responses(503))
async def readyz(container: ContainerDep) -> Health:
    await container.db.ping()
    # The key store too: a failing token (protector or CA key) raises DependencyUnavailable,
    # which the edge turns into 503 problem+json.
    for part in (container.protector, container.issuer.ca.key):
        check = getattr(part, "check", None)
        if check is not None:
            await check()
    return Health(status="ok")
