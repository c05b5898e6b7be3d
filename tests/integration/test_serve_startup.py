"""`certcloud serve` start-up as an operator meets it (issue 18, item 5): production names every
problem it finds in one error, `--port` moves the default public base URL, and a production
public URL on a loopback address is warned about."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.conftest import stop_process
from tests.integration import test_serve
from tests.integration.test_serve import CERTCLOUD, certcloud, env_for, free_port, wait_ready
from tests.production_config import production_env

fresh_database_url = test_serve.fresh_database_url  # the fixture: a database of its own
NEVER_CALLED = "http://127.0.0.1:9"


def _production(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return env_for(tmp_path / "prod", database_url, **{
        **production_env(), "CERTCLOUD_VERIFIER__SENS__BASE_URL": NEVER_CALLED,
        "CERTCLOUD_VERIFIER__TWILIO__BASE_URL": NEVER_CALLED, **extra})


def _refused(env: dict[str, str]) -> str:
    """The one line a refused `certcloud serve` prints."""
    result = subprocess.run([CERTCLOUD, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("certcloud: cannot start: "), lines[0]
    return lines[0]


def test_production_names_every_problem_in_one_error(tmp_path: Path,
                                                     fresh_database_url: str) -> None:
    """Weak settings, a provider without credentials, no CA, no key ring and a schema not at
    head: all of them in the first refusal, not one per start."""
    env = _production(tmp_path, fresh_database_url, CERTCLOUD_ARGON2__TIME_COST="1",
                      CERTCLOUD_ARGON2__MEMORY_KIB="8",
                      CERTCLOUD_VERIFIER__TWILIO__AUTH_TOKEN="")
    line = _refused(env)
    assert "Argon2id t=1, m=8 KiB is below RFC 9106's options" in line
    assert "the provider verifier needs credentials: CERTCLOUD_VERIFIER__TWILIO__AUTH_TOKEN" \
        in line
    assert f"no CA in {tmp_path / 'prod' / 'ca'}; run `certcloud ca init`" in line
    assert f"no key ring at {tmp_path / 'prod' / 'keyring.json'}" in line
    assert "the database schema is not current; run `certcloud db upgrade`" in line
    assert production_env()["CERTCLOUD_RRN_HMAC_KEY"] not in line
    assert not (tmp_path / "prod" / "ca").exists()  # production still makes nothing


def test_production_names_a_pending_ca_with_the_schema(tmp_path: Path,
                                                       fresh_database_url: str) -> None:
    env = _production(tmp_path, fresh_database_url)
    made = certcloud("ca", "init", "--csr", str(tmp_path / "ca.csr"), env=env)
    assert made.returncode == 0, made.stderr
    line = _refused(env)
    assert "is pending: its CSR awaits the root's signature" in line
    assert "db upgrade" in line
    assert "Argon2id" not in line and "no key ring" not in line  # only what is wrong

    assert certcloud("db", "upgrade", env=env).returncode == 0
    line = _refused(env)
    assert "is pending" in line and "db upgrade" not in line


def _problem_type(env: dict[str, str], port: int) -> str:
    """The `type` URI of a problem the running server answers (it names the public base
    URL)."""
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        reply = httpx.get(f"{base}/v1/status/not-hex", timeout=30)
        assert reply.json()["code"] == "serial_invalid", reply.text
        return str(reply.json()["type"])
    finally:
        stop_process(server)


def test_the_port_moves_the_default_public_base_url(tmp_path: Path,
                                                    fresh_database_url: str) -> None:
    port = free_port()
    env = env_for(tmp_path / "var", fresh_database_url)
    assert _problem_type(env, port) == f"http://127.0.0.1:{port}/problems/serial_invalid"


def test_an_explicit_public_base_url_wins_over_the_port(tmp_path: Path,
                                                       fresh_database_url: str) -> None:
    env = env_for(tmp_path / "var", fresh_database_url,
                  CERTCLOUD_PUBLIC_BASE_URL="https://certs.bank.example")
    assert (_problem_type(env, free_port())
            == "https://certs.bank.example/problems/serial_invalid")


def _started_stderr(env: dict[str, str]) -> str:
    """What a production server that started prints on stderr before it serves."""
    for step in (("ca", "init"), ("db", "upgrade")):
        done = certcloud(*step, env=env)
        assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
    finally:
        stop_process(server)
    assert server.stderr is not None
    return server.stderr.read()


def test_production_warns_of_a_loopback_public_url(tmp_path: Path,
                                                   fresh_database_url: str) -> None:
    stderr = _started_stderr(_production(tmp_path, fresh_database_url))
    assert "certcloud: warning: the public base URL http://127.0.0.1:" in stderr
    assert "is a loopback address" in stderr


def test_production_with_a_public_url_is_not_warned(tmp_path: Path,
                                                    fresh_database_url: str) -> None:
    env = _production(tmp_path, fresh_database_url,
                      CERTCLOUD_PUBLIC_BASE_URL="https://certs.bank.example")
    assert "loopback" not in _started_stderr(env)
