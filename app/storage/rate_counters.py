"""Rate-limit counters in the database: one upserted row per (bucket, window)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.storage.db import Database
from app.storage.ops_tables import rate_counters


class DatabaseCounters:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def increment(self, bucket: str, window_start: int, window_seconds: int) -> int:
        dialect = sqlite if self.db.is_sqlite else postgresql
        statement = (
            dialect.insert(rate_counters)
            .values(bucket=bucket, window_start=window_start, count=1))
        statement = statement.on_conflict_do_update(
            index_elements=[rate_counters.c.bucket, rate_counters.c.window_start],
            set_={"count": rate_counters.c.count + 1},
        ).returning(rate_counters.c.count)
        async with self.db.transaction() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def read(self, bucket: str, window_start: int) -> int:
        async with self.db.transaction(write=False) as conn:
            count = (await conn.execute(
                select(rate_counters.c.count).where(
                    rate_counters.c.bucket == bucket,
                    rate_counters.c.window_start == window_start))).scalar_one_or_none()
        return int(count or 0)

    async def check(self) -> None:
        """The database is checked by readiness anyway."""

    async def close(self) -> None:
        """The engine belongs to the container."""
