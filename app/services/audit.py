"""The audit trail: every lifecycle event, appended in the transaction of the change, in one
hash chain (each row holds the hash of the previous), so an edit, a deletion or a reordering
is detectable by `certcloud audit verify`. The chain is an HMAC under a server secret: with
the database alone nobody can rewrite a row and recompute the rest of the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.ops_tables import audit_events, audit_head

GENESIS = "0" * 64
# Called with (action, result) for every appended event; the app's metrics register here in
# its lifespan. An event in a transaction that then rolls back (a lost race) is still counted.
event_listeners: list[Callable[[str, str], None]] = []
_FORBIDDEN_DETAIL_WORDS = frozenset({"pin", "code", "rrn", "secret", "password", "key",
                                     "digits", "otp"})


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    occurred_at: datetime
    client_id: str | None
    action: str
    certificate_id: str | None
    result: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def event_hash(key: bytes, prev_hash: str, seq: int, occurred_at: datetime, client_id: str | None,
               action: str, certificate_id: str | None, result: str, details: str) -> str:
    canonical = json.dumps([prev_hash, seq, occurred_at.isoformat(), client_id, action,
                            certificate_id, result, details], separators=(",", ":"),
                           ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


async def append(conn: AsyncConnection, key: bytes, *, now: datetime, action: str,
                 result: str = "ok", client_id: str | None = None,
                 certificate_id: str | None = None, **details: Any) -> None:
    """Append one event inside the caller's transaction. It locks the chain head until the
    transaction ends, so call it last, after the change itself."""
    bad = [name for name in details  # identifiers (…_id) name things, they hold no secret
           if not name.endswith("_id") and set(name.lower().split("_")) & _FORBIDDEN_DETAIL_WORDS]
    if bad:
        raise ValueError(f"audit details must not carry secrets: {bad}")
    head = (await conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        .with_for_update())).one()
    seq = int(head.seq) + 1
    encoded = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str)
    digest = event_hash(key, head.hash, seq, now, client_id, action, certificate_id, result,
                        encoded)
    await conn.execute(insert(audit_events).values(
        seq=seq, occurred_at=now, client_id=client_id, action=action,
        certificate_id=certificate_id, result=result, details=encoded, prev_hash=head.hash,
        hash=digest))
    await conn.execute(update(audit_head).where(audit_head.c.id == 1)
                       .values(seq=seq, hash=digest))
    for listener in event_listeners:
        listener(action, result)


async def page(conn: AsyncConnection, *, after: int, limit: int) -> list[AuditEvent]:
    rows = (await conn.execute(select(audit_events).where(audit_events.c.seq > after)
                               .order_by(audit_events.c.seq).limit(limit))).all()
    return [AuditEvent(row.seq, row.occurred_at, row.client_id, row.action, row.certificate_id,
                       row.result, json.loads(row.details), row.prev_hash, row.hash)
            for row in rows]


@dataclass(frozen=True)
class ChainReport:
    checked: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


async def verify_chain(conn: AsyncConnection, key: bytes, batch: int = 1000) -> ChainReport:
    """Walk the chain in order: each row's hash must match its content and its predecessor,
    sequence numbers must have no gap, and the head must name the last row."""
    problems: list[str] = []
    previous_hash, expected_seq, checked = GENESIS, 1, 0
    async for rows in _batches(conn, batch):
        for row in rows:
            if row.seq != expected_seq:
                problems.append(f"row {expected_seq} is missing (found {row.seq} next)")
            if row.prev_hash != previous_hash:
                problems.append(f"row {row.seq} does not follow its predecessor")
            recomputed = event_hash(key, row.prev_hash, row.seq, row.occurred_at, row.client_id,
                                    row.action, row.certificate_id, row.result, row.details)
            if recomputed != row.hash:
                problems.append(f"row {row.seq} was edited")
            previous_hash, expected_seq = row.hash, row.seq + 1
            checked += 1
    head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).one()
    if head.seq != expected_seq - 1 or head.hash != previous_hash:
        problems.append(f"the chain ends at row {expected_seq - 1} but its head names row "
                        f"{head.seq}: rows were removed from the end")
    return ChainReport(checked, problems)


async def _batches(conn: AsyncConnection, size: int) -> AsyncIterator[list[Any]]:
    after = 0
    while True:
        rows = (await conn.execute(select(audit_events).where(audit_events.c.seq > after)
                                   .order_by(audit_events.c.seq).limit(size))).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].seq
