"""Using a verification up, on the fake unit of work: once, for its bank, phone and purpose,
and only together with the change it proves."""

from __future__ import annotations

import pytest

from app.domain.errors import Conflict, NotFound
from app.domain.verification import Purpose, VerificationStatus
from app.services.verifications import consume
from tests.unit.builders import NOW, add_verification
from tests.unit.fakes import FakeUnitOfWorkFactory

PHONE = "+821012345678"


async def _consume(uow: FakeUnitOfWorkFactory, *, commit: bool = True, **overrides: object
                   ) -> str:
    arguments: dict[str, object] = {"client_id": "bank", "phone": PHONE,
                                    "purpose": Purpose.REVOKE, "now": NOW, **overrides}
    async with uow() as work:
        phone = await consume(work, "v1", **arguments)  # type: ignore[arg-type]
        if commit:
            await work.commit()
    return phone


async def test_a_verification_is_used_up_once() -> None:
    uow = FakeUnitOfWorkFactory()
    add_verification(uow.store)
    assert await _consume(uow) == PHONE
    assert uow.store.verifications["v1"][0].status is VerificationStatus.USED
    with pytest.raises(Conflict) as caught:
        await _consume(uow)
    assert caught.value.code == "verification_used"


async def test_nothing_is_used_up_unless_the_change_commits() -> None:
    uow = FakeUnitOfWorkFactory()
    add_verification(uow.store)
    await _consume(uow, commit=False)  # the proven change failed after the use
    assert uow.store.verifications["v1"][0].status is VerificationStatus.VERIFIED
    assert await _consume(uow) == PHONE


@pytest.mark.parametrize(("overrides", "code"), [
    ({"client_id": "other-bank"}, "verification_not_yours"),
    ({"phone": "+821099999999"}, "verification_phone_mismatch"),
    ({"purpose": Purpose.UNLOCK}, "verification_purpose_mismatch"),
])
async def test_a_verification_counts_only_for_its_bank_phone_and_purpose(
        overrides: dict[str, object], code: str) -> None:
    uow = FakeUnitOfWorkFactory()
    add_verification(uow.store)
    with pytest.raises(Conflict) as caught:
        await _consume(uow, **overrides)
    assert caught.value.code == code
    assert uow.store.verifications["v1"][0].status is VerificationStatus.VERIFIED


async def test_an_unconfirmed_or_unknown_verification_is_refused() -> None:
    uow = FakeUnitOfWorkFactory()
    add_verification(uow.store, status=VerificationStatus.PENDING)
    with pytest.raises(Conflict) as caught:
        await _consume(uow)
    assert caught.value.code == "verification_unconfirmed"
    del uow.store.verifications["v1"]
    with pytest.raises(NotFound):
        await _consume(uow)
