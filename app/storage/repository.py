"""Queries, one transaction's worth at a time. Conditional updates carry the races."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.certificates import (
    MAX_WRONG_PINS,
    Certificate,
    RevocationReason,
    StoredState,
)
from app.domain.contact import ContactOnRecord
from app.domain.records import CodeTry, PinCheckSlot
from app.domain.verification import Channel, Purpose, Verification, VerificationStatus
from app.storage.tables import certificates, clients, persons, verifications

# The PIN lineage of a certificate: the certificates whose keys are sealed under one PIN (a
# renewal's successor joins its predecessor's). It is named by its first certificate, whose
# row keeps the lineage's wrong-PIN count and PIN checks in flight; NULL names the row itself.
_lineage = certificates.alias("lineage")


def _lineage_id(certificate_id: str) -> ColumnElement[str]:
    """The lineage of one certificate, as a scalar subquery."""
    own = certificates.alias("own")
    return (select(func.coalesce(own.c.pin_lineage_id, own.c.id))
            .where(own.c.id == certificate_id).scalar_subquery())


def _with_lineage_count() -> Any:
    """Certificate rows with the wrong-PIN count of their lineage (what locks them)."""
    return (select(certificates, _lineage.c.wrong_pins.label("lineage_wrong_pins"))
            .join(_lineage, _lineage.c.id == func.coalesce(certificates.c.pin_lineage_id,
                                                           certificates.c.id)))


def _certificate(row: Row[Any]) -> Certificate:
    return Certificate(
        id=row.id, person_id=row.person_id, serial=row.serial, state=StoredState(row.state),
        not_before=row.not_before, not_after=row.not_after,
        certificate_der=row.certificate_der or b"", issued_by_client=row.issued_by_client,
        replaces_id=row.replaces_id,
        revocation_reason=(None if row.revocation_reason is None
                           else RevocationReason(row.revocation_reason)),
        revoked_at=row.revoked_at, wrong_pins=row.lineage_wrong_pins)


def _verification(row: Row[Any]) -> Verification:
    return Verification(
        id=row.id, client_id=row.client_id, phone=row.phone, channel=Channel(row.channel),
        purpose=Purpose(row.purpose) if row.purpose else None,
        status=VerificationStatus(row.status), wrong_codes=row.wrong_codes,
        created_at=row.created_at, expires_at=row.expires_at, verified_at=row.verified_at,
        used_at=row.used_at)


def _may_exist(row_id: str) -> bool:
    """Ids are canonical UUIDs made by the service; anything else cannot match a row, and may
    hold characters PostgreSQL refuses outright (NUL), which would be a 500."""
    try:
        return str(uuid.UUID(row_id)) == row_id
    except ValueError:
        return False


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- clients -------------------------------------------------------------------------

    async def add_client(self, *, client_id: str, name: str, secret_hash: str,
                         scopes: Sequence[str], now: datetime) -> None:
        await self.conn.execute(insert(clients).values(
            id=client_id, name=name, secret_hash=secret_hash, scopes=" ".join(scopes),
            disabled=False, created_at=now))

    async def get_client(self, client_id: str) -> Row[Any] | None:
        return (await self.conn.execute(
            select(clients).where(clients.c.id == client_id))).first()

    async def list_clients(self) -> Sequence[Row[Any]]:
        return (await self.conn.execute(select(clients).order_by(clients.c.created_at))).all()

    async def set_client_disabled(self, client_id: str, disabled: bool) -> bool:
        result = await self.conn.execute(
            update(clients).where(clients.c.id == client_id).values(disabled=disabled))
        return result.rowcount == 1

    async def replace_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        """Compare-and-set, so a concurrent rewrite (or a new secret) is never overwritten."""
        result = await self.conn.execute(
            update(clients).where(clients.c.id == client_id, clients.c.secret_hash == old)
            .values(secret_hash=new))
        return result.rowcount == 1

    # --- verifications -------------------------------------------------------------------

    async def add_verification(self, v: Verification, code_hash: str) -> None:
        await self.conn.execute(insert(verifications).values(
            id=v.id, client_id=v.client_id, phone=v.phone, channel=v.channel.value,
            purpose=v.purpose.value if v.purpose else None, code_hash=code_hash,
            status=v.status.value, wrong_codes=0, created_at=v.created_at,
            expires_at=v.expires_at))

    async def get_verification(self, verification_id: str) -> tuple[Verification, str] | None:
        if not _may_exist(verification_id):
            return None
        row = (await self.conn.execute(
            select(verifications).where(verifications.c.id == verification_id))).first()
        return None if row is None else (_verification(row), row.code_hash)

    async def take_code_try(self, verification_id: str, now: datetime, max_wrong: int
                            ) -> CodeTry:
        """Take one try of the code before it is compared: a conditional update, counted as
        wrong until :meth:`settle_right_code` gives it back. It holds the row lock until the
        transaction ends, so concurrent confirms of one verification take their tries one
        after the other and never more than ``max_wrong`` are compared."""
        result = await self.conn.execute(
            update(verifications)
            .where(verifications.c.id == verification_id,
                   verifications.c.status == VerificationStatus.PENDING.value,
                   verifications.c.expires_at > now,
                   verifications.c.wrong_codes < max_wrong)
            .values(wrong_codes=verifications.c.wrong_codes + 1))
        return CodeTry.TAKEN if result.rowcount == 1 else CodeTry.REFUSED

    async def settle_right_code(self, verification_id: str, now: datetime) -> None:
        """The taken try matched: give it back and mark the verification verified."""
        await self.conn.execute(
            update(verifications)
            .where(verifications.c.id == verification_id,
                   verifications.c.status == VerificationStatus.PENDING.value)
            .values(status=VerificationStatus.VERIFIED.value, verified_at=now,
                    wrong_codes=verifications.c.wrong_codes - 1))

    async def settle_wrong_code(self, verification_id: str, max_wrong: int) -> int:
        """The taken try did not match: it stays counted; the verification fails at
        ``max_wrong``. Returns the wrong tries so far."""
        count = int((await self.conn.execute(
            select(verifications.c.wrong_codes)
            .where(verifications.c.id == verification_id))).scalar_one())
        if count >= max_wrong:
            await self.conn.execute(update(verifications)
                                    .where(verifications.c.id == verification_id)
                                    .values(status=VerificationStatus.FAILED.value))
        return count

    async def fail_verification(self, verification_id: str) -> None:
        await self.conn.execute(update(verifications)
                                .where(verifications.c.id == verification_id)
                                .values(status=VerificationStatus.FAILED.value))

    async def consume_verification(self, verification_id: str, now: datetime) -> bool:
        """Single use: only one caller can move it from verified to used."""
        result = await self.conn.execute(
            update(verifications)
            .where(verifications.c.id == verification_id,
                   verifications.c.status == VerificationStatus.VERIFIED.value)
            .values(status=VerificationStatus.USED.value, used_at=now))
        return result.rowcount == 1

    # --- persons -------------------------------------------------------------------------

    async def person_by_rrn_hmac(self, rrn_hmac: str, *, for_update: bool = False
                                 ) -> Row[Any] | None:
        query = select(persons).where(persons.c.rrn_hmac == rrn_hmac)
        if for_update:
            query = query.with_for_update()
        return (await self.conn.execute(query)).first()

    async def get_person(self, person_id: str, *, for_update: bool = False) -> Row[Any] | None:
        query = select(persons).where(persons.c.id == person_id)
        if for_update:
            query = query.with_for_update()
        return (await self.conn.execute(query)).first()

    async def add_person(self, *, person_id: str, rrn_hmac: str, name: str, phone: str,
                         email: str, birth_patterns: str, now: datetime) -> None:
        await self.conn.execute(insert(persons).values(
            id=person_id, rrn_hmac=rrn_hmac, name=name, phone=phone, email=email,
            birth_patterns=birth_patterns, created_at=now, updated_at=now))

    async def update_person_contact(self, person_id: str, contact: ContactOnRecord,
                                    now: datetime) -> None:
        await self.conn.execute(update(persons).where(persons.c.id == person_id).values(
            name=contact.name, phone=contact.phone, email=contact.email,
            previous_phone=contact.previous_phone, previous_name=contact.previous_name,
            phone_replaced_at=contact.phone_replaced_at, updated_at=now))

    async def set_birth_patterns(self, person_id: str, birth_patterns: str,
                                 now: datetime) -> None:
        await self.conn.execute(update(persons).where(persons.c.id == person_id).values(
            birth_patterns=birth_patterns, updated_at=now))

    # --- certificates --------------------------------------------------------------------

    async def get_certificate(self, certificate_id: str, *, for_update: bool = False
                              ) -> Certificate | None:
        if not _may_exist(certificate_id):
            return None
        query = _with_lineage_count().where(certificates.c.id == certificate_id,
                                            certificates.c.state != StoredState.PENDING.value)
        if for_update:
            query = query.with_for_update(of=certificates)
        row = (await self.conn.execute(query)).first()
        return None if row is None else _certificate(row)

    async def get_certificate_by_serial(self, serial: str) -> Certificate | None:
        row = (await self.conn.execute(_with_lineage_count().where(
            certificates.c.serial == serial,
            certificates.c.state != StoredState.PENDING.value))).first()
        return None if row is None else _certificate(row)

    async def certificates_of_person(self, person_id: str) -> list[Certificate]:
        rows = (await self.conn.execute(
            _with_lineage_count()
            .where(certificates.c.person_id == person_id,
                   certificates.c.state != StoredState.PENDING.value)
            .order_by(certificates.c.created_at.desc(), certificates.c.id))).all()
        return [_certificate(row) for row in rows]

    async def is_replaced(self, certificate_id: str) -> bool:
        count = (await self.conn.execute(
            select(func.count()).select_from(certificates)
            .where(certificates.c.replaces_id == certificate_id))).scalar_one()
        return bool(count)

    async def active_certificate_of(self, person_id: str) -> Certificate | None:
        row = (await self.conn.execute(_with_lineage_count().where(
            certificates.c.person_id == person_id,
            certificates.c.state == StoredState.ACTIVE.value))).first()
        return None if row is None else _certificate(row)

    async def wrapped_key(self, certificate_id: str) -> tuple[str, bytes]:
        row = (await self.conn.execute(
            select(certificates.c.master_key_id, certificates.c.wrapped_key)
            .where(certificates.c.id == certificate_id))).one()
        return row.master_key_id, row.wrapped_key

    async def add_pending_certificate(
        self, *, certificate_id: str, person_id: str, serial: str, not_before: datetime,
        not_after: datetime, key_algorithm: str, client_id: str, replaces_id: str | None,
        now: datetime, pin_lineage_id: str | None = None,
    ) -> None:
        """Boulder's order: the serial is recorded before the CA signs anything.

        :param pin_lineage_id: the lineage of a key sealed under the same PIN as another
            certificate's (a renewal); None starts a lineage of its own.
        """
        await self.conn.execute(insert(certificates).values(
            id=certificate_id, person_id=person_id, serial=serial,
            state=StoredState.PENDING.value, not_before=not_before, not_after=not_after,
            key_algorithm=key_algorithm, issued_by_client=client_id, replaces_id=replaces_id,
            pin_lineage_id=pin_lineage_id, wrong_pins=0, created_at=now, updated_at=now))

    async def activate_certificate(self, certificate_id: str, *, certificate_der: bytes,
                                   master_key_id: str, wrapped_key: bytes,
                                   now: datetime) -> None:
        await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == certificate_id,
                   certificates.c.state == StoredState.PENDING.value)
            .values(state=StoredState.ACTIVE.value, certificate_der=certificate_der,
                    master_key_id=master_key_id, wrapped_key=wrapped_key, updated_at=now))

    async def set_replaces(self, certificate_id: str, replaces_id: str) -> None:
        """Link a new certificate to the one it superseded, unless a reissue already named it."""
        await self.conn.execute(update(certificates).where(
            certificates.c.id == certificate_id, certificates.c.replaces_id.is_(None))
            .values(replaces_id=replaces_id))

    async def delete_pending(self, certificate_id: str) -> None:
        await self.conn.execute(delete(certificates).where(
            certificates.c.id == certificate_id,
            certificates.c.state == StoredState.PENDING.value))

    async def revoke(self, certificate_id: str, reason: RevocationReason, now: datetime) -> bool:
        """Conditional: only a certificate not yet revoked changes; repeating is harmless."""
        result = await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == certificate_id,
                   certificates.c.state == StoredState.ACTIVE.value)
            .values(state=StoredState.REVOKED.value, revocation_reason=int(reason),
                    revoked_at=now, updated_at=now))
        return result.rowcount == 1

    async def set_revocation_reason(self, certificate_id: str, reason: RevocationReason,
                                    now: datetime) -> None:
        await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == certificate_id,
                   certificates.c.state == StoredState.REVOKED.value)
            .values(revocation_reason=int(reason), updated_at=now))

    async def pin_lineage_of(self, certificate_id: str) -> str:
        """The PIN lineage of a certificate (see ``_lineage``)."""
        return str((await self.conn.execute(select(_lineage_id(certificate_id)))).scalar_one())

    async def reserve_pin_check(self, lineage_id: str, now: datetime,
                                lease: timedelta) -> PinCheckSlot:
        """Reserve a PIN check of a lineage before the (slow) check runs. Settled wrong PINs
        plus checks in flight never exceed the limit, so concurrent wrong PINs cannot add up
        past it, over every certificate sealed under that PIN; a right PIN settles its
        reservation without counting."""
        live = self._live_pin_checks(now)
        result = await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == lineage_id,
                   certificates.c.wrong_pins + live < MAX_WRONG_PINS)
            .values(pin_checks_in_flight=live + 1, pin_checks_lease_until=now + lease))
        if result.rowcount == 1:
            return PinCheckSlot.RESERVED
        wrong_pins = (await self.conn.execute(
            select(certificates.c.wrong_pins).where(certificates.c.id == lineage_id)
        )).scalar_one()
        return PinCheckSlot.LOCKED if wrong_pins >= MAX_WRONG_PINS else PinCheckSlot.BUSY

    async def settle_wrong_pin(self, lineage_id: str, now: datetime) -> int:
        """Count a reserved check that failed; returns the lineage's wrong PINs in a row."""
        result = await self.conn.execute(
            update(certificates).where(certificates.c.id == lineage_id)
            .values(wrong_pins=certificates.c.wrong_pins + 1,
                    pin_checks_in_flight=self._one_check_settled(now), updated_at=now)
            .returning(certificates.c.wrong_pins))
        return int(result.scalar_one())

    async def settle_right_pin(self, lineage_id: str, now: datetime) -> None:
        await self.conn.execute(
            update(certificates).where(certificates.c.id == lineage_id)
            .values(wrong_pins=0, pin_checks_in_flight=self._one_check_settled(now),
                    updated_at=now))

    async def release_pin_check(self, lineage_id: str, now: datetime) -> None:
        """Give a reserved check back uncounted (the key store failed, not the holder)."""
        await self.conn.execute(
            update(certificates).where(certificates.c.id == lineage_id)
            .values(pin_checks_in_flight=self._one_check_settled(now)))

    @staticmethod
    def _live_pin_checks(now: datetime) -> ColumnElement[int]:
        """Checks in flight; reservations whose lease ran out (their process died) count 0."""
        return case((certificates.c.pin_checks_lease_until > now,
                     certificates.c.pin_checks_in_flight), else_=0)

    def _one_check_settled(self, now: datetime) -> ColumnElement[int]:
        live = self._live_pin_checks(now)
        return case((live > 0, live - 1), else_=0)

    async def reset_pin_tries(self, certificate_id: str, now: datetime) -> None:
        """Clear the wrong-PIN count of the certificate's lineage (an unlock)."""
        await self.conn.execute(update(certificates)
                                .where(certificates.c.id == _lineage_id(certificate_id))
                                .values(wrong_pins=0, updated_at=now))

    async def start_own_pin_lineage(self, certificate_id: str, now: datetime) -> None:
        """A key resealed under a new PIN (a PIN change) leaves the lineage of the old PIN:
        its predecessors keep that PIN and their count, and its own row starts afresh."""
        await self.conn.execute(
            update(certificates)
            .where(certificates.c.id == certificate_id,
                   certificates.c.pin_lineage_id.is_not(None))
            .values(pin_lineage_id=None, wrong_pins=0, pin_checks_in_flight=0,
                    pin_checks_lease_until=None, updated_at=now))

    async def replace_wrapped_key(self, certificate_id: str, *, master_key_id: str,
                                  wrapped_key: bytes, now: datetime) -> None:
        await self.conn.execute(update(certificates).where(certificates.c.id == certificate_id)
                                .values(master_key_id=master_key_id, wrapped_key=wrapped_key,
                                        updated_at=now))
