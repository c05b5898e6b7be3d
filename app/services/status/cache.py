"""Layer 1: the in-process map from an OCSP request's DER to its finished reply.

A hit is a dict lookup and two clock comparisons: no parsing, no database, no signature. It
is trusted only while this replica's lease runs (:class:`~.context.Coherence`), and entries
are dropped by serial when a change to that certificate is applied.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.services.status.context import StatusContext
from app.services.status.replies import OcspReply


@dataclass(slots=True)
class _Entry:
    reply: OcspReply
    stale_at: datetime  # on the service clock: from then on, look in the database again
    serials: tuple[str, ...]


class OcspMemory:
    """Least recently used first out, at most ``memory_cache_entries``."""

    def __init__(self, ctx: StatusContext) -> None:
        self._ctx = ctx
        self._co, self._clock = ctx.coherence, ctx.clock  # read on every hit: no extra hops
        self._memory: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_serial: dict[str, set[bytes]] = {}

    def get(self, der: bytes) -> OcspReply | None:
        """The reply for a request seen before, if it is still fresh and this replica's lease
        runs; no parsing, no I/O."""
        entry = self._memory.get(der)
        if (entry is None or time.monotonic() >= self._co.coherent_until
                or self._clock.now() >= entry.stale_at):
            return None
        self._memory.move_to_end(der)
        return entry.reply

    def remember(self, der: bytes, reply: OcspReply, serials: tuple[str, ...],
                 fresh_for: float) -> None:
        limit = self._ctx.settings.memory_cache_entries
        if limit <= 0 or time.monotonic() >= self._co.coherent_until:
            return
        self._forget_key(der)
        self._memory[der] = _Entry(reply, self._clock.now() + timedelta(seconds=fresh_for),
                                   serials)
        for serial in serials:
            self._by_serial.setdefault(serial, set()).add(der)
        while len(self._memory) > limit:
            oldest = next(iter(self._memory))
            self._forget_key(oldest)

    def _forget_key(self, der: bytes) -> None:
        entry = self._memory.pop(der, None)
        if entry is None:
            return
        for serial in entry.serials:
            keys = self._by_serial.get(serial)
            if keys is not None:
                keys.discard(der)
                if not keys:
                    del self._by_serial[serial]

    def forget_serial(self, serial: str) -> None:
        for der in list(self._by_serial.get(serial, ())):
            self._forget_key(der)

    def forget_all(self) -> None:
        self._memory.clear()
        self._by_serial.clear()

    def __len__(self) -> int:
        return len(self._memory)
