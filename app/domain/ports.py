"""The small interfaces the use cases need; storage/, pki/ and verifiers/ implement them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol


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
