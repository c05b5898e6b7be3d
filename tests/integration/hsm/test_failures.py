"""Failure is clear: `certcloud serve` refuses a bad module, PIN, token or key label with one
line, and a token that fails while the service runs gives 503 problem+json on the calls that
need it (and /readyz), writes nothing half-way, and recovers by itself when it is back."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.bootstrap import (
    check_configuration,
    init_ca,
    load_key_protector,
    preflight,
    prepare_token_secrets,
)
from app.main import create_app
from app.services.secrets import StartupError
from app.storage import migrate
from app.storage.tables import certificates
from tests.production_config import production_env as good_production_env
from tests.production_config import production_fields
from tests.support.app import FixedClock, make_settings, truncate_all
from tests.support.bank import make_bank
from tests.support.people import PIN, person
from tests.support.processes import stop_process

pytestmark = pytest.mark.hsm

CERTCLOUD = shutil.which("certcloud") or str(Path(sys.executable).parent / "certcloud")


def production_env(hsm: Any, label: str, data_dir: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")}
    env.update({
        "CERTCLOUD_ENVIRONMENT": "production", "CERTCLOUD_DATA_DIR": str(data_dir),
        "CERTCLOUD_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'certcloud.db'}",
        **good_production_env(), **hsm.env(label), **extra})
    return env


def certcloud(*args: str, env: dict[str, str], timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CERTCLOUD, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def refusal(env: dict[str, str]) -> str:
    result = certcloud("serve", "--port", "1", env=env)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("certcloud: cannot start: ")
    return lines[0]


def test_operator_setup_and_one_line_refusals(softhsm: Any, tmp_path: Path) -> None:
    """As an operator runs it (child processes; each costs an interpreter start, so the
    other refusals are checked in process below)."""
    label = softhsm.new_token()
    data = tmp_path / "prod"
    env = production_env(softhsm, label, data)

    made = certcloud("ca", "init", "--pkcs11", "--key-algorithm", "p384", env=env)
    assert made.returncode == 0, made.stderr
    assert "master key in the token: certcloud-master-0001-" in made.stdout
    assert "key in the PKCS#11 token" in made.stdout
    assert sorted(p.name for p in (data / "ca").iterdir()) == ["ca.cert.pem",
                                                               "ca.key.pkcs11.json"]
    assert not (data / "keyring.json").exists()
    assert certcloud("db", "upgrade", env=env).returncode == 0

    line = refusal({**env, "CERTCLOUD_KEYS__PKCS11_MODULE": "/nonexistent/libsofthsm2.so"})
    assert "PKCS#11 module /nonexistent/libsofthsm2.so does not exist" in line
    line = refusal({**env, "CERTCLOUD_KEYS__PIN": "000000"})
    assert f"the PKCS#11 token '{label}' refused the user PIN" in line
    assert "000000" not in line

    # The PIN may come from a file; the server then starts, and /readyz checks the token.
    pin_file = tmp_path / "pin"
    pin_file.write_text(env.pop("CERTCLOUD_KEYS__PIN") + "\n")
    env["CERTCLOUD_KEYS__PIN_FILE"] = str(pin_file)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise AssertionError("certcloud serve exited: " + server.communicate()[1]
                                     .decode(errors="replace")[-3000:])
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.2)
        ca = httpx.get(f"http://127.0.0.1:{port}/ca/certificate.pem", timeout=5)
        assert ca.status_code == 200
        assert ca.text == (data / "ca" / "ca.cert.pem").read_text()
    finally:
        stop_process(server)

    status = certcloud("keys", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    keys = json.loads(status.stdout)["keys"]
    assert [(k["location"], k["current"]) for k in keys] == [("pkcs11", True)]


async def test_preflight_names_each_problem_in_one_line(softhsm: Any, tmp_path: Path) -> None:
    """What `certcloud serve` runs before it binds a port, in process."""
    label = softhsm.new_token()
    data = tmp_path / "prod"
    secrets = production_fields()

    def settings(top: dict[str, Any] | None = None, **keys: Any) -> Any:
        return make_settings(data, f"sqlite+aiosqlite:///{data / 'db.sqlite'}",
                             keys={**softhsm.keys_settings(label), **keys},
                             ca={"key_store": "pkcs11"}, **{**secrets, **(top or {})})

    init_ca(settings(), FixedClock(), pkcs11=True)  # as `certcloud ca init --pkcs11` does,
    load_key_protector(settings(top={"environment": "development"}))  # with the first key
    prepare_token_secrets(settings(), check_configuration(settings()),  # and the HMAC keys
                          create_if_missing=True)
    await asyncio.to_thread(migrate.upgrade, settings().resolved_database_url)
    await preflight(settings(), FixedClock())  # all well (and the master key made)

    async def refused(**keys: Any) -> str:
        with pytest.raises(StartupError) as caught:
            await preflight(settings(**keys), FixedClock())
        message = str(caught.value)
        assert "\n" not in message and message
        return message

    assert "CERTCLOUD_KEYS__PIN or CERTCLOUD_KEYS__PIN_FILE" in await refused(pin=None)
    assert "cannot read the token PIN file" in await refused(pin=None,
                                                             pin_file=tmp_path / "none")
    assert "CERTCLOUD_KEYS__PKCS11_MODULE is not set" in await refused(pkcs11_module=None)
    assert "cannot load the PKCS#11 module /etc/hostname" in await refused(
        pkcs11_module="/etc/hostname")
    assert "no PKCS#11 token labelled 'no-such-token'" in await refused(
        token_label="no-such-token")
    assert (f"no master key labelled 'other-master-*' on the PKCS#11 token '{label}'"
            in await refused(master_key_prefix="other-master"))
    reference = data / "ca" / "ca.key.pkcs11.json"
    saved = reference.read_text()
    reference.write_text(json.dumps({**json.loads(saved), "key_label": "gone-ca"}))
    assert (f"no CA key labelled 'gone-ca' on the PKCS#11 token '{label}'"
            in await refused())
    reference.write_text(saved)
    other = softhsm.new_token()
    message = await refused(token_label=other)
    assert f"no master key labelled 'certcloud-master-*' on the PKCS#11 token '{other}'" in \
        message  # production makes no key by itself
    await preflight(settings(), FixedClock())  # and all is well again


@pytest.fixture
async def token_service(softhsm: Any, tmp_path: Path, database_url: str
                        ) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """A development service whose first start made its CA key and master key in a fresh
    token."""
    label = softhsm.new_token()
    await truncate_all(database_url)
    settings = make_settings(tmp_path / "var", database_url,
                             keys=softhsm.keys_settings(label),
                             ca={"key_store": "pkcs11", "key_algorithm": "p256"})
    app = create_app(settings, clock=FixedClock())
    async with app.router.lifespan_context(app):
        container = app.state.container
        container.protector.token._retry_min = 0.05
        container.protector.token._retry_max = 0.2
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test"
                                     ) as http:
            yield container, http, label


async def count_certificates(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(certificates)
                                           )).scalar_one())
    finally:
        await engine.dispose()


async def test_token_failure_is_503_and_the_service_recovers(
        softhsm: Any, token_service: tuple[Any, httpx.AsyncClient, str],
        database_url: str) -> None:
    container, http, label = token_service
    assert type(container.issuer.ca.key).__name__ == "TokenECPrivateKey"
    assert container.protector.current_key_id().startswith("certcloud-master-0001-")
    bank = await make_bank(http, container)
    issued = await bank.issue(person(1))
    assert issued.status_code == 201, issued.text
    cert = issued.json()
    assert (await http.get("/readyz")).status_code == 200
    before = await count_certificates(database_url)
    verification = await bank.verified(person(2)["phone"])

    softhsm.take_away(label)
    try:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["code"] == "key_store_unavailable"
        changed = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                                  {"pin": PIN, "new_pin": "417093"})
        assert changed.status_code == 503, changed.text
        assert changed.headers["content-type"] == "application/problem+json"
        assert changed.json()["code"] == "key_store_unavailable"
        refused = await bank.issue(person(2), verification_id=verification)
        assert refused.status_code == 503, refused.text
        assert refused.json()["status"] == 503
        # What needs no key still answers.
        status = await http.get(f"/v1/status/{cert['serial']}")
        assert status.status_code == 200 and status.json()["status"] == "good"
    finally:
        softhsm.give_back(label)

    assert await count_certificates(database_url) == before  # nothing half-written
    deadline = time.monotonic() + 15
    while (await http.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        await asyncio.sleep(0.1)
    # The PIN did not change during the outage; it works now, and issuing works again.
    changed = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                              {"pin": PIN, "new_pin": "417093"})
    assert changed.status_code == 200, changed.text
    again = await bank.issue(person(3))
    assert again.status_code == 201, again.text
