"""Fixtures of the relying-party status tests (OCSP, CRL, JSON status); helpers are in
tests/support/status.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.app import FixedClock


@pytest.fixture
def clock() -> FixedClock:
    """Real time, held still: openssl and pkilint check validity against the wall clock."""
    return FixedClock(datetime.now(UTC).replace(microsecond=0))
