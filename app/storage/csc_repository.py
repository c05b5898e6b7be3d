"""Queries on the CSC tables, one transaction's worth at a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import StoredSad
from app.storage.csc_tables import csc_sads


class SadRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, *, sad_id: str, credential_id: str, client_id: str,
                  hash_algorithm: str, hashes: str, sealed: bytes, now: datetime,
                  expires_at: datetime) -> None:
        await self.conn.execute(insert(csc_sads).values(
            id=sad_id, credential_id=credential_id, client_id=client_id,
            hash_algorithm=hash_algorithm, hashes=hashes, sealed=sealed, created_at=now,
            expires_at=expires_at))

    async def get(self, sad_id: str) -> StoredSad | None:
        row = (await self.conn.execute(select(csc_sads).where(csc_sads.c.id == sad_id))).first()
        if row is None:
            return None
        return StoredSad(id=row.id, credential_id=row.credential_id, client_id=row.client_id,
                         hash_algorithm=row.hash_algorithm, hashes=row.hashes,
                         sealed=row.sealed, expires_at=row.expires_at, used_at=row.used_at)

    async def consume(self, sad_id: str, *, credential_id: str, client_id: str,
                      now: datetime) -> bool:
        """Single use, across replicas: only one caller moves an unexpired SAD to used."""
        result = await self.conn.execute(
            update(csc_sads)
            .where(csc_sads.c.id == sad_id, csc_sads.c.credential_id == credential_id,
                   csc_sads.c.client_id == client_id, csc_sads.c.used_at.is_(None),
                   csc_sads.c.expires_at > now)
            .values(used_at=now, sealed=None))
        return result.rowcount == 1

    async def purge(self, before: datetime) -> int:
        """Drop SADs that expired before ``before``; they can no longer be used anyway."""
        result = await self.conn.execute(delete(csc_sads).where(csc_sads.c.expires_at < before))
        return result.rowcount or 0
