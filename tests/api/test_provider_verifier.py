"""The provider verifier inside the app: SMS through SENS, ARS through Twilio with its signed
callback, and a provider outage. The providers are faked only at the HTTP level."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.verifiers.naver_sens import NaverSensSms
from app.verifiers.registry import ProviderVerifier
from app.verifiers.twilio_voice import TwilioVoiceArs, twilio_signature
from tests.support.app import FixedClock
from tests.support.bank import Bank, make_bank
from tests.support.people import person

TOKEN = "twilio-auth-token-for-tests"


@dataclass
class FakeProviders:
    sms: list[dict[str, object]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    down: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectTimeout("provider timed out", request=request)
        if request.url.host == "sens.apigw.ntruss.com":
            self.sms.append(json.loads(request.content))
            return httpx.Response(202, json={"requestId": "r-1", "requestTime": "now",
                                             "statusCode": "202", "statusName": "success"})
        form = dict(httpx.QueryParams(request.content.decode()))
        self.calls.append(form)
        return httpx.Response(201, json={"sid": "CA123", "status": "queued"})


@dataclass
class ProviderService:
    http: httpx.AsyncClient
    bank: Bank
    fake: FakeProviders


@pytest.fixture
async def provider_service(settings: Settings, clock: FixedClock
                           ) -> AsyncIterator[ProviderService]:
    fake = FakeProviders()
    outbound = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    verifier = ProviderVerifier(
        NaverSensSms(service_id="ncp:sms:kr:1:cc", access_key="ak", secret_key="sk",
                     sender="0212345678", http=outbound),
        TwilioVoiceArs(account_sid="AC1", auth_token=TOKEN, caller_id="+8215880000",
                       public_base_url=settings.public_base_url, http=outbound))
    app = create_app(settings, clock=clock, verifier=verifier)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            yield ProviderService(http, await make_bank(http, app.state.container), fake)
    await outbound.aclose()


async def test_sms_code_goes_through_sens(provider_service: ProviderService) -> None:
    bank, fake = provider_service.bank, provider_service.fake
    holder = person(31)
    started = await bank.start_verification(holder["phone"])
    assert started["display_code"] is None
    sent = fake.sms[-1]
    assert sent["messages"] == [{"to": "01055550031"}]
    code = next(word for word in str(sent["content"]).split() if word.isdigit())
    confirmed = await bank.post(f"/v1/verifications/{started['id']}/confirm", {"code": code})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "verified"
    # The sandbox does not exist when a provider is configured.
    assert (await provider_service.http.get("/sandbox/messages")).status_code == 404


async def test_ars_digits_arrive_by_signed_callback(provider_service: ProviderService) -> None:
    bank, fake, http = provider_service.bank, provider_service.fake, provider_service.http
    holder = person(32)
    started = await bank.start_verification(holder["phone"], channel="ars")
    assert fake.calls[-1]["To"] == holder["phone"]
    url = f"http://certcloud.test/callbacks/ars/twilio/{started['id']}"

    forged = {"CallSid": "CA123", "Digits": started["display_code"]}
    bad = await http.post(url, data=forged, headers={"X-Twilio-Signature": "AAAA"})
    assert bad.status_code == 401 and bad.json()["code"] == "callback_signature_invalid"
    state = await bank.get(f"/v1/verifications/{started['id']}")
    assert state.json()["status"] == "pending"

    signature = twilio_signature(TOKEN, url, forged)
    good = await http.post(url, data=forged, headers={"X-Twilio-Signature": signature})
    assert good.status_code == 200 and "확인되었습니다" in good.text
    state = await bank.get(f"/v1/verifications/{started['id']}")
    assert state.json()["status"] == "verified"
    issued = await bank.issue(holder, verification_id=started["id"])
    assert issued.status_code == 201


async def test_provider_outage_is_503_and_retryable(provider_service: ProviderService) -> None:
    bank, fake = provider_service.bank, provider_service.fake
    fake.down = True
    reply = await bank.post("/v1/verifications", {"phone": "+821055550033", "channel": "sms"})
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "verifier_unavailable"
    metrics = provider_service.http
    assert "certcloud_provider_up 0.0" in (await metrics.get("/metrics")).text
    fake.down = False
    retry = await bank.post("/v1/verifications", {"phone": "+821055550033", "channel": "sms"})
    assert retry.status_code == 201
    assert "certcloud_provider_up 1.0" in (await metrics.get("/metrics")).text
