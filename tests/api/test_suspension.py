"""Issue 18, item 4: suspension (효력정지) and resumption of a certificate by its holder, the
hold that runs out after ``suspension_max_days``. What relying parties see (OCSP, CRL, with
openssl) is tests/status/test_suspension.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.domain.notices import NoticeKind, notice_text
from app.domain.suspension import DEFAULT_MAX_HOLD
from app.storage.ops_tables import audit_events
from tests.support.app import Service
from tests.support.bank import Bank, make_bank, refresh_token
from tests.support.people import person
from tests.support.signing import b64

PIN = "902714"


async def _issued(bank: Bank, n: int) -> dict[str, Any]:
    reply = await bank.issue(person(n), pin=PIN)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def _suspend(bank: Bank, certificate_id: str, body: dict[str, Any] | None = None,
                   **kwargs: Any) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{certificate_id}/suspend",
                           {"pin": PIN} if body is None else body, **kwargs)


async def _resume(bank: Bank, certificate_id: str, phone: str) -> httpx.Response:
    proof = await bank.verified(phone, "resume")
    return await bank.post(f"/v1/certificates/{certificate_id}/resume",
                           {"verification_id": proof})


async def _sign(bank: Bank, certificate_id: str) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{certificate_id}/signatures",
                           {"pin": PIN, "data": b64(b"transfer 10000 KRW"), "format": "raw"})


def _problem(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == code, reply.text
    return dict(reply.json())


async def _notice_texts(service: Service, phone: str) -> list[str]:
    reply = await service.http.get("/sandbox/messages", params={"phone": phone})
    return [m["text"] for m in reply.json() if m["code"] is None]


async def _audit(service: Service, certificate_id: str) -> list[tuple[str, str]]:
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(audit_events.c.action, audit_events.c.details)
                                   .where(audit_events.c.certificate_id == certificate_id)
                                   .order_by(audit_events.c.seq))).all()
    return [(row.action, row.details) for row in rows]


async def test_suspend_by_pin_blocks_everything_then_resume_restores(service: Service,
                                                                     bank: Bank) -> None:
    who = person(1)
    cert = await _issued(bank, 1)
    suspended = await _suspend(bank, cert["id"])
    assert suspended.status_code == 200, suspended.text
    body = suspended.json()
    assert body["status"] == "suspended" and body["revocation_reason"] == "certificate_hold"
    assert body["revoked_at"] is not None
    assert (await bank.get(f"/v1/certificates/{cert['id']}")).json()["status"] == "suspended"
    status = (await service.http.get(f"/v1/status/{cert['serial']}")).json()
    assert status["status"] == "suspended" and status["revocation_reason"] == "certificate_hold"

    # A suspended certificate signs nothing and changes only by resume or revoke.
    _problem(await _sign(bank, cert["id"]), 409, "certificate_suspended")
    _problem(await bank.post(f"/v1/certificates/{cert['id']}/pin",
                             {"pin": PIN, "new_pin": "730519"}), 409, "certificate_suspended")
    unlock_proof = await bank.verified(who["phone"], "unlock")
    _problem(await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                             {"verification_id": unlock_proof}), 409, "certificate_suspended")
    reissue_proof = await bank.verified(who["phone"], "reissue")
    _problem(await bank.post(f"/v1/certificates/{cert['id']}/reissue",
                             {"verification_id": reissue_proof, "pin": "730519"}),
             409, "certificate_suspended")
    _problem(await _suspend(bank, cert["id"]), 409, "certificate_suspended")  # twice

    resumed = await _resume(bank, cert["id"], who["phone"])
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    assert resumed.json()["revocation_reason"] is None and resumed.json()["revoked_at"] is None
    assert (await service.http.get(f"/v1/status/{cert['serial']}")).json()["status"] == "good"
    signed = await _sign(bank, cert["id"])
    assert signed.status_code == 200, signed.text

    texts = await _notice_texts(service, who["phone"])
    bank_name = "bank"
    assert notice_text(NoticeKind.SUSPEND, bank=bank_name, at=service.clock.now()) in texts
    assert notice_text(NoticeKind.RESUME, bank=bank_name, at=service.clock.now()) in texts
    actions = [action for action, _ in await _audit(service, cert["id"])]
    assert actions.index("suspend") < actions.index("resume")
    assert '"proof":"pin"' in dict(await _audit(service, cert["id"]))["suspend"]


async def test_suspend_by_verification_and_its_bad_cases(service: Service, bank: Bank) -> None:
    who = person(2)
    cert = await _issued(bank, 2)
    url = f"/v1/certificates/{cert['id']}/suspend"
    _problem(await bank.post(url, {}), 422, "proof_required")
    proof = await bank.verified(who["phone"], "suspend")
    _problem(await bank.post(url, {"pin": PIN, "verification_id": proof}), 422,
             "proof_required")
    _problem(await bank.post(url, {"verification_id": await bank.verified(who["phone"],
                                                                          "revoke")}),
             409, "verification_purpose_mismatch")
    other = await make_bank(service.http, service.container, "other bank")
    _problem(await other.post(url, {"verification_id": proof}), 409, "verification_not_yours")
    _problem(await bank.post("/v1/certificates/00000000-0000-4000-8000-000000000000/suspend",
                             {"verification_id": proof}), 404, "certificate_not_found")
    unconfirmed = await bank.start_verification(who["phone"], "suspend")
    _problem(await bank.post(url, {"verification_id": unconfirmed["id"]}), 409,
             "verification_unconfirmed")
    stale = await bank.verified(who["phone"], "suspend")
    service.clock.advance(timedelta(minutes=11))  # past the verification's use window
    await refresh_token(bank)
    _problem(await bank.post(url, {"verification_id": stale}), 409, "verification_expired")
    proof = await bank.verified(who["phone"], "suspend")
    ok = await bank.post(url, {"verification_id": proof})
    assert ok.status_code == 200 and ok.json()["status"] == "suspended", ok.text

    resume_url = f"/v1/certificates/{cert['id']}/resume"
    _problem(await bank.post(resume_url, {"verification_id": proof}), 409, "verification_used")
    wrong = await bank.verified(who["phone"], "suspend")
    _problem(await bank.post(resume_url, {"verification_id": wrong}), 409,
             "verification_purpose_mismatch")
    resumed = await _resume(bank, cert["id"], who["phone"])
    assert resumed.status_code == 200, resumed.text
    assert '"proof":"verification"' in dict(await _audit(service, cert["id"]))["suspend"]


async def test_a_wrong_pin_counts_and_suspends_nothing(bank: Bank) -> None:
    cert = await _issued(bank, 3)
    wrong = _problem(await _suspend(bank, cert["id"], {"pin": "111111"}), 403, "pin_invalid")
    assert wrong["remaining_attempts"] == 4
    _problem(await _suspend(bank, cert["id"], {"pin": "12345"}), 422, "pin_malformed")
    after = (await bank.get(f"/v1/certificates/{cert['id']}")).json()
    assert after["status"] == "active" and after["remaining_pin_attempts"] == 4
    for _ in range(4):
        await _suspend(bank, cert["id"], {"pin": "111111"})
    _problem(await _suspend(bank, cert["id"]), 423, "pin_locked")  # the same lockout
    # A locked certificate can still be suspended with a phone verification.
    proof = await bank.verified(person(3)["phone"], "suspend")
    held = await _suspend(bank, cert["id"], {"verification_id": proof})
    assert held.status_code == 200 and held.json()["status"] == "suspended", held.text


async def test_resume_needs_a_suspended_certificate(bank: Bank) -> None:
    who = person(4)
    cert = await _issued(bank, 4)
    _problem(await _resume(bank, cert["id"], who["phone"]), 409, "certificate_not_suspended")
    _problem(await bank.post(f"/v1/certificates/{cert['id']}/resume", {}), 422,
             "invalid_request")
    assert (await _suspend(bank, cert["id"])).status_code == 200
    revoked = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                              {"pin": PIN, "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text  # hold -> permanent, with the new reason
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "key_compromise"
    _problem(await _resume(bank, cert["id"], who["phone"]), 409, "certificate_revoked")
    _problem(await _suspend(bank, cert["id"]), 409, "certificate_revoked")


async def test_a_suspension_made_permanent_keeps_the_hold_date(bank: Bank) -> None:
    cert = await _issued(bank, 5)
    held = (await _suspend(bank, cert["id"])).json()
    proof = await bank.verified(person(5)["phone"], "revoke")
    revoked = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                              {"verification_id": proof})  # default reason: unspecified
    assert revoked.json()["revocation_reason"] == "unspecified", revoked.text
    assert revoked.json()["revoked_at"] == held["revoked_at"]


async def test_certificate_hold_is_no_revocation_reason(bank: Bank) -> None:
    cert = await _issued(bank, 6)
    _problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                             {"pin": PIN, "reason": "certificate_hold"}), 422, "invalid_request")
    assert (await bank.get(f"/v1/certificates/{cert['id']}")).json()["status"] == "active"


async def test_a_hold_over_the_maximum_is_revoked_for_good(service: Service, bank: Bank) -> None:
    who = person(7)
    cert = await _issued(bank, 7)
    held = (await _suspend(bank, cert["id"])).json()
    suspensions = service.container.suspensions
    service.clock.advance(DEFAULT_MAX_HOLD - timedelta(seconds=1))
    assert await suspensions.lapse_due(service.clock.now()) == 0
    await refresh_token(bank)
    assert (await bank.get(f"/v1/certificates/{cert['id']}")).json()["status"] == "suspended"
    service.clock.advance(timedelta(seconds=1))
    await refresh_token(bank)
    # Before the job runs, a resumption is refused all the same.
    _problem(await _resume(bank, cert["id"], who["phone"]), 409, "suspension_lapsed")
    assert await suspensions.lapse_due(service.clock.now()) == 1
    assert await suspensions.lapse_due(service.clock.now()) == 0  # once
    after = (await bank.get(f"/v1/certificates/{cert['id']}")).json()
    assert after["status"] == "revoked"
    assert after["revocation_reason"] == "cessation_of_operation"
    assert after["revoked_at"] == held["revoked_at"]
    _problem(await _resume(bank, cert["id"], who["phone"]), 409, "certificate_revoked")
    assert notice_text(NoticeKind.REVOKE, bank="Certcloud", at=service.clock.now()) in (
        await _notice_texts(service, who["phone"]))
    action, details = (await _audit(service, cert["id"]))[-1]
    assert action == "revoke" and '"actor":"system"' in details


async def test_the_maximum_hold_is_a_setting(service: Service, bank: Bank) -> None:
    service.container.suspensions.max_hold = timedelta(days=2)  # CERTCLOUD_SUSPENSION_MAX_DAYS
    cert = await _issued(bank, 8)
    await _suspend(bank, cert["id"])
    service.clock.advance(timedelta(days=2))
    assert await service.container.suspensions.lapse_due(service.clock.now()) == 1


async def test_a_new_issuance_supersedes_a_suspended_certificate(bank: Bank) -> None:
    who = person(9)
    held = await _issued(bank, 9)
    await _suspend(bank, held["id"])
    second = await bank.issue(who, pin="417093")
    assert second.status_code == 201, second.text
    assert second.json()["replaces_id"] == held["id"]
    old = (await bank.get(f"/v1/certificates/{held['id']}")).json()
    assert old["status"] == "revoked" and old["revocation_reason"] == "superseded"
    _problem(await _resume(bank, held["id"], who["phone"]), 409, "certificate_revoked")


async def test_idempotency_key_replays_the_suspension(bank: Bank) -> None:
    cert = await _issued(bank, 13)
    key = {"Idempotency-Key": "suspend-13"}
    first = await _suspend(bank, cert["id"], headers=key)
    again = await _suspend(bank, cert["id"], headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    _problem(await _suspend(bank, cert["id"]), 409, "certificate_suspended")  # no key


async def test_csc_refuses_a_suspended_credential(bank: Bank) -> None:
    who = person(11)
    cert = await _issued(bank, 11)
    await _suspend(bank, cert["id"])
    info = await bank.post("/csc/v1/credentials/info", {"credentialID": cert["id"]})
    assert info.json()["cert"]["status"] == "suspended", info.text
    assert info.json()["key"]["status"] == "disabled"
    listed = await bank.post("/csc/v1/credentials/list", {"userID": who["rrn"]})
    assert listed.json()["credentialIDs"] == []
    digest = b64(b"\x01" * 32)
    refused = await bank.post("/csc/v1/credentials/authorize", {
        "credentialID": cert["id"], "numSignatures": 1, "hash": [digest], "PIN": PIN})
    assert refused.status_code == 400, refused.text  # the CSC shape: 400 invalid_request
    assert refused.json()["error"] == "invalid_request"
    assert "suspended" in refused.json()["error_description"]
    await _resume(bank, cert["id"], who["phone"])
    allowed = await bank.post("/csc/v1/credentials/authorize", {
        "credentialID": cert["id"], "numSignatures": 1, "hash": [digest], "PIN": PIN})
    assert allowed.status_code == 200, allowed.text
