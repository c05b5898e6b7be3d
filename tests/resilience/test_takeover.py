"""Issue 11, finding 4, replayed against a real `certcloud serve`: bank B, knowing only the
victim's RRN, verifies a phone of its own and issues for that RRN. Superseding across banks
stays (the KFTC rule), but it is no longer silent: the victim's phone gets a notice naming
bank B, the audit trail holds the contact change (HMACs only), and the victim, with the
previous phone, reissues and takes the identity back, which bank B's phone is told of."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from app.services.secrets import load_secrets
from tests.resilience.conftest import Cluster, running_cluster
from tests.support.bank import Bank
from tests.support.people import PIN, resident
from tests.support.processes import settings_for

ATTACKER_PIN = "480271"
VICTIM_NEW_PIN = "730519"


@pytest.fixture(scope="module")
async def server(server_template: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path_factory.mktemp("takeover"), server_template, 1) as cluster:
        yield cluster


async def _notices(bank: Bank, phone: str) -> list[dict[str, Any]]:
    messages = (await bank.at(0).get("/sandbox/messages", params={"phone": phone})).json()
    return [m for m in messages if m["code"] is None]


async def test_a_takeover_is_told_and_the_victim_takes_the_identity_back(
        server: Cluster) -> None:
    bank_a = await server.bank("Alpha Bank")
    bank_b = await server.bank("Bravo Savings")
    auditor = await server.bank("auditor", ["audit:read"])
    victim = resident(401)
    attacker_phone = "+821099990401"

    issued = await bank_a.issue(victim)
    assert issued.status_code == 201, issued.text
    before = len(await _notices(bank_a, victim["phone"]))
    assert before == 1  # the issuance itself was told

    # Bank B: the victim's RRN, a name and a phone of its own choosing, its own PIN.
    forged = {**victim, "name": "임꺽정", "phone": attacker_phone}
    taken = await bank_b.issue(forged, pin=ATTACKER_PIN)
    assert taken.status_code == 201, taken.text
    assert taken.json()["replaces_id"] == issued.json()["id"]

    # 1. The victim's phone is told, naming bank B.
    told = await _notices(bank_a, victim["phone"])
    assert len(told) == before + 1
    assert "Bravo Savings" in told[0]["text"] and told[0]["code"] is None
    assert "30일 안에 이 번호로 인증해 재발급" in told[0]["text"]  # how to take it back

    # 2. The audit trail holds the contact change, by HMACs only.
    secrets_ = load_secrets(settings_for(server.data_dir, server.database_url))
    events = (await auditor.get("/v1/audit?limit=1000")).json()["data"]
    changes = [e for e in events if e["action"] == "contact_change"]
    assert len(changes) == 1
    change = changes[0]
    assert change["client_id"] == bank_b.client_id
    assert change["details"]["old_phone_hmac"] == secrets_.contact_hmac("phone", victim["phone"])
    assert change["details"]["new_phone_hmac"] == secrets_.contact_hmac("phone", attacker_phone)
    assert change["details"]["old_name_hmac"] == secrets_.contact_hmac("name", victim["name"])
    assert change["details"]["new_name_hmac"] == secrets_.contact_hmac("name", "임꺽정")
    trail = str(events)
    for clear in (victim["phone"], attacker_phone, victim["name"], "임꺽정"):
        assert clear not in trail

    # 3. The victim, at bank A, reissues the active certificate with the previous phone.
    found = await bank_a.post("/v1/certificates/lookup", {"rrn": victim["rrn"]})
    active = [c for c in found.json()["data"] if c["status"] == "active"]
    assert [c["id"] for c in active] == [taken.json()["id"]]
    verification_id = await bank_a.verified(victim["phone"], purpose="reissue")
    back = await bank_a.post(f"/v1/certificates/{active[0]['id']}/reissue",
                             {"verification_id": verification_id, "pin": VICTIM_NEW_PIN})
    assert back.status_code == 201, back.text
    assert back.json()["replaces_id"] == taken.json()["id"]
    assert "CN=" + victim["name"] in _subject(back.json()["certificate_pem"])

    # Bank B's phone is told that the certificate went back, naming bank A.
    attacker_told = await _notices(bank_b, attacker_phone)
    assert "Alpha Bank" in attacker_told[0]["text"]
    assert "30일" not in attacker_told[0]["text"]  # the way back is the victim's alone
    # The record is the victim's again: a further reissue with the victim's phone works.
    again = await bank_a.verified(victim["phone"], purpose="reissue")
    once_more = await bank_a.post(f"/v1/certificates/{back.json()['id']}/reissue",
                                  {"verification_id": again, "pin": PIN})
    assert once_more.status_code == 201, once_more.text
    for bank in (bank_a, bank_b, auditor):
        assert bank.seen.server_errors == 0, bank.seen.errors
    assert server.servers[0].unexpected_errors() == []


def _subject(pem: str) -> str:
    return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
