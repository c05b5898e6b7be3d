"""Two `certcloud serve` processes on one PostgreSQL: every invariant holds across replicas.

Each test fires its requests at both servers at the same moment (a load balancer spreading one
person's traffic) and ends by checking the invariant in the replies and in the database itself,
and that no reply was a 5xx. On SQLite two processes queue on one file lock, so these races say
nothing there: the module runs on PostgreSQL only (CERTCLOUD_TEST_DB=postgres).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.storage.csc_tables import csc_sads
from app.storage.tables import certificates, verifications
from tests.resilience.conftest import Cluster, report
from tests.support.app import BACKEND
from tests.support.bank import Bank, issue_body
from tests.support.people import PIN, resident
from tests.support.processes import audit_verify

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(BACKEND != "postgres", reason="replica races need PostgreSQL: two "
                       "processes on one SQLite file only queue on its lock "
                       "(CERTCLOUD_TEST_DB=postgres)"),
]

WRONG_PIN = "480213"
NEW_PIN = "739164"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def _statuses(replies: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in replies)


def _assert_no_5xx(*banks: Bank) -> None:
    for bank in banks:
        assert bank.seen.server_errors == 0, bank.seen.errors


async def _issued(bank: Bank, index: int, who: dict[str, str]) -> dict[str, Any]:
    reply = await bank.on(index).issue(who)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def test_concurrent_issuances_for_one_person(replicas: Cluster) -> None:
    bank, other = await replicas.bank("race-bank-a"), await replicas.bank("race-bank-b")
    who = resident(1)
    per_bank = 10
    proofs = await bank.verified_many(who["phone"], per_bank)
    proofs_other = await other.verified_many(who["phone"], per_bank)
    replies = await asyncio.gather(
        *[bank.on(i).post("/v1/certificates", issue_body(who, v)) for i, v in enumerate(proofs)],
        *[other.on(i + 1).post("/v1/certificates", issue_body(who, v))
          for i, v in enumerate(proofs_other)])
    statuses = _statuses(list(replies))
    assert set(statuses) <= {201, 409}, [r.text for r in replies if r.status_code != 201]
    for reply in replies:
        if reply.status_code == 409:
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["code"] in ("concurrent_change", "verification_used")
    created = statuses.count(201)
    assert created >= 1

    for index in (0, 1):  # both replicas see the same end state
        found = (await bank.on(index).post("/v1/certificates/lookup", {"rrn": who["rrn"]})).json()
        assert found["count"] == created  # no pending (half-written) row is visible
        active = [c for c in found["data"] if c["status"] == "active"]
        assert len(active) == 1
        revoked = [c for c in found["data"] if c["status"] == "revoked"]
        assert len(revoked) == created - 1
        assert all(c["revocation_reason"] == "superseded" for c in revoked)
        assert all(c["certificate_pem"].startswith("-----BEGIN CERTIFICATE") for c in
                   found["data"])
    inspector = replicas.inspector
    assert await inspector.max_active_per_person() == 1
    assert await inspector.count_certificates(state="pending") == 0
    _assert_no_5xx(bank, other)
    report("replicas.issuance", tried=len(replies), servers=2, created=created, active=1,
           superseded=created - 1, conflicts=statuses.count(409),
           server_errors=bank.seen.server_errors + other.seen.server_errors)


async def _wrong_pin_storm(bank: Bank, certificate_id: str, count: int
                           ) -> list[httpx.Response]:
    digest = base64.b64encode(hashlib.sha256(b"wrong pin storm").digest()).decode()
    calls = []
    for i in range(count):
        if i % 2:
            calls.append(bank.on(i).post(f"/v1/certificates/{certificate_id}/pin",
                                   {"pin": WRONG_PIN, "new_pin": NEW_PIN}))
        else:
            calls.append(bank.on(i).post(f"/v1/certificates/{certificate_id}/signatures",
                                   {"pin": WRONG_PIN, "digest": digest, "format": "raw"}))
    return list(await asyncio.gather(*calls))


async def test_concurrent_wrong_pins_never_count_past_five(replicas: Cluster) -> None:
    bank = await replicas.bank("pin-bank")
    who = resident(2)
    certificate = await _issued(bank, 0, who)
    tried = 16
    replies = await _wrong_pin_storm(bank, certificate["id"], tried)
    statuses = _statuses(replies)
    assert set(statuses) <= {403, 423}, [r.text for r in replies]
    invalid = [r.json() for r in replies if r.status_code == 403]
    locked = [r.json() for r in replies if r.status_code == 423]
    assert all(p["code"] == "pin_invalid" for p in invalid)
    assert all(p["code"] == "pin_locked" and p["remaining_attempts"] == 0 for p in locked)
    # Exactly five tries were counted, each told a different number of tries left.
    assert sorted(p["remaining_attempts"] for p in invalid) == [0, 1, 2, 3, 4]
    wrong_pins = await replicas.inspector.scalar(
        select(certificates.c.wrong_pins).where(certificates.c.id == certificate["id"]))
    assert wrong_pins == 5
    for index in (0, 1):
        state = (await bank.on(index).get(f"/v1/certificates/{certificate['id']}")).json()
        assert state["locked"] is True

    # Locked means locked, on every replica: even the right PIN is refused.
    right = await bank.on(1).post(f"/v1/certificates/{certificate['id']}/pin",
                            {"pin": PIN, "new_pin": NEW_PIN})
    assert right.status_code == 423
    # A fresh phone verification unlocks it (the PIN stays).
    proof = await bank.verified(who["phone"], "unlock")
    unlocked = await bank.on(1).post(f"/v1/certificates/{certificate['id']}/unlock",
                               {"verification_id": proof})
    assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
    _assert_no_5xx(bank)
    report("replicas.wrong_pins", tried=tried, servers=2, pin_invalid=len(invalid),
           pin_locked=len(locked), db_wrong_pins=wrong_pins,
           server_errors=bank.seen.server_errors)


async def test_one_verification_used_twice_at_once(replicas: Cluster) -> None:
    bank = await replicas.bank("verification-bank")
    rounds, won, lost = 6, 0, 0
    for n in range(rounds):
        who = resident(10 + n)
        proof = await bank.on(n).verified(who["phone"])
        replies = await asyncio.gather(
            bank.post("/v1/certificates", issue_body(who, proof)),
            bank.on(1).post("/v1/certificates", issue_body(who, proof)),
            bank.on(n).post("/v1/certificates", issue_body(who, proof)))
        statuses = _statuses(list(replies))
        assert statuses == [201, 409, 409], [r.text for r in replies]
        for reply in replies:
            if reply.status_code == 409:
                assert reply.json()["code"] in ("verification_used", "concurrent_change")
        won, lost = won + 1, lost + 2
        used = await replicas.inspector.scalar(
            select(verifications.c.status).where(verifications.c.id == proof))
        assert used == "used"
    person_certificates = await replicas.inspector.scalar(
        select(func.count()).select_from(certificates)
        .where(certificates.c.state != "pending"))
    assert person_certificates >= rounds
    _assert_no_5xx(bank)
    report("replicas.verification_reuse", rounds=rounds, requests_per_round=3, servers=2,
           issued=won, refused_409=lost, server_errors=bank.seen.server_errors)


async def test_one_csc_sad_used_twice_at_once(replicas: Cluster) -> None:
    bank = await replicas.bank("csc-bank")
    certificate = await _issued(bank, 0, resident(20))
    rounds, per_round, ok, refused = 5, 4, 0, 0
    for n in range(rounds):
        hashes = [base64.b64encode(hashlib.sha256(f"doc {n}".encode()).digest()).decode()]
        authorized = await bank.on(n).post("/csc/v1/credentials/authorize", {
            "credentialID": certificate["id"], "numSignatures": 1, "hash": hashes, "PIN": PIN})
        assert authorized.status_code == 200, authorized.text
        sad = authorized.json()["SAD"]
        replies = await asyncio.gather(*[
            bank.on(i).post("/csc/v1/signatures/signHash", {
                "credentialID": certificate["id"], "SAD": sad, "hash": hashes,
                "signAlgo": ECDSA_SHA256}) for i in range(per_round)])
        statuses = _statuses(list(replies))
        assert statuses == [200] + [400] * (per_round - 1), [r.text for r in replies]
        signatures = {tuple(r.json()["signatures"]) for r in replies if r.status_code == 200}
        assert len(signatures) == 1
        for reply in replies:
            if reply.status_code == 400:
                assert reply.json()["error"] == "invalid_request"
        ok, refused = ok + 1, refused + per_round - 1
    used = await replicas.inspector.scalar(
        select(func.count()).select_from(csc_sads).where(csc_sads.c.used_at.is_not(None)))
    assert used == rounds
    _assert_no_5xx(bank)
    report("replicas.csc_sad_reuse", rounds=rounds, requests_per_round=per_round, servers=2,
           signed=ok, refused_400=refused, server_errors=bank.seen.server_errors)


async def test_concurrent_revocations(replicas: Cluster) -> None:
    bank = await replicas.bank("revoke-bank")
    who = resident(30)
    certificate = await _issued(bank, 0, who)
    # Four with the PIN and four with a phone verification each: fewer than five PIN tries
    # are in flight at once (the lockout's own race is tested above).
    proofs = await bank.verified_many(who["phone"], 4, "revoke")
    reasons = ["unspecified", "key_compromise", "unspecified", "affiliation_changed"]
    calls = [bank.on(i).post(f"/v1/certificates/{certificate['id']}/revoke",
                       {"pin": PIN, "reason": reasons[i]}) for i in range(4)]
    calls += [bank.on(i + 1).post(f"/v1/certificates/{certificate['id']}/revoke",
                        {"verification_id": proof, "reason": reasons[i]})
              for i, proof in enumerate(proofs)]
    replies = await asyncio.gather(*calls)
    assert {r.status_code for r in replies} == {200}, [r.text for r in replies]
    assert len({r.json()["revoked_at"] for r in replies}) == 1
    final = (await bank.on(1).get(f"/v1/certificates/{certificate['id']}")).json()
    assert final["status"] == "revoked" and final["revocation_reason"] == "key_compromise"
    revoked_at = await replicas.inspector.scalar(
        select(func.count(func.distinct(certificates.c.revoked_at)))
        .where(certificates.c.id == certificate["id"]))
    assert revoked_at == 1
    for index in (0, 1):  # status answers the same on every replica at once
        status = (await bank.at(index).get(f"/v1/status/{certificate['serial']}")).json()
        assert status["status"] == "revoked"
        assert status["revocation_reason"] == "key_compromise"
    _assert_no_5xx(bank)
    report("replicas.revocations", tried=len(replies), servers=2,
           ok=sum(r.status_code == 200 for r in replies), distinct_revoked_at=1,
           server_errors=bank.seen.server_errors)


async def test_same_idempotency_key_at_once(replicas: Cluster) -> None:
    bank = await replicas.bank("idempotency-bank")
    who = resident(40)
    copies = 4

    # Starting a verification (an SMS costs money): one SMS, whoever wins.
    key = {"Idempotency-Key": "resilience-verification-40"}
    body = {"phone": who["phone"], "channel": "sms", "purpose": "issue"}
    started = await asyncio.gather(*[bank.on(i).post("/v1/verifications", body, key)
                                     for i in range(copies)])
    assert set(_statuses(list(started))) <= {201, 409}, [r.text for r in started]
    ids = {r.json()["id"] for r in started if r.status_code == 201}
    assert len(ids) == 1
    sent = [m for i in (0, 1) for m in (await bank.at(i).get(
        "/sandbox/messages", params={"phone": who["phone"]})).json()]  # each replica's outbox
    assert len(sent) == 1
    conflicts = sum(r.status_code == 409 for r in started)
    for reply in started:
        if reply.status_code == 409:
            assert reply.json()["code"] == "idempotency_in_progress"

    # Issuing: one certificate, whoever wins; the rest replay it or are told to retry.
    proof = await bank.verified(who["phone"])
    key = {"Idempotency-Key": "resilience-issue-40"}
    replies = await asyncio.gather(*[
        bank.on(i).post("/v1/certificates", issue_body(who, proof), key) for i in range(copies)])
    assert set(_statuses(list(replies))) <= {201, 409}, [r.text for r in replies]
    created = {r.json()["id"] for r in replies if r.status_code == 201}
    assert len(created) == 1
    for reply in replies:
        if reply.status_code == 409:
            assert reply.json()["code"] == "idempotency_in_progress"
    conflicts += sum(r.status_code == 409 for r in replies)
    retry = await bank.on(1).post("/v1/certificates", issue_body(who, proof), key)
    assert retry.status_code == 201 and retry.json()["id"] in created
    assert retry.headers.get("idempotent-replayed") == "true"
    found = (await bank.post("/v1/certificates/lookup", {"rrn": who["rrn"]})).json()
    assert found["count"] == 1
    _assert_no_5xx(bank)
    report("replicas.idempotency", tried=2 * copies, servers=2, executed=2,
           in_progress_409=conflicts, sms_sent=len(sent), certificates=found["count"],
           server_errors=bank.seen.server_errors)


async def test_zz_audit_chain_intact_and_no_unhandled_error(replicas: Cluster) -> None:
    """Runs last in the module: after all the races, the chain still verifies."""
    verified = await asyncio.to_thread(audit_verify, replicas.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout
    for server in replicas.servers:
        assert server.unexpected_errors() == [], server.log_tail()
    checked = int(verified.stdout.split()[0])
    report("replicas.audit", events_checked=checked, intact=True)
