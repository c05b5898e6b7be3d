"""Issue 11, finding 4: the phone on record gets an SMS notice of every change to the person's
certificate (issue, reissue, revoke, unlock, PIN change, renewal), naming the bank and the
time; a change of phone or name on record is audited by HMACs; the previous phone can still
start a reissue for 30 days. Notices are listed by the sandbox with "code": null."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select

from app.domain.certificates import VALIDITY
from app.domain.notices import NoticeKind, notice_text
from app.domain.verification import PREVIOUS_PHONE_GRACE
from app.main import create_app
from app.services.notices import RETRY_AFTER
from app.settings import Settings
from app.storage.ops_tables import audit_events
from app.storage.tables import notices
from app.verifiers.naver_sens import NaverSensSms
from app.verifiers.registry import ProviderVerifier
from app.verifiers.twilio_voice import TwilioVoiceArs
from tests.support.app import START, FixedClock, Service
from tests.support.bank import Bank, make_bank, refresh_token
from tests.support.people import PIN, person
from tests.support.problems import assert_problem
from tests.support.signing import b64

NEW_PIN, OTHER_PIN = "730519", "480271"


async def _notices(service: Service, phone: str) -> list[dict[str, Any]]:
    """The notices to ``phone``, newest first."""
    reply = await service.http.get("/sandbox/messages", params={"phone": phone})
    assert reply.status_code == 200
    return [m for m in reply.json() if m["code"] is None]


def _text(kind: NoticeKind, bank: str, service: Service, replaced: bool = False) -> str:
    return notice_text(kind, bank=bank, at=service.clock.now(), phone_replaced=replaced,
                       may_take_back=replaced)


async def _issued(bank: Bank, who: dict[str, str], pin: str = PIN) -> dict[str, Any]:
    reply = await bank.issue(who, pin=pin)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def _reissue(bank: Bank, certificate_id: str, phone: str,
                   pin: str = NEW_PIN) -> httpx.Response:
    verification_id = await bank.verified(phone, "reissue")
    return await bank.post(f"/v1/certificates/{certificate_id}/reissue",
                           {"verification_id": verification_id, "pin": pin})


async def test_each_change_tells_the_phone_on_record(service: Service) -> None:
    bank = await make_bank(service.http, service.container, "Hana Test Bank")
    holder = person(71)
    phone = holder["phone"]
    first = await _issued(bank, holder)
    expected = [_text(NoticeKind.ISSUE, "Hana Test Bank", service)]

    service.clock.advance(timedelta(minutes=1))
    changed = await bank.post(f"/v1/certificates/{first['id']}/pin",
                              {"pin": PIN, "new_pin": OTHER_PIN})
    assert changed.status_code == 200, changed.text
    expected.append(_text(NoticeKind.PIN_CHANGE, "Hana Test Bank", service))

    service.clock.advance(timedelta(minutes=1))
    unlocked = await bank.post(f"/v1/certificates/{first['id']}/unlock",
                               {"verification_id": await bank.verified(phone, "unlock")})
    assert unlocked.status_code == 200, unlocked.text
    expected.append(_text(NoticeKind.UNLOCK, "Hana Test Bank", service))

    service.clock.advance(timedelta(minutes=1))
    reissued = await _reissue(bank, first["id"], phone)
    assert reissued.status_code == 201, reissued.text
    expected.append(_text(NoticeKind.REISSUE, "Hana Test Bank", service))

    service.clock.advance(timedelta(minutes=1))
    revoked = await bank.post(f"/v1/certificates/{reissued.json()['id']}/revoke",
                              {"pin": NEW_PIN})
    assert revoked.status_code == 200, revoked.text
    expected.append(_text(NoticeKind.REVOKE, "Hana Test Bank", service))
    # A repeat changes nothing, so it tells nothing.
    again = await bank.post(f"/v1/certificates/{reissued.json()['id']}/revoke",
                            {"pin": NEW_PIN})
    assert again.status_code == 200

    told = await _notices(service, phone)
    assert [m["text"] for m in reversed(told)] == expected
    assert all(m["code"] is None and m["phone"] == phone for m in told)
    # Every notice went out: none is left in the outbox.
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(notices.c.kind, notices.c.sent_at))).all()
    assert sorted(r.kind for r in rows) == sorted(
        ["issue", "pin_change", "unlock", "reissue", "revoke"])
    assert all(r.sent_at is not None for r in rows)


async def test_automatic_renewal_tells_the_phone(service: Service, bank: Bank) -> None:
    holder = person(72)
    issued = await _issued(bank, holder)
    service.clock.set(START + VALIDITY - timedelta(days=10))
    await refresh_token(bank)
    signed = await bank.post(f"/v1/certificates/{issued['id']}/signatures",
                             {"pin": PIN, "data": b64(b"renew me"), "format": "raw"})
    assert signed.status_code == 200 and signed.json()["renewed"] is not None, signed.text
    told = await _notices(service, holder["phone"])
    assert told[0]["text"] == _text(NoticeKind.RENEW, "bank", service)


async def test_a_new_phone_tells_both_phones_and_is_audited_by_hmacs(service: Service) -> None:
    bank_a = await make_bank(service.http, service.container, "Alpha")
    bank_b = await make_bank(service.http, service.container, "Bravo")
    victim = person(73)
    await _issued(bank_a, victim)
    other_phone = "+821099990073"
    await _issued(bank_b, {**victim, "name": "임꺽정", "phone": other_phone}, pin=OTHER_PIN)

    old_told, new_told = (await _notices(service, victim["phone"]),
                          await _notices(service, other_phone))
    assert old_told[0]["text"] == _text(NoticeKind.ISSUE, "Bravo", service, replaced=True)
    assert new_told[0]["text"] == _text(NoticeKind.ISSUE, "Bravo", service)
    assert len(new_told) == 1

    secrets_ = service.container.certificates.secrets
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(audit_events).where(
            audit_events.c.action == "contact_change"))).all()
    assert len(rows) == 1 and rows[0].client_id == bank_b.client_id
    details = json.loads(rows[0].details)
    assert details == {
        "person_id": details["person_id"], "cause": "issue",
        "old_phone_hmac": secrets_.contact_hmac("phone", victim["phone"]),
        "new_phone_hmac": secrets_.contact_hmac("phone", other_phone),
        "old_name_hmac": secrets_.contact_hmac("name", victim["name"]),
        "new_name_hmac": secrets_.contact_hmac("name", "임꺽정")}
    assert victim["phone"] not in rows[0].details and "임꺽정" not in rows[0].details


async def _taken_over(service: Service) -> tuple[Bank, dict[str, str], dict[str, Any]]:
    """Bank B issued for the victim's RRN with its own phone; returns bank A, the victim and
    bank B's (now active) certificate."""
    bank_a = await make_bank(service.http, service.container, "Alpha")
    bank_b = await make_bank(service.http, service.container, "Bravo")
    victim = person(74)
    await _issued(bank_a, victim)
    taken = await _issued(bank_b, {**victim, "name": "임꺽정", "phone": "+821099990074"},
                          pin=OTHER_PIN)
    return bank_a, victim, taken


