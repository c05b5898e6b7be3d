"""The sandbox provider (development only) and the ARS providers' signed callbacks."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.deps import ClockDep, VerificationsDep, VerifierDep
from app.domain.errors import DomainError, NotFound
from app.domain.verification import normalize_phone
from app.routers.problem_catalog import responses_for
from app.routers.schemas import KeypadRequest, SandboxMessage, VerificationPublic
from app.routers.verifications import public_verification
from app.verifiers.registry import ProviderVerifier
from app.verifiers.sandbox import SandboxVerifier

router = APIRouter(tags=["sandbox"])
callbacks_router = APIRouter(tags=["callbacks"])


def _sandbox(verifier: VerifierDep) -> SandboxVerifier:
    if not isinstance(verifier, SandboxVerifier):
        raise NotFound("the sandbox is not available", code="not_found")
    return verifier


@router.get("/sandbox/messages", response_model=list[SandboxMessage],
            operation_id="sandbox_messages", summary="SMS the sandbox would have sent",
            responses=responses_for("sandbox_messages"))
async def sandbox_messages(verifier: VerifierDep,
                           phone: str | None = Query(None, max_length=32)
                           ) -> list[SandboxMessage]:
    sandbox = _sandbox(verifier)
    wanted = normalize_phone(phone) if phone is not None else None
    return [SandboxMessage(phone=m.phone, text=m.text, code=m.code, sent_at=m.sent_at)
            for m in sandbox.messages(wanted)]


@router.post("/sandbox/ars/{verification_id}/keypad", response_model=VerificationPublic,
             operation_id="sandbox_ars_keypad",
             summary="Simulate the person keying digits in during the ARS call",
             responses=responses_for("sandbox_ars_keypad"))
async def sandbox_keypad(verification_id: str, body: KeypadRequest,
                         verifier: VerifierDep, verifications: VerificationsDep,
                         clock: ClockDep) -> VerificationPublic:
    _sandbox(verifier)
    verification = await verifications.confirm_keypad(
        verification_id=verification_id, digits=body.digits)
    return public_verification(verification, clock)


@callbacks_router.post("/callbacks/ars/twilio/{verification_id}", include_in_schema=False)
async def twilio_callback(verification_id: str, request: Request,
                          verifier: VerifierDep, verifications: VerificationsDep) -> Response:
    """Twilio's <Gather> posts the keyed digits here, signed with X-Twilio-Signature."""
    if not isinstance(verifier, ProviderVerifier):
        raise NotFound("no ARS provider is configured", code="not_found")
    ars = verifier.ars
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    digits = ars.parse_callback(ars.callback_url(verification_id), form,
                                request.headers.get("x-twilio-signature"))
    try:
        await verifications.confirm_keypad(verification_id=verification_id, digits=digits)
        said = "확인되었습니다."
    except DomainError:  # the call only says it failed; the bank sees the status
        said = "확인에 실패했습니다."
    twiml = ('<?xml version="1.0" encoding="UTF-8"?>'
             f'<Response><Say language="ko-KR">{said}</Say></Response>')
    return Response(twiml, media_type="application/xml")
