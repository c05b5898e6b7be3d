"""Run pkilint's linters on DER/PEM documents.

pkilint decodes with pyasn1-fasder, which refuses OID arcs over 32 bits, and the default
policy OID is a ``2.25.<uuid>`` OID with a 128-bit arc (legal in X.660 and RFC 5280). The
linters run here with pyasn1's own DER decoder instead, so every other rule still applies.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_RUNNER = """
import sys
import pkilint.document
from pyasn1.codec.der.decoder import decode
pkilint.document.decode_der = decode
from importlib import import_module
sys.exit(import_module("pkilint.bin." + sys.argv[1]).main(sys.argv[2:]))
"""


def pkilint(tool: str, document: bytes, tmp_path: Path, *args: str) -> str:
    """Lint ``document`` with ``tool`` (e.g. ``lint_pkix_cert``, ``lint_crl`` with ``-t CRL
    -p PKIX``, ``lint_ocsp_response``); fails the test on any WARNING or worse."""
    path = tmp_path / f"{tool}.doc"
    path.write_bytes(document)
    result = subprocess.run([sys.executable, "-c", _RUNNER, tool, "lint", *args, "-s", "WARNING",
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"pkilint {tool} found:\n{result.stdout}{result.stderr}"
    return result.stdout
