"""Queries of the audit chain's tables (``audit_events``, ``audit_head``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import AuditRow
from app.storage.ops_tables import audit_events, audit_head


def _row(row: Any) -> AuditRow:
    return AuditRow(row.seq, row.occurred_at, row.client_id, row.action, row.certificate_id,
                    row.result, row.details, row.prev_hash, row.hash, row.key_id)


class AuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def head(self, *, for_update: bool = False) -> tuple[int, str]:
        """The chain head's sequence number and hash; ``for_update`` locks it until the
        transaction ends (every appender queues on it)."""
        query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        if for_update:
            query = query.with_for_update()
        head = (await self.conn.execute(query)).one()
        return int(head.seq), str(head.hash)

    async def add(self, row: AuditRow) -> None:
        """Store the row and move the head onto it."""
        await self.conn.execute(insert(audit_events).values(
            seq=row.seq, occurred_at=row.occurred_at, client_id=row.client_id,
            action=row.action, certificate_id=row.certificate_id, result=row.result,
            details=row.details, prev_hash=row.prev_hash, hash=row.hash, key_id=row.key_id))
        await self.conn.execute(update(audit_head).where(audit_head.c.id == 1)
                                .values(seq=row.seq, hash=row.hash))

    async def rows_after(self, after: int, limit: int) -> list[AuditRow]:
        rows = (await self.conn.execute(select(audit_events).where(audit_events.c.seq > after)
                                        .order_by(audit_events.c.seq).limit(limit))).all()
        return [_row(row) for row in rows]

    async def key_id_of(self, seq: int) -> str | None:
        return (await self.conn.execute(select(audit_events.c.key_id)
                                        .where(audit_events.c.seq == seq))).scalar_one_or_none()

    async def hash_of(self, seq: int) -> str | None:
        return (await self.conn.execute(select(audit_events.c.hash)
                                        .where(audit_events.c.seq == seq))).scalar_one_or_none()
