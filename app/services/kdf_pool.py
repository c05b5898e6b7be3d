"""A thread pool of its own for the PIN KDF, bounded in what may wait for it.

Argon2id with the PIN layer's parameters takes a core for a third of a second. On the
default executor it queued behind whatever else used ``asyncio.to_thread`` (token hashing,
CRL building, key generation), so unauthenticated work could starve signatures. Here only
PIN derivations run, at most ``workers`` at once, and at most ``max_waiting`` more wait in
line: past that a PIN check is refused at once (429 ``pin_kdf_busy``, retry in 1 s) instead of
growing a queue without end. Since the line is bounded, so is a waiter's time in it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.domain.errors import RateLimited

T = TypeVar("T")


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class KdfPool:
    def __init__(self, workers: int = 0, max_waiting: int = 64) -> None:
        self.workers = workers or core_count()
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="pin-kdf")
        self._slots = asyncio.Semaphore(self.workers)
        self._waiting = 0

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on one of the pool's threads.

        :raises RateLimited: ``pin_kdf_busy`` when the line of waiters is full.
        """
        if self._slots.locked():
            if self._waiting >= self.max_waiting:
                raise RateLimited("too many PIN checks waiting; retry", code="pin_kdf_busy",
                                  retry_after=1)
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # The slot is given back when the thread is done, not when a cancelled request
        # stops waiting for it, so no more than ``workers`` derivations ever run.
        future.add_done_callback(lambda _done: self._slots.release())
        return await asyncio.shield(future)

    def close(self) -> None:
        """Stop the threads once running derivations end; later calls are refused."""
        self._executor.shutdown(wait=False, cancel_futures=True)
