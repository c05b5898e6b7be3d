"""Certificate use cases: issue, reissue, unlock, change PIN, revoke and read (a lookup by
RRN is ``app.services.lookup``)."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.certificates import (
    VALIDITY,
    Certificate,
    CertificateStatus,
    RevocationReason,
    revocation_update,
)
from app.domain.contact import ContactOnRecord, contact_on_record
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.identity import (
    birth_date_patterns,
    check_person_name,
    check_pin,
    check_pin_format,
    parse_rrn,
)
from app.domain.notices import NoticeKind
from app.domain.ports import NO_RECORDER, Clock, RevocationRecorder, UnitOfWork, UnitOfWorkFactory
from app.domain.records import OutboxNotice
from app.domain.verification import Purpose, normalize_phone
from app.pki.keys import UserPrivateKey
from app.services.custody import KeyCustody
from app.services.identity_binding import IdentityBinding
from app.services.issuer import Issuer, serial_hex
from app.services.notices import ContactUpdate, Notices
from app.services.operator_revocation import store_revocation
from app.services.pin_gate import PinGate
from app.services.secrets import ServerSecrets
from app.services.verifications import VerificationService, consume

log = logging.getLogger(__name__)


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
    def __init__(self, uow: UnitOfWorkFactory, issuer: Issuer, custody: KeyCustody,
                 secrets_: ServerSecrets, clock: Clock, *, notices: Notices,
                 pin_gate: PinGate, verifications: VerificationService,
                 revocations: RevocationRecorder | None = None,
                 binding: IdentityBinding | None = None) -> None:
        self.uow, self.issuer, self.custody = uow, issuer, custody
        self.pin_gate, self.verifications = pin_gate, verifications
        # The VID in each new certificate (R and the RRN under the master-key layer).
        self.binding = binding or IdentityBinding(uow, custody.protector)
        # SMS notices to the phone on record: queued in the change's transaction, sent after.
        self.notices = notices
        self.secrets, self.clock = secrets_, clock
        # Status (OCSP, CRL): told in the revoking transaction, published before the reply.
        self.revocations = revocations or NO_RECORDER

    # --- reads ---------------------------------------------------------------------------

    async def get(self, certificate_id: str) -> Certificate:
        async with self.uow(write=False) as uow:
            certificate = await uow.records.get_certificate(certificate_id)
        if certificate is None:
            raise NotFound("no such certificate", code="certificate_not_found")
        return certificate

    async def by_serial(self, serial: str) -> Certificate | None:
        async with self.uow(write=False) as uow:
            return await uow.records.get_certificate_by_serial(serial)

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
        await self.verifications.precheck(verification_id, client_id=client_id, phone=phone,
                                          purpose=Purpose.ISSUE)
        new = await self._new_sealed_key(pin)
        async with self.uow() as uow:
            repo = uow.records
            await consume(uow, verification_id, client_id=client_id, phone=phone,
                          purpose=Purpose.ISSUE, now=now)
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
            await self._add_pending(uow, new, person_id=person_id, client_id=client_id,
                                    replaces_id=None, now=now)
            await uow.commit()
        return await self._sign_and_activate(
            new, person_id=person_id, name=person.name, now=now, client_id=client_id,
            action="issue", contact=ContactUpdate(person.name, phone, person.email),
            rrn_digits=rrn.digits)

    async def reissue(self, *, client_id: str, certificate_id: str, verification_id: str,
                      pin: str) -> Certificate:
        now = self.clock.now()
        old, holder = await self._load_with_holder(certificate_id)
        async with self.uow(write=False) as uow:
            repo = uow.records
            active = await repo.active_certificate_of(old.person_id)
            # Only the person's latest certificate may be reissued: one already replaced, or
            # an older one while another is active, would fork the chain of replacements.
            old.check_reissuable(is_latest=not await repo.is_replaced(old.id)
                                 and (active is None or active.id == old.id))
        check_pin(pin, is_birth_pattern=holder.is_birth_pattern)
        previous = holder.contact.previous  # may start a reissue for a while after replaced
        await self.verifications.precheck(verification_id, client_id=client_id,
                                          phone=holder.phone, purpose=Purpose.REISSUE,
                                          previous=previous)
        new = await self._new_sealed_key(pin)
        async with self.uow() as uow:
            verified_phone = await consume(uow, verification_id, client_id=client_id,
                                           phone=holder.phone, purpose=Purpose.REISSUE,
                                           now=now, previous=previous)
            await self._add_pending(uow, new, person_id=holder.person_id, client_id=client_id,
                                    replaces_id=old.id, now=now)
            await uow.commit()
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

    async def _add_pending(self, uow: UnitOfWork, new: _NewCertificate, *, person_id: str,
                           client_id: str, replaces_id: str | None, now: datetime,
                           pin_lineage_id: str | None = None) -> None:
        await uow.records.add_pending_certificate(
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
            async with self.uow() as uow:
                repo = uow.records
                person = await repo.get_person(person_id, for_update=True)
                assert person is not None
                previous = (await repo.active_certificate_of(person_id)  # or one on hold:
                            or await uow.suspensions.held_certificate_of(person_id))
                if previous is not None:
                    await store_revocation(repo, previous.id, RevocationReason.SUPERSEDED, now)
                    await repo.set_replaces(certificate_id, previous.id)
                    published = await self.revocations.record(uow, previous.id)
                await repo.activate_certificate(certificate_id, certificate_der=der,
                                                master_key_id=new.master_key_id,
                                                wrapped_key=new.wrapped, now=now)
                await self.binding.store(uow, vid, now)
                replaced = None if contact is None else await self.notices.set_contact(
                    uow, person_id, contact, client_id=client_id, cause=action, now=now)
                queued = await self.notices.enqueue(
                    uow, NoticeKind(action), client_id=client_id,
                    phone=person.phone if contact is None else contact.phone,
                    replaced=replaced, now=now)
                if previous is not None:
                    await uow.audit(now=now, action="supersede", client_id=client_id,
                                    certificate_id=previous.id, successor_id=certificate_id)
                await uow.audit(now=now, action=action, client_id=client_id,
                                certificate_id=certificate_id, serial=serial_hex(serial))
                await uow.commit()
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
            async with self.uow() as uow:
                await uow.records.delete_pending(certificate_id)
                await uow.commit()
        except Exception:  # the sweeper removes it later
            log.warning("pending certificate left for the sweeper",
                        extra={"certificate_id": certificate_id})

    # --- PIN-protected operations --------------------------------------------------------

    async def change_pin(self, *, certificate_id: str, pin: str, new_pin: str,
                         client_id: str | None = None) -> Certificate:
        check_pin_format(pin)
        _certificate, holder = await self._load_with_holder(certificate_id)
        check_pin(new_pin, is_birth_pattern=holder.is_birth_pattern)
        if secrets.compare_digest(pin.encode(), new_pin.encode()):
            raise InvalidInput("new_pin must differ from pin", code="pin_unchanged")
        certificate, key = await self.pin_gate.open_key(certificate_id, pin,
                                                        client_id=client_id)
        master_key_id, wrapped = await self.custody.seal(key, new_pin, certificate_id)
        async with self.uow() as uow:
            now = self.clock.now()
            await uow.records.replace_wrapped_key(
                certificate_id, master_key_id=master_key_id, wrapped_key=wrapped, now=now)
            await uow.records.start_own_pin_lineage(certificate_id, now)
            queued = await self.notices.enqueue(uow, NoticeKind.PIN_CHANGE,
                                                client_id=client_id, phone=holder.phone, now=now)
            await uow.audit(now=now, action="pin_change", client_id=client_id,
                            certificate_id=certificate_id)
            await uow.commit()
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
        async with self.uow() as uow:
            await consume(uow, verification_id, client_id=client_id, phone=holder.phone,
                          purpose=Purpose.UNLOCK, now=now)
            await uow.records.reset_pin_tries(certificate_id, now)
            queued = await self.notices.enqueue(uow, NoticeKind.UNLOCK, client_id=client_id,
                                                phone=holder.phone, now=now)
            await uow.audit(now=now, action="unlock", client_id=client_id,
                            certificate_id=certificate_id, verification_id=verification_id)
            await uow.commit()
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
            await self.pin_gate.open_key(certificate_id, pin, require_usable=False,
                                         client_id=client_id)
        published: int | None = None
        queued: list[OutboxNotice] = []
        async with self.uow() as uow:
            if verification_id is not None:
                await consume(uow, verification_id, client_id=client_id, phone=holder.phone,
                              purpose=Purpose.REVOKE, now=now)
            changed = await store_revocation(uow.records, certificate_id, reason, now)
            if changed is not None:
                published = await self.revocations.record(uow, certificate_id)
                queued = await self.notices.enqueue(uow, NoticeKind.REVOKE,
                                                    client_id=client_id, phone=holder.phone,
                                                    now=now)
                await uow.audit(now=now, action="revoke", client_id=client_id,
                                certificate_id=certificate_id, reason=changed.api_name,
                                proof="pin" if pin is not None else "verification")
            await uow.commit()
        await self.revocations.publish(published)
        await self.notices.deliver(queued)
        log.info("certificate revoked", extra={"certificate_id": certificate_id,
                                               "reason": reason.api_name})
        return await self.get(certificate_id)

    # --- helpers -------------------------------------------------------------------------

    async def _load_with_holder(self, certificate_id: str) -> tuple[Certificate, _Holder]:
        async with self.uow(write=False) as uow:
            certificate = await uow.records.get_certificate(certificate_id)
            if certificate is None:
                raise NotFound("no such certificate", code="certificate_not_found")
            person = await uow.records.get_person(certificate.person_id)
        assert person is not None
        is_birth_pattern = self.secrets.birth_pattern_test(person.birth_patterns)
        return certificate, _Holder(person.id, person.name, person.phone, is_birth_pattern,
                                    contact_on_record(person))

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
        async with self.uow() as uow:
            repo = uow.records
            await repo.get_person(holder.person_id, for_update=True)
            current = await repo.get_certificate(certificate.id)
            if (current is None or current.status_at(now) is not CertificateStatus.ACTIVE
                    or await repo.is_replaced(certificate.id)):
                return None
            # Sealed under the same PIN: the successor shares the predecessor's tries.
            await self._add_pending(uow, new, person_id=holder.person_id, client_id=client_id,
                                    replaces_id=certificate.id, now=now,
                                    pin_lineage_id=await repo.pin_lineage_of(certificate.id))
            await uow.commit()
        renewed = await self._sign_and_activate(new, person_id=holder.person_id,
                                                name=holder.name, now=now, client_id=client_id,
                                                action="renew")
        log.info("certificate renewed", extra={"certificate_id": new.id,
                                               "replaces_id": certificate.id})
        return renewed, new.key
