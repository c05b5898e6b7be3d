"""SMS notices to the phone on record, and the audited change of that record.

A notice is written to the outbox in the transaction of the change it tells of, so it exists
exactly when the change committed; it is sent once that transaction is over. A provider that
fails (or a process that dies in between) never undoes or fails the change: the background
loop sends the notice again until it goes out or runs out of attempts.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.contact import contact_on_record
from app.domain.errors import DomainError, InvalidInput
from app.domain.notices import NoticeKind, notice_text
from app.domain.ports import Clock, Notifier, UnitOfWork, UnitOfWorkFactory
from app.domain.records import OutboxNotice
from app.services.secrets import ServerSecrets

log = logging.getLogger(__name__)

# How long a sender holds a notice before another may take it over (a crashed request).
CLAIM = timedelta(minutes=2)
RETRY_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 30
KEEP_SENT = timedelta(days=30)
_BATCH = 100
# Called with "sent" or "failed" for every delivery attempt; the app's metrics register here.
delivery_listeners: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class ReplacedPhone:
    """A phone a contact change took off the record; ``may_take_back``: kept as the previous
    phone, it may start a reissue for a while."""

    phone: str
    may_take_back: bool


@dataclass(frozen=True)
class ContactUpdate:
    """Contact data an issuance gives (or a take-back restores); ``email`` None keeps it."""

    name: str
    phone: str
    email: str | None = None


class Notices:
    def __init__(self, uow: UnitOfWorkFactory, notifier: Notifier, secrets_: ServerSecrets,
                 clock: Clock) -> None:
        self.uow, self.notifier, self.secrets, self.clock = uow, notifier, secrets_, clock

    async def enqueue(self, uow: UnitOfWork, kind: NoticeKind, *, client_id: str | None,
                      phone: str, now: datetime, replaced: ReplacedPhone | None = None
                      ) -> list[OutboxNotice]:
        """Inside the change's transaction: a notice to ``phone`` (the phone on record after
        the change) and, when the change replaced it, to the ``replaced`` phone too."""
        client = await uow.records.get_client(client_id) if client_id else None
        bank = client.name if client is not None else "Certcloud"
        texts = {phone: notice_text(kind, bank=bank, at=now)}
        if replaced is not None and replaced.phone != phone:
            texts = {replaced.phone: notice_text(kind, bank=bank, at=now, phone_replaced=True,
                                                 may_take_back=replaced.may_take_back),
                     **texts}
        queued = []
        for recipient, text in texts.items():
            notice = OutboxNotice(str(uuid.uuid4()), recipient, text)
            await uow.outbox.add(notice, kind=kind.value, client_id=client_id, now=now,
                             claimed_until=now + CLAIM)
            queued.append(notice)
        return queued

    async def deliver(self, queued: Iterable[OutboxNotice]) -> None:
        """After the commit: send each; never raises (what fails is tried again later)."""
        for notice in queued:
            await self._send(notice)

    async def redeliver_due(self) -> int:
        """Notices that failed or whose sender died: claim each, send it. Returns how many
        went out."""
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.outbox.purge_sent(now - KEEP_SENT)
            due = await uow.outbox.due(now, max_attempts=MAX_ATTEMPTS, limit=_BATCH)
            await uow.commit()
        sent = 0
        for notice_id in due:
            async with self.uow() as uow:
                notice = await uow.outbox.claim(notice_id, now, now + CLAIM)
                await uow.commit()
            if notice is not None:
                sent += await self._send(notice)
        return sent

    async def run_periodically(self, interval_seconds: float) -> None:
        """The lifespan's background task; every replica runs it, the claims keep one
        sender per notice."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.redeliver_due()
            except DomainError as exc:  # the database is down: try again next round
                log.warning("notice redelivery skipped", extra={"cause": exc.code})

    async def _send(self, notice: OutboxNotice) -> bool:
        sent, final, cause = False, False, None
        try:
            await self.notifier.send_notice(notice_id=notice.id, phone=notice.phone,
                                            text=notice.text)
            sent = True
        except InvalidInput as exc:  # a phone the provider cannot reach: no retry helps
            final, cause = True, exc.code
        except DomainError as exc:
            cause = exc.code
        except Exception as exc:  # an adapter bug must not fail the change either
            cause = type(exc).__name__
        now = self.clock.now()
        for listener in delivery_listeners:
            listener("sent" if sent else "failed")
        if not sent:
            log.warning("notice not delivered" if final else
                        "notice not delivered; it will be tried again",
                        extra={"notice_id": notice.id, "cause": cause})
        try:
            async with self.uow() as uow:
                if final:
                    await uow.outbox.settle(notice.id, sent_at=None, retry_at=None,
                                            attempts=MAX_ATTEMPTS)
                else:
                    await uow.outbox.settle(notice.id, sent_at=now if sent else None,
                                            retry_at=None if sent else now + RETRY_AFTER)
                await uow.commit()
        except DomainError as exc:  # the claim runs out; at worst the notice goes twice
            log.warning("notice outcome not stored", extra={"notice_id": notice.id,
                                                            "cause": exc.code})
        return sent

    async def set_contact(self, uow: UnitOfWork, person_id: str, update: ContactUpdate,
                          *, client_id: str, cause: str, now: datetime
                          ) -> ReplacedPhone | None:
        """Store the contact data (the person's row locked by the caller) and audit what
        changed, by HMACs only. Returns the phone this replaced on record, if any."""
        repo = uow.records
        person = await repo.get_person(person_id, for_update=True)
        assert person is not None
        before = contact_on_record(person)
        after = before.changed_to(name=update.name, phone=update.phone,
                                  email=before.email if update.email is None else update.email,
                                  now=now)
        if after == before:
            return None
        await repo.update_person_contact(person_id, after, now)
        changed: dict[str, str] = {}
        for field in ("phone", "name"):
            old, new = getattr(before, field), getattr(after, field)
            if old != new:
                changed[f"old_{field}_hmac"] = self.secrets.contact_hmac(field, old)
                changed[f"new_{field}_hmac"] = self.secrets.contact_hmac(field, new)
        if changed:
            await uow.audit(now=now, action="contact_change", client_id=client_id,
                            person_id=person_id, cause=cause, **changed)
            log.info("contact on record changed", extra={"person_id": person_id,
                                                         "fields": sorted(changed)})
        if after.phone == before.phone:
            return None
        return ReplacedPhone(before.phone, may_take_back=after.previous_phone == before.phone)
