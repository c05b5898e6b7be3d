"""The async engine and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.domain.errors import Conflict, DependencyUnavailable


def make_engine(url: str, *, timeout_seconds: float = 5.0) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if "+asyncpg" in url:
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


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Database trouble becomes a domain error: a lost race is 409, an outage is 503."""
    try:
        yield
    except IntegrityError:
        raise Conflict("a concurrent change conflicted with this request; retry",
                       code="concurrent_change") from None
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        raise DependencyUnavailable("the database is unavailable",
                                    code="database_unavailable") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DependencyUnavailable("the database is unavailable",
                                        code="database_unavailable") from exc
        raise


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with translate_errors(), self.engine.connect() as conn:
            if self.is_sqlite and write:
                conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn

    async def ping(self) -> None:
        async with translate_errors(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
