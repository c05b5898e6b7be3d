"""Concurrent PIN checks of one certificate with a PIN KDF as slow as production's.

A PIN check is reserved before the (slow) KDF runs, so concurrent wrong PINs can never add up
past five. The replica suite shows that half; this module shows the other: requests with the
RIGHT PIN, in flight together (a bank front-end signing several documents at once), all sign:
past five in flight they wait for a slot instead of locking the certificate. One
process is enough: the PIN checks overlap on separate pooled connections of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import create_app
from app.settings import Argon2Settings, Settings
from tests.resilience.conftest import report
from tests.support.app import BACKEND, FixedClock, Service
from tests.support.bank import Bank, make_bank
from tests.support.people import PIN, person

CONCURRENT = 8


@pytest.fixture
async def slow_kdf(settings: Settings, clock: FixedClock) -> AsyncIterator[Service]:
    """The service with Argon2id at RFC 9106's second recommended cost (t=3, 64 MiB),
    production's default, so a PIN check takes as long as it does in production."""
    settings = settings.model_copy(update={"argon2": Argon2Settings()})
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test",
                                     timeout=120) as http:
            yield Service(app, http, app.state.container, clock, settings)


@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres", reason="on SQLite the writers queue on the file lock "
                    "(with SQLite's busy back-off), so whether the tries overlap is timing")
async def test_concurrent_right_pins_are_never_locked_out(slow_kdf: Service) -> None:
    bank: Bank = await make_bank(slow_kdf.http, slow_kdf.container, "busy-bank")
    issued = await bank.issue(person(61), pin=PIN)
    assert issued.status_code == 201, issued.text
    certificate_id = issued.json()["id"]
    digest = base64.b64encode(hashlib.sha256(b"one of several documents").digest()).decode()
    replies = await asyncio.gather(*[
        bank.post(f"/v1/certificates/{certificate_id}/signatures",
                  {"pin": PIN, "digest": digest, "format": "raw"}) for _ in range(CONCURRENT)])
    statuses = sorted(r.status_code for r in replies)
    report("pin_race.right_pins", tried=CONCURRENT, ok=statuses.count(200),
           pin_locked=statuses.count(423))
    assert statuses == [200] * CONCURRENT, [r.json().get("code") for r in replies]
