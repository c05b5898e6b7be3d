"""Queries of suspension (see app.domain.suspension): a hold is a revoked row with reason
certificateHold, so placing one is ``Repository.revoke`` and making it permanent is
``Repository.set_revocation_reason``; what is here is what only holds need."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.certificates import Certificate, RevocationReason, StoredState
from app.storage.repository import _certificate, _with_lineage_count
from app.storage.tables import certificates

_HOLD = int(RevocationReason.CERTIFICATE_HOLD)


def _held() -> ColumnElement[bool]:
    return and_(certificates.c.state == StoredState.REVOKED.value,
                certificates.c.revocation_reason == _HOLD)


class SuspensionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def release(self, certificate_id: str, now: datetime) -> bool:
        """Conditional: only a held row becomes active again (no revocation date, no reason).
        False when it is no longer held (a concurrent revocation or resumption won)."""
        result = await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == certificate_id, _held())
            .values(state=StoredState.ACTIVE.value, revocation_reason=None, revoked_at=None,
                    updated_at=now))
        return result.rowcount == 1

    async def held_certificate_of(self, person_id: str) -> Certificate | None:
        """The person's suspended certificate, if any (a new issuance supersedes it as it
        would the active one; a person has at most one of either)."""
        row = (await self.conn.execute(_with_lineage_count().where(
            certificates.c.person_id == person_id, _held())
            .order_by(certificates.c.revoked_at.desc()))).first()
        return None if row is None else _certificate(row)

    async def holds_placed_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Ids of certificates held since ``cutoff`` or earlier, oldest first."""
        rows = (await self.conn.execute(
            select(certificates.c.id).where(_held(), certificates.c.revoked_at <= cutoff)
            .order_by(certificates.c.revoked_at, certificates.c.id).limit(limit))).all()
        return [row.id for row in rows]