@pytest.mark.parametrize("after, counts", [(PREVIOUS_PHONE_GRACE - timedelta(seconds=1), True),
                                           (PREVIOUS_PHONE_GRACE, False)])
async def test_the_previous_phone_starts_a_reissue_for_30_days(
        service: Service, after: timedelta, counts: bool) -> None:
    bank_a, victim, taken = await _taken_over(service)
    service.clock.advance(after)
    await refresh_token(bank_a)
    reply = await _reissue(bank_a, taken["id"], victim["phone"])
    if not counts:
        assert reply.status_code == 409 and reply.json()["code"] == "verification_phone_mismatch"
        return
    assert reply.status_code == 201, reply.text
    # The record is the victim's again (phone and name), and the next reissue uses it.
    pem = reply.json()["certificate_pem"]
    subject = x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
    assert f"CN={victim['name']}" in subject
    later = await _reissue(bank_a, reply.json()["id"], victim["phone"], pin=PIN)
    assert later.status_code == 201, later.text


async def test_the_previous_phone_counts_for_a_reissue_only(service: Service) -> None:
    bank_a, victim, taken = await _taken_over(service)
    unlock = await bank_a.verified(victim["phone"], "unlock")
    refused = await bank_a.post(f"/v1/certificates/{taken['id']}/unlock",
                                {"verification_id": unlock})
    assert_problem(refused, 409, "verification_phone_mismatch")
    revoke = await bank_a.verified(victim["phone"], "revoke")
    refused = await bank_a.post(f"/v1/certificates/{taken['id']}/revoke",
                                {"verification_id": revoke})
    assert_problem(refused, 409, "verification_phone_mismatch")


async def test_a_second_change_does_not_wipe_the_way_back(service: Service) -> None:
    bank_a, victim, taken = await _taken_over(service)
    service.clock.advance(timedelta(days=1))
    await refresh_token(bank_a)
    bank_c = await make_bank(service.http, service.container, "Charlie")
    again = await _issued(bank_c, {**victim, "phone": "+821088880074"}, pin=OTHER_PIN)
    reply = await _reissue(bank_a, again["id"], victim["phone"])
    assert reply.status_code == 201, reply.text
    assert taken["id"] != again["id"]


