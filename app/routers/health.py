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
            summary="The database is reachable", responses=problem_responses(503))
async def readyz(container: ContainerDep) -> Health:
    await container.db.ping()
    return Health(status="ok")
