"""`certcloud keys rotate|rewrap|status|retire` as an operator runs them, and a running service
that keeps working while the keys rotate under it."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from app.bootstrap import load_key_protector, wrapped_blobs
from app.cli import main
from app.pki.keys import KdfParams, seal_with_pin
from app.services.custody import key_binding
from app.services.rotation import KeyRotation
from app.storage import migrate
from app.storage.db import Database, make_engine
from app.storage.local_keyring import LocalKeyRing
from app.storage.tables import certificates, clients, persons
from tests.conftest import START, Bank, Service, make_settings, person

CHEAP = KdfParams(1, 64, 1)


def seed_blobs(url: str, protector: Any, count: int) -> None:
    async def run() -> None:
        db = Database(make_engine(url))
        rows = []
        for n in range(count):
            certificate_id = str(uuid.uuid4())
            binding = key_binding(certificate_id)
            key_id, blob = await protector.wrap(
                seal_with_pin(os.urandom(32), "902714", CHEAP, binding), binding)
            rows.append({"id": certificate_id, "person_id": "p", "serial": f"{n:x}",
                         "state": "revoked", "not_before": START, "not_after": START,
                         "key_algorithm": "p256", "issued_by_client": "c", "wrong_pins": 0,
                         "master_key_id": key_id, "wrapped_key": blob, "created_at": START,
                         "updated_at": START})
        async with db.transaction() as conn:
            await conn.execute(insert(clients).values(id="c", name="c", secret_hash="x",
                                                      scopes="", disabled=False,
                                                      created_at=START))
            await conn.execute(insert(persons).values(
                id="p", rrn_hmac="h", name="n", phone="+821000000000", email="e@x",
                birth_patterns="{}", created_at=START, updated_at=START))
            await conn.execute(insert(certificates), rows)
        await db.dispose()

    asyncio.run(run())


@pytest.fixture(params=["local", pytest.param("pkcs11", marks=pytest.mark.hsm)])
def operator_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "var"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'certcloud.db'}"
    migrate.upgrade(url)
    env = {"CERTCLOUD_DATA_DIR": str(data), "CERTCLOUD_DATABASE_URL": url}
    if request.param == "local":
        LocalKeyRing.create(data / "keyring.json", START)
    else:
        hsm = request.getfixturevalue("softhsm")
        env.update(hsm.env(hsm.new_token()))
    settings = make_settings(data, url, **({"keys": {
        "kind": "pkcs11", "pkcs11_module": env["CERTCLOUD_KEYS__PKCS11_MODULE"],
        "token_label": env["CERTCLOUD_KEYS__TOKEN_LABEL"], "pin": env["CERTCLOUD_KEYS__PIN"]}}
        if request.param == "pkcs11" else {"keys": {}, "ca": {}}))
    seed_blobs(url, load_key_protector(settings), 40)
    return env


def run(env: dict[str, str], *args: str) -> Any:
    clean = {k: None for k in os.environ if k.startswith("CERTCLOUD_")}
    return CliRunner().invoke(main, list(args), env={**clean, **env}, catch_exceptions=False)


def test_rotate_rewrap_status_retire(operator_env: dict[str, str]) -> None:
    status = run(operator_env, "keys", "status", "--json")
    assert status.exit_code == 0, status.output
    before = json.loads(status.stdout)
    first = before["current"]
    assert [(k["id"], k["blobs"]) for k in before["keys"]] == [(first, 40)]
    assert before["pending"] == 0 and before["missing_keys"] == {}

    rotated = run(operator_env, "keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    second = rotated.stdout.split()[3].rstrip(";")
    assert second != first and "certcloud keys rewrap" in rotated.stdout
    pending = json.loads(run(operator_env, "keys", "status", "--json").stdout)
    assert pending["current"] == second and pending["pending"] == 40

    rewrapped = run(operator_env, "keys", "rewrap", "--batch-size", "7")
    assert rewrapped.exit_code == 0, rewrapped.output
    assert f"40 blob(s) moved to {second}; 0 changed meanwhile" in rewrapped.stdout
    assert "rewrapping" in rewrapped.stderr  # the bar (drawn in full on a terminal)

    text = run(operator_env, "keys", "status")
    header, *rows = text.stdout.splitlines()[:-1]
    assert header.split() == ["KEY_ID", "WHERE", "CREATED", "BLOBS", "CURRENT", "RETIRABLE"]
    lines = {line.split()[0]: line.split() for line in rows}
    assert lines[second][-3:] == ["40", "yes", "no"]
    # Blob-free, but within the grace period: not retirable, as `keys retire` says next.
    assert lines[first][-3:] == ["0", "no", "no"]
    no_grace = {**operator_env, "CERTCLOUD_KEYS__REFRESH_SECONDS": "0"}
    table = run(no_grace, "keys", "status").stdout.splitlines()[1:-1]
    assert {line.split()[0]: line.split()[-1] for line in table} == {first: "yes", second: "no"}
    flags = json.loads(run(no_grace, "keys", "status", "--json").stdout)
    assert {k["id"]: k["retirable"] for k in flags["keys"]} == {first: True, second: False}

    early = run(operator_env, "keys", "retire", first)  # services may not have switched yet
    assert early.exit_code == 1 and "may still wrap with older keys" in early.stderr
    current = run({**operator_env, "CERTCLOUD_KEYS__REFRESH_SECONDS": "0"}, "keys", "retire",
                  second)
    assert current.exit_code == 1 and "current master key cannot be retired" in current.stderr
    retired = run({**operator_env, "CERTCLOUD_KEYS__REFRESH_SECONDS": "0"}, "keys", "retire",
                  first)
    assert retired.exit_code == 0, retired.output
    after = json.loads(run(operator_env, "keys", "status", "--json").stdout)
    assert [(k["id"], k["blobs"]) for k in after["keys"]] == [(second, 40)]


async def test_a_running_service_follows_a_rotation(service: Service, bank: Bank) -> None:
    """While the service runs, another process rotates and rewraps: the service wraps new keys
    with the new master key and still opens every blob, with the holders' PINs unchanged."""
    service.settings.keys.refresh_seconds = 0  # (the CLI's 30 s default, shortened)
    protector: Any = service.container.protector
    if hasattr(protector, "refresh_seconds"):
        protector.refresh_seconds = 0
    first = await bank.issue(person(1))
    assert first.status_code == 201, first.text
    old_key = protector.current_key_id()

    operator = KeyRotation(wrapped_blobs(service.container.db),
                           load_key_protector(service.settings))
    new_key = await operator.rotate(START)
    second = await bank.issue(person(2), pin="417093")
    assert second.status_code == 201, second.text
    async with service.container.db.transaction(write=False) as conn:
        made_with = (await conn.execute(select(certificates.c.master_key_id).where(
            certificates.c.id == second.json()["id"]))).scalar_one()
    assert made_with == new_key != old_key

    report = await operator.rewrap(batch_size=1)
    assert report.moved >= 1 and not report.failed
    assert set((await operator.status()).counts["certificates.wrapped_key"]) == {new_key}
    for cert, pin, new_pin in ((first.json(), "902714", "520384"),
                               (second.json(), "417093", "638291")):
        changed = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                                  {"pin": pin, "new_pin": new_pin})
        assert changed.status_code == 200, changed.text
