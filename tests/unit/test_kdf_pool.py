"""The PIN KDF's own bounded pool (issue 11, finding 2): nothing on the default executor can
starve it, at most ``workers`` derivations run, a bounded line waits, and past it a PIN check
is refused at once with ``pin_kdf_busy``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.domain.errors import RateLimited
from app.pki.keys import KdfParams, generate_user_key, private_key_to_der
from app.services.custody import KeyCustody
from app.services.kdf_pool import KdfPool, core_count
from app.storage.local_keyring import LocalKeyRing
from tests.conftest import START

CHEAP = KdfParams(1, 64, 1)
LIVENESS = 60.0  # seconds: a hang fails the test, not a slow machine


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Blocked work waits on this; it is always opened at the end, so no thread is left."""
    event = threading.Event()
    yield event
    event.set()


async def test_pin_kdf_runs_while_the_default_executor_is_saturated(
        tmp_path: Path, gate: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    previous = getattr(loop, "_default_executor", None)  # the session's loop: put it back
    default = ThreadPoolExecutor(max_workers=2)
    loop.set_default_executor(default)
    blockers = [asyncio.to_thread(gate.wait) for _ in range(4)]  # 2 busy, 2 queued
    blocked = asyncio.gather(*blockers)
    LocalKeyRing.create(tmp_path / "ring.json", START)
    custody = KeyCustody(LocalKeyRing.load(tmp_path / "ring.json"), CHEAP)
    try:
        key = generate_user_key("p256")
        key_id, blob = await asyncio.wait_for(custody.seal(key, "902714", "cert-1"), LIVENESS)
        opened = await asyncio.wait_for(custody.open("cert-1", key_id, blob, "902714"),
                                        LIVENESS)
        assert private_key_to_der(opened) == private_key_to_der(key)
        assert not blocked.done()  # the default executor was still full all along
    finally:
        gate.set()
        await blocked
        custody.close()
        loop.set_default_executor(previous or ThreadPoolExecutor())
        default.shutdown(wait=False)


async def test_derivations_run_on_the_pools_own_threads() -> None:
    pool = KdfPool(workers=2, max_waiting=4)
    try:
        names = await asyncio.gather(*(pool.run(lambda: threading.current_thread().name)
                                       for _ in range(3)))
        assert all(name.startswith("pin-kdf") for name in names), names
    finally:
        pool.close()


async def test_the_waiting_line_is_bounded(gate: threading.Event) -> None:
    pool = KdfPool(workers=1, max_waiting=2)
    running = threading.Event()
    started: list[int] = []

    def job(n: int) -> int:
        started.append(n)
        running.set()
        gate.wait()
        return n

    try:
        first = asyncio.ensure_future(pool.run(job, 1))
        await asyncio.to_thread(running.wait, LIVENESS)
        waiting = [asyncio.ensure_future(pool.run(job, n)) for n in (2, 3)]
        await asyncio.sleep(0)  # the two waiters take their places in line
        with pytest.raises(RateLimited) as refused:
            await pool.run(job, 4)
        assert refused.value.code == "pin_kdf_busy" and refused.value.extra["retry_after"] == 1
        assert started == [1]  # one at a time; the refused one never ran
        gate.set()
        assert await asyncio.wait_for(asyncio.gather(first, *waiting), LIVENESS) == [1, 2, 3]
        assert await pool.run(job, 5) == 5  # the line is free again
    finally:
        gate.set()
        pool.close()


async def test_a_cancelled_caller_keeps_its_slot_until_the_thread_ends(
        gate: threading.Event) -> None:
    pool = KdfPool(workers=1, max_waiting=0)
    running = threading.Event()

    def job() -> str:
        running.set()
        gate.wait()
        return "done"

    try:
        caller = asyncio.ensure_future(pool.run(job))
        await asyncio.to_thread(running.wait, LIVENESS)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # The thread still runs: a second derivation may not start beside it.
        with pytest.raises(RateLimited):
            await pool.run(job)
        gate.set()
        for _ in range(1000):
            if not pool._slots.locked():
                break
            await asyncio.sleep(0.01)
        assert await asyncio.wait_for(pool.run(lambda: "next"), LIVENESS) == "next"
    finally:
        gate.set()
        pool.close()


async def test_a_closed_pool_refuses_work() -> None:
    pool = KdfPool(workers=1)
    assert await pool.run(lambda: 1) == 1
    pool.close()
    with pytest.raises(RuntimeError):
        await pool.run(lambda: 2)
    assert not pool._slots.locked()  # the refused call gave its slot back


def test_default_size_is_the_cores() -> None:
    pool = KdfPool()
    try:
        assert pool.workers == core_count() >= 1
    finally:
        pool.close()
