"""The async engine and the unit of work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.domain.errors import Conflict, DependencyUnavailable, InvalidInput
from app.storage.files import PRIVATE_FILE, private_file, tighten

log = logging.getLogger(__name__)


def prepare_sqlite_file(url: str) -> None:
    """Create the SQLite database file 0600 before SQLite does (it would make it 0644), and
    tighten an existing one and its -wal and -shm files (SQLite gives those the database
    file's mode). A no-op for other databases, in-memory ones, or a missing directory."""
    if not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports that itself, as before
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            tighten(companion, PRIVATE_FILE)


def make_engine(url: str, *, timeout_seconds: float = 5.0) -> AsyncEngine:
    if url.startswith("sqlite"):
        prepare_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if "+asyncpg" in url:
        # Connecting is bounded by the timeout (and getting a pooled connection, pre-ping
        # included, by Database). A statement may rightly wait on a row lock while concurrent
        # writers of one person or of the audit chain queue, so it gets longer.
        connect_args = {"timeout": timeout_seconds, "command_timeout": timeout_seconds * 6}
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                               pool_timeout=timeout_seconds, connect_args=connect_args)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """SQLite: foreign keys on, WAL, and BEGIN IMMEDIATE for write transactions so two
    writers queue on the lock instead of failing half-way with 'database is locked'."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# SQLSTATE classes and codes (PostgreSQL appendix A). asyncpg's server errors reach here as a
# plain DBAPIError, so they are told apart by their SQLSTATE.
_UNAVAILABLE_CLASSES = ("08", "53", "57")  # connection exception, insufficient resources,
# operator intervention (shutting down, starting up / not yet accepting connections, cancelled)
_CONFLICT_STATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock
_DATA_EXCEPTION_CLASS = "22"  # a value the database cannot take (out of range, NUL, too long)


def _sqlstate(exc: DBAPIError) -> str:
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str):
            return state
    return ""


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    error = DependencyUnavailable("the database is unavailable", code="database_unavailable")
    error.__cause__ = exc
    return error


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Database trouble becomes a domain error: a lost race is 409, an outage is 503."""
    try:
        yield
    except IntegrityError:
        raise Conflict("a concurrent change conflicted with this request; retry",
                       code="concurrent_change") from None
    except (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError) as exc:
        raise _unavailable(exc) from exc
    except OverflowError:  # SQLite's driver, binding an integer past 64 bits
        log.warning("the database refused a value", extra={"sqlstate": "overflow"})
        raise InvalidInput("a value is outside what can be stored",
                           code="value_out_of_range") from None
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if state in _CONFLICT_STATES:
            raise Conflict("a concurrent change conflicted with this request; retry",
                           code="concurrent_change") from None
        if state.startswith(_DATA_EXCEPTION_CLASS):
            # A last guard for input the edge let through (never a 500 for bad input); the
            # warning keeps a server-side cause visible.
            log.warning("the database refused a value", extra={"sqlstate": state})
            raise InvalidInput("a value is outside what can be stored",
                               code="value_out_of_range") from None
        if exc.connection_invalidated or state.startswith(_UNAVAILABLE_CLASSES):
            raise _unavailable(exc) from exc
        raise


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Getting a connection (a pool slot, the pre-ping of a pooled connection, or a new
        # connection) is bounded as a whole by the configured timeout (make_engine's pool
        # timeout): each step alone could otherwise use it up.
        pool_timeout = getattr(engine.pool, "timeout", None)
        self.acquire_timeout: float | None = None if self.is_sqlite else (
            float(pool_timeout()) if callable(pool_timeout) else 5.0)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        conn = self.engine.connect()
        async with asyncio.timeout(self.acquire_timeout):
            await conn.start()
        try:
            yield conn
        finally:
            await asyncio.shield(conn.close())

    @asynccontextmanager
    async def connection(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A connection whose errors leave as domain errors; a writer's transaction on
        SQLite takes the write lock when it begins."""
        async with translate_errors(), self._connection() as conn:
            if self.is_sqlite and write:
                conn = await conn.execution_options(sqlite_immediate=True)
            yield conn

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.connection(write=write) as conn, conn.begin():
            yield conn

    async def ping(self) -> None:
        async with translate_errors(), self._connection() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
