"""Master-key rotation: add a key, move every stored blob onto the newest key, retire old keys.

Only the outer (master-key) layer changes. A blob is opened with its old master key and wrapped
again with the newest; what passes through memory is the inner layer, still sealed under the
holder's PIN (Argon2id + AES-GCM), so rewrapping never needs, sees or could use a PIN.

Rewrap is safe while the service runs and resumable after a crash:

* Blobs move in batches. A batch is read in one short transaction, rewrapped outside any
  transaction (token calls), and written in one transaction of conditional updates. A crash
  loses at most the batch in flight; every row is either wholly old or wholly new.
* Each update applies only if the row still holds the blob that was read (its key id *and* its
  bytes). A PIN change that lands meanwhile wins: its new blob is never overwritten by a rewrap
  of the old one, even when a service that has not yet seen the new key wrote it under the old
  key id.
* Resuming is simply running again: the rows still on an old key are the work left.

Every table that holds wrapped blobs is one store of the :class:`WrappedBlobs` the wiring
passes in (app.bootstrap.wrapped_blobs); rewrap, status and retire cover them all (status also
counts, as unregistered, any other table with a ``master_key_id`` column, so no key that a
table left off the list still uses is retired).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from app.domain.ports import KeyProtector, UnitOfWorkFactory, WrappedBlobs
from app.domain.records import BlobMove, MasterKeyInfo

log = logging.getLogger(__name__)


class ManagedKeyProtector(KeyProtector, Protocol):
    """A key protector whose master keys can be listed, added and retired
    (:class:`app.storage.keyring_protector.KeyRingFile`,
    :class:`app.storage.pkcs11_protector.Pkcs11Protector`)."""

    async def reload(self) -> None: ...

    async def list_keys(self) -> list[MasterKeyInfo]: ...

    async def add_key(self, now: datetime) -> str: ...

    async def retire_key(self, key_id: str) -> None: ...


@dataclass
class KeyStatus:
    """Master keys held, and blob counts per key id (per store and in total)."""

    keys: list[MasterKeyInfo]
    counts: dict[str, dict[str, int]]  # store name -> key id -> blobs

    @property
    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for per_key in self.counts.values():
            for key_id, count in per_key.items():
                totals[key_id] = totals.get(key_id, 0) + count
        return totals

    @property
    def current(self) -> str | None:
        return next((key.id for key in self.keys if key.current), None)

    @property
    def pending(self) -> int:
        """Blobs not on the current key."""
        return sum(count for key_id, count in self.totals.items() if key_id != self.current)

    @property
    def missing(self) -> list[str]:
        """Key ids that blobs name but no held key carries: those blobs cannot be opened."""
        held = {key.id for key in self.keys}
        return sorted(key_id for key_id in self.totals if key_id not in held)

    def retire_refusal(self, key_id: str, now: datetime, grace: timedelta) -> DomainError | None:
        """Why ``keys retire`` would refuse the key now, or None if it may be retired (what
        ``keys status`` shows as retirable)."""
        held = {key.id: key for key in self.keys}
        if key_id not in held:
            return NotFound(f"master key {key_id!r} is not held", code="key_not_found")
        if held[key_id].current:
            return Conflict("the current master key cannot be retired; rotate first",
                            code="key_current")
        left = self.totals.get(key_id, 0)
        if left:
            return Conflict(f"{left} blob(s) still use master key {key_id!r}; run "
                            "`certcloud keys rewrap` first", code="key_in_use")
        newest = next(key for key in self.keys if key.current)
        if newest.created_at is not None and now - newest.created_at < grace:
            wait = newest.created_at + grace
            return Conflict(f"running services may still wrap with older keys until "
                            f"{wait:%Y-%m-%d %H:%M:%S}Z; run rewrap again after that, then "
                            "retire", code="key_grace")
        return None

    def as_json(self) -> dict[str, Any]:
        totals = self.totals
        return {
            "current": self.current,
            "keys": [{"id": key.id, "location": key.location, "current": key.current,
                      "created_at": key.created_at.isoformat() if key.created_at else None,
                      "blobs": totals.get(key.id, 0)} for key in self.keys],
            "missing_keys": {key_id: totals[key_id] for key_id in self.missing},
            "stores": self.counts,
            "pending": self.pending,
        }


@dataclass
class RewrapReport:
    moved: int = 0
    skipped: int = 0  # changed by someone else meanwhile (a PIN change): left as it is
    failed: list[str] = field(default_factory=list)  # "store:id" whose blob did not open
    batches: int = 0
    target: str = ""


Progress = Callable[[int], None]
AfterBatch = Callable[[int], Awaitable[None] | None]


class KeyRotation:
    """The use cases behind ``certcloud keys rotate|rewrap|status|retire``.

    :param retire_grace: how long after the newest key was made an older one may be retired:
        running services re-read their key list every ``refresh_seconds``, and a service that
        has not yet seen the new key may still wrap with the old one until then.
    """

    def __init__(self, blobs: WrappedBlobs, protector: ManagedKeyProtector, *,
                 retire_grace: timedelta = timedelta(seconds=60),
                 uow: UnitOfWorkFactory | None = None) -> None:
        """``uow``: to audit rotations and retirements in (None: not audited)."""
        self.blobs, self.protector, self.uow = blobs, protector, uow
        self.retire_grace = retire_grace

    async def status(self) -> KeyStatus:
        """Counts cover the registered stores and, as a safety net for retiring, any other
        table with a ``master_key_id`` column (shown as ``<table>.master_key_id (unregistered)``:
        rewrap cannot move those until a store is registered for them)."""
        await self.protector.reload()
        keys = await self.protector.list_keys()
        return KeyStatus(keys, await self.blobs.counts())

    async def rotate(self, now: datetime) -> str:
        """Add a new master key; it wraps from now on (running services switch to it within
        their ``refresh_seconds``)."""
        key_id = await self.protector.add_key(now)
        log.info("master key added", extra={"key_id": key_id})
        await self._audit(now, "key_rotate", master_key_id=key_id)
        return key_id

    async def count_pending(self) -> int:
        await self.protector.reload()
        return await self.blobs.count_not_on(self.protector.current_key_id())

    async def rewrap(self, *, batch_size: int = 200, progress: Progress | None = None,
                     after_batch: AfterBatch | None = None) -> RewrapReport:
        """Move every blob that is not on the newest master key onto it.

        :param progress: called with the number of rows handled after each batch.
        :param after_batch: called with the batch count after each committed batch (tests use
            it to crash in the middle).
        :raises DependencyUnavailable: the key store or the database failed; what was
            committed stays, and running again resumes.
        """
        if not 1 <= batch_size <= 10_000:
            raise InvalidInput("batch_size must be between 1 and 10000")
        await self.protector.reload()
        report = RewrapReport(target=self.protector.current_key_id())
        for store in self.blobs.names:
            last_id = ""
            while True:
                rows = await self.blobs.batch_not_on(store, report.target, last_id, batch_size)
                if not rows:
                    break
                last_id = rows[-1][0]
                rewrapped = await self._rewrap_rows(store, rows)
                moved, skipped, failed = await self._write_batch(store, rows, rewrapped)
                report.moved += moved
                report.skipped += skipped
                report.failed += [f"{store}:{row_id}" for row_id in failed]
                report.batches += 1
                if progress is not None:
                    progress(len(rows))
                if after_batch is not None:
                    outcome = after_batch(report.batches)
                    if outcome is not None:
                        await outcome
        log.info("rewrap done", extra={"target": report.target, "moved": report.moved,
                                       "skipped": report.skipped,
                                       "failed": len(report.failed)})
        return report

    async def _rewrap_rows(self, store: str, rows: Sequence[tuple[str, str, bytes]]
                           ) -> list[tuple[str, bytes] | ValueError]:
        items = [(key_id, blob, self.blobs.binding(store, row_id))
                 for row_id, key_id, blob in rows]
        many = getattr(self.protector, "rewrap_many", None)
        if many is not None:
            results: list[tuple[str, bytes] | ValueError] = await many(items)
            return results
        out: list[tuple[str, bytes] | ValueError] = []
        for key_id, blob, associated_data in items:
            try:
                inner = await self.protector.unwrap(key_id, blob, associated_data)
                out.append(await self.protector.wrap(inner, associated_data))
            except ValueError as exc:
                out.append(exc)
        return out

    async def _write_batch(self, store: str, rows: Sequence[tuple[str, str, bytes]],
                           rewrapped: Sequence[tuple[str, bytes] | ValueError]
                           ) -> tuple[int, int, list[str]]:
        """One transaction of conditional moves; returns (moved, skipped, failed ids)."""
        failed: list[str] = []
        moves: list[BlobMove] = []
        for (row_id, old_key, old_blob), result in zip(rows, rewrapped, strict=True):
            if isinstance(result, ValueError):
                failed.append(row_id)
                log.warning("blob did not open; left as it is",
                            extra={"store": store, "id": row_id, "key_id": old_key})
                continue
            moves.append(BlobMove(row_id, old_key, old_blob, result[0], result[1]))
        if not moves:
            return 0, 0, failed
        moved = await self.blobs.move(store, moves)
        return moved, len(moves) - moved, failed
    async def retire(self, key_id: str, now: datetime) -> None:
        """Retire a master key: only when no blob names it, it is not the current key, and
        the newest key is older than the grace period.

        :raises NotFound: no such key.
        :raises Conflict: blobs still use it, it is current, or the grace period runs.
        """
        status = await self.status()
        refusal = status.retire_refusal(key_id, now, self.retire_grace)
        if refusal is not None:
            raise refusal
        try:
            await self.protector.retire_key(key_id)
        except ValueError as exc:
            raise Conflict(str(exc), code="key_not_retired") from None
        log.info("master key retired", extra={"key_id": key_id})
        await self._audit(now, "key_retire", master_key_id=key_id)

    async def _audit(self, now: datetime, action: str, **details: str) -> None:
        if self.uow is None:
            return
        async with self.uow() as uow:
            await uow.audit(now=now, action=action, **details)
            await uow.commit()
