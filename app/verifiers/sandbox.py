"""Development verifier and notifier: nothing leaves the machine. SMS texts (codes and
notices) wait in an in-memory outbox (``GET /sandbox/messages``); ARS calls wait for
``POST /sandbox/ars/{id}/keypad``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from app.domain.ports import Clock

_OUTBOX_LIMIT = 1000


@dataclass(frozen=True)
class SandboxMessage:
    phone: str
    text: str
    code: str | None  # None for a notice
    sent_at: datetime


class SandboxVerifier:
    slug = "sandbox"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._outbox: deque[SandboxMessage] = deque(maxlen=_OUTBOX_LIMIT)
        self.calls: set[str] = set()

    async def send_sms(self, *, verification_id: str, phone: str, text: str, code: str) -> None:
        self._outbox.append(SandboxMessage(phone, text, code, self.clock.now()))

    async def send_notice(self, *, notice_id: str, phone: str, text: str) -> None:
        self._outbox.append(SandboxMessage(phone, text, None, self.clock.now()))

    async def start_call(self, *, verification_id: str, phone: str) -> None:
        self.calls.add(verification_id)

    def messages(self, phone: str | None) -> list[SandboxMessage]:
        """Newest first."""
        return [m for m in reversed(self._outbox) if phone is None or m.phone == phone]
