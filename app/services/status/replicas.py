"""Coherence between replicas: apply the change log to memory, hold a lease, wait for others.

A revocation bumps the status *generation*. Every replica polls it, drops exactly the changed
serials from memory and acknowledges the generation in ``status_replicas``, which also holds
its lease. A replica serves from memory only while its lease is current (one that cannot reach
the database loses its lease and stops serving from memory), so a revoking request can wait
until every replica with a live lease has acknowledged its change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from datetime import timedelta

from app.domain.records import Change
from app.services.status.cache import OcspMemory
from app.services.status.context import StatusContext
from app.services.status.crl_served import ServedCrl

log = logging.getLogger(__name__)

CHANGES_BATCH = 1000  # more changes than this at once: drop the whole in-process cache
LEASE_MARGIN = 0.25  # of the lease: a replica stops using memory this much before it ends
CLOCK_SKEW = timedelta(seconds=2)  # allowance between replicas' wall clocks


class Replicas:
    def __init__(self, ctx: StatusContext, memory: OcspMemory, served: ServedCrl) -> None:
        self._ctx, self._memory, self._served = ctx, memory, served
        self._lock = asyncio.Lock()
        self._host = f"{socket.gethostname()}:{os.getpid()}"[:255]

    def lease_valid(self) -> bool:
        return time.monotonic() < self._ctx.coherence.coherent_until

    async def sync(self) -> None:
        """Apply new status changes to memory, then acknowledge them and renew the lease."""
        ctx, co = self._ctx, self._ctx.coherence
        if not co.replica:
            return
        async with self._lock:
            started = time.monotonic()
            async with ctx.uow(write=False) as uow:
                repo = uow.status
                current = await repo.current_generation()
                changes = (await repo.changes_since(co.known, CHANGES_BATCH)
                           if current > co.known else [])
            if current > co.known:
                self._apply(current, changes)
            lease = ctx.settings.lease_seconds
            if co.acked < co.known or started - co.last_renew >= lease / 3:
                async with ctx.uow() as uow:
                    await uow.status.renew_replica(
                        co.replica_id, host=self._host, acked_generation=co.known,
                        lease_until=ctx.wall_clock.now() + timedelta(seconds=lease),
                        now=ctx.wall_clock.now())
                    await uow.commit()
                co.acked = co.known
                co.last_renew = started
                co.coherent_until = started + lease * (1 - LEASE_MARGIN)

    def _apply(self, current: int, changes: Sequence[Change]) -> None:
        co = self._ctx.coherence
        known = co.known
        contiguous = (known >= 0 and changes and changes[0].generation == known + 1
                      and len(changes) < CHANGES_BATCH)
        co.epoch += 1
        if not contiguous:
            self._memory.forget_all()
            self._served.copy = None
            co.known = max(current, changes[-1].generation if changes else current)
            return
        for change in changes:
            if change.kind == "serial" and change.detail:
                self._memory.forget_serial(change.detail)
            elif change.kind == "crl" and change.detail and change.detail.isdigit():
                self._served.stored(int(change.detail))
        co.known = max(current, changes[-1].generation)

    async def current_generation(self) -> int:
        async with self._ctx.uow(write=False) as uow:
            return await uow.status.current_generation()

    async def await_all(self) -> bool:
        """Wait (up to ``publish_timeout_seconds``) until every live replica has applied every
        change made so far; for operator commands that run outside the serving processes."""
        generation = await self.current_generation()
        return await self.await_generation(
            generation, time.monotonic() + self._ctx.settings.publish_timeout_seconds)

    async def await_generation(self, generation: int, deadline: float) -> bool:
        """Wait until every other replica with a live lease has applied ``generation``."""
        ctx, co = self._ctx, self._ctx.coherence
        while True:
            async with ctx.uow(write=False) as uow:
                lagging = await uow.status.lagging_replicas(
                    generation, ctx.wall_clock.now() - CLOCK_SKEW,
                    co.replica_id if co.replica else None)
            if not lagging:
                return True
            if time.monotonic() >= deadline:
                log.warning("replicas did not confirm a status change in time",
                            extra={"generation": generation, "replicas": lagging})
                return False
            await asyncio.sleep(0.01)

    async def leave(self) -> None:
        """Stop being a replica: drop the lease row (best effort)."""
        co = self._ctx.coherence
        if not co.replica:
            return
        co.replica = False
        async with self._ctx.uow() as uow:
            await uow.status.drop_replica(co.replica_id)
            await uow.commit()
