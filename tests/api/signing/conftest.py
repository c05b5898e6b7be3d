"""Fixtures of the signing tests: a holder with a certificate, an EC service, a replica;
helpers are in tests/support (bank.Holder, signing)."""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import CaSettings
from tests.support.app import Service, running
from tests.support.bank import Bank, Holder, issue_holder, make_bank


@pytest.fixture
async def holder(bank: Bank) -> Holder:
    return await issue_holder(bank, 1)


@pytest.fixture
async def ec_service(service: Service) -> Any:
    """The same service, but issuing P-256 keys (another app on the same data and database)."""
    settings = service.settings.model_copy(update={"ca": CaSettings(user_key_algorithm="p256")})
    async with running(settings, service.clock) as started:
        yield started


@pytest.fixture
async def replica(service: Service) -> Any:
    """A second app instance (its own engine and pool) on the same database: a replica."""
    async with running(service.settings, service.clock) as started:
        yield started.http


@pytest.fixture
async def ec_bank(ec_service: Service) -> Bank:
    return await make_bank(ec_service.http, ec_service.container, "ec-bank")
