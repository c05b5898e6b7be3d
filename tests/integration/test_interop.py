"""Real clients against a real server: ``certcloud serve --workers 2`` on a free port, queried
with ``openssl ocsp -url`` (POST, with and without a nonce), plain HTTP GET, ``openssl verify
-crl_check``, pkilint, and the operator commands ``certcloud crl`` / ``certcloud ocsp refresh``.
With two workers every new connection may land on either process, so these also check that a
revocation made through one is what the other says."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.support.app import BACKEND, create_pg_database, drop_pg_database
from tests.support.people import PIN, person
from tests.support.tools import openssl, pkilint, run, tool

pytestmark = pytest.mark.interop


@dataclass
class Live:
    base_url: str
    env: dict[str, str]
    exe: str
    dir: Path
    http: httpx.Client
    token: str
    counter: int = 0

    def cli(self, *args: str) -> dict[str, Any]:
        done = subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, f"certcloud {' '.join(args)}: {done.stderr}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.token}"})

    def issue(self) -> tuple[dict[str, Any], Path]:
        self.counter += 1
        holder = person(self.counter)
        started = self.post("/v1/verifications", {"phone": holder["phone"], "channel": "sms",
                                                  "purpose": "issue"})
        assert started.status_code == 201, started.text
        code = self.http.get("/sandbox/messages", params={"phone": holder["phone"]}).json()[0]
        confirmed = self.post(f"/v1/verifications/{started.json()['id']}/confirm",
                              {"code": code["code"]})
        assert confirmed.status_code == 200, confirmed.text
        issued = self.post("/v1/certificates", {
            "verification_id": started.json()["id"], "person": holder, "terms_accepted": True,
            "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
            "pin": PIN})
        assert issued.status_code == 201, issued.text
        path = self.dir / f"ee{self.counter}.pem"
        path.write_text(issued.json()["certificate_pem"])
        return dict(issued.json()), path

    def revoke(self, certificate_id: str, reason: str) -> None:
        reply = self.post(f"/v1/certificates/{certificate_id}/revoke",
                          {"pin": PIN, "reason": reason})
        assert reply.status_code == 200, reply.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(tmp_path_factory.mktemp("live")) as server:
        yield server


@contextlib.contextmanager
def serve_live(work: Path, **settings: str) -> Iterator[Live]:
    """``certcloud serve --workers 2`` in ``work``, ready, with an API client; ``settings``
    are extra ``CERTCLOUD_*`` variables."""
    exe = tool("certcloud")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    pg_url = asyncio.run(create_pg_database()) if BACKEND == "postgres" else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")}
    env.update(CERTCLOUD_ENVIRONMENT="development", CERTCLOUD_DATA_DIR=str(work / "var"),
               CERTCLOUD_PUBLIC_BASE_URL=base_url, CERTCLOUD_LOG_LEVEL="WARNING",
               CERTCLOUD_ARGON2__TIME_COST="1", CERTCLOUD_ARGON2__MEMORY_KIB="1024",
               CERTCLOUD_ARGON2__PARALLELISM="1",
               # No background refresh during the module: the commands' counts are exact.
               CERTCLOUD_STATUS__REFRESH_INTERVAL_SECONDS="3600")
    if pg_url:
        env["CERTCLOUD_DATABASE_URL"] = pg_url
    env.update(settings)
    log = (work / "server.log").open("wb")
    server = subprocess.Popen([exe, "serve", "--port", str(port), "--workers", "2"], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            deadline = time.monotonic() + 90
            while True:
                assert server.poll() is None, (work / "server.log").read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/readyz").status_code == 200:
                        break
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.2)
            done = subprocess.run([exe, "clients", "create", "interop"], env=env,
                                  capture_output=True, text=True, timeout=120, check=True)
            client = json.loads(done.stdout.strip().splitlines()[-1])
            token = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                              auth=(client["client_id"], client["client_secret"])).json()
            (work / "ca.pem").write_bytes(http.get("/ca/certificate.pem").content)
            yield Live(base_url, env, exe, work, http, token["access_token"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGINT)  # our own child's process group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
        if pg_url:
            asyncio.run(drop_pg_database(pg_url))


def _ocsp(live: Live, *args: str) -> str:
    """``openssl ocsp`` against the live responder; the response must verify."""
    done = run([openssl(), "ocsp", "-url", f"{live.base_url}/ocsp",
                "-issuer", str(live.dir / "ca.pem"), "-CAfile", str(live.dir / "ca.pem"),
                *args])
    output = done.stdout + done.stderr
    assert "Response verify OK" in output, output
    return output


def test_openssl_ocsp_post_good_revoked_unknown(live: Live) -> None:
    _good, good_pem = live.issue()
    bad, bad_pem = live.issue()
    output = _ocsp(live, "-cert", str(good_pem), "-nonce", "-resp_text")
    assert f"{good_pem}: good" in output
    assert "OCSP Nonce" in output  # echoed; openssl checks it matches its own
    output = _ocsp(live, "-cert", str(good_pem), "-no_nonce")
    assert f"{good_pem}: good" in output
    assert "This Update:" in output and "Next Update:" in output

    live.revoke(bad["id"], "key_compromise")
    for nonce in ("-nonce", "-no_nonce"):
        output = _ocsp(live, "-cert", str(bad_pem), nonce)
        assert f"{bad_pem}: revoked" in output, output
        assert "Reason: keyCompromise" in output and "Revocation Time:" in output

    output = _ocsp(live, "-serial", "0xDEADBEEF", "-nonce")
    assert "0xDEADBEEF: unknown" in output
    # several CertIDs in one request, answered in one response
    output = _ocsp(live, "-cert", str(good_pem), "-cert", str(bad_pem), "-serial", "0x1234",
                   "-nonce")
    assert f"{good_pem}: good" in output and f"{bad_pem}: revoked" in output
    assert "0x1234: unknown" in output


def test_every_worker_says_revoked_once_the_call_replies(live: Live) -> None:
    resource, pem = live.issue()
    request_der = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_pem_x509_certificate(pem.read_bytes()),
        x509.load_pem_x509_certificate((live.dir / "ca.pem").read_bytes()),
        hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)

    def fresh_connection_status() -> ocsp.OCSPCertStatus:
        with httpx.Client(base_url=live.base_url, timeout=10) as http:  # a new connection
            reply = http.post("/ocsp", content=request_der,
                              headers={"Content-Type": "application/ocsp-request"})
            return ocsp.load_der_ocsp_response(reply.content).certificate_status

    assert {fresh_connection_status() for _ in range(12)} == {ocsp.OCSPCertStatus.GOOD}
    live.revoke(resource["id"], "superseded")
    assert {fresh_connection_status() for _ in range(12)} == {ocsp.OCSPCertStatus.REVOKED}


def test_get_over_http_verified_by_openssl(live: Live) -> None:
    _resource, pem = live.issue()
    for nonce in ("-no_nonce", "-nonce"):
        request_path = live.dir / f"req{nonce}.der"
        run([openssl(), "ocsp", "-issuer", str(live.dir / "ca.pem"), "-cert", str(pem), nonce,
             "-reqout", str(request_path)])
        encoded = urllib.parse.quote(base64.b64encode(request_path.read_bytes()).decode(),
                                     safe="")
        reply = live.http.get(f"/ocsp/{encoded}")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/ocsp-response"
        if nonce == "-no_nonce":
            assert "max-age=" in reply.headers["cache-control"] and "etag" in reply.headers
        response_path = live.dir / f"resp{nonce}.der"
        response_path.write_bytes(reply.content)
        ca = str(live.dir / "ca.pem")
        # With -reqin (and no -cert) openssl checks the response's nonce against the request.
        done = run([openssl(), "ocsp", "-reqin", str(request_path), "-respin",
                    str(response_path), "-CAfile", ca])
        output = done.stdout + done.stderr
        assert "Response verify OK" in output, output
        assert "Nonce Verify error" not in output and "no nonce in response" not in output
        done = run([openssl(), "ocsp", "-respin", str(response_path), "-issuer", ca,
                    "-cert", str(pem), "-CAfile", ca, "-no_nonce"])
        assert f"{pem}: good" in done.stdout + done.stderr


def test_openssl_verify_crl_check(live: Live) -> None:
    _good, good_pem = live.issue()
    bad, bad_pem = live.issue()
    live.revoke(bad["id"], "key_compromise")
    reply = live.http.get("/crl")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/pkix-crl"
    der_path = live.dir / "crl.der"
    der_path.write_bytes(reply.content)
    crl_pem = live.dir / "crl.pem"
    run([openssl(), "crl", "-inform", "DER", "-in", str(der_path), "-out", str(crl_pem)])
    base = [openssl(), "verify", "-crl_check", "-CAfile", str(live.dir / "ca.pem"),
            "-CRLfile", str(crl_pem)]
    passed = run([*base, str(good_pem)])
    assert f"{good_pem}: OK" in passed.stdout
    failed = run([*base, str(bad_pem)], check=False)
    assert failed.returncode != 0
    assert "certificate revoked" in failed.stdout + failed.stderr


def test_pkilint_on_what_the_server_publishes(live: Live) -> None:
    _good, good_pem = live.issue()
    bad, bad_pem = live.issue()
    live.revoke(bad["id"], "key_compromise")
    for name, args in (("good", ["-cert", str(good_pem), "-no_nonce"]),
                       ("nonce", ["-cert", str(good_pem), "-nonce"]),
                       ("revoked", ["-cert", str(bad_pem), "-no_nonce"]),
                       ("unknown", ["-serial", "0x77", "-nonce"]),
                       ("several", ["-cert", str(good_pem), "-cert", str(bad_pem), "-nonce"])):
        path = live.dir / f"lint-{name}.der"
        _ocsp(live, *args, "-respout", str(path))
        pkilint("ocsp", path)
    response = ocsp.load_der_ocsp_response((live.dir / "lint-good.der").read_bytes())
    responder = live.dir / "responder.der"
    responder.write_bytes(response.certificates[0].public_bytes(serialization.Encoding.DER))
    pkilint("cert", responder)
    crl = live.dir / "lint-crl.der"
    crl.write_bytes(live.http.get("/crl").content)
    pkilint("crl", crl)


def test_operator_commands(live: Live) -> None:
    before = x509.load_der_x509_crl(live.http.get("/crl").content)
    number = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    out = live.dir / "cli-crl.der"
    issued = live.cli("crl", "--out", str(out))
    assert issued["issued"] is True and issued["crl_number"] > number
    assert issued["replicas_confirmed"] is True
    served = x509.load_der_x509_crl(live.http.get("/crl").content)  # every worker has it
    assert served.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == (
        issued["crl_number"])
    assert out.read_bytes() == served.public_bytes(serialization.Encoding.DER)
    not_due = live.cli("crl", "--if-due")
    assert not_due["issued"] is False and not_due["crl_number"] == issued["crl_number"]

    live.issue()  # a certificate nobody has asked about yet: the issuance pre-signed it
    refreshed = live.cli("ocsp", "refresh")
    assert refreshed["presigned"] == 0 and refreshed["resigned"] == 0
    assert int(refreshed["responder_serial"], 16) > 0
