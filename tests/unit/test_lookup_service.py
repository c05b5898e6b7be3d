"""The lookup by RRN on the fake unit of work: what it finds, what it audits, its limit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.domain.errors import InvalidInput, RateLimited
from app.services.limits import RateLimiter
from app.services.lookup import LookupService
from app.settings import LimitsSettings
from tests.unit.builders import NOW, add_certificate
from tests.unit.fakes import FakeUnitOfWorkFactory, FixedClock, MemoryCounters

RRN = "900101-1234568"


class FakeSecrets:
    async def rrn_lookup_hmac(self, digits: str) -> str:
        return f"hmac({digits})"


def _lookup(per_minute: int = 60) -> tuple[LookupService, FakeUnitOfWorkFactory]:
    uow = FakeUnitOfWorkFactory()
    limits = LimitsSettings(lookups_per_client_per_minute=per_minute)
    service = LookupService(uow, FakeSecrets(), FixedClock(NOW),  # type: ignore[arg-type]
                            RateLimiter(MemoryCounters()), limits)
    return service, uow


async def test_a_lookup_finds_the_persons_certificates_and_audits_by_hmac_only() -> None:
    service, uow = _lookup()
    uow.store.persons["p1"] = SimpleNamespace(id="p1", rrn_hmac="hmac(9001011234568)")
    add_certificate(uow.store, "c1", person_id="p1")
    add_certificate(uow.store, "c9", person_id="p9", serial="ff")
    found = await service.lookup(client_id="bank", rrn=RRN, via="v1")
    assert [c.id for c in found] == ["c1"]
    (event,) = uow.store.audit
    assert event["action"] == "lookup" and event["found"] is True and event["count"] == 1
    assert event["subject_hmac"] == "hmac(9001011234568)"
    assert RRN.replace("-", "") not in repr({k: v for k, v in event.items()
                                            if k != "subject_hmac"})


async def test_an_unknown_rrn_finds_nothing_and_is_audited() -> None:
    service, uow = _lookup()
    assert await service.lookup(client_id="bank", rrn=RRN, via="csc") == []
    assert uow.store.audit[0]["found"] is False and uow.store.audit[0]["via"] == "csc"


async def test_a_malformed_rrn_is_refused_before_it_counts() -> None:
    service, uow = _lookup(per_minute=1)
    with pytest.raises(InvalidInput):
        await service.lookup(client_id="bank", rrn="900101-123456", via="v1")
    assert uow.store.audit == []
    await service.lookup(client_id="bank", rrn=RRN, via="v1")  # the one allowed


async def test_lookups_past_the_clients_limit_are_refused_and_not_audited() -> None:
    service, uow = _lookup(per_minute=2)
    for _ in range(2):
        await service.lookup(client_id="bank", rrn=RRN, via="v1")
    with pytest.raises(RateLimited):
        await service.lookup(client_id="bank", rrn=RRN, via="v1")
    assert len(uow.store.audit) == 2
