"""Queries of the notice outbox (``notices``). A claim is a conditional update, so a notice
that two replicas try to send at once goes out through one of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import OutboxNotice
from app.storage.tables import notices


class NoticeOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, notice: OutboxNotice, *, kind: str, client_id: str | None,
                  now: datetime, claimed_until: datetime) -> None:
        """Stored already claimed by the caller, who sends it once the change commits."""
        await self.conn.execute(insert(notices).values(
            id=notice.id, phone=notice.phone, kind=kind, client_id=client_id, text=notice.text,
            created_at=now, attempts=0, claimed_until=claimed_until))

    async def due(self, now: datetime, *, max_attempts: int, limit: int) -> list[str]:
        rows = (await self.conn.execute(
            select(notices.c.id).where(notices.c.sent_at.is_(None),
                                       notices.c.attempts < max_attempts,
                                       or_(notices.c.claimed_until.is_(None),
                                           notices.c.claimed_until <= now))
            .order_by(notices.c.created_at).limit(limit))).all()
        return [row.id for row in rows]

    async def claim(self, notice_id: str, now: datetime, until: datetime
                    ) -> OutboxNotice | None:
        claimed = await self.conn.execute(
            update(notices).where(notices.c.id == notice_id, notices.c.sent_at.is_(None),
                                  or_(notices.c.claimed_until.is_(None),
                                      notices.c.claimed_until <= now))
            .values(claimed_until=until))
        if claimed.rowcount != 1:
            return None
        row = (await self.conn.execute(select(notices.c.phone, notices.c.text)
                                       .where(notices.c.id == notice_id))).one()
        return OutboxNotice(notice_id, row.phone, row.text)

    async def settle(self, notice_id: str, *, sent_at: datetime | None,
                     retry_at: datetime | None, attempts: int | None = None) -> None:
        """One attempt done: sent (``sent_at``), or to be tried again from ``retry_at``;
        ``attempts`` sets the count (to the maximum: never again)."""
        count = notices.c.attempts + 1 if attempts is None else attempts
        await self.conn.execute(update(notices).where(notices.c.id == notice_id).values(
            attempts=count, sent_at=sent_at, claimed_until=retry_at))

    async def purge_sent(self, before: datetime) -> int:
        result = await self.conn.execute(delete(notices).where(notices.c.sent_at < before))
        return int(result.rowcount)
