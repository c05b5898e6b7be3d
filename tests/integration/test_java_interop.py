"""Java relying parties against a real server (issue 12, part 1): Bouncy Castle (Debian's
``libbcprov-java``/``libbcpkix-java``) and the JDK's own ``CertPathValidator``, driven by
``tests/integration/java/OcspInterop.java``, compiled here with ``javac``.

Bouncy Castle's ``CertificateID.equals`` compares the CertID's encoding, and its PKIX checker
keys its response cache by it, so an answer must carry the CertID exactly as sent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_interop import Live, serve_live

pytestmark = pytest.mark.interop

JAVA_SOURCE = Path(__file__).parent / "java" / "OcspInterop.java"
BC_JARS = [Path("/usr/share/java") / f"{name}.jar" for name in ("bcprov", "bcpkix", "bcutil")]
NEXT_UPDATE = 7200  # the responses' lifetime here: the moved date is past the first one's


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the compiled program."""
    missing = [str(jar) for jar in BC_JARS if not jar.exists()]
    assert shutil.which("javac") and not missing, f"need javac and {missing} (scripts/test)"
    classes = tmp_path_factory.mktemp("java")
    classpath = ":".join(str(jar) for jar in BC_JARS)
    subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(JAVA_SOURCE)],
                   check=True, capture_output=True, timeout=180)
    return ["java", "-cp", f"{classes}:{classpath}", "OcspInterop"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(tmp_path_factory.mktemp("live-java"),
                    CERTCLOUD_STATUS__OCSP_NEXT_UPDATE_SECONDS=str(NEXT_UPDATE),
                    CERTCLOUD_STATUS__OCSP_REFRESH_BEFORE_SECONDS="3600") as live:
        yield live


def _run(java: list[str], *args: str) -> list[str]:
    done = subprocess.run([*java, *args], capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _paths(live: Live, pem: Path) -> tuple[str, str, str]:
    return f"{live.base_url}/ocsp", str(live.dir / "ca.pem"), str(pem)


def test_bouncy_castle_finds_its_answer_in_every_cert_id_shape(java: list[str],
                                                              server: Live) -> None:
    _good, good_pem = server.issue()
    bad, bad_pem = server.issue()
    server.revoke(bad["id"], "key_compromise")
    shapes = ["sha1-null", "sha1-absent", "sha256-null", "sha256-absent"]
    for pem, status in ((good_pem, "good"), (bad_pem, "revoked")):
        for _round in range(2):  # signed and stored, then from the store and memory
            assert _run(java, "certid", *_paths(server, pem)) == [
                f"certid {shape} {status}" for shape in shapes]


def test_bouncy_castle_pkix_replaces_its_cached_response(java: list[str],
                                                         server: Live) -> None:
    """One JVM validates now, then at a date past the first response's nextUpdate: its cache
    must drop that response and fetch the one signed since (on revocation, here)."""
    resource, pem = server.issue()
    checker = subprocess.Popen([*java, "bc-pkix", *_paths(server, pem), str(NEXT_UPDATE + 2)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert checker.stdout is not None and checker.stdin is not None
        assert checker.stdout.readline().strip() == "bc-pkix first good"
        time.sleep(3)  # the new response's nextUpdate is past the moved date (whole seconds)
        server.revoke(resource["id"], "superseded")
        out, err = checker.communicate("go\n", timeout=180)
    finally:
        if checker.poll() is None:
            checker.kill()  # our own child
            checker.wait()
    assert checker.returncode == 0, err
    assert out.strip() == "bc-pkix moved revoked"


def test_jdk_pkix_with_ocsp_enabled(java: list[str], server: Live) -> None:
    _good, good_pem = server.issue()
    bad, bad_pem = server.issue()
    server.revoke(bad["id"], "key_compromise")
    assert _run(java, "jdk-pkix", *_paths(server, good_pem)) == ["jdk-pkix good"]
    assert _run(java, "jdk-pkix", *_paths(server, bad_pem)) == ["jdk-pkix revoked"]