# --- a notifier that fails -----------------------------------------------------------------

@dataclass
class FlakySens:
    """SENS faked at the HTTP level: codes go out, notices fail while ``refusing``."""

    sent: list[str] = field(default_factory=list)
    refusing: bool = True

    def handle(self, request: httpx.Request) -> httpx.Response:
        content = str(json.loads(request.content)["content"])
        if self.refusing and "인증번호" not in content:
            return httpx.Response(500, json={"error": "down"})
        self.sent.append(content)
        return httpx.Response(202, json={"requestId": "r-1", "requestTime": "now",
                                         "statusCode": "202", "statusName": "success"})


@pytest.fixture
async def flaky(settings: Settings, clock: FixedClock
                ) -> AsyncIterator[tuple[Service, FlakySens]]:
    fake = FlakySens()
    outbound = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    verifier = ProviderVerifier(
        NaverSensSms(service_id="ncp:sms:kr:1:cc", access_key="ak", secret_key="sk",
                     sender="0212345678", http=outbound),
        TwilioVoiceArs(account_sid="AC1", auth_token="t", caller_id="+8215880000",
                       public_base_url=settings.public_base_url, http=outbound))
    app = create_app(settings, clock=clock, verifier=verifier)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            yield Service(app, http, app.state.container, clock, settings), fake
    await outbound.aclose()


async def _sms_code(fake: FlakySens) -> str:
    return next(word for word in fake.sent[-1].split() if word.isdigit())


async def test_a_failing_notifier_fails_no_change(flaky: tuple[Service, FlakySens],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    service, fake = flaky
    bank = await make_bank(service.http, service.container, "Alpha")
    holder = person(75)
    started = await bank.start_verification(holder["phone"])
    confirmed = await bank.post(f"/v1/verifications/{started['id']}/confirm",
                                {"code": await _sms_code(fake)})
    assert confirmed.status_code == 200
    issued = await bank.issue(holder, verification_id=started["id"])
    assert issued.status_code == 201, issued.text  # the change stands
    assert any(getattr(r, "cause", None) == "verifier_unavailable" for r in caplog.records
               if r.getMessage().startswith("notice not delivered"))
    metrics = service.app.state.metrics.notices
    assert metrics.labels("failed")._value.get() == 1
    async with service.container.db.transaction(write=False) as conn:
        row = (await conn.execute(select(notices))).one()
    assert row.sent_at is None and row.attempts == 1

    # The provider is back: the background loop sends it once the retry time is reached.
    fake.refusing = False
    assert await service.container.notices.redeliver_due() == 0
    service.clock.advance(RETRY_AFTER)
    assert await service.container.notices.redeliver_due() == 1
    assert fake.sent[-1] == notice_text(NoticeKind.ISSUE, bank="Alpha", at=START)
    assert await service.container.notices.redeliver_due() == 0
    assert metrics.labels("sent")._value.get() == 1


async def test_no_notice_holds_a_pin_a_code_or_an_rrn(service: Service) -> None:
    bank_a = await make_bank(service.http, service.container, "Alpha")
    bank_b = await make_bank(service.http, service.container, "Bravo")
    victim = person(76)
    first = await _issued(bank_a, victim)
    await bank_a.post(f"/v1/certificates/{first['id']}/pin", {"pin": PIN, "new_pin": NEW_PIN})
    taken = await _issued(bank_b, {**victim, "phone": "+821099990076"}, pin=OTHER_PIN)
    back = await _reissue(bank_a, taken["id"], victim["phone"], pin=PIN)
    assert back.status_code == 201
    await bank_a.post(f"/v1/certificates/{back.json()['id']}/revoke", {"pin": PIN})

    everything = (await service.http.get("/sandbox/messages")).json()
    codes = {m["code"] for m in everything if m["code"] is not None}
    texts = [m["text"] for m in everything if m["code"] is None]
    async with service.container.db.transaction(write=False) as conn:
        texts += [row.text for row in (await conn.execute(select(notices.c.text))).all()]
    assert len(texts) >= 12 and codes
    rrn = victim["rrn"]
    secrets_ = {PIN, NEW_PIN, OTHER_PIN, rrn, rrn.replace("-", ""), rrn[:6], rrn[7:], *codes}
    for text in texts:
        assert not [s for s in secrets_ if s in text], text
