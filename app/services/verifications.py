"""Phone verification use cases: start, confirm (SMS code or ARS keypad), read."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from app.domain.errors import Conflict, DependencyUnavailable, InvalidInput, NotFound
from app.domain.ports import Clock, PhoneVerifier, UnitOfWork, UnitOfWorkFactory
from app.domain.records import CodeTry
from app.domain.verification import (
    CODE_TTL,
    MAX_WRONG_CODES,
    Channel,
    PreviousPhone,
    Purpose,
    Verification,
    VerificationStatus,
    normalize_phone,
)
from app.services.limits import Limit, RateLimiter
from app.services.secrets import ServerSecrets
from app.settings import LimitsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartedVerification:
    verification: Verification
    display_code: str | None  # ARS only: shown on the screen, keyed in during the call


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _may_exist(verification_id: str) -> bool:
    """Ids are canonical UUIDs made here; anything else is unknown without asking the
    database (which may refuse what a path can carry, e.g. PostgreSQL and NUL)."""
    try:
        return str(uuid.UUID(verification_id)) == verification_id
    except ValueError:
        return False


class VerificationService:
    def __init__(self, uow: UnitOfWorkFactory, verifier: PhoneVerifier,
                 secrets_: ServerSecrets, clock: Clock, limiter: RateLimiter,
                 limits: LimitsSettings | None = None) -> None:
        self.uow, self.verifier, self.secrets, self.clock = uow, verifier, secrets_, clock
        self.limiter = limiter
        limits = limits or LimitsSettings()
        self.per_client = Limit("verifications_per_client",
                                limits.verifications_per_client_per_minute, 60)
        self.per_phone = Limit("verifications_per_phone",
                               limits.verifications_per_phone_per_10_minutes, 600)
        self.wrong_codes = Limit("wrong_codes_per_phone", limits.wrong_codes_per_phone_per_hour,
                                 3600)
        self.wrong_codes_per_client = Limit("wrong_codes_per_client",
                                            limits.wrong_codes_per_client_per_hour, 3600)

    async def start(self, *, client_id: str, phone: str, channel: Channel,
                    purpose: Purpose | None) -> StartedVerification:
        now = self.clock.now()
        verification = Verification(
            id=str(uuid.uuid4()), client_id=client_id, phone=normalize_phone(phone),
            channel=channel, purpose=purpose, status=VerificationStatus.PENDING, wrong_codes=0,
            created_at=now, expires_at=now + CODE_TTL, verified_at=None, used_at=None)
        await self.limiter.hit(self.per_client, client_id, now)
        await self.limiter.hit(self.per_phone, verification.phone, now)
        code = new_code()
        async with self.uow() as uow:
            await uow.records.add_verification(
                verification, self.secrets.code_hash(verification.id, code))
            await uow.audit(now=now, action="verification_start", client_id=client_id,
                            verification_id=verification.id, channel=channel.value,
                            purpose=purpose.value if purpose else None)
            await uow.commit()
        try:
            if channel is Channel.SMS:
                text = f"[Certcloud] 인증번호 {code} (3분 내 입력). 타인에게 알려주지 마세요."
                await self.verifier.send_sms(verification_id=verification.id,
                                             phone=verification.phone, text=text, code=code)
            else:
                await self.verifier.start_call(verification_id=verification.id,
                                               phone=verification.phone)
        except DependencyUnavailable:
            # Nothing was delivered: this verification can never be confirmed; start anew.
            async with self.uow() as uow:
                await uow.records.fail_verification(verification.id)
                await uow.audit(now=now, action="verification_start", result="failure",
                                client_id=client_id, verification_id=verification.id,
                                cause="provider_unavailable")
                await uow.commit()
            raise
        log.info("verification started", extra={"verification_id": verification.id,
                                                "channel": channel.value, "client_id": client_id})
        return StartedVerification(verification, code if channel is Channel.ARS else None)

    async def get(self, *, client_id: str, verification_id: str) -> Verification:
        if not _may_exist(verification_id):
            raise NotFound("no such verification", code="verification_not_found")
        async with self.uow(write=False) as uow:
            found = await uow.records.get_verification(verification_id)
        if found is None or found[0].client_id != client_id:
            raise NotFound("no such verification", code="verification_not_found")
        return found[0]

    async def confirm_sms(self, *, client_id: str, verification_id: str, code: str
                          ) -> Verification:
        return await self._confirm(verification_id, code, client_id=client_id,
                                   channel=Channel.SMS)

    async def confirm_keypad(self, *, verification_id: str, digits: str) -> Verification:
        """Digits keyed in during the ARS call (from the provider's signed callback, or the
        sandbox keypad). The call reaches only the phone, so no bank client is involved."""
        return await self._confirm(verification_id, digits, client_id=None, channel=Channel.ARS)

    async def _confirm(self, verification_id: str, code: str, *, client_id: str | None,
                       channel: Channel) -> Verification:
        """Take a try first, then compare: a conditional update takes one of the
        ``MAX_WRONG_CODES`` tries and holds the row until the comparison is settled, so
        concurrent confirms never compare more codes than there are tries; a right code gives
        its try back. The limits are read before the transaction, on connections of their own,
        so a transaction never waits for a second pooled connection."""
        if not _may_exist(verification_id):
            raise NotFound("no such verification", code="verification_not_found")
        now = self.clock.now()
        verification = await self._confirmable(verification_id, client_id, channel, now)
        await self.limiter.check(self.wrong_codes, verification.phone, now)
        await self.limiter.check(self.wrong_codes_per_client, verification.client_id, now)
        wrong: int | None = None
        async with self.uow() as uow:
            repo = uow.records
            if await repo.take_code_try(verification_id, now, MAX_WRONG_CODES) \
                    is CodeTry.REFUSED:
                current = await repo.get_verification(verification_id)
                assert current is not None
                current[0].check_confirmable(now, verification.client_id)
                raise Conflict("verification changed concurrently", code="concurrent_change")
            found = await repo.get_verification(verification_id)
            assert found is not None
            verified = hmac.compare_digest(self.secrets.code_hash(verification_id, code),
                                           found[1])
            if verified:
                await repo.settle_right_code(verification_id, now)
            else:
                wrong = await repo.settle_wrong_code(verification_id, MAX_WRONG_CODES)
            await uow.audit(now=now, action="verification_confirm",
                            result="ok" if verified else "failure",
                            client_id=verification.client_id, verification_id=verification_id,
                            wrong_tries=wrong)
            await uow.commit()
        if wrong is not None:
            await self.limiter.hit(self.wrong_codes, verification.phone, now)
            await self.limiter.hit(self.wrong_codes_per_client, verification.client_id, now)
            remaining = max(MAX_WRONG_CODES - wrong, 0)
            log.info("verification code wrong", extra={"verification_id": verification_id})
            raise InvalidInput("the code does not match" + ("" if remaining else
                               "; the verification has failed, start a new one"),
                               code="verification_code_invalid", remaining_attempts=remaining)
        return await self._reload(verification_id)

    async def _confirmable(self, verification_id: str, client_id: str | None,
                           channel: Channel, now: datetime) -> Verification:
        """The verification, if this caller may confirm it this way now.

        :raises NotFound: unknown, or another bank's.
        :raises Conflict: no longer pending, expired, or of the other channel.
        """
        async with self.uow(write=False) as uow:
            found = await uow.records.get_verification(verification_id)
        if found is None or (client_id is not None and found[0].client_id != client_id):
            raise NotFound("no such verification", code="verification_not_found")
        verification = found[0]
        verification.check_confirmable(now, verification.client_id)
        if verification.channel is not channel:
            raise Conflict(f"a {verification.channel.value} verification cannot be confirmed "
                           f"this way", code="verification_channel_mismatch")
        return verification

    async def _reload(self, verification_id: str) -> Verification:
        async with self.uow(write=False) as uow:
            found = await uow.records.get_verification(verification_id)
        assert found is not None
        return found[0]

    # --- using a verification up (issue, reissue, unlock, revoke) ------------------------

    async def precheck(self, verification_id: str, *, client_id: str, phone: str,
                       purpose: Purpose, previous: PreviousPhone | None = None) -> None:
        """Fail fast, before key generation, on a verification that cannot count."""
        async with self.uow(write=False) as uow:
            found = await uow.records.get_verification(verification_id)
        if found is None:
            raise NotFound("no such verification", code="verification_not_found")
        found[0].check_usable(self.clock.now(), client_id=client_id, phone=phone,
                              purpose=purpose, previous=previous)


async def consume(uow: UnitOfWork, verification_id: str, *, client_id: str, phone: str,
                  purpose: Purpose, now: datetime, previous: PreviousPhone | None = None
                  ) -> str:
    """Use the verification up, inside the caller's unit of work (the change it proves
    commits with it, or neither does); returns the phone it was made with."""
    found = await uow.records.get_verification(verification_id)
    if found is None:
        raise NotFound("no such verification", code="verification_not_found")
    found[0].check_usable(now, client_id=client_id, phone=phone, purpose=purpose,
                          previous=previous)
    if not await uow.records.consume_verification(verification_id, now):
        raise Conflict("verification is used", code="verification_used")
    return found[0].phone
