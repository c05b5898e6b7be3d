"""GET /v1/audit: the audit trail, for operator clients (scope audit:read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.deps import AuditClient, AuditDep
from app.routers.problem_catalog import responses_for

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEventPublic(BaseModel):
    seq: int
    occurred_at: datetime
    client_id: str | None
    action: str
    certificate_id: str | None
    result: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    data: list[AuditEventPublic]
    count: int
    next_after: int | None


@router.get("", response_model=AuditPage, operation_id="list_audit_events",
            summary="Page through the audit trail in order",
            responses=responses_for("list_audit_events"))
async def list_audit_events(_principal: AuditClient, audit: AuditDep,
                            after: int = Query(0, ge=0, le=2**63 - 1,
                                              description="last seq already seen"),
                            limit: int = Query(100, ge=1, le=1000)) -> AuditPage:
    events = await audit.page(after=after, limit=limit)
    data = [AuditEventPublic(**event) for event in events]
    return AuditPage(data=data, count=len(data),
                     next_after=data[-1].seq if len(data) == limit else None)
