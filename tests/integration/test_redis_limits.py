"""Rate-limit counters in a real Redis: shared by replicas, exact under concurrency, expiring
with their window, and a fast 503 when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from redis import asyncio as aioredis
from sqlalchemy import func, select

from app.bootstrap import check_configuration
from app.domain.errors import DependencyUnavailable, RateLimited
from app.main import create_app
from app.services.limits import Limit, RateLimiter
from app.services.secrets import StartupError
from app.settings import Settings
from app.storage.ops_tables import rate_counters
from app.storage.redis_counters import GRACE_SECONDS, RedisCounters
from tests.support.app import START, FixedClock, Service, redis_url_or_skip
from tests.support.bank import make_bank
from tests.support.people import person
from tests.support.processes import free_port

LIMIT = Limit("test_events", 10, 60)


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[RateLimiter, RateLimiter, str]]:
    """Two limiters with their own connections to one Redis, as two replicas have."""
    url, prefix = redis_url_or_skip(), f"certcloud-test:{uuid.uuid4().hex}:"
    stores = [RedisCounters(url, timeout_seconds=2, prefix=prefix) for _ in range(2)]
    yield RateLimiter(stores[0]), RateLimiter(stores[1]), prefix
    for store in stores:
        await store.close()


async def _admitted(limiter: RateLimiter, subject: str) -> bool:
    try:
        await limiter.hit(LIMIT, subject, START)
    except RateLimited:
        return False
    return True


async def test_replicas_share_one_window(
        replicas: tuple[RateLimiter, RateLimiter, str]) -> None:
    first, second, _prefix = replicas
    admitted = [await _admitted(first if n % 2 else second, "phone-1") for n in range(12)]
    assert admitted == [True] * 10 + [False] * 2
    with pytest.raises(RateLimited) as refused:
        await first.check(LIMIT, "phone-1", START)
    assert refused.value.code == "rate_limited_test_events"
    assert refused.value.extra["limit"] == 10
    assert 1 <= refused.value.extra["retry_after"] <= 60
    await second.check(LIMIT, "phone-2", START)  # another subject is untouched
    next_window = START + timedelta(seconds=60)
    await first.hit(LIMIT, "phone-1", next_window)  # a new window starts from zero


async def test_concurrent_hits_admit_exactly_the_limit(
        replicas: tuple[RateLimiter, RateLimiter, str]) -> None:
    first, second, _prefix = replicas
    results = await asyncio.gather(*[_admitted(first if n % 2 else second, "phone-3")
                                     for n in range(40)])
    assert results.count(True) == LIMIT.count and results.count(False) == 30


async def test_a_window_key_expires_after_its_window(
        replicas: tuple[RateLimiter, RateLimiter, str]) -> None:
    first, _second, prefix = replicas
    await first.hit(LIMIT, "phone-4", START)
    client = aioredis.Redis.from_url(redis_url_or_skip())
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 1
        assert 0 < await client.ttl(keys[0]) <= LIMIT.window_seconds + GRACE_SECONDS
    finally:
        await client.aclose()


async def test_redis_gone_is_a_fast_dependency_error() -> None:
    store = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    limiter = RateLimiter(store)
    began = time.monotonic()
    for call in (limiter.hit(LIMIT, "phone-5", START), limiter.check(LIMIT, "phone-5", START),
                 store.check()):
        with pytest.raises(DependencyUnavailable) as failed:
            await call
        assert failed.value.code == "rate_limiter_unavailable"
    assert time.monotonic() - began < 5
    await store.close()


@contextlib.asynccontextmanager
async def _service(settings: Settings, clock: FixedClock, **limits: object
                   ) -> AsyncIterator[Service]:
    configured = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={"verifications_per_phone_per_10_minutes": 2, **limits})})
    app = create_app(configured, clock=clock)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://certcloud.test") as http:
        yield Service(app, http, app.state.container, clock, configured)


async def test_the_service_counts_in_redis_not_the_database(settings: Settings,
                                                            clock: FixedClock) -> None:
    prefix = f"certcloud-test:{uuid.uuid4().hex}:"
    async with _service(settings, clock, redis_url=redis_url_or_skip(),
                        redis_key_prefix=prefix) as service:
        bank = await make_bank(service.http, service.container)
        phone = person(81)["phone"]
        statuses = [(await bank.post("/v1/verifications", {"phone": phone, "channel": "sms"})
                     ).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
        async with service.container.db.transaction(write=False) as conn:
            rows = (await conn.execute(select(func.count()).select_from(rate_counters))
                    ).scalar_one()
        assert rows == 0
        assert (await service.http.get("/readyz")).status_code == 200


async def test_the_service_answers_503_while_redis_is_gone(settings: Settings,
                                                           clock: FixedClock) -> None:
    async with _service(settings, clock) as healthy:  # the token endpoint is limited too
        bank = await make_bank(healthy.http, healthy.container)
    async with _service(settings, clock, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        redis_timeout_seconds=0.5) as service:
        bank.clients = [service.http]
        token = await service.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                        auth=(bank.client_id, bank.client_secret))
        assert token.status_code == 503 and token.json()["code"] == "rate_limiter_unavailable"
        reply = await bank.post("/v1/verifications",
                                {"phone": person(82)["phone"], "channel": "sms"})
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "rate_limiter_unavailable"
        messages = await service.http.get("/sandbox/messages",
                                          params={"phone": person(82)["phone"]})
        assert messages.json() == []  # nothing sent, nothing to pay for
        ready = await service.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["code"] == "rate_limiter_unavailable"
        assert ready.json()["component"] == "counter_store"  # /readyz names what is down
        assert ready.json()["components"]["counter_store"] == "down"
        assert ready.json()["components"]["database"] == "up"


async def test_a_redis_url_that_is_not_one_stops_the_start(settings: Settings) -> None:
    url = "http://user:s3cret-pass@cache:6379/0"
    bad = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={"redis_url": url})})
    with pytest.raises(StartupError) as refused:
        check_configuration(bad)
    assert "CERTCLOUD_LIMITS__REDIS_URL" in str(refused.value)
    assert "s3cret-pass" not in str(refused.value)
    good = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={"redis_url": "rediss://user:pw@cache:6380/2"})})
    check_configuration(good)
