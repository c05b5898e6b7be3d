"""The CRL this replica serves: the newest stored one, kept in memory while the lease runs."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from app.domain.errors import DependencyUnavailable
from app.services.status.context import StatusContext
from app.services.status.replies import CrlCopy


class ServedCrl:
    def __init__(self, ctx: StatusContext) -> None:
        self._ctx = ctx
        self.copy: CrlCopy | None = None
        self._floor = 0  # the highest cRLNumber known to be stored; older copies are dropped
        self._lock = asyncio.Lock()

    async def current(self) -> CrlCopy:
        """The newest stored CRL; never builds one.

        :raises DependencyUnavailable: no CRL has been stored yet, or the database is down.
        """
        co = self._ctx.coherence
        copy = self.copy
        if copy is not None and time.monotonic() < co.coherent_until:
            return copy
        async with self._lock:
            copy = self.copy
            if copy is not None and time.monotonic() < co.coherent_until:
                return copy
            epoch = co.epoch
            async with self._ctx.uow(write=False) as uow:
                found = await uow.status.latest_crl()
            if found is None:
                raise DependencyUnavailable("no CRL has been published yet",
                                            code="crl_unavailable")
            copy = CrlCopy(*found)
            self.keep(copy, epoch)
            return copy

    def keep(self, copy: CrlCopy, epoch: int | None = None) -> None:
        """Serve ``copy`` from memory unless a newer CRL is known, or (for a copy read from
        the database) a change was applied while it was read."""
        co = self._ctx.coherence
        if not co.replica or copy.meta.number < self._floor:
            return
        if epoch is not None and epoch != co.epoch:
            return
        self._floor = copy.meta.number
        self.copy = copy

    def stored(self, number: int) -> None:
        """A replica stored CRL ``number``: drop an older copy from memory."""
        self._floor = max(self._floor, number)
        copy = self.copy
        if copy is not None and copy.meta.number < self._floor:
            self.copy = None

    @property
    def this_update(self) -> datetime | None:
        return self.copy.meta.this_update if self.copy is not None else None
