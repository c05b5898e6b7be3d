"""The wrapped secrets behind certificates' VIDs (app.domain.repositories.IdentitySecrets):
``vid_randoms`` and ``person_rrns`` (app.storage.identity_tables). Only blobs pass through
here; wrapping and unwrapping is the service's, under the master-key layer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.identity_tables import person_rrns, vid_randoms


class IdentityRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add_vid_random(self, certificate_id: str, *, master_key_id: str, wrapped: bytes,
                             now: datetime) -> None:
        await self.conn.execute(insert(vid_randoms).values(
            certificate_id=certificate_id, master_key_id=master_key_id, wrapped=wrapped,
            created_at=now))

    async def vid_random(self, certificate_id: str) -> tuple[str, bytes] | None:
        row = (await self.conn.execute(
            select(vid_randoms.c.master_key_id, vid_randoms.c.wrapped)
            .where(vid_randoms.c.certificate_id == certificate_id))).first()
        return None if row is None else (row.master_key_id, row.wrapped)

    async def put_person_rrn(self, person_id: str, *, master_key_id: str, wrapped: bytes,
                             now: datetime) -> None:
        """Replace the person's wrapped RRN, or store the first (the caller holds the person's
        row lock, so no second writer races the insert)."""
        done = await self.conn.execute(update(person_rrns).where(
            person_rrns.c.person_id == person_id).values(master_key_id=master_key_id,
                                                         wrapped=wrapped))
        if not done.rowcount:
            await self.conn.execute(insert(person_rrns).values(
                person_id=person_id, master_key_id=master_key_id, wrapped=wrapped,
                created_at=now))

    async def person_rrn(self, person_id: str) -> tuple[str, bytes] | None:
        row = (await self.conn.execute(
            select(person_rrns.c.master_key_id, person_rrns.c.wrapped)
            .where(person_rrns.c.person_id == person_id))).first()
        return None if row is None else (row.master_key_id, row.wrapped)
