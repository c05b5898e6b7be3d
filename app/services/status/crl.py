"""Issuing the CRL: number it, read the revoked entries, build and sign it, store it.

Building is the slow part (a large CRL goes to a child process, so neither the event loop nor
the GIL is held for the whole build); storing is one short transaction that also bumps the
status generation, so every replica drops its older copy (:class:`~.crl_served.ServedCrl`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import multiprocessing
import time
from datetime import timedelta

from app.domain.records import CrlMeta
from app.pki import crl as crl_pki
from app.services.status.context import StatusContext
from app.services.status.crl_served import ServedCrl
from app.services.status.replies import CrlCopy

log = logging.getLogger(__name__)

KEEP_CRLS = 3


class CrlUpdater:
    def __init__(self, ctx: StatusContext, served: ServedCrl) -> None:
        self._ctx, self._served = ctx, served
        self._task: asyncio.Task[CrlMeta] | None = None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.last_timings: dict[str, float] = {}  # read, build, store (seconds)

    async def ensure(self, generation: int) -> None:
        """Return once a stored CRL covers ``generation`` (building at most one at a time in
        this process; callers that arrive during a build share the next one)."""
        for _round in range(10):
            async with self._ctx.uow(write=False) as uow:
                meta = await uow.status.latest_crl_meta()
            if meta is not None and meta.generation >= generation:
                return
            await self.regenerate(coalesce=True)
        raise RuntimeError("no CRL covering the change was stored")

    async def regenerate(self, *, coalesce: bool = False) -> CrlMeta:
        """Build, sign and store a new CRL. With ``coalesce``, join a build already running in
        this process instead of starting another."""
        task = self._task
        if task is None or task.done() or not coalesce:
            if task is not None and not task.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            task = self._task = asyncio.create_task(self._build_and_store())
        return await asyncio.shield(task)

    async def due(self) -> bool:
        """A CRL is due when none is stored, it nears ``nextUpdate``, or a revocation is newer
        than it (a revoking request that failed to publish)."""
        ctx = self._ctx
        now = ctx.clock.now()
        async with ctx.uow(write=False) as uow:
            repo = uow.status
            meta = await repo.latest_crl_meta()
            latest_revocation = await repo.latest_change("serial")
        if meta is None:
            return True
        refresh_before = timedelta(seconds=ctx.settings.crl_refresh_before_seconds)
        return meta.next_update - now < refresh_before or meta.generation < latest_revocation

    async def _build_and_store(self) -> CrlMeta:
        ctx = self._ctx
        started = time.perf_counter()
        async with ctx.uow() as uow:
            number, generation = await uow.status.allocate_crl_number()
            await uow.commit()
        now = ctx.clock.now()
        packed = bytearray()
        async with ctx.uow(write=False) as uow:
            repo = uow.status
            previous = await repo.latest_crl_meta()
            # RFC 5280 §3.3: an entry leaves the CRL once a CRL issued after the certificate
            # expired has carried it; that is, when it expired before the last CRL was issued.
            cutoff = min(previous.this_update, now) if previous is not None else now
            async for rows in repo.revoked_entries(cutoff):  # small batches: the loop breathes
                for serial, revoked_epoch, reason in rows:
                    packed += crl_pki.pack_entry(serial, int(revoked_epoch), reason)
        count = len(packed) // crl_pki.ENTRY_SIZE
        next_update = now + timedelta(seconds=ctx.settings.crl_next_update_seconds)
        params = crl_pki.CrlParams(ctx.ca.certificate_der, number, now, next_update,
                                   ctx.distribution_point)
        read = time.perf_counter()
        der, digest = await self._build(params, bytes(packed), count)
        built = time.perf_counter()
        meta = CrlMeta(number, generation, now, next_update, count, digest)
        async with ctx.uow() as uow:
            repo = uow.status
            await repo.lock_state()
            stored = await repo.store_crl(meta, der, now, KEEP_CRLS)
            if stored:
                await repo.bump_generation("crl", str(number), now)
            await uow.commit()
        done = time.perf_counter()
        self.last_timings = {"read": read - started, "build": built - read,
                             "store": done - built}
        log.info("CRL built", extra={"crl_number": number, "entries": count,
                                     "bytes": len(der), "stored": stored,
                                     **{f"{k}_seconds": round(v, 3)
                                        for k, v in self.last_timings.items()}})
        if stored:  # the newest when it was stored; a newer one since raised the floor
            self._served.keep(CrlCopy(meta, der))
        return meta

    async def _build(self, params: crl_pki.CrlParams, packed: bytes, count: int
                     ) -> tuple[bytes, str]:
        """The DER and its SHA-256: small CRLs in a thread, large ones in a child process."""
        ca = self._ctx.ca
        if count < self._ctx.settings.crl_subprocess_min_entries:
            der = await asyncio.to_thread(crl_pki.build_crl, ca.key, params, packed)
        else:
            kind = crl_pki.key_kind(ca.key)
            loop = asyncio.get_running_loop()
            tbs = await loop.run_in_executor(self._process_pool(), crl_pki.build_tbs, kind,
                                             params, packed)
            der = await asyncio.to_thread(crl_pki.sign_tbs, ca.key, tbs)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(der).hexdigest())
        return der, digest

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def finish(self) -> None:
        """Let a build in flight end (up to 30 s)."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 30)

    def close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
