"""The small interfaces the use cases need; storage/, pki/ and verifiers/ implement them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from app.domain.records import BlobMove
from app.domain.repositories import (
    AuditLog,
    IdentitySecrets,
    Leftovers,
    Outbox,
    Records,
    Sads,
    StatusRecords,
    Suspensions,
    TsaRecords,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class PhoneVerifier(Protocol):
    """Delivers a verification to a phone. The service makes and checks the codes itself.

    Adapters raise :class:`app.domain.errors.DependencyUnavailable` when the provider is down,
    times out or refuses the request, and never put the code in a log or an exception.
    """

    slug: str

    async def send_sms(self, *, verification_id: str, phone: str, text: str, code: str) -> None:
        """Send ``text`` (which contains ``code``) by SMS to ``phone`` (E.164)."""
        ...

    async def start_call(self, *, verification_id: str, phone: str) -> None:
        """Place an ARS voice call to ``phone`` that asks the person to key in the code shown
        on their screen. The digits come back later through the adapter's signed callback (or
        the sandbox keypad), which the service checks against the code."""
        ...


class Notifier(Protocol):
    """Sends a notice (no code in it) by SMS to a person's phone.

    Adapters raise :class:`app.domain.errors.DomainError` (``DependencyUnavailable`` when the
    provider is down or refuses, ``InvalidInput`` for a phone it cannot reach).
    """

    async def send_notice(self, *, notice_id: str, phone: str, text: str) -> None: ...


class KeyProtector(Protocol):
    """The server master-key layer (the outer lock around a user key).

    ``wrap`` uses the newest master key and returns its id with the blob; ``unwrap`` accepts a
    blob from any key still held. ``associated_data`` binds the blob to its owner record.
    Implementations raise :class:`app.domain.errors.DependencyUnavailable` when the key store
    is unreachable, and ``ValueError`` for a blob that fails authentication.
    """

    async def wrap(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]: ...

    async def unwrap(self, key_id: str, blob: bytes, associated_data: bytes) -> bytes: ...

    def current_key_id(self) -> str: ...


class ChangeSignal(Protocol):
    """Tells a serving replica, as soon as it commits, that the status generation moved
    (PostgreSQL LISTEN/NOTIFY: app/storage/status_listener.py). While ``listening`` is False
    (not yet connected, or the connection dropped and is being re-made) the replica polls.
    """

    @property
    def listening(self) -> bool: ...

    def start(self, on_change: Callable[[], None]) -> None:
        """Connect and listen in the background (reconnecting with backoff); call
        ``on_change`` on every notification and each time listening (re)starts, since changes
        made meanwhile were not notified."""
        ...

    async def close(self) -> None: ...


class AuditAppender(Protocol):
    """The audit trail, bound to one unit of work: ``await uow.audit(now=..., action=...)``
    appends one event in that transaction (it locks the chain head until the end, so call it
    last, after the change itself)."""

    async def __call__(self, *, now: datetime, action: str, result: str = "ok",
                       client_id: str | None = None, certificate_id: str | None = None,
                       **details: Any) -> None: ...


class UnitOfWork(Protocol):
    """One transaction and the repositories bound to it.

    ``async with self.uow() as uow: ...; await uow.commit()``: leaving the block without
    ``commit`` (or by an exception) rolls everything back. ``self.uow(write=False)`` is a
    read; it needs no commit. Database trouble leaves the block as a domain error (a lost
    race ``Conflict``, an outage ``DependencyUnavailable``), as from every storage call.
    """

    records: Records
    status: StatusRecords
    sads: Sads
    outbox: Outbox
    audit_log: AuditLog
    leftovers: Leftovers
    suspensions: Suspensions
    tsa: TsaRecords
    identity: IdentitySecrets
    audit: AuditAppender

    async def commit(self) -> None: ...

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...


class UnitOfWorkFactory(Protocol):
    """What services hold (``self.uow``): each call is a new unit of work."""

    def __call__(self, *, write: bool = True) -> UnitOfWork: ...


class RevocationRecorder(Protocol):
    """What the certificate use cases call when they revoke or issue (the status service).

    ``record`` runs inside the revoking unit of work; ``publish`` runs after the commit and
    before the reply; ``presign`` after an issuance has committed.
    """

    async def record(self, uow: UnitOfWork, certificate_id: str) -> int | None: ...

    async def publish(self, generation: int | None) -> None: ...

    async def presign(self, serial: str) -> None: ...


class _NoRecorder:
    async def record(self, uow: UnitOfWork, certificate_id: str) -> int | None:
        return None

    async def publish(self, generation: int | None) -> None:
        return None

    async def presign(self, serial: str) -> None:
        return None


NO_RECORDER: RevocationRecorder = _NoRecorder()


class WrappedBlobs(Protocol):
    """Every table holding blobs wrapped under a master key (one "store" each), as master-key
    rotation needs them; each call is one transaction of its own."""

    names: Sequence[str]

    def binding(self, store: str, row_id: str) -> bytes:
        """The associated data the row's blob was wrapped with."""
        ...

    async def counts(self) -> dict[str, dict[str, int]]:
        """Store -> key id -> blobs, in one read (unregistered key columns too)."""
        ...

    async def count_not_on(self, target: str) -> int: ...

    async def batch_not_on(self, store: str, target: str, after_id: str, limit: int
                           ) -> list[tuple[str, str, bytes]]: ...

    async def move(self, store: str, moves: Sequence[BlobMove]) -> int:
        """Apply the moves whose row still holds the blob read; how many did."""
        ...
