"""External tools the tests run: console scripts next to Python, openssl, pkilint.

pkilint decodes with pyasn1-fasder, which refuses OID arcs over 32 bits, and the default
policy OID is a ``2.25.<uuid>`` OID with a 128-bit arc (legal in X.660 and RFC 5280).
:func:`pkilint_document` runs the linters with pyasn1's own DER decoder instead, so every other
rule still applies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def tool(name: str) -> str:
    """A console script installed next to the running Python (pkilint, certcloud)."""
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


_RUNNER = """
import sys
import pkilint.document
from pyasn1.codec.der.decoder import decode
pkilint.document.decode_der = decode
from importlib import import_module
sys.exit(import_module("pkilint.bin." + sys.argv[1]).main(sys.argv[2:]))
"""


def pkilint_document(tool: str, document: bytes, tmp_path: Path, *args: str) -> str:
    """Lint ``document`` with ``tool`` (e.g. ``lint_pkix_cert``, ``lint_crl`` with ``-t CRL
    -p PKIX``, ``lint_ocsp_response``); fails the test on any WARNING or worse."""
    path = tmp_path / f"{tool}.doc"
    path.write_bytes(document)
    result = subprocess.run([sys.executable, "-c", _RUNNER, tool, "lint", *args, "-s", "WARNING",
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"pkilint {tool} found:\n{result.stdout}{result.stderr}"
    return result.stdout
