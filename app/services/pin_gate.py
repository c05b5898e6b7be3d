"""The PIN gate: the one way to a holder's private key (signing, CSC, PIN change and a revoke
by PIN all come through it).

A check reserves a slot of the PIN lineage (every certificate sealed under this PIN) before the
slow KDF runs, in a unit of work of its own, so concurrent wrong PINs never add up past the
limit; a right PIN settles its reservation without counting, so concurrent right PINs wait for
a slot instead of locking the certificate. Every replica shares the count in the lineage's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from app.domain.certificates import MAX_WRONG_PINS, Certificate, raise_locked, wrong_pin_error
from app.domain.errors import NotFound, RateLimited
from app.domain.identity import check_pin_format
from app.domain.ports import Clock, UnitOfWorkFactory
from app.domain.records import PinCheckSlot
from app.pki.keys import UserPrivateKey, WrongPin
from app.services.custody import KeyCustody

log = logging.getLogger(__name__)

# A request finding every slot taken (as many checks in flight as tries left) polls for one,
# up to the wait. The lease frees slots that a crashed process never settled.
PIN_CHECK_LEASE = timedelta(seconds=60)
PIN_CHECK_WAIT = timedelta(seconds=10)
PIN_CHECK_POLL = timedelta(milliseconds=25)


class PinGate:
    def __init__(self, uow: UnitOfWorkFactory, custody: KeyCustody, clock: Clock) -> None:
        self.uow, self.custody, self.clock = uow, custody, clock

    async def open_key(self, certificate_id: str, pin: str, *, require_usable: bool = True,
                       client_id: str | None = None, audit_action: str | None = None
                       ) -> tuple[Certificate, UserPrivateKey]:
        """Check the PIN by opening the key; ``audit_action`` names what it was opened for
        (e.g. "sign"), audited with the right PIN's settlement.

        :raises InvalidInput: ``pin_malformed``, before any try is reserved.
        """
        check_pin_format(pin)
        now = self.clock.now()
        certificate, lineage_id, master_key_id, wrapped = await self._reserve(
            certificate_id, require_usable)
        try:
            key = await self.custody.open(certificate_id, master_key_id, wrapped, pin)
        except WrongPin:
            wrong_pins = await self._settle_wrong(certificate_id, lineage_id, client_id, now)
            log.info("wrong PIN", extra={"certificate_id": certificate_id, "tries": wrong_pins})
            raise wrong_pin_error(wrong_pins) from None
        except BaseException:
            # The key store failed (or the request was cancelled), not the holder: give the
            # reserved check back uncounted. If even that fails, the slot's lease ends it.
            with contextlib.suppress(Exception):
                async with self.uow() as uow:
                    await uow.records.release_pin_check(lineage_id, now)
                    await uow.commit()
            raise
        async with self.uow() as uow:
            await uow.records.settle_right_pin(lineage_id, now)
            if audit_action is not None:
                await uow.audit(now=now, action=audit_action, client_id=client_id,
                                certificate_id=certificate_id)
            await uow.commit()
        certificate.wrong_pins = 0
        return certificate, key

    async def _settle_wrong(self, certificate_id: str, lineage_id: str,
                            client_id: str | None, now: datetime) -> int:
        async with self.uow() as uow:
            wrong_pins = await uow.records.settle_wrong_pin(lineage_id, now)
            await uow.audit(now=now, action="pin_check", result="failure", client_id=client_id,
                            certificate_id=certificate_id, wrong_pins=wrong_pins)
            if wrong_pins >= MAX_WRONG_PINS:
                await uow.audit(now=now, action="lock", client_id=client_id,
                                certificate_id=certificate_id)
            await uow.commit()
        return wrong_pins

    async def _reserve(self, certificate_id: str, require_usable: bool
                       ) -> tuple[Certificate, str, str, bytes]:
        """Wait (up to ``PIN_CHECK_WAIT``) for a free PIN-check slot of the certificate's PIN
        lineage. Returns the certificate, its lineage, and its sealed key."""
        deadline = time.monotonic() + PIN_CHECK_WAIT.total_seconds()
        while True:
            now = self.clock.now()
            async with self.uow() as uow:
                certificate = await uow.records.get_certificate(certificate_id)
                if certificate is None:
                    raise NotFound("no such certificate", code="certificate_not_found")
                if require_usable:
                    certificate.check_can_use_key(now)
                lineage_id = await uow.records.pin_lineage_of(certificate_id)
                slot = await uow.records.reserve_pin_check(lineage_id, now, PIN_CHECK_LEASE)
                if slot is PinCheckSlot.RESERVED:
                    master_key_id, wrapped = await uow.records.wrapped_key(certificate_id)
                    await uow.commit()
                    return certificate, lineage_id, master_key_id, wrapped
                await uow.commit()
            if slot is PinCheckSlot.LOCKED:
                raise_locked()
            if time.monotonic() >= deadline:
                raise RateLimited("too many PIN checks of this certificate in flight; retry",
                                  code="pin_checks_busy", retry_after=1)
            await asyncio.sleep(PIN_CHECK_POLL.total_seconds())
