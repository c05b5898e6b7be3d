"""A replica's background work: the sync loop (change log and lease, many times a second) and
the maintenance loop (responder rollover, CRL, OCSP re-signing and pre-signing, pruning)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from app.services.status.context import StatusContext
from app.services.status.crl import CrlUpdater
from app.services.status.refresher import OcspRefresher, RefreshReport
from app.services.status.replicas import Replicas
from app.services.status.responder import ResponderKeys

log = logging.getLogger(__name__)

CHANGE_LOG_RETENTION = timedelta(days=1)


class Background:
    def __init__(self, ctx: StatusContext, keys: ResponderKeys, crl: CrlUpdater,
                 refresher: OcspRefresher, replicas: Replicas) -> None:
        self._ctx, self._keys, self._crl = ctx, keys, crl
        self._refresher, self._replicas = refresher, replicas
        self.tasks: list[asyncio.Task[None]] = []

    async def maintain(self) -> RefreshReport:
        """One round of the background work: responder rollover, CRL before ``nextUpdate``,
        OCSP re-signing and pre-signing, and pruning."""
        ctx = self._ctx
        await self._keys.ensure()
        if await self._crl.due():
            await self._crl.regenerate(coalesce=True)
        report = await self._refresher.refresh()
        now, wall = ctx.clock.now(), ctx.wall_clock.now()
        async with ctx.uow() as uow:
            repo = uow.status
            await repo.prune_changes(now - CHANGE_LOG_RETENTION)
            await repo.prune_replicas(wall - timedelta(hours=1))
            await repo.prune_responders(now - timedelta(days=1))
            await uow.commit()
        return report

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._sync_loop(), name="status-sync"),
                      asyncio.create_task(self._maintenance_loop(), name="status-maintenance")]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []

    async def _sync_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._ctx.settings.sync_interval_seconds)
            try:
                await self._replicas.sync()
            except Exception:  # the lease runs out; memory is then bypassed
                if not failing:  # once per outage, not 20 times a second
                    log.warning("status sync failing; memory is bypassed once the lease ends",
                                exc_info=True)
                failing = True
            else:
                if failing:
                    log.info("status sync recovered")
                failing = False

    async def _maintenance_loop(self) -> None:
        interval = self._ctx.settings.refresh_interval_seconds
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))  # jitter between replicas
            try:
                report = await self.maintain()
                if report.resigned or report.presigned:
                    log.info("OCSP responses refreshed", extra=report.as_dict())
            except Exception:
                log.warning("status maintenance failed", exc_info=True)
