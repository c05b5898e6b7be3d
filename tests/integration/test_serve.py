"""`certcloud` as an operator runs it: a real server process, and production's refusals."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.production_config import production_env
from tests.support.processes import (
    CERTCLOUD,
    certcloud,
    env_for,
    free_port,
    stop_process,
    wait_ready,
)

STRONG = "x" * 40


def test_development_server_runs_the_whole_flow(tmp_path: Path,
                                                fresh_database_url: str) -> None:
    port = free_port()
    env = env_for(tmp_path / "var", fresh_database_url,
                  CERTCLOUD_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        created = certcloud("clients", "create", "serve-bank", env=env)
        assert created.returncode == 0, created.stderr
        client = json.loads(created.stdout)
        assert sorted(client["scopes"]) == ["certificates:issue", "certificates:read",
                                            "certificates:revoke", "signatures:create"]
        listed = certcloud("clients", "list", env=env)
        assert client["client_id"] in listed.stdout
        assert client["client_secret"] not in listed.stdout

        with httpx.Client(base_url=base, timeout=30) as http:
            token = http.post("/oauth2/token", data={
                "grant_type": "client_credentials", "client_id": client["client_id"],
                "client_secret": client["client_secret"]}).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            phone = "+821077778888"
            started = http.post("/v1/verifications", headers=auth,
                                json={"phone": phone, "channel": "ars", "purpose": "issue"})
            assert started.status_code == 201 and started.json()["display_code"]
            keyed = http.post(f"/sandbox/ars/{started.json()['id']}/keypad",
                              json={"digits": started.json()["display_code"]})
            assert keyed.json()["status"] == "verified"
            issued = http.post("/v1/certificates", headers=auth, json={
                "verification_id": started.json()["id"],
                "person": {"name": "김철수", "rrn": "0203044123456", "phone": phone,
                           "email": "kim@example.com"},
                "terms_accepted": True,
                "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
                "pin": "583920"})
            assert issued.status_code == 201, issued.text
            serial = issued.json()["serial"]
            assert http.get(f"/v1/status/{serial}").json()["status"] == "good"
            assert http.get("/docs").status_code == 200
            assert "/v1/certificates" in http.get("/openapi.json").json()["paths"]

        verified = certcloud("audit", "verify", env=env)
        assert verified.returncode == 0 and "intact" in verified.stdout, verified.stderr
        disabled = certcloud("clients", "disable", client["client_id"], env=env)
        assert disabled.returncode == 0
        with httpx.Client(base_url=base, timeout=30) as http:
            after = http.get(f"/v1/certificates/{issued.json()['id']}", headers=auth)
            assert after.status_code == 401
    finally:
        stop_process(server)
    assert b"583920" not in (server.stderr.read() if server.stderr else b"")


def _refusal(tmp_path: Path, database_url: str, **extra: str) -> str:
    env = env_for(tmp_path / "prod", database_url, CERTCLOUD_ENVIRONMENT="production", **extra)
    result = subprocess.run([CERTCLOUD, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_production_refuses_sandbox_and_placeholders(tmp_path: Path,
                                                     fresh_database_url: str) -> None:
    assert "sandbox" in _refusal(tmp_path, fresh_database_url)
    provider = {"CERTCLOUD_VERIFIER__KIND": "provider"}
    assert "CERTCLOUD_RRN_HMAC_KEY" in _refusal(tmp_path, fresh_database_url, **provider)
    placeholder = {**provider, "CERTCLOUD_RRN_HMAC_KEY": "changeme",
                   "CERTCLOUD_CODE_HMAC_KEY": STRONG,
                   "CERTCLOUD_TOKEN_SIGNING_KEYS": f"k1:{STRONG}"}
    assert "placeholder" in _refusal(tmp_path, fresh_database_url, **placeholder)


def test_production_creates_nothing_implicitly(tmp_path: Path,
                                               fresh_database_url: str) -> None:
    secrets = {k: v for k, v in production_env().items() if k != "CERTCLOUD_ENVIRONMENT"}
    line = _refusal(tmp_path, fresh_database_url, **secrets)
    assert "ca init" in line
    assert not (tmp_path / "prod" / "ca").exists()
    assert not (tmp_path / "prod" / "keyring.json").exists()

    env = env_for(tmp_path / "prod", fresh_database_url, CERTCLOUD_ENVIRONMENT="production",
                  **secrets)
    assert certcloud("ca", "init", env=env).returncode == 0
    assert "db upgrade" in _refusal(tmp_path, fresh_database_url, **secrets)
    assert certcloud("db", "upgrade", env=env).returncode == 0
    again = certcloud("ca", "init", env=env)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_production_refuses_weak_settings_at_start(tmp_path: Path,
                                                   fresh_database_url: str) -> None:
    """Issue 11, finding 8, as `certcloud serve` meets it: one line naming every problem."""
    same = production_env()["CERTCLOUD_RRN_HMAC_KEY"]
    weak = {**{k: v for k, v in production_env().items() if k != "CERTCLOUD_ENVIRONMENT"},
            "CERTCLOUD_CODE_HMAC_KEY": same, "CERTCLOUD_TOKEN_SIGNING_KEYS": f"k1:{same}",
            "CERTCLOUD_ARGON2__TIME_COST": "1", "CERTCLOUD_ARGON2__MEMORY_KIB": "8",
            "CERTCLOUD_VERIFIER__SENS__SECRET_KEY": "",
            "CERTCLOUD_VERIFIER__TWILIO__AUTH_TOKEN": ""}
    line = _refusal(tmp_path, fresh_database_url, **weak)
    assert "Argon2id t=1, m=8 KiB is below RFC 9106's options" in line
    assert "CERTCLOUD_CODE_HMAC_KEY has the same value as CERTCLOUD_RRN_HMAC_KEY" in line
    assert "CERTCLOUD_VERIFIER__SENS__SECRET_KEY, CERTCLOUD_VERIFIER__TWILIO__AUTH_TOKEN" in line
    assert same not in line
    assert not (tmp_path / "prod" / "secrets.json").exists()


# --- development listens on loopback only (the Dockerfile defaults to production) -----------

NOT_A_REDIS_URL = {"CERTCLOUD_LIMITS__REDIS_URL": "http://not-redis"}


def _serve_exits(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`certcloud serve` expected to stop before it binds (a refusal), in development."""
    env = env_for(tmp_path / "dev", f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}", **extra)
    result = subprocess.run([CERTCLOUD, "serve", "--port", str(free_port()), *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    return result


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "certcloud.example"])
def test_development_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    result = _serve_exits(tmp_path, "--host", host)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "loopback" in lines[0] and "--allow-remote-development" in lines[0]
    assert "CERTCLOUD_ENVIRONMENT=production" in lines[0]
    assert not (tmp_path / "dev").exists()  # refused before anything was made


