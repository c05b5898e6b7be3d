"""SMS delivery through NAVER Cloud Platform SENS (SMS API v2).

Follows the documented shapes:
- https://api.ncloud-docs.com/docs/ai-application-service-sens-smsv2 (send message:
  ``POST /sms/v2/services/{serviceId}/messages``, JSON body, 202 with
  ``{"requestId", "requestTime", "statusCode": "202", "statusName": "success"}``);
- https://api.ncloud-docs.com/docs/common-ncpapi (``x-ncp-apigw-signature-v2``: base64
  HMAC-SHA256 over ``"{METHOD} {path}\\n{timestamp}\\n{accessKey}"`` keyed with the secret key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from app.domain.errors import DependencyUnavailable, InvalidInput

logger = logging.getLogger(__name__)

_PROVIDER = "NAVER SENS"
_SMS_MAX_BYTES = 90  # SENS: an SMS holds 90 bytes (EUC-KR); longer text goes as LMS.


def _epoch_millis() -> int:
    return time.time_ns() // 1_000_000


def sens_signature(secret_key: str, method: str, path: str, timestamp: str, access_key: str) -> str:
    """The ``x-ncp-apigw-signature-v2`` value for one request."""
    message = f"{method} {path}\n{timestamp}\n{access_key}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def to_korean_national(phone: str) -> str:
    """``+821012345678`` -> ``01012345678``; SENS wants the domestic format."""
    if not phone.startswith("+82"):
        raise InvalidInput("SENS delivers to Korean (+82) numbers only", code="phone_unsupported")
    rest = phone[3:]
    if not rest.isdigit() or not 7 <= len(rest) <= 11:
        raise InvalidInput("phone is not a valid E.164 Korean number", code="phone_invalid")
    return rest if rest.startswith("0") else "0" + rest


class NaverSensSms:
    """:class:`app.domain.ports.PhoneVerifier` that sends SMS through SENS, no voice calls;
    also the :class:`app.domain.ports.Notifier` of the provider setup."""

    slug = "naver_sens"

    def __init__(
        self,
        *,
        service_id: str,
        access_key: str,
        secret_key: str,
        sender: str,
        base_url: str = "https://sens.apigw.ntruss.com",
        http: httpx.AsyncClient,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._service_id = service_id
        self._access_key = access_key
        self._secret_key = secret_key
        self._sender = sender
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._clock = clock or _epoch_millis

    def _path(self) -> str:
        return f"/sms/v2/services/{quote(self._service_id, safe=':')}/messages"

    async def send_sms(self, *, verification_id: str, phone: str, text: str, code: str) -> None:
        """Send ``text`` to ``phone``; raise DependencyUnavailable unless SENS accepts it."""
        await self._send(f"verification {verification_id}", phone, text)

    async def send_notice(self, *, notice_id: str, phone: str, text: str) -> None:
        """:class:`app.domain.ports.Notifier`: the same SMS, for a notice."""
        await self._send(f"notice {notice_id}", phone, text)

    async def _send(self, reference: str, phone: str, text: str) -> None:
        to = to_korean_national(phone)
        try:
            size = len(text.encode("euc-kr"))
        except UnicodeEncodeError:
            size = len(text.encode("utf-8"))
        body = {
            "type": "SMS" if size <= _SMS_MAX_BYTES else "LMS",
            "contentType": "COMM",
            "countryCode": "82",
            "from": self._sender,
            "content": text,
            "messages": [{"to": to}],
        }
        path = self._path()
        timestamp = str(self._clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-ncp-apigw-timestamp": timestamp,
            "x-ncp-iam-access-key": self._access_key,
            "x-ncp-apigw-signature-v2": sens_signature(
                self._secret_key, "POST", path, timestamp, self._access_key
            ),
        }
        try:
            response = await self._http.post(self._base_url + path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"{_PROVIDER} timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{_PROVIDER} unreachable ({type(exc).__name__})") from None

        if response.status_code != 202:
            raise self._unavailable(
                f"{_PROVIDER} refused the message (HTTP {response.status_code})"
            )
        try:
            reply: Any = response.json()
        except ValueError:
            reply = None
        if (
            not isinstance(reply, dict)
            or not isinstance(reply.get("requestId"), str)
            or str(reply.get("statusCode")) != "202"
            or reply.get("statusName") != "success"
        ):
            raise self._unavailable(f"{_PROVIDER} sent an unexpected reply (HTTP 202)")
        logger.info("SENS accepted SMS for %s (request %s)", reference, reply["requestId"])

    async def start_call(self, *, verification_id: str, phone: str) -> None:
        raise DependencyUnavailable(
            f"{_PROVIDER} does not place voice calls", code="channel_unsupported"
        )

    @staticmethod
    def _unavailable(detail: str) -> DependencyUnavailable:
        logger.warning("%s", detail)
        return DependencyUnavailable(detail, code="verifier_unavailable")
