"""The SENS and Twilio verifier adapters against their providers' documented HTTP shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import pytest

from app.domain.errors import DependencyUnavailable, InvalidInput, Unauthenticated
from app.verifiers.naver_sens import NaverSensSms
from app.verifiers.twilio_voice import TwilioVoiceArs, verify_twilio_signature

CODE = "482913"
TEXT = f"[Certcloud] 인증번호 {CODE}"
NOW_MS = 1_700_000_000_123

SENS_SERVICE = "ncp:sms:kr:123456789012:certcloud"
SENS_ACCESS = "AKIDEXAMPLEACCESS"
SENS_SECRET = "sens-secret-key-value"

TW_SID = "AC0123456789abcdef0123456789abcdef"
TW_TOKEN = "twilio-auth-token-value"
TW_FROM = "+15005550006"

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _sens(handler: Handler) -> NaverSensSms:
    return NaverSensSms(
        service_id=SENS_SERVICE,
        access_key=SENS_ACCESS,
        secret_key=SENS_SECRET,
        sender="0212345678",
        http=_client(handler),
        clock=lambda: NOW_MS,
    )


def _twilio(handler: Handler) -> TwilioVoiceArs:
    return TwilioVoiceArs(
        account_sid=TW_SID,
        auth_token=TW_TOKEN,
        caller_id=TW_FROM,
        public_base_url="https://cert.example.kr/",
        http=_client(handler),
    )


def _recording(status: int, body: dict[str, str]
               ) -> tuple[list[httpx.Request], Handler]:
    """A handler answering ``status`` with ``body``, and the requests it was sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return seen, handler


def _assert_safe(exc: DependencyUnavailable, *secrets: str) -> None:
    text = f"{exc} {exc.detail} {exc!r}"
    for secret in (CODE, TEXT, *secrets):
        assert secret not in text


SENS_OK = {
    "requestId": "RSSA-1700000000123-1234-12345678-abcdefgh",
    "requestTime": "2023-11-14T22:13:20.123",
    "statusCode": "202",
    "statusName": "success",
}


# --- NAVER SENS ------------------------------------------------------------------------------


async def test_sens_sends_documented_request() -> None:
    seen, handler = _recording(202, SENS_OK)

    await _sens(handler).send_sms(
        verification_id="ver_1", phone="+821012345678", text=TEXT, code=CODE
    )

    (request,) = seen
    path = "/sms/v2/services/ncp:sms:kr:123456789012:certcloud/messages"
    assert request.method == "POST"
    assert request.url.host == "sens.apigw.ntruss.com"
    assert request.url.raw_path.decode() == path
    assert request.headers["x-ncp-apigw-timestamp"] == str(NOW_MS)
    assert request.headers["x-ncp-iam-access-key"] == SENS_ACCESS
    message = f"POST {path}\n{NOW_MS}\n{SENS_ACCESS}".encode()
    expected = base64.b64encode(
        hmac.new(SENS_SECRET.encode(), message, hashlib.sha256).digest()
    ).decode()
    assert request.headers["x-ncp-apigw-signature-v2"] == expected
    assert request.headers["content-type"].startswith("application/json")
    body = json.loads(request.content)
    assert body["type"] == "SMS"
    assert body["from"] == "0212345678"
    assert body["content"] == TEXT
    assert body["messages"] == [{"to": "01012345678"}]


async def test_sens_plain_service_id_path_and_signature() -> None:
    seen, handler = _recording(202, SENS_OK)

    sens = NaverSensSms(
        service_id="svc1",
        access_key="ak",
        secret_key="sk",
        sender="01099998888",
        base_url="https://sens.test/",
        http=_client(handler),
        clock=lambda: 42,
    )
    await sens.send_sms(verification_id="v", phone="+82212345678", text="hi", code="000000")
    (request,) = seen
    assert str(request.url) == "https://sens.test/sms/v2/services/svc1/messages"
    mac = hmac.new(b"sk", b"POST /sms/v2/services/svc1/messages\n42\nak", hashlib.sha256)
    assert request.headers["x-ncp-apigw-signature-v2"] == base64.b64encode(mac.digest()).decode()
    assert json.loads(request.content)["messages"] == [{"to": "0212345678"}]


async def test_sens_long_text_goes_as_lms() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json=SENS_OK)

    long_text = TEXT + " 타인에게 절대 알려주지 마세요." * 5
    await _sens(handler).send_sms(
        verification_id="v", phone="+821012345678", text=long_text, code=CODE
    )
    assert bodies[0]["type"] == "LMS"
    assert bodies[0]["content"] == long_text


async def test_sens_rejects_non_korean_number_without_calling() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(InvalidInput) as info:
        await _sens(handler).send_sms(
            verification_id="v", phone="+15551234567", text=TEXT, code=CODE
        )
    assert info.value.code == "phone_unsupported"


