"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import MetricsReader, PoolInUseDep
from app.routers.problem_catalog import responses_for

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, operation_id="metrics",
            summary="Prometheus metrics",
            description="In production it needs a token with the `metrics:read` scope (an "
                        "operator's client, e.g. Prometheus' `oauth2` scrape setting); in "
                        "development it is open.",
            responses={200: {"content": {"text/plain": {}}},
                       **responses_for("metrics")})
async def metrics(request: Request, in_use: PoolInUseDep, _reader: MetricsReader) -> Response:
    registry = request.app.state.metrics
    if in_use is not None:
        registry.pool_checked_out.set(in_use)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
