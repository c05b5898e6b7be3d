"""In-memory fakes of the unit of work (app.domain.ports.UnitOfWork), for service tests
without a database (the shape of cosmicpython's tests/unit/fakes.py).

One :class:`FakeStore` holds the rows; each unit of work works on a copy and puts it back only
on ``commit``, so a block that raises or returns without committing leaves nothing behind, as
the database's rollback does. Only what the unit-tested services call is implemented: the rest
raises, so a service that starts to use more fails loudly here rather than passing untested.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace, TracebackType
from typing import Any

from app.domain.certificates import MAX_WRONG_PINS, Certificate, RevocationReason, StoredState
from app.domain.records import PinCheckSlot
from app.domain.verification import Verification, VerificationStatus


@dataclass
class CertificateRow:
    certificate: Certificate
    master_key_id: str = "mk-1"
    wrapped_key: bytes = b"sealed"
    pin_lineage_id: str | None = None
    wrong_pins: int = 0  # the lineage's count, kept in the lineage's first row
    pin_checks_in_flight: int = 0
    pin_checks_lease_until: datetime | None = None


@dataclass
class FakeStore:
    """The rows every unit of work of one test shares."""

    certificates: dict[str, CertificateRow] = field(default_factory=dict)
    verifications: dict[str, tuple[Verification, str]] = field(default_factory=dict)
    persons: dict[str, SimpleNamespace] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)  # committed events, in order
    commits: int = 0


class FakeRecords:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    # --- certificates and their PIN lineage ---------------------------------------------

    def _lineage_row(self, lineage_id: str) -> CertificateRow:
        return self.store.certificates[lineage_id]

    def _with_count(self, row: CertificateRow) -> Certificate:
        lineage = self._lineage_row(row.pin_lineage_id or row.certificate.id)
        return dataclasses.replace(row.certificate, wrong_pins=lineage.wrong_pins)

    async def get_certificate(self, certificate_id: str, *, for_update: bool = False
                              ) -> Certificate | None:
        row = self.store.certificates.get(certificate_id)
        return None if row is None else self._with_count(row)

    async def get_certificate_by_serial(self, serial: str) -> Certificate | None:
        for row in self.store.certificates.values():
            if row.certificate.serial == serial:
                return self._with_count(row)
        return None

    async def certificates_of_person(self, person_id: str) -> list[Certificate]:
        return [self._with_count(row) for row in self.store.certificates.values()
                if row.certificate.person_id == person_id
                and row.certificate.state is not StoredState.PENDING]

    async def wrapped_key(self, certificate_id: str) -> tuple[str, bytes]:
        row = self.store.certificates[certificate_id]
        return row.master_key_id, row.wrapped_key

    async def pin_lineage_of(self, certificate_id: str) -> str:
        row = self.store.certificates[certificate_id]
        return row.pin_lineage_id or certificate_id

    @staticmethod
    def _live(row: CertificateRow, now: datetime) -> int:
        lease = row.pin_checks_lease_until
        return row.pin_checks_in_flight if lease is not None and lease > now else 0

    async def reserve_pin_check(self, lineage_id: str, now: datetime,
                                lease: timedelta) -> PinCheckSlot:
        row = self._lineage_row(lineage_id)
        live = self._live(row, now)
        if row.wrong_pins + live < MAX_WRONG_PINS:
            row.pin_checks_in_flight, row.pin_checks_lease_until = live + 1, now + lease
            return PinCheckSlot.RESERVED
        return PinCheckSlot.LOCKED if row.wrong_pins >= MAX_WRONG_PINS else PinCheckSlot.BUSY

    def _settle_one(self, row: CertificateRow, now: datetime) -> None:
        row.pin_checks_in_flight = max(self._live(row, now) - 1, 0)

    async def settle_wrong_pin(self, lineage_id: str, now: datetime) -> int:
        row = self._lineage_row(lineage_id)
        row.wrong_pins += 1
        self._settle_one(row, now)
        return row.wrong_pins

    async def settle_right_pin(self, lineage_id: str, now: datetime) -> None:
        row = self._lineage_row(lineage_id)
        row.wrong_pins = 0
        self._settle_one(row, now)

    async def release_pin_check(self, lineage_id: str, now: datetime) -> None:
        self._settle_one(self._lineage_row(lineage_id), now)

    async def revoke(self, certificate_id: str, reason: RevocationReason, now: datetime) -> bool:
        row = self.store.certificates[certificate_id]
        if row.certificate.state is not StoredState.ACTIVE:
            return False
        row.certificate = dataclasses.replace(row.certificate, state=StoredState.REVOKED,
                                              revocation_reason=reason, revoked_at=now)
        return True

    async def set_revocation_reason(self, certificate_id: str, reason: RevocationReason,
                                    now: datetime) -> None:
        row = self.store.certificates[certificate_id]
        if row.certificate.state is StoredState.REVOKED:
            row.certificate = dataclasses.replace(row.certificate, revocation_reason=reason)

    # --- verifications -------------------------------------------------------------------

    async def get_verification(self, verification_id: str) -> tuple[Verification, str] | None:
        return self.store.verifications.get(verification_id)

    async def consume_verification(self, verification_id: str, now: datetime) -> bool:
        found = self.store.verifications.get(verification_id)
        if found is None or found[0].status is not VerificationStatus.VERIFIED:
            return False
        used = dataclasses.replace(found[0], status=VerificationStatus.USED, used_at=now)
        self.store.verifications[verification_id] = (used, found[1])
        return True

    # --- persons -------------------------------------------------------------------------

    async def person_by_rrn_hmac(self, rrn_hmac: str, *, for_update: bool = False
                                 ) -> SimpleNamespace | None:
        return next((p for p in self.store.persons.values() if p.rrn_hmac == rrn_hmac), None)

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"FakeRecords.{name}: not faked yet")


class FakeAudit:
    """The bound audit appender: events wait in the unit of work until it commits."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []

    async def __call__(self, *, now: datetime, action: str, result: str = "ok",
                       client_id: str | None = None, certificate_id: str | None = None,
                       **details: Any) -> None:
        self.pending.append({"action": action, "result": result, "client_id": client_id,
                             "certificate_id": certificate_id, **details})


class FakeStatus:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"FakeStatus.{name}: not faked yet")


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, write: bool) -> None:
        self._store, self.write = store, write

    async def __aenter__(self) -> FakeUnitOfWork:
        self.work = copy.deepcopy(self._store)
        self.records = FakeRecords(self.work)
        self.status = FakeStatus(self.work)
        self.audit = FakeAudit()
        return self

    async def commit(self) -> None:
        assert self.write, "a read-only unit of work committed"
        fields = {f.name for f in dataclasses.fields(FakeStore)} - {"audit", "commits"}
        for name in fields:
            setattr(self._store, name, getattr(self.work, name))
        self._store.audit.extend(self.audit.pending)
        self._store.commits += 1
        self.work = copy.deepcopy(self._store)
        self.records.store = self.status.store = self.work
        self.audit.pending = []

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None  # whatever was not committed is dropped with the copy


class FakeUnitOfWorkFactory:
    """What a service takes as ``uow``; ``store`` is what the test arranges and inspects."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()
        self.opened: list[FakeUnitOfWork] = []

    def __call__(self, *, write: bool = True) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, write)
        self.opened.append(uow)
        return uow


@dataclass
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


class MemoryCounters:
    """A CounterStore in a dict."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    async def increment(self, bucket: str, window_start: int, window_seconds: int) -> int:
        key = (bucket, window_start)
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    async def read(self, bucket: str, window_start: int) -> int:
        return self.counts.get((bucket, window_start), 0)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
