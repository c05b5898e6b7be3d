"""Reads and writes of ``tsa_signers``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.tsa_tables import tsa_signers


class TsaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def newest_signer(self) -> Row[Any] | None:
        return (await self.conn.execute(
            select(tsa_signers).order_by(tsa_signers.c.not_after.desc(),
                                         tsa_signers.c.id).limit(1))).first()

    async def add_signer(self, *, signer_id: str, serial: str, key_algorithm: str,
                         certificate_der: bytes, master_key_id: str, wrapped_key: bytes,
                         not_before: datetime, not_after: datetime, now: datetime) -> None:
        await self.conn.execute(insert(tsa_signers).values(
            id=signer_id, serial=serial, key_algorithm=key_algorithm,
            certificate_der=certificate_der, master_key_id=master_key_id,
            wrapped_key=wrapped_key, not_before=not_before, not_after=not_after,
            created_at=now))
