"""ARS voice calls through Twilio Programmable Voice.

Follows the documented shapes:
- https://www.twilio.com/docs/voice/api/call-resource (create a call:
  ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json``, form-encoded ``To``, ``From``, ``Twiml``,
  HTTP Basic auth with the account SID and auth token; 201 JSON with ``sid`` and ``status``);
- https://www.twilio.com/docs/voice/twiml/gather (``<Gather>`` POSTs ``Digits`` to ``action``);
- https://www.twilio.com/docs/usage/webhooks/webhooks-security (``X-Twilio-Signature``: base64
  HMAC-SHA1, keyed with the auth token, over the full URL followed by each POST parameter's
  name and value, sorted by name).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote

import httpx

from app.domain.errors import DependencyUnavailable, InvalidInput, Unauthenticated

logger = logging.getLogger(__name__)

_PROVIDER = "Twilio Voice"
_LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
_PROMPT = "본인 확인 전화입니다. 화면에 표시된 여섯 자리 숫자를 휴대폰 키패드로 입력해 주세요."


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and POST ``form``."""
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio_signature(
    auth_token: str, url: str, form: Mapping[str, str], signature: str
) -> bool:
    """True when ``signature`` is Twilio's signature of ``url`` and ``form``."""
    if not signature:
        return False
    expected = twilio_signature(auth_token, url, form)
    return hmac.compare_digest(expected.encode(), signature.encode())


class TwilioVoiceArs:
    """:class:`app.domain.ports.PhoneVerifier` that places ARS calls; no SMS."""

    slug = "twilio_voice"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        caller_id: str,
        public_base_url: str,
        base_url: str = "https://api.twilio.com",
        http: httpx.AsyncClient,
    ) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._caller_id = caller_id
        self._public_base_url = public_base_url.rstrip("/")
        self._base_url = base_url.rstrip("/")
        self._http = http

    def callback_url(self, verification_id: str) -> str:
        """The public URL Twilio POSTs the keyed digits to (and signs)."""
        vid = quote(verification_id, safe="")
        return f"{self._public_base_url}/callbacks/ars/twilio/{vid}"

    def twiml(self, verification_id: str) -> str:
        """The call script: a ``<Gather>`` of 6 DTMF digits posted to the callback."""
        action = escape(self.callback_url(verification_id), quote=True)
        return (
            f'<Response><Gather input="dtmf" numDigits="6" timeout="30" action="{action}"'
            f' method="POST"><Say language="ko-KR">{escape(_PROMPT)}</Say></Gather></Response>'
        )

    async def start_call(self, *, verification_id: str, phone: str) -> None:
        """Place the call; raise DependencyUnavailable unless Twilio queues it."""
        url = f"{self._base_url}/2010-04-01/Accounts/{quote(self._account_sid, safe='')}/Calls.json"
        form = {"To": phone, "From": self._caller_id, "Twiml": self.twiml(verification_id)}
        try:
            response = await self._http.post(
                url, data=form, auth=httpx.BasicAuth(self._account_sid, self._auth_token)
            )
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"{_PROVIDER} timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{_PROVIDER} unreachable ({type(exc).__name__})") from None

        try:
            reply: Any = response.json()
        except ValueError:
            reply = None
        if response.status_code != 201:
            error = reply.get("code") if isinstance(reply, dict) else None
            suffix = f", error {error}" if isinstance(error, int) else ""
            raise self._unavailable(
                f"{_PROVIDER} refused the call (HTTP {response.status_code}{suffix})"
            )
        if (
            not isinstance(reply, dict)
            or not isinstance(reply.get("sid"), str)
            or reply.get("status") not in _LIVE_STATUSES
        ):
            raise self._unavailable(f"{_PROVIDER} sent an unexpected reply (HTTP 201)")
        logger.info("Twilio queued ARS call %s for verification %s", reply["sid"], verification_id)

    async def send_sms(self, *, verification_id: str, phone: str, text: str, code: str) -> None:
        raise DependencyUnavailable(f"{_PROVIDER} does not send SMS", code="channel_unsupported")

    def parse_callback(
        self, url: str, form: Mapping[str, str], signature_header: str | None
    ) -> str:
        """The ``Digits`` of a ``<Gather>`` callback whose signature checks out."""
        if not signature_header or not verify_twilio_signature(
            self._auth_token, url, form, signature_header
        ):
            raise Unauthenticated(
                "ARS callback signature is invalid", code="callback_signature_invalid"
            )
        digits = form.get("Digits")
        if not digits:
            raise InvalidInput("ARS callback carries no digits", code="callback_invalid")
        return digits

    @staticmethod
    def _unavailable(detail: str) -> DependencyUnavailable:
        logger.warning("%s", detail)
        return DependencyUnavailable(detail, code="verifier_unavailable")