@pytest.mark.parametrize("status", [500, 503])
async def test_sens_server_error(status: int) -> None:
    sens = _sens(lambda r: httpx.Response(status, json={"error": "internal"}))
    with pytest.raises(DependencyUnavailable) as info:
        await sens.send_sms(verification_id="v", phone="+821012345678", text=TEXT, code=CODE)
    assert info.value.code == "verifier_unavailable"
    assert "NAVER SENS" in info.value.detail
    assert str(status) in info.value.detail
    _assert_safe(info.value, SENS_SECRET, SENS_ACCESS)


@pytest.mark.parametrize("status", [400, 401, 403, 429])
async def test_sens_client_error(status: int) -> None:
    # The provider echoes the request content here; none of it may reach the error.
    reply = {"status": status, "errorMessage": f"bad request: {TEXT}"}
    sens = _sens(lambda r: httpx.Response(status, json=reply))
    with pytest.raises(DependencyUnavailable) as info:
        await sens.send_sms(verification_id="v", phone="+821012345678", text=TEXT, code=CODE)
    assert info.value.code == "verifier_unavailable"
    assert f"HTTP {status}" in info.value.detail
    _assert_safe(info.value, SENS_SECRET, SENS_ACCESS)


async def test_sens_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(DependencyUnavailable) as info:
        await _sens(handler).send_sms(
            verification_id="v", phone="+821012345678", text=TEXT, code=CODE
        )
    assert info.value.code == "verifier_unavailable"
    assert "NAVER SENS" in info.value.detail and "timed out" in info.value.detail
    assert info.value.__cause__ is None
    _assert_safe(info.value, SENS_SECRET, SENS_ACCESS)


async def test_sens_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DependencyUnavailable) as info:
        await _sens(handler).send_sms(
            verification_id="v", phone="+821012345678", text=TEXT, code=CODE
        )
    assert info.value.code == "verifier_unavailable"
    assert "unreachable" in info.value.detail


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(202, text="<html>gateway</html>"),
        httpx.Response(202, json=[]),
        httpx.Response(202, json={**SENS_OK, "statusCode": "500", "statusName": "fail"}),
        httpx.Response(202, json={"statusCode": "202", "statusName": "success"}),
        httpx.Response(200, json=SENS_OK),
    ],
)
async def test_sens_malformed_reply(reply: httpx.Response) -> None:
    sens = _sens(lambda r: reply)
    with pytest.raises(DependencyUnavailable) as info:
        await sens.send_sms(verification_id="v", phone="+821012345678", text=TEXT, code=CODE)
    assert info.value.code == "verifier_unavailable"
    assert "NAVER SENS" in info.value.detail
    _assert_safe(info.value, SENS_SECRET)


async def test_sens_places_no_calls() -> None:
    sens = _sens(lambda r: httpx.Response(500))
    with pytest.raises(DependencyUnavailable) as info:
        await sens.start_call(verification_id="v", phone="+821012345678")
    assert info.value.code == "channel_unsupported"
    assert NaverSensSms.slug == "naver_sens"


# --- Twilio Voice ----------------------------------------------------------------------------


TWILIO_OK = {
    "sid": "CA42ed11f93dc08b952027ffbc406d0868",
    "account_sid": TW_SID,
    "status": "queued",
    "to": "+821012345678",
    "from": TW_FROM,
    "direction": "outbound-api",
}


async def test_twilio_places_documented_call() -> None:
    seen, handler = _recording(201, TWILIO_OK)

    await _twilio(handler).start_call(verification_id="ver 1/x", phone="+821012345678")

    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"https://api.twilio.com/2010-04-01/Accounts/{TW_SID}/Calls.json"
    basic = base64.b64encode(f"{TW_SID}:{TW_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(request.content.decode()))
    assert set(form) == {"To", "From", "Twiml"}
    assert form["To"] == "+821012345678"
    assert form["From"] == TW_FROM

    root = ET.fromstring(form["Twiml"])
    assert root.tag == "Response"
    (gather,) = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "input": "dtmf",
        "numDigits": "6",
        "timeout": "30",
        "action": "https://cert.example.kr/callbacks/ars/twilio/ver%201%2Fx",
        "method": "POST",
    }
    (say,) = list(gather)
    assert say.tag == "Say" and say.attrib == {"language": "ko-KR"}
    assert say.text


@pytest.mark.parametrize("status", [500, 502])
async def test_twilio_server_error(status: int) -> None:
    twilio = _twilio(lambda r: httpx.Response(status, text="oops"))
    with pytest.raises(DependencyUnavailable) as info:
        await twilio.start_call(verification_id="v", phone="+821012345678")
    assert info.value.code == "verifier_unavailable"
    assert "Twilio" in info.value.detail and f"HTTP {status}" in info.value.detail
    _assert_safe(info.value, TW_TOKEN, TW_SID)


