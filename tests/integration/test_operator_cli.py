"""The operator's daily commands, run as the real ``certcloud`` executable."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

from sqlalchemy import select

from app.storage.ops_tables import audit_events
from app.storage.tables import notices
from tests.support.app import START, Service
from tests.support.bank import Bank, make_bank
from tests.support.people import person
from tests.support.processes import certcloud, env_for


def test_version_is_the_package_version(tmp_path: Path) -> None:
    done = certcloud("--version", env=env_for(tmp_path, "sqlite+aiosqlite:///unused.db"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"certcloud, version {version('certcloud')}"


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    done = certcloud("--versio", env=env_for(tmp_path, "sqlite+aiosqlite:///unused.db"))
    assert done.returncode == 2 and "No such option" in done.stderr


async def operator(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """``certcloud`` in its own process, on the running service's data dir and database."""
    env = env_for(service.settings.data_dir, service.settings.resolved_database_url)
    return await asyncio.to_thread(certcloud, *args, env=env)


async def test_certificates_list_filters_and_prints_a_table(service: Service, bank: Bank) -> None:
    first = (await bank.issue(person(1))).json()
    other = await make_bank(service.http, service.container, "other bank")
    second = (await other.issue(person(2))).json()

    table = await operator(service, "certificates", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "SERIAL", "STATUS", "LOCKED", "NOT_BEFORE", "NOT_AFTER",
                                "BANK"]
    assert {line.split()[0] for line in lines[1:]} == {first["id"], second["id"]}  # one instant
    assert len(lines) == 3

    mine = await operator(service, "certificates", "list", "--bank", bank.client_id, "--json")
    rows = [json.loads(line) for line in mine.stdout.splitlines()]
    assert [row["id"] for row in rows] == [first["id"]]
    assert "certificate_pem" not in rows[0] and rows[0]["issued_by_client"] == bank.client_id

    revoked = await operator(service, "certificates", "list", "--status", "revoked", "--json")
    assert revoked.returncode == 0 and revoked.stdout == ""
    later = await operator(service, "certificates", "list", "--json",
                           "--issued-from", (START + timedelta(days=1)).strftime("%Y-%m-%d"))
    assert later.returncode == 0 and later.stdout == ""
    within = await operator(service, "certificates", "list", "--json", "--issued-from",
                            START.strftime("%Y-%m-%d"), "--issued-to",
                            (START + timedelta(days=1)).strftime("%Y-%m-%d"))
    assert len(within.stdout.splitlines()) == 2

    bad = await operator(service, "certificates", "list", "--status", "sleeping")
    assert bad.returncode == 2 and "Invalid value for '--status'" in bad.stderr


async def test_certificates_show_by_id_or_serial(service: Service, bank: Bank) -> None:
    issued = (await bank.issue(person(1))).json()
    for key in (issued["id"], issued["serial"]):
        shown = await operator(service, "certificates", "show", key)
        assert shown.returncode == 0, shown.stderr
        resource = json.loads(shown.stdout)
        assert resource["id"] == issued["id"] and resource["status"] == "active"
        assert resource["bank"] == {"client_id": bank.client_id, "name": "bank"}
        assert resource["certificate_pem"] == issued["certificate_pem"]
        text = shown.stdout.lower()
        assert "private" not in text and "rrn" not in text and person(1)["rrn"] not in text

    unknown = await operator(service, "certificates", "show", "no-such-certificate")
    assert unknown.returncode == 1
    assert unknown.stderr == "certcloud: no certificate no-such-certificate\n"


async def test_certificates_revoke_is_published_and_audited(service: Service,
                                                            bank: Bank) -> None:
    issued = (await bank.issue(person(1))).json()
    done = await operator(service, "certificates", "revoke", issued["serial"],
                          "--reason", "key_compromise")
    assert done.returncode == 0, done.stderr
    resource = json.loads(done.stdout)
    assert resource["status"] == "revoked" and resource["revocation_reason"] == "key_compromise"

    status = await bank.get(f"/v1/status/{issued['serial']}")
    assert status.status_code == 200 and status.json()["status"] == "revoked"
    async with service.container.db.transaction(write=False) as conn:
        event = (await conn.execute(select(audit_events).where(
            audit_events.c.action == "revoke"))).one()
    assert event.client_id is None and event.certificate_id == issued["id"]
    assert json.loads(event.details) == {"reason": "key_compromise", "actor": "operator"}
    verified = await operator(service, "audit", "verify")
    assert verified.returncode == 0, verified.stderr


