"""Reads and writes of ``tsa_signers`` (app.domain.repositories.TsaRecords)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import StoredTsaSigner
from app.storage.tsa_tables import tsa_signers


class TsaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def newest_signer(self) -> StoredTsaSigner | None:
        c = tsa_signers.c
        row = (await self.conn.execute(
            select(c.id, c.certificate_der, c.master_key_id, c.wrapped_key, c.not_after)
            .order_by(c.not_after.desc(), c.id).limit(1))).first()
        if row is None:
            return None
        return StoredTsaSigner(id=row.id, certificate_der=bytes(row.certificate_der),
                               master_key_id=row.master_key_id,
                               wrapped_key=bytes(row.wrapped_key), not_after=row.not_after)

    async def add_signer(self, *, signer_id: str, serial: str, key_algorithm: str,
                         certificate_der: bytes, master_key_id: str, wrapped_key: bytes,
                         not_before: datetime, not_after: datetime, now: datetime) -> None:
        await self.conn.execute(insert(tsa_signers).values(
            id=signer_id, serial=serial, key_algorithm=key_algorithm,
            certificate_der=certificate_der, master_key_id=master_key_id,
            wrapped_key=wrapped_key, not_before=not_before, not_after=not_after,
            created_at=now))
