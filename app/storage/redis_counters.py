"""Rate-limit counters in Redis (``CERTCLOUD_LIMITS__REDIS_URL``): INCR on a key per
(bucket, window) that expires after its window, so Redis keeps no stale windows. The expiry is
relative (EXPIRE, not EXPIREAT), so it does not depend on Redis' clock agreeing with ours."""

from __future__ import annotations

from redis import asyncio as aioredis
from redis.connection import parse_url
from redis.exceptions import RedisError

from app.domain.errors import DependencyUnavailable

KEY_PREFIX = "certcloud:rate:"
GRACE_SECONDS = 60  # a window's key outlives it a little: clocks of replicas differ


class RedisCounters:
    def __init__(self, url: str, *, timeout_seconds: float, prefix: str = KEY_PREFIX) -> None:
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        self.prefix = prefix

    def _key(self, bucket: str, window_start: int) -> str:
        return f"{self.prefix}{bucket}:{window_start}"

    async def increment(self, bucket: str, window_start: int, window_seconds: int) -> int:
        key = self._key(bucket, window_start)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, window_seconds + GRACE_SECONDS)
                count, _ = await pipe.execute()
        except (RedisError, OSError):
            raise _unavailable() from None
        return int(count)

    async def read(self, bucket: str, window_start: int) -> int:
        try:
            value = await self.client.get(self._key(bucket, window_start))
        except (RedisError, OSError):
            raise _unavailable() from None
        return int(value or 0)

    async def check(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError):
            raise _unavailable() from None

    async def close(self) -> None:
        await self.client.aclose()


def is_redis_url(url: str) -> bool:
    try:
        parse_url(url)
    except ValueError:
        return False
    return True


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable("the rate-limit store is unavailable",
                                 code="rate_limiter_unavailable")
