"""Certificate use cases: issue, reissue, unlock, change PIN, revoke and read (a lookup by
RRN is ``app.services.lookup``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.certificates import (
    MAX_WRONG_PINS,
    VALIDITY,
    Certificate,
    CertificateStatus,
    RevocationReason,
    raise_locked,
    revocation_update,
    wrong_pin_error,
)
from app.domain.contact import ContactOnRecord
from app.domain.errors import Conflict, InvalidInput, NotFound, RateLimited
from app.domain.identity import (
    birth_date_patterns,
    check_person_name,
    check_pin,
    check_pin_format,
    parse_rrn,
)
from app.domain.notices import NoticeKind
from app.domain.ports import Clock
from app.domain.verification import PreviousPhone, Purpose, normalize_phone
from app.pki.keys import UserPrivateKey, WrongPin
from app.services import audit
from app.services.custody import KeyCustody
from app.services.identity_binding import IdentityBinding
from app.services.issuer import Issuer, serial_hex
from app.services.notices import ContactUpdate, Notices
from app.services.operator_revocation import store_revocation
from app.services.secrets import ServerSecrets
from app.services.status import NO_RECORDER, RevocationRecorder
from app.storage.db import Database
from app.storage.notice_outbox import OutboxNotice
from app.storage.repository import PinCheckSlot, Repository, contact_on_record

log = logging.getLogger(__name__)

# A PIN check reserves a slot in the certificate row; a request finding every slot taken (as
# many checks in flight as tries left) polls for one, up to the wait. The lease frees slots
# that a crashed process never settled.
PIN_CHECK_LEASE = timedelta(seconds=60)
PIN_CHECK_WAIT = timedelta(seconds=10)
PIN_CHECK_POLL = timedelta(milliseconds=25)


@dataclass(frozen=True)
class _NewCertificate:
    """A key pair made for a certificate about to be issued, and its sealed form."""

    id: str
    key: UserPrivateKey = field(repr=False)
    serial: int
    master_key_id: str
    wrapped: bytes = field(repr=False)


@dataclass(frozen=True)
class PersonDetails:
    name: str
    rrn: str
    phone: str
    email: str


@dataclass(frozen=True)
class _Holder:
    person_id: str
    name: str
    phone: str
    is_birth_pattern: Callable[[str], bool]
    contact: ContactOnRecord


class CertificateService:
    def __init__(self, db: Database, issuer: Issuer, custody: KeyCustody,
                 secrets_: ServerSecrets, clock: Clock, *, notices: Notices,
                 revocations: RevocationRecorder | None = None,
                 binding: IdentityBinding | None = None) -> None:
        self.db, self.issuer, self.custody = db, issuer, custody
        # The VID in each new certificate (R and the RRN under the master-key layer).
        self.binding = binding or IdentityBinding(db, custody.protector)
        # SMS notices to the phone on record: queued in the change's transaction, sent after.
        self.notices = notices
        self.secrets, self.clock = secrets_, clock
        # Status (OCSP, CRL): told in the revoking transaction, published before the reply.
        self.revocations = revocations or NO_RECORDER

    # --- reads ---------------------------------------------------------------------------

    async def get(self, certificate_id: str) -> Certificate:
        async with self.db.transaction(write=False) as conn:
            certificate = await Repository(conn).get_certificate(certificate_id)
        if certificate is None:
            raise NotFound("no such certificate", code="certificate_not_found")
        return certificate

    async def by_serial(self, serial: str) -> Certificate | None:
        async with self.db.transaction(write=False) as conn:
            return await Repository(conn).get_certificate_by_serial(serial)

    # --- issue and reissue ---------------------------------------------------------------

    async def issue(self, *, client_id: str, verification_id: str, person: PersonDetails,
                    terms_accepted: bool, account_password_verified: bool,
                    contact_confirmed: bool, pin: str) -> Certificate:
        now = self.clock.now()
        if terms_accepted is not True:
            raise InvalidInput("the terms must be accepted", code="terms_not_accepted")
        if not (account_password_verified is True and contact_confirmed is True):
            raise InvalidInput("the bank must confirm the withdrawal-account password and the "
                               "customer's contact data", code="bank_checks_incomplete")
        check_person_name(person.name)
        rrn = parse_rrn(person.rrn, today=now.date())
        phone = normalize_phone(person.phone)
        patterns = birth_date_patterns(rrn.birth_date)
        check_pin(pin, is_birth_pattern=patterns.__contains__)
        rrn_hmac = await self.secrets.rrn_lookup_hmac(rrn.digits)
        await self._precheck_verification(verification_id, client_id, phone, Purpose.ISSUE)

        new = await self._new_sealed_key(pin)
        async with self.db.transaction() as conn:
            repo = Repository(conn)
            await self._consume(repo, verification_id, client_id, phone, Purpose.ISSUE, now)
            existing = await repo.person_by_rrn_hmac(rrn_hmac)
            if existing is None:
                person_id = str(uuid.uuid4())
                await repo.add_person(person_id=person_id, rrn_hmac=rrn_hmac, name=person.name,
                                      phone=phone, email=person.email,
                                      birth_patterns=self.secrets.birth_patterns_record(patterns),
                                      now=now)
            else:  # the contact data on record change when the certificate is activated
                person_id = existing.id
                if not self.secrets.patterns_are_current(existing.birth_patterns):
                    # The RRN is at hand: re-key legacy patterns (keyed with the RRN key).
                    await repo.set_birth_patterns(
                        person_id, self.secrets.birth_patterns_record(patterns), now)
            await self._add_pending(repo, new, person_id=person_id, client_id=client_id,
                                    replaces_id=None, now=now)
        return await self._sign_and_activate(
            new, person_id=person_id, name=person.name, now=now, client_id=client_id,
            action="issue", contact=ContactUpdate(person.name, phone, person.email),
            rrn_digits=rrn.digits)

    async def reissue(self, *, client_id: str, certificate_id: str, verification_id: str,
                      pin: str) -> Certificate:
        now = self.clock.now()
        old, holder = await self._load_with_holder(certificate_id)
        async with self.db.transaction(write=False) as conn:
            repo = Repository(conn)
            active = await repo.active_certificate_of(old.person_id)
            # Only the person's latest certificate may be reissued: one already replaced, or
            # an older one while another is active, would fork the chain of replacements.
            old.check_reissuable(is_latest=not await repo.is_replaced(old.id)
                                 and (active is None or active.id == old.id))
        check_pin(pin, is_birth_pattern=holder.is_birth_pattern)
        previous = holder.contact.previous  # may start a reissue for a while after replaced
        await self._precheck_verification(verification_id, client_id, holder.phone,
                                          Purpose.REISSUE, previous)
        new = await self._new_sealed_key(pin)
        async with self.db.transaction() as conn:
            repo = Repository(conn)
            verified_phone = await self._consume(repo, verification_id, client_id,
                                                 holder.phone, Purpose.REISSUE, now, previous)
            await self._add_pending(repo, new, person_id=holder.person_id, client_id=client_id,
                                    replaces_id=old.id, now=now)
        # Proven with the previous phone: the person takes the record (phone, name) back.
        taken_back = None if verified_phone == holder.phone else ContactUpdate(
            holder.contact.previous_name or holder.name, verified_phone)
        return await self._sign_and_activate(
            new, person_id=holder.person_id,
            name=taken_back.name if taken_back else holder.name, now=now, client_id=client_id,
            action="reissue", contact=taken_back)

    async def _new_sealed_key(self, pin: str) -> _NewCertificate:
        """A new key pair, sealed under the PIN, with the id and serial of its certificate."""
        key = await self.issuer.new_key()
        certificate_id = str(uuid.uuid4())
        master_key_id, wrapped = await self.custody.seal(key, pin, certificate_id)
        return _NewCertificate(certificate_id, key, self.issuer.new_serial(), master_key_id,
                               wrapped)

    async def _add_pending(self, repo: Repository, new: _NewCertificate, *, person_id: str,
                           client_id: str, replaces_id: str | None, now: datetime,
                           pin_lineage_id: str | None = None) -> None:
        await repo.add_pending_certificate(
            certificate_id=new.id, person_id=person_id, serial=serial_hex(new.serial),
            not_before=now, not_after=now + VALIDITY, key_algorithm=self.issuer.key_algorithm,
            client_id=client_id, replaces_id=replaces_id, now=now,
            pin_lineage_id=pin_lineage_id)

    async def _sign_and_activate(self, new: _NewCertificate, *, person_id: str, name: str,
                                 now: datetime, client_id: str, action: str,
                                 contact: ContactUpdate | None = None,
                                 rrn_digits: str | None = None) -> Certificate:
        """The CA signs only after the pending row is stored; activation then supersedes the
        person's active certificate in one transaction, under the person's row lock, and
        stores the ``contact`` data. The phone on record (and the one it replaced) is told."""
        certificate_id, serial = new.id, new.serial
        published: int | None = None
        queued: list[OutboxNotice] = []
        try:
            # A new R for every certificate; a renewal or reissue uses the RRN on record.
            vid = await self.binding.prepare(certificate_id=certificate_id,
                                             person_id=person_id, name=name,
                                             rrn_digits=rrn_digits)
            der = await self.issuer.sign(key=new.key, name=name, person_id=person_id,
                                         serial=serial, not_before=now,
                                         not_after=now + VALIDITY, identify_data=vid.san)
            async with self.db.transaction() as conn:
                repo = Repository(conn)
                person = await repo.get_person(person_id, for_update=True)
                assert person is not None
                previous = await repo.active_certificate_of(person_id)
                if previous is not None:
                    await repo.revoke(previous.id, RevocationReason.SUPERSEDED, now)
                    await repo.set_replaces(certificate_id, previous.id)
                    published = await self.revocations.record(conn, previous.id)
                await repo.activate_certificate(certificate_id, certificate_der=der,
                                                master_key_id=new.master_key_id,
                                                wrapped_key=new.wrapped, now=now)
                await self.binding.store(conn, vid, now)
                replaced = None if contact is None else await self.notices.set_contact(
                    conn, person_id, contact, client_id=client_id, cause=action, now=now)
                queued = await self.notices.enqueue(
                    conn, NoticeKind(action), client_id=client_id,
                    phone=person.phone if contact is None else contact.phone,
                    replaced=replaced, now=now)
                if previous is not None:
                    await audit.append(conn, self.secrets.audit_key, now=now,
                                       action="supersede", client_id=client_id,
                                       certificate_id=previous.id, successor_id=certificate_id)
                await audit.append(conn, self.secrets.audit_key, now=now, action=action,
                                   client_id=client_id, certificate_id=certificate_id,
                                   serial=serial_hex(serial))
        except BaseException:
            await self._discard_pending(certificate_id)
            raise
        await self.revocations.publish(published)
        await self.revocations.presign(serial_hex(serial))
        await self.notices.deliver(queued)
        log.info("certificate issued", extra={"certificate_id": certificate_id,
                                              "serial": serial_hex(serial),
                                              "superseded": previous.id if previous else None})
        return await self.get(certificate_id)

    async def _discard_pending(self, certificate_id: str) -> None:
        try:
            async with self.db.transaction() as conn:
                await Repository(conn).delete_pending(certificate_id)
        except Exception:  # the sweeper removes it later
            log.warning("pending certificate left for the sweeper",
                        extra={"certificate_id": certificate_id})

    # --- PIN-protected operations --------------------------------------------------------

    async def open_key(self, certificate_id: str, pin: str, *, require_usable: bool = True,
                       client_id: str | None = None, audit_action: str | None = None
                       ) -> tuple[Certificate, UserPrivateKey]:
        """Check the PIN by opening the key. A check is reserved before the (slow) KDF runs,
        in its own committed update, so concurrent wrong PINs never add up past the limit;
        a right PIN settles its reservation without counting, so concurrent right PINs
        wait for a slot instead of locking the certificate. Tries are counted per PIN
        lineage (every certificate sealed under this PIN), not per certificate.

        :raises InvalidInput: ``pin_malformed``, before any try is reserved.
        """
        check_pin_format(pin)
        now = self.clock.now()
        certificate, lineage_id, master_key_id, wrapped = await self._reserve_pin_check(
            certificate_id, require_usable)
        try:
            key = await self.custody.open(certificate_id, master_key_id, wrapped, pin)
        except WrongPin:
            async with self.db.transaction() as conn:
                wrong_pins = await Repository(conn).settle_wrong_pin(lineage_id, now)
                await audit.append(conn, self.secrets.audit_key, now=now, action="pin_check",
                                   result="failure", client_id=client_id,
                                   certificate_id=certificate_id, wrong_pins=wrong_pins)
                if wrong_pins >= MAX_WRONG_PINS:
                    await audit.append(conn, self.secrets.audit_key, now=now, action="lock",
                                       client_id=client_id, certificate_id=certificate_id)
            log.info("wrong PIN", extra={"certificate_id": certificate_id, "tries": wrong_pins})
            raise wrong_pin_error(wrong_pins) from None
        except BaseException:
            # The key store failed (or the request was cancelled), not the holder: give the
            # reserved check back uncounted. If even that fails, the slot's lease ends it.
            with contextlib.suppress(Exception):
                async with self.db.transaction() as conn:
                    await Repository(conn).release_pin_check(lineage_id, now)
            raise
        async with self.db.transaction() as conn:
            await Repository(conn).settle_right_pin(lineage_id, now)
            if audit_action is not None:  # what the key was opened for, e.g. "sign"
                await audit.append(conn, self.secrets.audit_key, now=now, action=audit_action,
                                   client_id=client_id, certificate_id=certificate_id)
        certificate.wrong_pins = 0
        return certificate, key

    async def _reserve_pin_check(self, certificate_id: str, require_usable: bool
                                 ) -> tuple[Certificate, str, str, bytes]:
        """Wait (up to ``PIN_CHECK_WAIT``) for a free PIN-check slot of the certificate's PIN
        lineage; every replica shares the count in the lineage's row. Returns the
        certificate, its lineage, and its sealed key."""
        deadline = time.monotonic() + PIN_CHECK_WAIT.total_seconds()
        while True:
            now = self.clock.now()
            async with self.db.transaction() as conn:
                repo = Repository(conn)
                certificate = await repo.get_certificate(certificate_id)
                if certificate is None:
                    raise NotFound("no such certificate", code="certificate_not_found")
                if require_usable:
                    certificate.check_can_use_key(now)
                lineage_id = await repo.pin_lineage_of(certificate_id)
                slot = await repo.reserve_pin_check(lineage_id, now, PIN_CHECK_LEASE)
                if slot is PinCheckSlot.RESERVED:
                    master_key_id, wrapped = await repo.wrapped_key(certificate_id)
                    return certificate, lineage_id, master_key_id, wrapped
            if slot is PinCheckSlot.LOCKED:
                raise_locked()
            if time.monotonic() >= deadline:
                raise RateLimited("too many PIN checks of this certificate in flight; retry",
                                  code="pin_checks_busy", retry_after=1)
            await asyncio.sleep(PIN_CHECK_POLL.total_seconds())

    async def change_pin(self, *, certificate_id: str, pin: str, new_pin: str,
                         client_id: str | None = None) -> Certificate:
        check_pin_format(pin)
        _certificate, holder = await self._load_with_holder(certificate_id)
        check_pin(new_pin, is_birth_pattern=holder.is_birth_pattern)
        if secrets.compare_digest(pin.encode(), new_pin.encode()):
            raise InvalidInput("new_pin must differ from pin", code="pin_unchanged")
        certificate, key = await self.open_key(certificate_id, pin, client_id=client_id)
        master_key_id, wrapped = await self.custody.seal(key, new_pin, certificate_id)
        async with self.db.transaction() as conn:
            now = self.clock.now()
            repo = Repository(conn)
            await repo.replace_wrapped_key(
                certificate_id, master_key_id=master_key_id, wrapped_key=wrapped, now=now)
            await repo.start_own_pin_lineage(certificate_id, now)
            queued = await self.notices.enqueue(conn, NoticeKind.PIN_CHANGE,
                                                client_id=client_id, phone=holder.phone, now=now)
            await audit.append(conn, self.secrets.audit_key, now=now, action="pin_change",
                               client_id=client_id, certificate_id=certificate_id)
        await self.notices.deliver(queued)
        log.info("PIN changed", extra={"certificate_id": certificate_id})
        return await self.get(certificate.id)

    # --- verification-protected operations -----------------------------------------------

    async def unlock(self, *, client_id: str, certificate_id: str,
                     verification_id: str) -> Certificate:
        now = self.clock.now()
        certificate, holder = await self._load_with_holder(certificate_id)
        status = certificate.status_at(now)
        if status is not CertificateStatus.ACTIVE:
            raise Conflict(f"certificate is {status.value}", code=f"certificate_{status.value}")
        async with self.db.transaction() as conn:
            repo = Repository(conn)
            await self._consume(repo, verification_id, client_id, holder.phone,
                                Purpose.UNLOCK, now)
            await repo.reset_pin_tries(certificate_id, now)
            queued = await self.notices.enqueue(conn, NoticeKind.UNLOCK, client_id=client_id,
                                                phone=holder.phone, now=now)
            await audit.append(conn, self.secrets.audit_key, now=now, action="unlock",
                               client_id=client_id, certificate_id=certificate_id,
                               verification_id=verification_id)
        await self.notices.deliver(queued)
        log.info("certificate unlocked", extra={"certificate_id": certificate_id})
        return await self.get(certificate_id)

    async def revoke(self, *, client_id: str, certificate_id: str, reason: RevocationReason,
                     pin: str | None, verification_id: str | None) -> Certificate:
        if (pin is None) == (verification_id is None):
            raise InvalidInput("give either pin or verification_id", code="proof_required")
        now = self.clock.now()
        certificate, holder = await self._load_with_holder(certificate_id)
        if certificate.revoked_at is not None and revocation_update(
                certificate.revocation_reason, reason) is None:
            return certificate  # a repeat changes nothing, so it needs no proof
        if pin is not None:
            await self.open_key(certificate_id, pin, require_usable=False, client_id=client_id)
        published: int | None = None
        queued: list[OutboxNotice] = []
        async with self.db.transaction() as conn:
            repo = Repository(conn)
            if verification_id is not None:
                await self._consume(repo, verification_id, client_id, holder.phone,
                                    Purpose.REVOKE, now)
            changed = await store_revocation(repo, certificate_id, reason, now)
            if changed is not None:
                published = await self.revocations.record(conn, certificate_id)
                queued = await self.notices.enqueue(conn, NoticeKind.REVOKE,
                                                    client_id=client_id, phone=holder.phone,
                                                    now=now)
                await audit.append(conn, self.secrets.audit_key, now=now, action="revoke",
                                   client_id=client_id, certificate_id=certificate_id,
                                   reason=changed.api_name,
                                   proof="pin" if pin is not None else "verification")
        await self.revocations.publish(published)
        await self.notices.deliver(queued)
        log.info("certificate revoked", extra={"certificate_id": certificate_id,
                                               "reason": reason.api_name})
        return await self.get(certificate_id)

    # --- helpers -------------------------------------------------------------------------

    async def _load_with_holder(self, certificate_id: str) -> tuple[Certificate, _Holder]:
        async with self.db.transaction(write=False) as conn:
            repo = Repository(conn)
            certificate = await repo.get_certificate(certificate_id)
            if certificate is None:
                raise NotFound("no such certificate", code="certificate_not_found")
            person = await repo.get_person(certificate.person_id)
        assert person is not None
        is_birth_pattern = self.secrets.birth_pattern_test(person.birth_patterns)
        return certificate, _Holder(person.id, person.name, person.phone, is_birth_pattern,
                                    contact_on_record(person))

    async def _precheck_verification(self, verification_id: str, client_id: str, phone: str,
                                     purpose: Purpose, previous: PreviousPhone | None = None
                                     ) -> None:
        """Fail fast, before key generation, on a verification that cannot count."""
        async with self.db.transaction(write=False) as conn:
            found = await Repository(conn).get_verification(verification_id)
        if found is None:
            raise NotFound("no such verification", code="verification_not_found")
        found[0].check_usable(self.clock.now(), client_id=client_id, phone=phone,
                              purpose=purpose, previous=previous)

    @staticmethod
    async def _consume(repo: Repository, verification_id: str, client_id: str, phone: str,
                       purpose: Purpose, now: datetime, previous: PreviousPhone | None = None
                       ) -> str:
        """Use the verification up; returns the phone it was made with."""
        found = await repo.get_verification(verification_id)
        if found is None:
            raise NotFound("no such verification", code="verification_not_found")
        found[0].check_usable(now, client_id=client_id, phone=phone, purpose=purpose,
                              previous=previous)
        if not await repo.consume_verification(verification_id, now):
            raise Conflict("verification is used", code="verification_used")
        return found[0].phone

    # --- automatic renewal ---------------------------------------------------------------

    async def renew(self, *, client_id: str, certificate: Certificate, pin: str
                    ) -> tuple[Certificate, UserPrivateKey] | None:
        """Automatic renewal (자동 갱신) of a certificate whose PIN the caller has just checked:
        a new key pair sealed under the same PIN, a new certificate and serial valid for another
        three years, the predecessor revoked ``superseded`` and named by ``replaces_id``.

        The successor's pending row is written only after checking, under the person's row
        lock, that the certificate is still active and has no successor yet; so two renewals
        (or a renewal and a reissue) of one certificate never both go ahead.

        :param client_id: the bank whose signature request triggered the renewal.
        :return: the successor and its key, or None when the certificate was already replaced
            or is no longer active (a concurrent request won).
        """
        now = self.clock.now()
        _current, holder = await self._load_with_holder(certificate.id)
        new = await self._new_sealed_key(pin)
        async with self.db.transaction() as conn:
            repo = Repository(conn)
            await repo.get_person(holder.person_id, for_update=True)
            current = await repo.get_certificate(certificate.id)
            if (current is None or current.status_at(now) is not CertificateStatus.ACTIVE
                    or await repo.is_replaced(certificate.id)):
                return None
            # Sealed under the same PIN: the successor shares the predecessor's tries.
            await self._add_pending(repo, new, person_id=holder.person_id, client_id=client_id,
                                    replaces_id=certificate.id, now=now,
                                    pin_lineage_id=await repo.pin_lineage_of(certificate.id))
        renewed = await self._sign_and_activate(new, person_id=holder.person_id,
                                                name=holder.name, now=now, client_id=client_id,
                                                action="renew")
        log.info("certificate renewed", extra={"certificate_id": new.id,
                                               "replaces_id": certificate.id})
        return renewed, new.key
