"""The audit trail: every lifecycle event, appended in the transaction of the change, in one
hash chain (each row holds the hash of the previous), so an edit, a deletion or a reordering
is detectable by `certcloud audit verify`. The chain is an HMAC under a key of its own (in the
token with ``CERTCLOUD_KEYS__KIND=pkcs11``), named in each row's ``key_id``: with the database
and every other secret nobody can rewrite a row and recompute the rest of the chain. Rows from
before that key (``key_id`` "legacy", keyed from the code key) must form a prefix that a row
under the chain's own key seals; signed checkpoints (``audit_checkpoint``) catch even a rewrite
by a holder of the chain key."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.ports import AuditAppender, UnitOfWorkFactory
from app.domain.records import AuditRow
from app.domain.repositories import AuditLog
from app.services.secrets import LEGACY_AUDIT_KEY_ID, AuditKeys, ChainKey

GENESIS = "0" * 64
# Called with (action, result) for every appended event; the app's metrics register here in
# its lifespan. An event in a transaction that then rolls back (a lost race) is still counted.
event_listeners: list[Callable[[str, str], None]] = []
_FORBIDDEN_DETAIL_WORDS = frozenset({"pin", "code", "rrn", "secret", "password", "key",
                                     "digits", "otp"})


def event_message(key_id: str, prev_hash: str, seq: int, occurred_at: datetime,
                  client_id: str | None, action: str, certificate_id: str | None, result: str,
                  details: str) -> bytes:
    """What a row's HMAC covers. Rows under the chain's own key also cover the key id."""
    fields: list[Any] = [prev_hash, seq, occurred_at.isoformat(), client_id, action,
                         certificate_id, result, details]
    if key_id != LEGACY_AUDIT_KEY_ID:
        fields.insert(0, key_id)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(key: bytes, prev_hash: str, seq: int, occurred_at: datetime, client_id: str | None,
               action: str, certificate_id: str | None, result: str, details: str) -> str:
    """A legacy row's hash (the chain's format before it had a key of its own)."""
    message = event_message(LEGACY_AUDIT_KEY_ID, prev_hash, seq, occurred_at, client_id,
                            action, certificate_id, result, details)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _keys(keys: AuditKeys | bytes) -> AuditKeys:
    if isinstance(keys, bytes):  # a raw key: the legacy chain (tests, old callers)
        from app.services.secrets import LocalChainKey

        legacy = LocalChainKey(LEGACY_AUDIT_KEY_ID, keys)
        return AuditKeys(current=legacy, legacy=legacy)
    return keys


async def append(log: AuditLog, keys: AuditKeys | bytes, *, now: datetime, action: str,
                 result: str = "ok", client_id: str | None = None,
                 certificate_id: str | None = None, **details: Any) -> None:
    """Append one event inside the caller's transaction. It locks the chain head until the
    transaction ends, so call it last, after the change itself."""
    bad = [name for name in details  # identifiers (…_id) name things, they hold no secret
           if not name.endswith("_id") and set(name.lower().split("_")) & _FORBIDDEN_DETAIL_WORDS]
    if bad:
        raise ValueError(f"audit details must not carry secrets: {bad}")
    head_seq, head_hash = await log.head(for_update=True)
    seq = head_seq + 1
    encoded = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str)
    key = _keys(keys).current
    digest = (await key.macs([event_message(key.key_id, head_hash, seq, now, client_id, action,
                                            certificate_id, result, encoded)]))[0]
    await log.add(AuditRow(seq, now, client_id, action, certificate_id, result, encoded,
                           head_hash, digest, key.key_id))
    for listener in event_listeners:
        listener(action, result)


class BoundAudit:
    """The audit trail bound to one unit of work's log: what ``uow.audit`` is."""

    def __init__(self, log: AuditLog, keys: AuditKeys | bytes) -> None:
        self.log, self.keys = log, keys

    async def __call__(self, *, now: datetime, action: str, result: str = "ok",
                       client_id: str | None = None, certificate_id: str | None = None,
                       **details: Any) -> None:
        await append(self.log, self.keys, now=now, action=action, result=result,
                     client_id=client_id, certificate_id=certificate_id, **details)


def binder(keys: AuditKeys | bytes) -> Callable[[AuditLog], AuditAppender]:
    """What the wiring hands the unit of work, to bind the trail to each transaction."""
    return lambda log: BoundAudit(log, keys)


