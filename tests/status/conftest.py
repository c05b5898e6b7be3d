"""Helpers for the relying-party status tests (OCSP, CRL, JSON status)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.conftest import Bank, FixedClock, person

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@pytest.fixture
def clock() -> FixedClock:
    """Real time, held still: openssl and pkilint check validity against the wall clock."""
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate, *,
                 algorithm: hashes.HashAlgorithm | None = None,
                 nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def get_path(request_der: bytes) -> str:
    """RFC 6960 A.1: the URL-encoded base64 of the request."""
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")


async def post_ocsp(http: httpx.AsyncClient, request_der: bytes) -> ocsp.OCSPResponse:
    reply = await http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(reply.content)


async def issue(bank: Bank, n: int, pin: str = "902714") -> tuple[dict[str, Any], x509.Certificate]:
    """A certificate for person ``n``: its resource and the parsed certificate."""
    reply = await bank.issue(person(n), pin=pin)
    assert reply.status_code == 201, reply.text
    body = dict(reply.json())
    return body, x509.load_pem_x509_certificate(body["certificate_pem"].encode())


async def revoke(bank: Bank, certificate_id: str, pin: str = "902714",
                 reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"pin": pin}
    if reason is not None:
        body["reason"] = reason
    reply = await bank.post(f"/v1/certificates/{certificate_id}/revoke", body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def tool(name: str) -> str:
    """A console script installed next to the running Python (pkilint, certcloud)."""
    import sys

    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("openssl is not installed")
    return found


def run(args: list[str], *, check: bool = True, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def pkilint(kind: str, path: Path) -> str:
    """Lint with pkilint, failing on any finding of WARNING or worse."""
    commands = {
        "ocsp": [tool("lint_ocsp_response"), "lint"],
        "crl": [tool("lint_crl"), "lint", "-t", "CRL", "-p", "PKIX"],
        "cert": [tool("lint_pkix_cert"), "lint"],
    }
    done = run([*commands[kind], "-s", "WARNING", str(path)], check=False)
    assert done.returncode == 0, f"pkilint {kind} findings:\n{done.stdout}\n{done.stderr}"
    return done.stdout
