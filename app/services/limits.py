"""Abuse limits as fixed-window counters in the database, so they hold across replicas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.domain.errors import RateLimited
from app.storage.db import Database
from app.storage.ops_tables import rate_counters


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window_seconds: int


class RateLimiter:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def hit(self, limit: Limit, subject: str, now: datetime) -> None:
        """Count one event for ``subject``.

        :raises RateLimited: past the limit, with the seconds until the window ends.
        """
        window_start = int(now.timestamp()) // limit.window_seconds * limit.window_seconds
        bucket = f"{limit.name}:{subject}"
        dialect = postgresql if not self.db.is_sqlite else sqlite
        statement = (
            dialect.insert(rate_counters)
            .values(bucket=bucket, window_start=window_start, count=1))
        statement = statement.on_conflict_do_update(
            index_elements=[rate_counters.c.bucket, rate_counters.c.window_start],
            set_={"count": rate_counters.c.count + 1},
        ).returning(rate_counters.c.count)
        async with self.db.transaction() as conn:
            count = int((await conn.execute(statement)).scalar_one())
        self._raise_past(limit, count, window_start, now, allowed=limit.count)

    async def check(self, limit: Limit, subject: str, now: datetime) -> None:
        """Refuse when ``subject`` has used up the window, without counting anything.

        :raises RateLimited: the window is full.
        """
        window_start = int(now.timestamp()) // limit.window_seconds * limit.window_seconds
        async with self.db.transaction(write=False) as conn:
            count = (await conn.execute(
                select(rate_counters.c.count).where(
                    rate_counters.c.bucket == f"{limit.name}:{subject}",
                    rate_counters.c.window_start == window_start))).scalar_one_or_none()
        self._raise_past(limit, count or 0, window_start, now, allowed=limit.count - 1)

    @staticmethod
    def _raise_past(limit: Limit, count: int, window_start: int, now: datetime, *,
                    allowed: int) -> None:
        if count > allowed:
            reset = window_start + limit.window_seconds - int(now.timestamp())
            raise RateLimited(f"too many requests ({limit.name}); retry in {reset} s",
                              code=f"rate_limited_{limit.name}", retry_after=max(reset, 1),
                              limit=limit.count, window_seconds=limit.window_seconds)
