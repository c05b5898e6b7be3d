"""The certificate rules of issue 3 over HTTP, each bad case with what it must leave behind."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.storage.tables import certificates, persons, verifications
from tests.support.app import Service
from tests.support.bank import Bank, issue_body, make_bank
from tests.support.people import PIN, digits_as, person
from tests.support.problems import assert_problem

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def _echo(problem: dict[str, Any]) -> str:
    """What a problem says about the request (its random request id could hold any digits)."""
    return json.dumps({k: v for k, v in problem.items() if k != "request_id"})


async def _count(service: Service, table: Any) -> int:
    async with service.container.db.transaction(write=False) as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _verification_status(service: Service, verification_id: str) -> str:
    async with service.container.db.transaction(write=False) as conn:
        return str((await conn.execute(select(verifications.c.status).where(
            verifications.c.id == verification_id))).scalar_one())


async def _wrapped_key(service: Service, certificate_id: str) -> bytes:
    async with service.container.db.transaction(write=False) as conn:
        return bytes((await conn.execute(select(certificates.c.wrapped_key).where(
            certificates.c.id == certificate_id))).scalar_one())


async def _refresh_token(bank: Bank) -> None:
    reply = await bank.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(bank.client_id, bank.client_secret))
    assert reply.status_code == 200, reply.text
    bank.token = reply.json()["access_token"]


async def _issued(bank: Bank, holder: dict[str, str], pin: str = PIN) -> dict[str, Any]:
    reply = await bank.issue(holder, pin=pin)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def _cert(bank: Bank, certificate_id: str) -> dict[str, Any]:
    reply = await bank.get(f"/v1/certificates/{certificate_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def _change_pin(bank: Bank, certificate_id: str, pin: str,
                      new_pin: str) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{certificate_id}/pin",
                           {"pin": pin, "new_pin": new_pin})


async def _assert_nothing_issued(service: Service, bank: Bank, verification_id: str) -> None:
    """The rejected issuance wrote nothing: no person, no certificate, and the verification
    still counts."""
    assert await _count(service, certificates) == 0
    assert await _count(service, persons) == 0
    assert await _verification_status(service, verification_id) == "verified"


# --- issue: the bank's assertions --------------------------------------------------------


async def test_issue_needs_the_terms_accepted(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    body = issue_body(holder, verification_id, PIN)
    assert_problem(await bank.post("/v1/certificates", {**body, "terms_accepted": False}), 422,
                   "terms_not_accepted")
    for bad in ("true", 1, None):
        assert_problem(await bank.post("/v1/certificates", {**body, "terms_accepted": bad}), 422,
                       "invalid_request")
    missing = {k: v for k, v in body.items() if k != "terms_accepted"}
    assert_problem(await bank.post("/v1/certificates", missing), 422, "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)
    assert (await bank.post("/v1/certificates", body)).status_code == 201


async def test_issue_needs_both_bank_checks(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for checks in ({"account_password_verified": False, "contact_confirmed": True},
                   {"account_password_verified": True, "contact_confirmed": False},
                   {"account_password_verified": False, "contact_confirmed": False}):
        body = {**issue_body(holder, verification_id, PIN), "bank_checks": checks}
        assert_problem(await bank.post("/v1/certificates", body), 422, "bank_checks_incomplete")
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_malformed_bank_checks(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    body = issue_body(holder, verification_id, PIN)
    for checks in ({}, {"account_password_verified": True}, None, True,
                   {"account_password_verified": "true", "contact_confirmed": True},
                   {"account_password_verified": 1, "contact_confirmed": 1}):
        assert_problem(await bank.post("/v1/certificates", {**body, "bank_checks": checks}), 422,
                       "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)


# --- issue: RRN and PIN ------------------------------------------------------------------


async def test_issue_refuses_a_bad_rrn(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for rrn in ("900101-123456", "90010112345678", "901301-1234567", "900230-1234567",
                "000229-1234567", "261126-3234567", "900101-X234567",
                digits_as("900101", 0xFF10) + "-1234567",
                "900101 1234567", ""):
        reply = await bank.post("/v1/certificates",
                                issue_body({**holder, "rrn": rrn}, verification_id, PIN))
        body = assert_problem(reply, 422, "rrn_invalid")
        assert not rrn or rrn[:6] not in _echo(body)  # the number is never echoed
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_a_non_string_or_long_rrn(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for rrn in (9001011234567, None, "9" * 15):
        body = {**issue_body(holder, verification_id, PIN), "person": {**holder, "rrn": rrn}}
        reply = await bank.post("/v1/certificates", body)
        assert_problem(reply, 422, "invalid_request")
        assert "9001011234567" not in reply.text and "9" * 15 not in reply.text
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_a_weak_or_malformed_pin(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for pin, code in [
        ("111111", "pin_weak"), ("000000", "pin_weak"),
        ("123456", "pin_weak"), ("654321", "pin_weak"), ("345678", "pin_weak"),
        ("900101", "pin_weak"),  # person(1) is born 1990-01-01: YYMMDD
        ("010190", "pin_weak"),  # MMDDYY / DDMMYY
        ("550101", "pin_weak"),  # MMDD inside
        ("12345", "pin_format"), ("1234567", "pin_format"), ("90271a", "pin_format"),
        ("", "pin_format"), ("902714\n", "pin_format"),
        (digits_as(PIN, 0xFF10), "pin_format"),
        (" 90271", "pin_format"),
    ]:
        body = assert_problem(await bank.issue(holder, pin=pin, verification_id=verification_id),
                              422, code)
        assert not pin.strip() or pin.strip() not in _echo(body)
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_a_pin_of_the_wrong_type(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for pin in (902714, 902714.0, None, [PIN], {"pin": PIN}):
        body = {**issue_body(holder, verification_id, PIN), "pin": pin}
        assert_problem(await bank.post("/v1/certificates", body), 422, "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_bad_person_fields(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for changes, code in [({"phone": "01055550001"}, "phone_invalid"),
                          ({"email": "not-an-email"}, "invalid_request"),
                          ({"name": ""}, "invalid_request"),
                          ({"name": "가" * 101}, "invalid_request")]:
        reply = await bank.post("/v1/certificates",
                                issue_body({**holder, **changes}, verification_id, PIN))
        assert_problem(reply, 422, code)
    without_email = {k: v for k, v in holder.items() if k != "email"}
    assert_problem(await bank.post("/v1/certificates", issue_body(without_email, verification_id,
                                                            PIN)), 422, "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_accepts_phone_and_rrn_in_other_spellings(service: Service,
                                                             bank: Bank) -> None:
    holder = person(1)
    first = await _issued(bank, {**holder, "phone": "+82 10-5555-0001"})
    again = await bank.issue({**holder, "rrn": holder["rrn"].replace("-", "")}, pin="417093")
    assert again.status_code == 201, again.text
    assert again.json()["replaces_id"] == first["id"]  # the same person, by RRN
    assert (await _cert(bank, first["id"]))["status"] == "revoked"
    assert await _count(service, persons) == 1


async def test_a_person_has_one_active_certificate(service: Service, bank: Bank) -> None:
    holder = person(1)
    ids = [(await _issued(bank, holder, pin))["id"] for pin in (PIN, "417093", "583920")]
    statuses = [(await _cert(bank, cid))["status"] for cid in ids]
    assert statuses == ["revoked", "revoked", "active"]
    async with service.container.db.transaction(write=False) as conn:
        active = (await conn.execute(select(func.count()).select_from(certificates).where(
            certificates.c.state == "active"))).scalar_one()
    assert active == 1


async def test_issue_refuses_a_name_too_long_for_a_certificate(service: Service,
                                                              bank: Bank) -> None:
    holder = {**person(1), "name": "가" * 22}  # 22 characters, 66 bytes of UTF-8
    verification_id = await bank.verified(holder["phone"])
    reply = await bank.issue(holder, verification_id=verification_id)
    assert_problem(reply, 422, "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)


async def test_issue_refuses_nul_characters(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for changes in ({"name": "홍\x00길동"}, {"email": "a\x00b@example.com"}):
        reply = await bank.post("/v1/certificates",
                                issue_body({**holder, **changes}, verification_id, PIN))
        assert_problem(reply, 422, "invalid_request")
    await _assert_nothing_issued(service, bank, verification_id)


# Each would reach the certificate's CN and make it read otherwise than it compares.
INVISIBLE_NAMES = {
    "right-to-left override": "홍길동\u202eniamdA",
    "left-to-right isolate": "\u2066홍길동\u2069",
    "zero-width space": "홍\u200b길동",
    "zero-width joiner": "홍\u200d길동",
    "zero-width non-joiner": "홍\u200c길동",
    "byte order mark": "\ufeff홍길동",
    "C1 control (NEL)": "홍길동\u0085",
    "line separator": "홍길동\u2028",
    "private use": "홍길동\ue000",
    "unassigned": "홍길동\u0378",
    "blank": "   ",
}


async def test_issue_refuses_invisible_and_control_characters_in_the_name(
        service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    for what, name in INVISIBLE_NAMES.items():
        reply = await bank.post("/v1/certificates",
                                issue_body({**holder, "name": name}, verification_id, PIN))
        problem = assert_problem(reply, 422, "name_invalid")
        assert name.strip() == "" or name not in problem["detail"], what
    await _assert_nothing_issued(service, bank, verification_id)


@pytest.mark.parametrize("name", ["홍길동", "남궁 민수", "José Müller-Łukasiewicz",
                                  "Seán O'Brien", "Anne-Marie d'Arc"])
async def test_issue_keeps_korean_and_latin_names(service: Service, bank: Bank,
                                                  name: str) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    issued = await _issued(bank, {**person(1), "name": name})
    certificate = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == name


# --- verifications on reissue, unlock and revoke -----------------------------------------


async def test_reissue_unlock_revoke_need_a_matching_verification(service: Service,
                                                                 bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    other = await make_bank(service.http, service.container, "other-bank")
    stranger_phone = person(2)["phone"]
    cases: list[tuple[str, str, str]] = [
        ("reissue", await bank.verified(holder["phone"], "unlock"),
         "verification_purpose_mismatch"),
        ("reissue", await bank.verified(stranger_phone, "reissue"),
         "verification_phone_mismatch"),
        ("reissue", await other.verified(holder["phone"], "reissue"), "verification_not_yours"),
        ("unlock", await bank.verified(holder["phone"], "issue"),
         "verification_purpose_mismatch"),
        ("unlock", await bank.verified(stranger_phone, "unlock"),
         "verification_phone_mismatch"),
        ("unlock", await other.verified(holder["phone"], "unlock"), "verification_not_yours"),
        ("revoke", await bank.verified(holder["phone"], "reissue"),
         "verification_purpose_mismatch"),
        ("revoke", await bank.verified(stranger_phone, "revoke"),
         "verification_phone_mismatch"),
        ("revoke", await other.verified(holder["phone"], "revoke"), "verification_not_yours"),
    ]
    for action, verification_id, code in cases:
        body: dict[str, Any] = {"verification_id": verification_id}
        if action == "reissue":
            body["pin"] = "417093"
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/{action}", body), 409, code)
        assert await _verification_status(service, verification_id) == "verified"

    unconfirmed = await bank.start_verification(holder["phone"], "revoke")
    assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                             {"verification_id": unconfirmed["id"]}), 409,
                   "verification_unconfirmed")
    assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                             {"verification_id": UNKNOWN_ID}), 404, "verification_not_found")

    used = await bank.verified(holder["phone"], None)
    assert (await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                            {"verification_id": used})).status_code == 200
    for action in ("reissue", "unlock", "revoke"):
        body = {"verification_id": used, **({"pin": "417093"} if action == "reissue" else {})}
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/{action}", body), 409,
                       "verification_used")

    stale = await bank.verified(holder["phone"], None)
    service.clock.advance(timedelta(minutes=10))
    await _refresh_token(bank)
    for action in ("reissue", "unlock", "revoke"):
        body = {"verification_id": stale, **({"pin": "417093"} if action == "reissue" else {})}
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/{action}", body), 409,
                       "verification_expired")

    after = await _cert(bank, cert["id"])
    assert after["status"] == "active" and after["revoked_at"] is None
    assert await _count(service, certificates) == 1


# --- reissue -----------------------------------------------------------------------------


async def test_reissue_from_a_superseded_certificate_is_refused(service: Service,
                                                               bank: Bank) -> None:
    holder = person(1)
    first = await _issued(bank, holder)
    proof = await bank.verified(holder["phone"], "reissue")
    second = await bank.post(f"/v1/certificates/{first['id']}/reissue",
                             {"verification_id": proof, "pin": "417093"})
    assert second.status_code == 201, second.text

    again = await bank.verified(holder["phone"], "reissue")
    assert_problem(await bank.post(f"/v1/certificates/{first['id']}/reissue",
                             {"verification_id": again, "pin": "583920"}), 409,
                   "certificate_superseded")
    assert await _verification_status(service, again) == "verified"
    assert await _count(service, certificates) == 2
    assert (await _cert(bank, second.json()["id"]))["status"] == "active"
    # The same verification then reissues from the latest certificate.
    third = await bank.post(f"/v1/certificates/{second.json()['id']}/reissue",
                            {"verification_id": again, "pin": "583920"})
    assert third.status_code == 201 and third.json()["replaces_id"] == second.json()["id"]


async def test_reissue_from_one_superseded_by_a_new_issuance_is_refused(service: Service,
                                                                       bank: Bank) -> None:
    holder = person(1)
    first = await _issued(bank, holder)
    await _issued(bank, holder, "417093")
    proof = await bank.verified(holder["phone"], "reissue")
    assert_problem(await bank.post(f"/v1/certificates/{first['id']}/reissue",
                             {"verification_id": proof, "pin": "583920"}), 409,
                   "certificate_superseded")
    assert await _verification_status(service, proof) == "verified"


async def test_reissue_from_an_older_revoked_certificate_is_refused(service: Service,
                                                                   bank: Bank) -> None:
    holder = person(1)
    first = await _issued(bank, holder)
    revoked = await bank.post(f"/v1/certificates/{first['id']}/revoke", {"pin": PIN})
    assert revoked.status_code == 200
    newer = await _issued(bank, holder, "417093")
    assert newer["replaces_id"] is None  # nothing active was superseded
    proof = await bank.verified(holder["phone"], "reissue")
    reply = await bank.post(f"/v1/certificates/{first['id']}/reissue",
                            {"verification_id": proof, "pin": "583920"})
    assert_problem(reply, 409, "certificate_superseded")
    assert (await _cert(bank, newer["id"]))["status"] == "active"


async def test_reissue_refuses_a_weak_pin_and_keeps_the_verification(service: Service,
                                                                    bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    proof = await bank.verified(holder["phone"], "reissue")
    for pin, code in (("123456", "pin_weak"), ("900101", "pin_weak"), ("0101", "pin_format"),
                      ("550101", "pin_weak")):
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/reissue",
                                 {"verification_id": proof, "pin": pin}), 422, code)
    assert await _verification_status(service, proof) == "verified"
    assert await _count(service, certificates) == 1
    assert (await _cert(bank, cert["id"]))["status"] == "active"


async def test_reissue_of_a_locked_certificate_sets_a_new_pin(service: Service,
                                                             bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    for _ in range(5):
        await _change_pin(bank, cert["id"], "111112", "417093")
    assert (await _cert(bank, cert["id"]))["locked"] is True
    proof = await bank.verified(holder["phone"], "reissue")
    reply = await bank.post(f"/v1/certificates/{cert['id']}/reissue",
                            {"verification_id": proof, "pin": "583920"})
    assert reply.status_code == 201, reply.text
    new = reply.json()
    assert new["locked"] is False and new["remaining_pin_attempts"] == 5
    assert (await _change_pin(bank, new["id"], "583920", "417093")).status_code == 200


# --- lockout and unlock ------------------------------------------------------------------


async def test_lockout_by_wrong_pins_then_unlock_keeps_the_pin(service: Service,
                                                              bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    for remaining in (4, 3, 2, 1, 0):
        body = assert_problem(await _change_pin(bank, cert["id"], "417093", "583920"), 403,
                              "pin_invalid")
        assert body["remaining_attempts"] == remaining
    state = await _cert(bank, cert["id"])
    assert state["locked"] is True and state["remaining_pin_attempts"] == 0
    # Locked: even the right PIN is refused, and counts nothing more.
    body = assert_problem(await _change_pin(bank, cert["id"], PIN, "583920"), 423, "pin_locked")
    assert body["remaining_attempts"] == 0
    assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"pin": PIN}), 423,
                   "pin_locked")
    key_before = await _wrapped_key(service, cert["id"])

    proof = await bank.verified(holder["phone"], "unlock")
    unlocked = await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                               {"verification_id": proof})
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["locked"] is False
    assert unlocked.json()["remaining_pin_attempts"] == 5
    assert await _verification_status(service, proof) == "used"
    assert await _wrapped_key(service, cert["id"]) == key_before  # the PIN stays

    assert_problem(await _change_pin(bank, cert["id"], "417093", "583920"), 403, "pin_invalid")
    assert (await _change_pin(bank, cert["id"], PIN, "583920")).status_code == 200


async def test_a_right_pin_resets_the_count(service: Service, bank: Bank) -> None:
    cert = await _issued(bank, person(1))
    for _ in range(4):
        assert_problem(await _change_pin(bank, cert["id"], "417093", "583920"), 403, "pin_invalid")
    assert (await _cert(bank, cert["id"]))["remaining_pin_attempts"] == 1
    assert (await _change_pin(bank, cert["id"], PIN, "583920")).status_code == 200
    state = await _cert(bank, cert["id"])
    assert state["remaining_pin_attempts"] == 5 and state["locked"] is False


async def test_unlock_of_a_revoked_certificate_keeps_the_verification(service: Service,
                                                                     bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    assert (await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                            {"pin": PIN})).status_code == 200
    proof = await bank.verified(holder["phone"], "unlock")
    assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                             {"verification_id": proof}), 409, "certificate_revoked")
    assert await _verification_status(service, proof) == "verified"


# --- PIN change --------------------------------------------------------------------------


async def test_pin_change_rules(service: Service, bank: Bank) -> None:
    cert = await _issued(bank, person(1))
    key_before = await _wrapped_key(service, cert["id"])
    for new_pin, code in (("123456", "pin_weak"), ("777777", "pin_weak"),
                          ("900101", "pin_weak"), ("010190", "pin_weak"),
                          ("12345", "pin_format"), ("abcdef", "pin_format"),
                          ("902714\n", "pin_format"), (PIN, "pin_unchanged")):
        assert_problem(await _change_pin(bank, cert["id"], PIN, new_pin), 422, code)
    for body in ({"pin": PIN}, {"new_pin": "417093"}, {"pin": 902714, "new_pin": "417093"},
                 {"pin": PIN, "new_pin": 417093}):
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/pin", body), 422,
                       "invalid_request")
    # None of these checked the PIN, so none counted as a try; the key is untouched.
    state = await _cert(bank, cert["id"])
    assert state["remaining_pin_attempts"] == 5
    assert await _wrapped_key(service, cert["id"]) == key_before

    changed = await _change_pin(bank, cert["id"], PIN, "417093")
    assert changed.status_code == 200 and changed.json()["id"] == cert["id"]
    assert changed.json()["serial"] == cert["serial"]  # same certificate, same key
    assert changed.json()["certificate_pem"] == cert["certificate_pem"]
    assert await _wrapped_key(service, cert["id"]) != key_before
    assert_problem(await _change_pin(bank, cert["id"], PIN, "583920"), 403, "pin_invalid")
    assert (await _change_pin(bank, cert["id"], "417093", "583920")).status_code == 200


async def test_pin_change_on_a_revoked_or_expired_certificate(service: Service,
                                                             bank: Bank) -> None:
    revoked = await _issued(bank, person(1))
    assert (await bank.post(f"/v1/certificates/{revoked['id']}/revoke",
                            {"pin": PIN})).status_code == 200
    assert_problem(await _change_pin(bank, revoked["id"], PIN, "417093"), 409,
                   "certificate_revoked")

    old = await _issued(bank, person(2))
    service.clock.advance(timedelta(days=3 * 365))
    await _refresh_token(bank)
    assert (await _cert(bank, old["id"]))["status"] == "expired"
    assert_problem(await _change_pin(bank, old["id"], PIN, "417093"), 409, "certificate_expired")
    proof = await bank.verified(person(2)["phone"], "unlock")
    assert_problem(await bank.post(f"/v1/certificates/{old['id']}/unlock",
                             {"verification_id": proof}), 409, "certificate_expired")
    assert await _verification_status(service, proof) == "verified"
    async with service.container.db.transaction(write=False) as conn:
        states = set((await conn.execute(select(certificates.c.state))).scalars())
    assert states == {"active", "revoked"}  # expired is derived, never written


# --- revoke ------------------------------------------------------------------------------


async def test_revoke_needs_exactly_one_proof(service: Service, bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    proof = await bank.verified(holder["phone"], "revoke")
    for body in ({}, {"reason": "key_compromise"}, {"pin": None, "verification_id": None},
                 {"pin": PIN, "verification_id": proof}):
        assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke", body), 422,
                       "proof_required")
    state = await _cert(bank, cert["id"])
    assert state["status"] == "active" and state["remaining_pin_attempts"] == 5
    assert await _verification_status(service, proof) == "verified"


async def test_revoke_refuses_unknown_reasons(service: Service, bank: Bank) -> None:
    cert = await _issued(bank, person(1))
    for reason in ("bogus", "certificate_hold", "remove_from_crl", "ca_compromise",
                   "keyCompromise", "", 1, None):
        reply = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                                {"pin": PIN, "reason": reason})
        assert reply.status_code == 422, reply.text
        assert reply.json()["code"] in {"invalid_request", "reason_invalid"}
    state = await _cert(bank, cert["id"])
    assert state["status"] == "active" and state["remaining_pin_attempts"] == 5


async def test_revoke_with_a_wrong_pin_counts_and_revokes_nothing(service: Service,
                                                                 bank: Bank) -> None:
    cert = await _issued(bank, person(1))
    body = assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                                    {"pin": "417093", "reason": "key_compromise"}), 403,
                          "pin_invalid")
    assert body["remaining_attempts"] == 4
    state = await _cert(bank, cert["id"])
    assert state["status"] == "active" and state["revoked_at"] is None
    status = (await service.http.get(f"/v1/status/{cert['serial']}")).json()
    assert status["status"] == "good"


async def test_locked_certificate_is_revoked_by_verification(service: Service,
                                                            bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    for _ in range(5):
        await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"pin": "417093"})
    assert_problem(await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"pin": PIN}), 423,
                   "pin_locked")
    proof = await bank.verified(holder["phone"], "revoke")
    revoked = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                              {"verification_id": proof, "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "key_compromise"


# --- unknown ids and lookup --------------------------------------------------------------


async def test_unknown_certificate_ids_are_404(service: Service, bank: Bank) -> None:
    holder = person(1)
    proof = await bank.verified(holder["phone"], None)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("reissue", {"verification_id": proof, "pin": "417093"}),
        ("unlock", {"verification_id": proof}),
        ("pin", {"pin": PIN, "new_pin": "417093"}),
        ("revoke", {"pin": PIN}),
        ("revoke", {"verification_id": proof}),
    ]
    for certificate_id in (UNKNOWN_ID, UNKNOWN_ID.upper(), "nope", "x" * 200, "%20"):
        assert_problem(await bank.get(f"/v1/certificates/{certificate_id}"), 404,
                       "certificate_not_found")
        for action, body in calls:
            assert_problem(await bank.post(f"/v1/certificates/{certificate_id}/{action}", body),
                           404, "certificate_not_found")
    assert await _verification_status(service, proof) == "verified"


async def test_lookup(service: Service, bank: Bank) -> None:
    holder = person(1)
    cert = await _issued(bank, holder)
    for rrn in (holder["rrn"], holder["rrn"].replace("-", "")):
        found = await bank.post("/v1/certificates/lookup", {"rrn": rrn})
        assert found.status_code == 200, found.text
        assert found.json()["count"] == 1 and found.json()["data"][0]["id"] == cert["id"]
    nobody = await bank.post("/v1/certificates/lookup", {"rrn": person(2)["rrn"]})
    assert nobody.status_code == 200 and nobody.json() == {"data": [], "count": 0}


async def test_lookup_refuses_a_bad_rrn(service: Service, bank: Bank) -> None:
    for rrn in ("900101-123456", "901301-1234567", "261126-3234567", "abc", "",
                digits_as("900101", 0xFF10) + "-1234567"):
        body = assert_problem(await bank.post("/v1/certificates/lookup", {"rrn": rrn}), 422,
                              "rrn_invalid")
        assert "123456" not in body["detail"]
    for payload in ({}, {"rrn": 9001011234567}, {"rrn": "9" * 15}, {"rrn": None}):
        assert_problem(await bank.post("/v1/certificates/lookup", payload), 422, "invalid_request")
    assert_problem(await bank.get("/v1/certificates/lookup"), 404, "certificate_not_found")
