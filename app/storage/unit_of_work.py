"""The unit of work (app.domain.ports.UnitOfWork) on the database: one transaction, the
repositories bound to its connection, and the audit trail bound to it. It rolls back unless
committed. What differs between SQLite and PostgreSQL (BEGIN IMMEDIATE for writers, row locks,
the SQLSTATEs of a lost race) stays here and in the repositories."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from app.domain.ports import AuditAppender
from app.domain.repositories import AuditLog as AuditLogPort
from app.domain.repositories import (
    IdentitySecrets,
    Outbox,
    Records,
    Sads,
    StatusRecords,
    Suspensions,
    TsaRecords,
)
from app.domain.repositories import Leftovers as LeftoversPort
from app.storage.audit_log import AuditLog
from app.storage.csc_repository import SadRepository
from app.storage.db import Database
from app.storage.identity_repository import IdentityRepository
from app.storage.leftovers import Leftovers
from app.storage.notice_outbox import NoticeOutbox
from app.storage.repository import Repository
from app.storage.status_repository import StatusRepository
from app.storage.suspension_repository import SuspensionRepository
from app.storage.tsa_repository import TsaRepository

# Binds the audit trail (the hash chain, computed by app.services.audit) to one transaction's
# audit log; the wiring (app.bootstrap) passes it with the chain's keys.
BindAudit = Callable[[AuditLogPort], AuditAppender]


class SqlUnitOfWork:
    def __init__(self, db: Database, bind_audit: BindAudit, *, write: bool = True) -> None:
        self._db, self._bind_audit, self._write = db, bind_audit, write
        self._stack: AsyncExitStack | None = None
        self._transaction: AsyncTransaction | None = None

    def _bind(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.records: Records = Repository(conn)
        self.status: StatusRecords = StatusRepository(conn)
        self.sads: Sads = SadRepository(conn)
        self.outbox: Outbox = NoticeOutbox(conn)
        self.audit_log: AuditLogPort = AuditLog(conn)
        self.leftovers: LeftoversPort = Leftovers(conn)
        self.suspensions: Suspensions = SuspensionRepository(conn)
        self.tsa: TsaRecords = TsaRepository(conn)
        self.identity: IdentitySecrets = IdentityRepository(conn)
        self.audit: AuditAppender = self._bind_audit(self.audit_log)

    async def __aenter__(self) -> SqlUnitOfWork:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            conn = await stack.enter_async_context(self._db.connection(write=self._write))
            self._transaction = await conn.begin()
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack = stack
        self._bind(conn)
        return self

    async def commit(self) -> None:
        assert self._transaction is not None, "commit outside the unit of work's block"
        await self._transaction.commit()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        stack, transaction = self._stack, self._transaction
        self._stack = self._transaction = None
        assert stack is not None
        try:
            if transaction is not None and transaction.is_active:
                await transaction.rollback()
        except BaseException as error:
            if await stack.__aexit__(type(error), error, error.__traceback__):
                return
            raise
        await stack.__aexit__(exc_type, exc, tb)


class SqlUnitOfWorkFactory:
    """``uow()`` / ``uow(write=False)``: what the wiring hands every service."""

    def __init__(self, db: Database, bind_audit: BindAudit) -> None:
        self.db, self.bind_audit = db, bind_audit

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db, self.bind_audit, write=write)