async def test_twilio_client_error_names_status_not_message() -> None:
    reply = {
        "code": 21211,
        "message": "The 'To' number +821012345678 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    twilio = _twilio(lambda r: httpx.Response(400, json=reply))
    with pytest.raises(DependencyUnavailable) as info:
        await twilio.start_call(verification_id="v", phone="+821012345678")
    assert info.value.code == "verifier_unavailable"
    assert "HTTP 400" in info.value.detail and "21211" in info.value.detail
    _assert_safe(info.value, TW_TOKEN, TW_SID, "+821012345678", "not a valid")


async def test_twilio_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(DependencyUnavailable) as info:
        await _twilio(handler).start_call(verification_id="v", phone="+821012345678")
    assert info.value.code == "verifier_unavailable"
    assert "Twilio" in info.value.detail and "timed out" in info.value.detail
    _assert_safe(info.value, TW_TOKEN, TW_SID)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(201, text="not json"),
        httpx.Response(201, json={"status": "queued"}),
        httpx.Response(201, json={**TWILIO_OK, "status": "failed"}),
        httpx.Response(200, json=TWILIO_OK),
    ],
)
async def test_twilio_malformed_reply(reply: httpx.Response) -> None:
    twilio = _twilio(lambda r: reply)
    with pytest.raises(DependencyUnavailable) as info:
        await twilio.start_call(verification_id="v", phone="+821012345678")
    assert info.value.code == "verifier_unavailable"
    _assert_safe(info.value, TW_TOKEN)


async def test_twilio_sends_no_sms() -> None:
    twilio = _twilio(lambda r: httpx.Response(500))
    with pytest.raises(DependencyUnavailable) as info:
        await twilio.send_sms(verification_id="v", phone="+821012345678", text=TEXT, code=CODE)
    assert info.value.code == "channel_unsupported"
    _assert_safe(info.value)
    assert TwilioVoiceArs.slug == "twilio_voice"


# Twilio's published vectors: the official SDKs' RequestValidator test and the docs example.
_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def _doc_params(caller: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }


@pytest.mark.parametrize(
    ("caller", "signature"),
    [
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ],
)
def test_twilio_signature_matches_published_vectors(caller: str, signature: str) -> None:
    params = _doc_params(caller)
    assert verify_twilio_signature("12345", _DOC_URL, params, signature)
    assert not verify_twilio_signature("12346", _DOC_URL, params, signature)
    assert not verify_twilio_signature("12345", _DOC_URL + "&x=1", params, signature)
    assert not verify_twilio_signature("12345", _DOC_URL, {**params, "Digits": "1235"}, signature)
    assert not verify_twilio_signature("12345", _DOC_URL, params, "")


def _sign(url: str, form: dict[str, str]) -> str:
    payload = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(
        hmac.new(TW_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


async def test_twilio_callback_valid_signature_returns_digits() -> None:
    twilio = _twilio(lambda r: httpx.Response(500))
    url = twilio.callback_url("ver_1")
    assert url == "https://cert.example.kr/callbacks/ars/twilio/ver_1"
    form = {"AccountSid": TW_SID, "CallSid": "CA1", "Digits": CODE, "To": "+821012345678"}
    assert twilio.parse_callback(url, form, _sign(url, form)) == CODE


@pytest.mark.parametrize("header", [None, "", "bm90LWEtc2lnbmF0dXJl"])
async def test_twilio_callback_missing_or_bad_signature(header: str | None) -> None:
    twilio = _twilio(lambda r: httpx.Response(500))
    url = twilio.callback_url("ver_1")
    form = {"CallSid": "CA1", "Digits": CODE}
    with pytest.raises(Unauthenticated) as info:
        twilio.parse_callback(url, form, header)
    assert info.value.code == "callback_signature_invalid"
    assert CODE not in str(info.value)


async def test_twilio_callback_signature_bound_to_url_and_digits() -> None:
    twilio = _twilio(lambda r: httpx.Response(500))
    url = twilio.callback_url("ver_1")
    form = {"CallSid": "CA1", "Digits": CODE}
    signature = _sign(url, form)
    with pytest.raises(Unauthenticated):
        twilio.parse_callback(twilio.callback_url("ver_2"), form, signature)
    with pytest.raises(Unauthenticated):
        twilio.parse_callback(url, {**form, "Digits": "000000"}, signature)


async def test_twilio_callback_without_digits() -> None:
    twilio = _twilio(lambda r: httpx.Response(500))
    url = twilio.callback_url("ver_1")
    form = {"CallSid": "CA1"}
    with pytest.raises(InvalidInput):
        twilio.parse_callback(url, form, _sign(url, form))
