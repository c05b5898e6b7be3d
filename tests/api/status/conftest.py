"""Fixtures of the relying-party status tests (OCSP, CRL, JSON status); helpers are in
tests/support/status.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from app.main import create_app
from tests.support.app import FixedClock, Service


@pytest.fixture
def clock() -> FixedClock:
    """Real time, held still: openssl and pkilint check validity against the wall clock."""
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def replica(service: Service) -> AsyncIterator[Service]:
    """A second serving app on the same database and data directory."""
    app = create_app(service.settings, clock=service.clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://certcloud.test") as http:
            yield Service(app, http, app.state.container, service.clock, service.settings)
