"""Idempotency records: the first reply to a (client, Idempotency-Key) pair, kept in the
database so a retry on any replica gets the same reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.storage.db import Database
from app.storage.ops_tables import idempotency_keys

# A request still "in progress" after this long died with its process; a retry takes over.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Claim:
    outcome: Literal["new", "replay", "mismatch", "in_progress"]
    status_code: int | None = None
    content_type: str | None = None
    body: bytes | None = None


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, client_id: str, key: str, request_hash: str, now: datetime) -> Claim:
        dialect = sqlite if self.db.is_sqlite else postgresql
        statement = dialect.insert(idempotency_keys).values(
            client_id=client_id, key=key, request_hash=request_hash, state="in_progress",
            created_at=now).on_conflict_do_nothing().returning(idempotency_keys.c.key)
        async with self.db.transaction() as conn:
            if (await conn.execute(statement)).first() is not None:
                return Claim("new")
            row = (await conn.execute(select(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id,
                idempotency_keys.c.key == key))).one()
            if row.request_hash != request_hash:
                return Claim("mismatch")
            if row.state == "done":
                return Claim("replay", row.status_code, row.content_type, row.body)
            if row.created_at > now - ABANDONED_AFTER:
                return Claim("in_progress")
            taken = await conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key,
                idempotency_keys.c.state == "in_progress",
                idempotency_keys.c.created_at == row.created_at).values(created_at=now))
            return Claim("new" if taken.rowcount == 1 else "in_progress")

    async def complete(self, client_id: str, key: str, status_code: int, content_type: str,
                       body: bytes) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id,
                idempotency_keys.c.key == key).values(
                state="done", status_code=status_code, content_type=content_type, body=body))

    async def release(self, client_id: str, key: str) -> None:
        """Forget a claim whose request failed on the server's side, so a retry runs again."""
        async with self.db.transaction() as conn:
            await conn.execute(delete(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key,
                idempotency_keys.c.state == "in_progress"))
