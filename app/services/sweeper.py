"""Clears what crashes and time leave behind: pending certificates that never finished,
old idempotency records and spent rate-limit windows."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.errors import DomainError
from app.domain.ports import Clock, UnitOfWorkFactory

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


async def sweep(uow: UnitOfWorkFactory, now: datetime) -> SweepReport:
    async with uow() as work:
        report = SweepReport(
            await work.leftovers.delete_pending_certificates(now - PENDING_TIMEOUT),
            await work.leftovers.delete_idempotency_keys(now - IDEMPOTENCY_TTL),
            await work.leftovers.delete_rate_windows(now - RATE_WINDOW_TTL))
        await work.commit()
    if any(vars(report).values()):
        log.info("swept", extra=vars(report))
    return report


async def run_periodically(uow: UnitOfWorkFactory, clock: Clock,
                           interval_seconds: float) -> None:
    """The lifespan's background task; every replica runs it, and the deletes are idempotent."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await sweep(uow, clock.now())
        except DomainError as exc:  # the database is down: try again next round
            log.warning("sweep skipped", extra={"cause": exc.code})
