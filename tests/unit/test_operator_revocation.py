"""A revocation by the operator on the fake unit of work: stored, recorded for status and
audited in one unit of work; a repeat changes nothing."""

from __future__ import annotations

import pytest

from app.domain.certificates import RevocationReason, StoredState
from app.domain.errors import InvalidInput, NotFound
from app.services.operator_revocation import OperatorRevocation
from tests.unit.builders import NOW, add_certificate
from tests.unit.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory, FixedClock


class Recorder:
    """The status side: what was recorded inside which unit of work, what was published."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, FakeUnitOfWork]] = []
        self.published: list[int | None] = []

    async def record(self, uow: FakeUnitOfWork, certificate_id: str) -> int | None:
        self.recorded.append((certificate_id, uow))
        return len(self.recorded)

    async def publish(self, generation: int | None) -> None:
        self.published.append(generation)

    async def presign(self, serial: str) -> None:
        raise AssertionError("a revocation presigns nothing")


def _operator() -> tuple[OperatorRevocation, FakeUnitOfWorkFactory, Recorder]:
    uow, recorder = FakeUnitOfWorkFactory(), Recorder()
    add_certificate(uow.store, "c1", serial="0a1b")
    return OperatorRevocation(uow, recorder, FixedClock(NOW)), uow, recorder  # type: ignore[arg-type]


async def test_a_revocation_by_serial_is_stored_recorded_and_audited_in_one_unit() -> None:
    operator, uow, recorder = _operator()
    revoked = await operator.revoke("0A1B", RevocationReason.KEY_COMPROMISE)
    assert revoked.state is StoredState.REVOKED
    assert revoked.revocation_reason is RevocationReason.KEY_COMPROMISE
    (certificate_id, unit), = recorder.recorded
    assert certificate_id == "c1" and recorder.published == [1]
    (event,) = uow.store.audit
    assert event == {"action": "revoke", "result": "ok", "client_id": None,
                     "certificate_id": "c1", "reason": "key_compromise", "actor": "operator"}
    assert unit is next(u for u in uow.opened if u.write)  # status recorded in the same unit
    assert uow.store.commits == 1


async def test_a_repeat_changes_nothing_and_audits_nothing() -> None:
    operator, uow, recorder = _operator()
    await operator.revoke("c1", RevocationReason.SUPERSEDED)
    await operator.revoke("c1", RevocationReason.SUPERSEDED)
    assert len(uow.store.audit) == 1 and len(recorder.recorded) == 1
    assert recorder.published == [1, None]


async def test_hold_and_unknown_certificates_are_refused_without_a_write() -> None:
    operator, uow, _recorder = _operator()
    with pytest.raises(InvalidInput):
        await operator.revoke("c1", RevocationReason.CERTIFICATE_HOLD)
    with pytest.raises(NotFound):
        await operator.revoke("nope", RevocationReason.UNSPECIFIED)
    assert uow.store.commits == 0
    assert uow.store.certificates["c1"].certificate.state is StoredState.ACTIVE
