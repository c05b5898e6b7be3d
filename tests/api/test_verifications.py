"""Phone verification over HTTP: SMS and ARS, expiry, wrong codes, single use and binding."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.storage.tables import certificates, verifications
from tests.support.app import START, Service
from tests.support.bank import Bank, make_bank
from tests.support.people import digits_as, person
from tests.support.problems import assert_problem


async def _row(service: Service, verification_id: str) -> Any:
    async with service.container.db.transaction(write=False) as conn:
        return (await conn.execute(
            select(verifications).where(verifications.c.id == verification_id))).one()


async def _certificate_count(service: Service) -> int:
    async with service.container.db.transaction(write=False) as conn:
        return int((await conn.execute(
            select(func.count()).select_from(certificates))).scalar_one())


def _other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def _refresh_token(bank: Bank) -> None:
    """Tokens live 15 minutes; tests that move the clock further get a new one."""
    reply = await bank.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(bank.client_id, bank.client_secret))
    assert reply.status_code == 200, reply.text
    bank.token = reply.json()["access_token"]


async def _confirm(bank: Bank, verification_id: str, code: str) -> httpx.Response:
    return await bank.post(f"/v1/verifications/{verification_id}/confirm", {"code": code})


async def _keypad(service: Service, verification_id: str, digits: str) -> httpx.Response:
    return await service.http.post(f"/sandbox/ars/{verification_id}/keypad",
                                   json={"digits": digits})


# --- SMS ---------------------------------------------------------------------------------


async def test_sms_start_confirm_and_read(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    started = await bank.post("/v1/verifications",
                              {"phone": "+82 10-5555-0001", "channel": "sms",
                               "purpose": "issue"})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["channel"] == "sms" and body["status"] == "pending"
    assert body["purpose"] == "issue" and body["display_code"] is None
    assert datetime.fromisoformat(body["expires_at"]) == START + timedelta(minutes=3)

    messages = (await service.http.get("/sandbox/messages", params={"phone": phone})).json()
    assert len(messages) == 1 and messages[0]["phone"] == phone
    code = messages[0]["code"]
    assert len(code) == 6 and code.isdigit() and code in messages[0]["text"]

    row = await _row(service, body["id"])
    assert row.phone == phone and row.client_id == bank.client_id
    assert code not in row.code_hash  # stored hashed

    confirmed = await _confirm(bank, body["id"], code)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "verified" and confirmed.json()["id"] == body["id"]
    read = await bank.get(f"/v1/verifications/{body['id']}")
    assert read.status_code == 200 and read.json()["status"] == "verified"
    assert read.json()["display_code"] is None


async def test_each_verification_gets_its_own_code(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    first = await bank.start_verification(phone)
    first_code = await bank.sms_code(phone)
    second = await bank.start_verification(phone)
    second_code = await bank.sms_code(phone)
    if first_code != second_code:  # a one-in-a-million tie proves nothing either way
        assert_problem(await _confirm(bank, second["id"], first_code), 422,
                       "verification_code_invalid")
    assert (await _confirm(bank, first["id"], first_code)).status_code == 200
    assert (await _confirm(bank, second["id"], second_code)).status_code == 200


async def test_code_expires_at_three_minutes(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    late = await bank.start_verification(phone)
    late_code = await bank.sms_code(phone)
    service.clock.advance(timedelta(minutes=2, seconds=59))
    just_in_time = await bank.start_verification(phone)
    assert (await _confirm(bank, late["id"], late_code)).status_code == 200

    service.clock.advance(timedelta(minutes=3))  # exactly three minutes after the second start
    code = (await service.http.get("/sandbox/messages", params={"phone": phone})).json()[0]
    assert_problem(await _confirm(bank, just_in_time["id"], code["code"]), 409,
                   "verification_expired")
    assert (await bank.get(f"/v1/verifications/{just_in_time['id']}")).json()["status"] == \
        "expired"
    # A wrong code on an expired verification is refused the same way and counts nothing.
    assert_problem(await _confirm(bank, just_in_time["id"], _other_code(code["code"])), 409,
                   "verification_expired")
    row = await _row(service, just_in_time["id"])
    assert row.wrong_codes == 0 and row.verified_at is None


async def test_five_wrong_codes_fail_the_verification(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    wrong = _other_code(code)
    for remaining in (4, 3, 2, 1):
        body = assert_problem(await _confirm(bank, verification["id"], wrong), 422,
                              "verification_code_invalid")
        assert body["remaining_attempts"] == remaining
        assert code not in body["detail"]
    last = assert_problem(await _confirm(bank, verification["id"], wrong), 422,
                          "verification_code_invalid")
    assert last["remaining_attempts"] == 0
    # The right code is now too late, and so is any further try.
    assert_problem(await _confirm(bank, verification["id"], code), 409, "verification_failed")
    assert_problem(await _confirm(bank, verification["id"], wrong), 409, "verification_failed")
    assert (await bank.get(f"/v1/verifications/{verification['id']}")).json()["status"] == \
        "failed"
    row = await _row(service, verification["id"])
    assert row.status == "failed" and row.wrong_codes == 5 and row.verified_at is None
    reply = await bank.issue(person(1), verification_id=verification["id"])
    assert_problem(reply, 409, "verification_failed")
    assert await _certificate_count(service) == 0


async def test_four_wrong_codes_then_the_right_one_verifies(service: Service,
                                                           bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    for _ in range(4):
        assert_problem(await _confirm(bank, verification["id"], _other_code(code)), 422,
                       "verification_code_invalid")
    assert (await _confirm(bank, verification["id"], code)).status_code == 200


async def test_malformed_codes_are_refused_as_wrong_codes(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    for bad in ("", "abc", f" {code}", f"{code}0"):
        assert_problem(await _confirm(bank, verification["id"], bad), 422,
                       "verification_code_invalid")
    # Wrong types and oversized codes never reach the check (and count nothing).
    for body in ({"code": int(code)}, {"code": None}, {}, {"code": "1" * 17}):
        reply = await bank.post(f"/v1/verifications/{verification['id']}/confirm", body)
        assert_problem(reply, 422, "invalid_request")
    assert (await _row(service, verification["id"])).wrong_codes == 4
    assert (await _confirm(bank, verification["id"], code)).status_code == 200


async def test_verification_is_single_use(service: Service, bank: Bank) -> None:
    holder = person(1)
    verification_id = await bank.verified(holder["phone"])
    assert (await bank.issue(holder, verification_id=verification_id)).status_code == 201
    row = await _row(service, verification_id)
    assert row.status == "used" and row.used_at is not None
    assert (await bank.get(f"/v1/verifications/{verification_id}")).json()["status"] == "used"

    again = await bank.issue(holder, pin="417093", verification_id=verification_id)
    assert_problem(again, 409, "verification_used")
    assert_problem(await _confirm(bank, verification_id, "123456"), 409, "verification_used")
    assert await _certificate_count(service) == 1


async def test_confirmed_twice_is_a_conflict(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    assert (await _confirm(bank, verification["id"], code)).status_code == 200
    assert_problem(await _confirm(bank, verification["id"], code), 409, "verification_verified")


async def test_verified_but_unused_verification_expires(service: Service, bank: Bank) -> None:
    holder = person(1)
    early = await bank.verified(holder["phone"])
    service.clock.advance(timedelta(minutes=9, seconds=59))
    assert (await bank.issue(holder, verification_id=early)).status_code == 201

    stale = await bank.verified(holder["phone"])
    service.clock.advance(timedelta(minutes=10))
    await _refresh_token(bank)
    assert (await bank.get(f"/v1/verifications/{stale}")).json()["status"] == "expired"
    assert_problem(await bank.issue(holder, pin="417093", verification_id=stale), 409,
                   "verification_expired")
    assert (await _row(service, stale)).status == "verified"  # expiry is derived, not written
    assert await _certificate_count(service) == 1


# --- binding to the bank client, the phone and the purpose -------------------------------


async def test_another_bank_cannot_see_confirm_or_use_it(service: Service, bank: Bank) -> None:
    other = await make_bank(service.http, service.container, "other-bank")
    holder = person(1)
    verification = await bank.start_verification(holder["phone"])
    code = await bank.sms_code(holder["phone"])

    assert_problem(await other.get(f"/v1/verifications/{verification['id']}"), 404,
                   "verification_not_found")
    assert_problem(await _confirm(other, verification["id"], code), 404, "verification_not_found")
    assert_problem(await _confirm(other, verification["id"], _other_code(code)), 404,
                   "verification_not_found")
    row = await _row(service, verification["id"])
    assert row.status == "pending" and row.wrong_codes == 0  # the other bank changed nothing

    assert (await _confirm(bank, verification["id"], code)).status_code == 200
    assert_problem(await other.issue(holder, verification_id=verification["id"]), 409,
                   "verification_not_yours")
    assert (await _row(service, verification["id"])).status == "verified"
    assert await _certificate_count(service) == 0
    # Still good for the bank that started it.
    assert (await bank.issue(holder, verification_id=verification["id"])).status_code == 201


async def test_verification_counts_for_its_phone_only(service: Service, bank: Bank) -> None:
    holder, stranger = person(1), person(2)
    verification_id = await bank.verified(stranger["phone"])
    assert_problem(await bank.issue(holder, verification_id=verification_id), 409,
                   "verification_phone_mismatch")
    assert (await _row(service, verification_id)).status == "verified"
    assert await _certificate_count(service) == 0
    assert (await bank.issue(stranger, verification_id=verification_id)).status_code == 201


async def test_verification_counts_for_its_purpose_only(service: Service, bank: Bank) -> None:
    holder = person(1)
    for purpose in ("reissue", "unlock", "revoke"):
        verification_id = await bank.verified(holder["phone"], purpose)
        assert_problem(await bank.issue(holder, verification_id=verification_id), 409,
                       "verification_purpose_mismatch")
        assert (await _row(service, verification_id)).status == "verified"
    assert await _certificate_count(service) == 0
    any_purpose = await bank.verified(holder["phone"], None)
    assert (await bank.issue(holder, verification_id=any_purpose)).status_code == 201


async def test_unknown_ids_are_404(service: Service, bank: Bank) -> None:
    for unknown in ("00000000-0000-0000-0000-000000000000", "nope", "x" * 64):
        assert_problem(await bank.get(f"/v1/verifications/{unknown}"), 404,
                       "verification_not_found")
        assert_problem(await _confirm(bank, unknown, "123456"), 404, "verification_not_found")
        assert_problem(await _keypad(service, unknown, "123456"), 404, "verification_not_found")
        assert_problem(await bank.issue(person(1), verification_id=unknown), 404,
                       "verification_not_found")
    assert await _certificate_count(service) == 0


# --- starting: bad input -----------------------------------------------------------------


async def test_start_refuses_bad_fields(service: Service, bank: Bank) -> None:
    cases: list[tuple[Any, str]] = [
        ({"phone": "01055550001", "channel": "sms"}, "phone_invalid"),
        ({"phone": "+82" + digits_as("1055550001", 0xFF10), "channel": "sms"}, "phone_invalid"),
        ({"phone": "+821055550001\n", "channel": "sms"}, "phone_invalid"),
        ({"phone": "+8210", "channel": "sms"}, "phone_invalid"),
        ({"phone": "+821055550001", "channel": "email"}, "invalid_request"),
        ({"phone": "+821055550001", "channel": "SMS"}, "invalid_request"),
        ({"phone": "+821055550001", "channel": "sms", "purpose": "login"}, "invalid_request"),
        ({"phone": "+821055550001"}, "invalid_request"),
        ({"channel": "sms"}, "invalid_request"),
        ({"phone": 821055550001, "channel": "sms"}, "invalid_request"),
        ({"phone": "+8210" + "5" * 40, "channel": "sms"}, "invalid_request"),
    ]
    for body, code in cases:
        assert_problem(await bank.post("/v1/verifications", body), 422, code)
    assert (await service.http.get("/sandbox/messages")).json() == []
    async with service.container.db.transaction(write=False) as conn:
        count = (await conn.execute(select(func.count()).select_from(verifications)))
        assert count.scalar_one() == 0


async def test_sandbox_messages_filter_and_bad_phone(service: Service, bank: Bank) -> None:
    await bank.start_verification(person(1)["phone"])
    await bank.start_verification(person(2)["phone"])
    await bank.start_verification(person(1)["phone"])
    mine = (await service.http.get("/sandbox/messages",
                                   params={"phone": person(1)["phone"]})).json()
    assert len(mine) == 2 and all(m["phone"] == person(1)["phone"] for m in mine)
    assert mine[0]["sent_at"] >= mine[1]["sent_at"]
    assert len((await service.http.get("/sandbox/messages")).json()) == 3
    assert_problem(await service.http.get("/sandbox/messages", params={"phone": "010"}), 422,
                   "phone_invalid")


# --- ARS ---------------------------------------------------------------------------------


async def test_ars_keypad_flow(service: Service, bank: Bank) -> None:
    holder = person(1)
    started = await bank.post("/v1/verifications", {"phone": holder["phone"], "channel": "ars",
                                                    "purpose": "issue"})
    assert started.status_code == 201, started.text
    verification = started.json()
    display = verification["display_code"]
    assert verification["channel"] == "ars" and verification["status"] == "pending"
    assert isinstance(display, str) and len(display) == 6 and display.isdigit()
    assert (await service.http.get("/sandbox/messages")).json() == []  # a call, not an SMS
    assert verification["id"] in service.container.verifier.calls  # type: ignore[attr-defined]
    # Polling never shows the code again.
    polled = (await bank.get(f"/v1/verifications/{verification['id']}")).json()
    assert polled["status"] == "pending" and polled["display_code"] is None

    # The bank cannot confirm an ARS verification itself, even with the right digits.
    assert_problem(await _confirm(bank, verification["id"], display), 409,
                   "verification_channel_mismatch")
    row = await _row(service, verification["id"])
    assert row.status == "pending" and row.wrong_codes == 0

    wrong = assert_problem(await _keypad(service, verification["id"], _other_code(display)), 422,
                           "verification_code_invalid")
    assert wrong["remaining_attempts"] == 4
    keyed = await _keypad(service, verification["id"], display)
    assert keyed.status_code == 200, keyed.text
    assert keyed.json()["status"] == "verified" and keyed.json()["display_code"] is None
    assert (await bank.get(f"/v1/verifications/{verification['id']}")).json()["status"] == \
        "verified"
    assert_problem(await _keypad(service, verification["id"], display), 409,
                   "verification_verified")

    issued = await bank.issue(holder, verification_id=verification["id"])
    assert issued.status_code == 201, issued.text


async def test_ars_keypad_expiry_and_wrong_digits(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone, channel="ars")
    display = verification["display_code"]
    for remaining in (4, 3, 2, 1, 0):
        body = assert_problem(await _keypad(service, verification["id"], "0" * 7), 422,
                              "verification_code_invalid")
        assert body["remaining_attempts"] == remaining
    assert_problem(await _keypad(service, verification["id"], display), 409, "verification_failed")

    late = await bank.start_verification(phone, channel="ars")
    service.clock.advance(timedelta(minutes=3))
    assert_problem(await _keypad(service, late["id"], late["display_code"]), 409,
                   "verification_expired")


async def test_keypad_cannot_confirm_an_sms_verification(service: Service, bank: Bank) -> None:
    phone = person(1)["phone"]
    verification = await bank.start_verification(phone)
    code = await bank.sms_code(phone)
    assert_problem(await _keypad(service, verification["id"], code), 409,
                   "verification_channel_mismatch")
    assert (await _row(service, verification["id"])).status == "pending"
    assert (await _confirm(bank, verification["id"], code)).status_code == 200


async def test_keypad_refuses_bad_bodies(service: Service, bank: Bank) -> None:
    verification = await bank.start_verification(person(1)["phone"], channel="ars")
    bodies: list[Any] = [{}, {"digits": 123456}, {"digits": "1" * 33}, [], "123456"]
    for body in bodies:
        reply = await service.http.post(f"/sandbox/ars/{verification['id']}/keypad", json=body)
        assert_problem(reply, 422, "invalid_request")
    row = await _row(service, verification["id"])
    assert row.status == "pending" and row.wrong_codes == 0
