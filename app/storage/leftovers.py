"""What crashes and time leave behind, deleted by the sweeper (app.services.sweeper)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.certificates import StoredState
from app.storage.ops_tables import idempotency_keys, rate_counters
from app.storage.tables import certificates


class Leftovers:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def delete_pending_certificates(self, created_before: datetime) -> int:
        result = await self.conn.execute(delete(certificates).where(
            certificates.c.state == StoredState.PENDING.value,
            certificates.c.created_at < created_before))
        return result.rowcount

    async def delete_idempotency_keys(self, created_before: datetime) -> int:
        result = await self.conn.execute(delete(idempotency_keys).where(
            idempotency_keys.c.created_at < created_before))
        return result.rowcount

    async def delete_rate_windows(self, started_before: datetime) -> int:
        result = await self.conn.execute(delete(rate_counters).where(
            rate_counters.c.window_start < int(started_before.timestamp())))
        return result.rowcount
