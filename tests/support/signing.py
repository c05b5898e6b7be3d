"""Signature helpers: base64 both ways, the CA on disk, ``openssl cms -verify``."""

from __future__ import annotations

import base64
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from tests.support.app import START, Service


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