class AuditService:
    """Reading the trail (the API's pages) and sealing rows under an older key."""

    def __init__(self, uow: UnitOfWorkFactory, keys: AuditKeys) -> None:
        self.uow, self.keys = uow, keys

    async def page(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Events after ``after``, in order, as the API shows them (details parsed)."""
        async with self.uow(write=False) as uow:
            rows = await uow.audit_log.rows_after(after, limit)
        return [{**vars(row), "details": json.loads(row.details)} for row in rows]

    async def seal_legacy_rows(self, now: datetime) -> bool:
        async with self.uow() as uow:
            sealed = await seal_legacy_rows(uow.audit_log, self.keys, now)
            await uow.commit()
        return sealed


async def seal_legacy_rows(log: AuditLog, keys: AuditKeys, now: datetime) -> bool:
    """If the chain ends with a row under an older key (legacy, or the environment's before
    the token's), append one under the current key: it seals the rows before, and from then
    on a chain ending under an older key is a rewrite."""
    head_seq, _hash = await log.head()
    last = await log.key_id_of(head_seq)
    if last is None or last == keys.current.key_id:
        return False
    await append(log, keys, now=now, action="audit_chain_sealed", previous=last)
    return True


@dataclass(frozen=True)
class ChainReport:
    checked: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


async def _recompute(rows: list[AuditRow], keys: AuditKeys) -> list[str | None]:
    """Each row's expected hash under the key its row names (None: a key not held)."""
    by_key: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_key.setdefault(row.key_id, []).append(index)
    out: list[str | None] = [None] * len(rows)
    for key_id, indexes in by_key.items():
        key: ChainKey | None = keys.by_id(key_id)
        if key is None:
            continue
        messages = [event_message(key_id, r.prev_hash, r.seq, r.occurred_at, r.client_id,
                                  r.action, r.certificate_id, r.result, r.details)
                    for r in (rows[i] for i in indexes)]
        for index, mac in zip(indexes, await key.macs(messages), strict=True):
            out[index] = mac
    return out


async def verify_chain(log: AuditLog, keys: AuditKeys | bytes, batch: int = 1000
                       ) -> ChainReport:
    """Walk the chain in order: each row's hash must match its content and its predecessor
    under the key it names, sequence numbers must have no gap, legacy rows must be a prefix
    sealed by a row under the chain's own key, and the head must name the last row."""
    keys = _keys(keys)
    problems: list[str] = []
    previous_hash, expected_seq, checked = GENESIS, 1, 0
    newest_rank, last_key = 0, None
    async for rows in _batches(log, batch):
        for row, recomputed in zip(rows, await _recompute(rows, keys), strict=True):
            if row.seq != expected_seq:
                problems.append(f"row {expected_seq} is missing (found {row.seq} next)")
            if row.prev_hash != previous_hash:
                problems.append(f"row {row.seq} does not follow its predecessor")
            if recomputed is None:
                problems.append(f"row {row.seq} names an audit key not held "
                                f"({row.key_id!r})")
            elif not hmac.compare_digest(recomputed, row.hash):
                problems.append(f"row {row.seq} was edited")
            rank = keys.rank(row.key_id)
            if rank < newest_rank:
                problems.append(f"row {row.seq} is keyed with an older key ({row.key_id!r}) "
                                "than a row before it: rows were re-chained")
            newest_rank = max(newest_rank, rank)
            previous_hash, expected_seq, last_key = row.hash, row.seq + 1, row.key_id
            checked += 1
    if last_key is not None and keys.rank(last_key) < keys.rank(keys.current.key_id):
        problems.append(f"the chain ends with rows under an older key ({last_key!r}) that no "
                        "row under the chain's own key seals: its later rows were removed and "
                        "the rest re-chained (or the service has not started since the "
                        "upgrade)")
    head_seq, head_hash = await log.head()
    if head_seq != expected_seq - 1 or head_hash != previous_hash:
        problems.append(f"the chain ends at row {expected_seq - 1} but its head names row "
                        f"{head_seq}: rows were removed from the end")
    return ChainReport(checked, problems)


async def _batches(log: AuditLog, size: int) -> AsyncIterator[list[AuditRow]]:
    after = 0
    while True:
        rows = await log.rows_after(after, size)
        if not rows:
            return
        yield rows
        after = rows[-1].seq


class _NoAudit:
    def __init__(self, _log: AuditLog) -> None:
        pass

    async def __call__(self, *, now: datetime, action: str, **_fields: Any) -> None:
        raise RuntimeError(f"this wiring has no audit chain key; cannot audit {action!r}")


def refusing_binder() -> Callable[[AuditLog], AuditAppender]:
    """For a wiring that never audits (status-only commands): appending fails loudly."""
    return _NoAudit
