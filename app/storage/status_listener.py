"""PostgreSQL LISTEN/NOTIFY for status changes (the :class:`~app.domain.ports.ChangeSignal`
of a serving replica on PostgreSQL).

Migration 0012 makes every commit that moves the status generation send a notification on
:data:`CHANNEL`. This adapter holds one asyncpg connection of its own (outside the pool; a
listening connection must stay open) and calls back on each notification. When the connection
drops (a restart, ``pg_terminate_backend``, a network cut) ``listening`` turns False at once,
so the replica falls back to polling, and the adapter reconnects with exponential backoff;
each time it is listening again it calls back once, for changes made while it was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import make_url

log = logging.getLogger(__name__)

CHANNEL = "certcloud_status"
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 5.0  # seconds between reconnection attempts
LIVENESS_SECONDS = 5.0  # a quiet connection is checked this often (a half-open TCP)


def asyncpg_dsn(database_url: str) -> str | None:
    """The libpq DSN of a ``postgresql+asyncpg://`` URL; None for any other database."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() != "asyncpg":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgChangeListener:
    def __init__(self, dsn: str, *, timeout_seconds: float = 5.0) -> None:
        self._dsn, self._timeout = dsn, timeout_seconds
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.connects = 0  # how many times it has started listening (tests, logs)
        self.connect: Callable[..., Any] = asyncpg.connect

    @property
    def listening(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.is_closed()

    def start(self, on_change: Callable[[], None]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(on_change), name="status-listener")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop()

    async def _run(self, on_change: Callable[[], None]) -> None:
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._listen(on_change)
                delay = BACKOFF_FIRST
                on_change()  # whatever changed while nobody listened
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: poll meanwhile, and try again
                if delay == BACKOFF_FIRST:  # once per outage, not at every attempt
                    log.warning("status listener connection failed; polling until it is back",
                                extra={"error": type(exc).__name__})
            else:
                log.warning("status listener connection lost; polling until it is back")
            await self._drop()
            on_change()  # wake the replica so that it polls from now on
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _listen(self, on_change: Callable[[], None]) -> None:
        self._lost.clear()
        conn = await self.connect(self._dsn, timeout=self._timeout,
                                  command_timeout=self._timeout)
        self._conn = conn
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, lambda *_args: on_change())
        self.connects += 1
        if self.connects > 1:
            log.info("status listener reconnected")

    async def _watch(self) -> None:
        """Return when the connection is lost (its end, or a failed liveness check)."""
        conn = self._conn
        while not conn.is_closed():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost.wait(), LIVENESS_SECONDS)
                return
            await conn.execute("SELECT 1", timeout=self._timeout)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._timeout)