@pytest.mark.parametrize("host", ["127.0.0.2", "localhost", "::1"])
def test_development_on_loopback_needs_no_flag(tmp_path: Path, host: str) -> None:
    # A bad setting stops it right after the host check, so no port is ever bound.
    result = _serve_exits(tmp_path, "--host", host, **NOT_A_REDIS_URL)
    assert "Redis" in result.stderr and "loopback" not in result.stderr


def test_the_flag_lets_development_listen_remotely_with_a_warning(tmp_path: Path) -> None:
    result = _serve_exits(tmp_path, "--host", "0.0.0.0", "--allow-remote-development",
                          **NOT_A_REDIS_URL)
    assert "warning: development mode on 0.0.0.0" in result.stderr
    assert "Redis" in result.stderr  # it went on to the next start-up check


def _dockerfile() -> tuple[dict[str, str], list[str]]:
    """The final stage's ENV values and CMD of the Dockerfile (no Docker engine is needed)."""
    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    instructions = re.sub(r"\\\n", " ", text).splitlines()
    env: dict[str, str] = {}
    command: list[str] = []
    for line in instructions:
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            env, command = {}, []
        elif keyword.upper() == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest) if "=" in token)
        elif keyword.upper() == "CMD":
            command = json.loads(rest)
    return env, command


def test_the_image_defaults_to_production(tmp_path: Path, fresh_database_url: str) -> None:
    env, command = _dockerfile()
    assert env.get("CERTCLOUD_ENVIRONMENT") == "production", env
    assert command and "--allow-remote-development" not in " ".join(command)
    # Its command, run here with the image's environment (and a scratch data directory),
    # migrates and then refuses development's sandbox verifier: production it is.
    run_env = {**env_for(tmp_path / "image", fresh_database_url), **env,
               "CERTCLOUD_DATA_DIR": str(tmp_path / "image"),
               "CERTCLOUD_DATABASE_URL": fresh_database_url,
               "PATH": f"{Path(CERTCLOUD).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "sandbox phone verifier is refused in production" in result.stderr


def _production_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Everything production asks for (tests/production_config.py), with the providers'
    endpoints somewhere never called here."""
    never_called = "http://127.0.0.1:9"
    return env_for(tmp_path / "prod", database_url, **production_env(),
                   CERTCLOUD_VERIFIER__SENS__BASE_URL=never_called,
                   CERTCLOUD_VERIFIER__TWILIO__BASE_URL=never_called)


def _token(http: httpx.Client, client: dict[str, str]) -> str:
    reply = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(client["client_id"], client["client_secret"]))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def test_production_hides_docs_and_guards_metrics(tmp_path: Path,
                                                  fresh_database_url: str) -> None:
    env = _production_env(tmp_path, fresh_database_url)
    for step in (("ca", "init"), ("db", "upgrade")):
        done = certcloud(*step, env=env)
        assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        bank = json.loads(certcloud("clients", "create", "bank", env=env).stdout)
        created = certcloud("clients", "create", "prometheus", "--scope", "metrics:read",
                            env=env)
        assert created.returncode == 0, created.stderr
        scraper = json.loads(created.stdout)
        with httpx.Client(base_url=base, timeout=30) as http:
            replies = [http.get(path) for path in ("/docs", "/redoc", "/openapi.json",
                                                   "/docs/assets/swagger-ui-bundle.js")]
            assert [reply.status_code for reply in replies] == [404] * 4
            anonymous = http.get("/metrics")
            assert anonymous.status_code == 401 and "certcloud_" not in anonymous.text
            assert anonymous.json()["code"] == "token_missing"
            as_bank = http.get("/metrics",
                               headers={"Authorization": f"Bearer {_token(http, bank)}"})
            assert as_bank.status_code == 403 and as_bank.json()["code"] == "scope_missing"
            scraped = http.get("/metrics",
                               headers={"Authorization": f"Bearer {_token(http, scraper)}"})
            assert scraped.status_code == 200 and "certcloud_http_requests_total" in scraped.text
            for reply in [*replies, anonymous, as_bank, scraped, http.get("/readyz")]:
                assert "server" not in reply.headers, reply.headers  # no banner
                assert reply.headers["x-content-type-options"] == "nosniff"
                assert reply.headers["referrer-policy"] == "no-referrer"
                assert reply.headers["cache-control"] == "no-store"
    finally:
        stop_process(server)
