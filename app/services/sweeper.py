"""Clears what crashes and time leave behind: pending certificates that never finished,
old idempotency records and spent rate-limit windows."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from app.domain.certificates import StoredState
from app.domain.errors import DomainError
from app.domain.ports import Clock
from app.storage.db import Database
from app.storage.ops_tables import idempotency_keys, rate_counters
from app.storage.tables import certificates

log = logging.getLogger(__name__)

# Issuance writes its pending row and activates it seconds later; one still pending after
# this long belongs to a process that died (the CA may have signed, nobody got the result).
PENDING_TIMEOUT = timedelta(minutes=10)
IDEMPOTENCY_TTL = timedelta(hours=24)
RATE_WINDOW_TTL = timedelta(days=1)


@dataclass(frozen=True)
class SweepReport:
    pending_certificates: int
    idempotency_keys: int
    rate_windows: int


async def sweep(db: Database, now: datetime) -> SweepReport:
    async with db.transaction() as conn:
        pending = await conn.execute(delete(certificates).where(
            certificates.c.state == StoredState.PENDING.value,
            certificates.c.created_at < now - PENDING_TIMEOUT))
        keys = await conn.execute(delete(idempotency_keys).where(
            idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL))
        windows = await conn.execute(delete(rate_counters).where(
            rate_counters.c.window_start < int((now - RATE_WINDOW_TTL).timestamp())))
    report = SweepReport(pending.rowcount, keys.rowcount, windows.rowcount)
    if any(vars(report).values()):
        log.info("swept", extra=vars(report))
    return report


async def run_periodically(db: Database, clock: Clock, interval_seconds: float) -> None:
    """The lifespan's background task; every replica runs it, and the deletes are idempotent."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await sweep(db, clock.now())
        except DomainError as exc:  # the database is down: try again next round
            log.warning("sweep skipped", extra={"cause": exc.code})
