"""Helpers for the signing tests: a holder with a certificate, the CA on disk, fresh tokens."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from app.settings import CaSettings
from tests.conftest import START, Bank, FixedClock, Service, make_bank, person, running

PIN = "902714"


@dataclass
class Holder:
    """A person with an issued certificate (the Certificate resource as issued)."""

    person: dict[str, str]
    certificate: dict[str, Any]
    pin: str = PIN

    @property
    def id(self) -> str:
        return str(self.certificate["id"])

    @property
    def x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate["certificate_pem"].encode())


async def issue_holder(bank: Bank, n: int, pin: str = PIN) -> Holder:
    who = person(n)
    reply = await bank.issue(who, pin=pin)
    assert reply.status_code == 201, reply.text
    return Holder(who, reply.json(), pin)


async def refresh_token(bank: Bank) -> None:
    """A new access token for the bank (tokens live 15 minutes of the service clock)."""
    reply = await bank.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(bank.client_id, bank.client_secret))
    assert reply.status_code == 200, reply.text
    bank.token = reply.json()["access_token"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def ca_pem_path(service: Service) -> Path:
    return service.settings.ca_dir / "ca.cert.pem"


def openssl_verify(ca_pem: Path, workdir: Path, signature_der: bytes,
                   content: bytes | None = None, *, at: datetime | None = None
                   ) -> subprocess.CompletedProcess[bytes]:
    """``openssl cms -verify`` against the CA; ``content`` for a detached signature. The chain
    is checked at ``at`` (default: the tests' starting time, not the wall clock). On success
    ``stdout`` holds the signed content."""
    sig = workdir / "sig.der"
    sig.write_bytes(signature_der)
    command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig),
               "-CAfile", str(ca_pem),
               "-attime", str(int(((at or START) + timedelta(seconds=1)).timestamp()))]
    if content is not None:
        data = workdir / "content.bin"
        data.write_bytes(content)
        command += ["-content", str(data)]
    return subprocess.run(command, capture_output=True, timeout=60, check=False)


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


__all__ = ["PIN", "FixedClock", "Holder", "b64", "ca_pem_path", "issue_holder",
           "openssl_verify", "refresh_token", "unb64"]