async def test_certificates_revoke_tells_the_person_and_ends_a_suspension(
        service: Service, bank: Bank) -> None:
    """Issue 18, item 5: the phone on record hears of a CA-side revocation as of a bank's; the
    command queues the notice, a running server's redelivery loop sends it."""
    who = person(3)
    issued = (await bank.issue(who)).json()
    held = await bank.post(f"/v1/certificates/{issued['id']}/suspend", {"pin": "902714"})
    assert held.status_code == 200, held.text
    suspended = await operator(service, "certificates", "list", "--status", "suspended",
                               "--json")
    assert [json.loads(line)["id"] for line in suspended.stdout.splitlines()] == [issued["id"]]
    done = await operator(service, "certificates", "revoke", issued["id"],
                          "--reason", "privilege_withdrawn")
    assert done.returncode == 0, done.stderr
    resource = json.loads(done.stdout)
    assert resource["status"] == "revoked"
    assert resource["revocation_reason"] == "privilege_withdrawn"  # the hold made permanent
    async with service.container.db.transaction(write=False) as conn:
        queued = (await conn.execute(select(notices.c.sent_at).where(
            notices.c.phone == who["phone"], notices.c.kind == "revoke"))).all()
    assert [row.sent_at for row in queued] == [None]
    assert await service.container.notices.redeliver_due() == 1
    texts = [m["text"] for m in (await service.http.get(
        "/sandbox/messages", params={"phone": who["phone"]})).json() if m["code"] is None]
    assert any("Certcloud에서 인증서 폐기" in text for text in texts), texts


async def test_certificates_revoke_refuses_unknown_ids_and_reasons(service: Service,
                                                                   bank: Bank) -> None:
    issued = (await bank.issue(person(1))).json()
    unknown = await operator(service, "certificates", "revoke", "nope", "--reason", "superseded")
    assert unknown.returncode == 1 and unknown.stderr == "certcloud: no certificate nope\n"
    for reason in ("certificate_hold", "ca_compromise", "bored"):
        bad = await operator(service, "certificates", "revoke", issued["id"], "--reason", reason)
        assert bad.returncode == 2 and "Invalid value for '--reason'" in bad.stderr
    still = await bank.get(f"/v1/status/{issued['serial']}")
    assert still.json()["status"] == "good"


async def token_status(service: Service, client_id: str, secret: str) -> int:
    reply = await service.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                    auth=(client_id, secret))
    return reply.status_code


async def test_clients_rotate_secret(service: Service, bank: Bank) -> None:
    rotated = await operator(service, "clients", "rotate-secret", bank.client_id)
    assert rotated.returncode == 0, rotated.stderr
    printed = json.loads(rotated.stdout)
    assert printed["client_id"] == bank.client_id
    assert printed["client_secret"] != bank.client_secret
    assert await token_status(service, bank.client_id, bank.client_secret) == 401
    assert await token_status(service, bank.client_id, printed["client_secret"]) == 200
    async with service.container.db.transaction(write=False) as conn:
        event = (await conn.execute(select(audit_events).where(
            audit_events.c.action == "client_secret_rotate"))).one()
    assert event.client_id == bank.client_id and printed["client_secret"] not in event.details

    unknown = await operator(service, "clients", "rotate-secret", "cc_nobody")
    assert unknown.returncode == 1 and unknown.stderr == "certcloud: no client 'cc_nobody'\n"


async def test_clients_enable_is_the_inverse_of_disable(service: Service, bank: Bank) -> None:
    disabled = await operator(service, "clients", "disable", bank.client_id)
    assert disabled.returncode == 0, disabled.stderr
    assert await token_status(service, bank.client_id, bank.client_secret) == 401
    enabled = await operator(service, "clients", "enable", bank.client_id)
    assert enabled.returncode == 0 and enabled.stdout == f"client {bank.client_id} enabled\n"
    assert await token_status(service, bank.client_id, bank.client_secret) == 200

    unknown = await operator(service, "clients", "enable", "cc_nobody")
    assert unknown.returncode == 1 and unknown.stderr == "certcloud: no client 'cc_nobody'\n"
