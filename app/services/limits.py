"""Abuse limits as fixed-window counters in a shared store (the database, or Redis when
configured), so they hold across replicas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window_seconds: int


class CounterStore(Protocol):
    """Counters per (bucket, window), shared by every replica."""

    async def increment(self, bucket: str, window_start: int, window_seconds: int) -> int:
        """Count one event; returns the window's count including it.

        :raises DependencyUnavailable: the store cannot be reached.
        """

    async def read(self, bucket: str, window_start: int) -> int:
        """The window's count so far (0 if none)."""

    async def check(self) -> None:
        """Readiness: raise DependencyUnavailable if the store cannot be reached."""

    async def close(self) -> None: ...


class RateLimiter:
    def __init__(self, store: CounterStore) -> None:
        self.store = store

    async def hit(self, limit: Limit, subject: str, now: datetime) -> None:
        """Count one event for ``subject``.

        :raises RateLimited: past the limit, with the seconds until the window ends.
        """
        window_start = _window_start(limit, now)
        count = await self.store.increment(f"{limit.name}:{subject}", window_start,
                                           limit.window_seconds)
        _raise_past(limit, count, window_start, now, allowed=limit.count)

    async def check(self, limit: Limit, subject: str, now: datetime) -> None:
        """Refuse when ``subject`` has used up the window, without counting anything.

        :raises RateLimited: the window is full.
        """
        window_start = _window_start(limit, now)
        count = await self.store.read(f"{limit.name}:{subject}", window_start)
        _raise_past(limit, count, window_start, now, allowed=limit.count - 1)


def _window_start(limit: Limit, now: datetime) -> int:
    return int(now.timestamp()) // limit.window_seconds * limit.window_seconds


def _raise_past(limit: Limit, count: int, window_start: int, now: datetime, *,
                allowed: int) -> None:
    if count > allowed:
        reset = window_start + limit.window_seconds - int(now.timestamp())
        raise RateLimited(f"too many requests ({limit.name}); retry in {reset} s",
                          code=f"rate_limited_{limit.name}", retry_after=max(reset, 1),
                          limit=limit.count, window_seconds=limit.window_seconds)
