"""One service for a whole fuzz module (Hypothesis runs many examples against it), with a
bank, an issued certificate and its PIN."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from app.main import create_app
from tests.resilience.conftest import report
from tests.support.app import FixedClock, make_settings, truncate_all
from tests.support.bank import Bank, make_bank
from tests.support.people import PIN, person

# Bounded so the suite stays fast; no example database is written into the work tree.
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@dataclass
class FuzzTarget:
    http: httpx.AsyncClient
    bank: Bank
    certificate: dict[str, Any]
    container: Any
    tried: dict[str, dict[str, int]]

    def count(self, name: str, outcome: object = "tried") -> None:
        """Counts an example of ``name`` by its outcome (an HTTP status, or "tried")."""
        counts = self.tried.setdefault(name, {})
        counts[str(outcome)] = counts.get(str(outcome), 0) + 1


@pytest.fixture(scope="module")
async def target(template_dir: Path, database_url: str,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzTarget]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "var"
    shutil.copytree(template_dir, data_dir)
    await truncate_all(database_url)
    # No limit on signatures: the fixed clock never leaves its first minute. No DEBUG logs:
    # thousands of examples would only fill the capture.
    settings_ = make_settings(data_dir, database_url, log_level="WARNING",
                              limits={"signatures_per_certificate_per_minute": 10**9})
    app = create_app(settings_, clock=FixedClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test",
                                     timeout=60) as http:
            bank = await make_bank(http, app.state.container, "fuzz-bank")
            issued = await bank.issue(person(81), pin=PIN)
            assert issued.status_code == 201, issued.text
            target = FuzzTarget(http, bank, issued.json(), app.state.container, {})
            yield target
    report("fuzz", **target.tried)


def assert_not_5xx(reply: httpx.Response) -> None:
    assert reply.status_code < 500, (reply.status_code, reply.text[:500])
