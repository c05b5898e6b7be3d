"""Builds the phone verifier that the settings name."""

from __future__ import annotations

import httpx

from app.domain.ports import Clock, Notifier, PhoneVerifier
from app.settings import Settings
from app.verifiers.naver_sens import NaverSensSms
from app.verifiers.sandbox import SandboxVerifier
from app.verifiers.twilio_voice import TwilioVoiceArs


class ProviderVerifier:
    """SMS through one provider, ARS calls through another."""

    slug = "provider"

    def __init__(self, sms: NaverSensSms, ars: TwilioVoiceArs) -> None:
        self.sms, self.ars = sms, ars

    async def send_sms(self, *, verification_id: str, phone: str, text: str, code: str) -> None:
        await self.sms.send_sms(verification_id=verification_id, phone=phone, text=text,
                                code=code)

    async def start_call(self, *, verification_id: str, phone: str) -> None:
        await self.ars.start_call(verification_id=verification_id, phone=phone)


def build_verifier(settings: Settings, clock: Clock, http: httpx.AsyncClient) -> PhoneVerifier:
    if settings.verifier.kind == "sandbox":
        return SandboxVerifier(clock)
    sens, twilio = settings.verifier.sens, settings.verifier.twilio
    return ProviderVerifier(
        NaverSensSms(service_id=sens.service_id, access_key=sens.access_key.get_secret_value(),
                     secret_key=sens.secret_key.get_secret_value(), sender=sens.sender,
                     base_url=sens.base_url, http=http),
        TwilioVoiceArs(account_sid=twilio.account_sid,
                       auth_token=twilio.auth_token.get_secret_value(),
                       caller_id=twilio.caller_id, public_base_url=settings.public_base_url,
                       base_url=twilio.base_url, http=http))


def build_notifier(verifier: PhoneVerifier) -> Notifier:
    """Notices go out the way verification SMS do: the sandbox keeps them in its outbox, the
    provider sends them through SENS."""
    if isinstance(verifier, ProviderVerifier):
        return verifier.sms
    if isinstance(verifier, SandboxVerifier):
        return verifier
    raise TypeError(f"no notifier goes with the {verifier.slug} verifier")
