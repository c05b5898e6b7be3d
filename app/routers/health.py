"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ReadinessDep
from app.domain.errors import DomainError
from app.routers.problem_catalog import responses_for
from app.routers.schemas import Health, Readiness

router = APIRouter(tags=["operations"])

READYZ_DESCRIPTION = """\
Checks every component and names each one `up` or `down` in `components`: `database`,
`counter_store` (the rate-limit counters: the database or Redis), `key_store` (the master-key
ring or the PKCS#11 token) and `ca_key` (the CA's signing key, a file or in the token). When
one is down the reply is a 503 problem whose `code` is the first failing component's (e.g.
`database_unavailable`), with `component` naming it and `components` as above."""


@router.get("/healthz", response_model=Health, operation_id="healthz",
            summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, operation_id="readyz",
            summary="The database, the key store and the rate-limit store are reachable",
            description=READYZ_DESCRIPTION, responses=responses_for("readyz"))
async def readyz(checks: ReadinessDep, request: Request) -> Readiness:
    components: dict[str, str] = {}
    failures: list[tuple[str, DomainError]] = []
    for name, check in checks.items():
        try:
            await check()
        except DomainError as error:  # DependencyUnavailable: the adapters translate outages
            components[name] = "down"
            failures.append((name, error))
        else:
            components[name] = "up"
    request.app.state.metrics.database_up.set(1 if components["database"] == "up" else 0)
    if failures:
        name, first = failures[0]
        down = ", ".join(failed for failed, _error in failures)
        # The first outage is the reply (its own code and status), told about the others.
        first.detail = f"not ready: {down} down ({first.detail})"
        first.extra.update(component=name, components=components)
        raise first
    return Readiness(status="ok", components=components)
