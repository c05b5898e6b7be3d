"""Fixtures of the PKCS#11 tests: a fresh SoftHSM2 token per test, and a session on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.storage.pkcs11 import TokenSession
from tests.support.softhsm import USER_PIN


@pytest.fixture
def token_label(softhsm: Any) -> str:
    """A freshly initialised token (its own label)."""
    return str(softhsm.new_token())


@pytest.fixture
def token(softhsm: Any, token_label: str) -> Iterator[TokenSession]:
    """The process's session on the fresh token, with a short back-off for recovery tests."""
    session = TokenSession.shared(softhsm.module, token_label, USER_PIN, call_timeout=10.0)
    session._retry_min, session._retry_max = 0.05, 0.2
    session.open()
    yield session
    session.close()
