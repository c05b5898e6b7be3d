"""Phone verification endpoints for bank front-ends."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ClockDep, IssueClient, VerificationsDep
from app.domain.errors import DependencyUnavailable
from app.domain.verification import Channel, Purpose, Verification
from app.routers.problem_catalog import responses_for
from app.routers.schemas import VerificationConfirm, VerificationCreate, VerificationPublic

router = APIRouter(prefix="/v1/verifications", tags=["verifications"])


def public_verification(verification: Verification, clock: ClockDep,
                        display_code: str | None = None) -> VerificationPublic:
    return VerificationPublic(
        id=verification.id, channel=verification.channel.value,
        status=verification.status_at(clock.now()).value,
        purpose=verification.purpose.value if verification.purpose else None,
        expires_at=verification.expires_at, display_code=display_code)


@router.post("", status_code=201, response_model=VerificationPublic,
             operation_id="start_verification", summary="Start a phone verification",
             responses=responses_for("start_verification"))
async def start_verification(body: VerificationCreate, principal: IssueClient,
                             verifications: VerificationsDep, clock: ClockDep,
                             request: Request) -> VerificationPublic:
    provider_up = request.app.state.metrics.provider_up
    try:
        started = await verifications.start(
            client_id=principal.client_id, phone=body.phone, channel=Channel(body.channel),
            purpose=Purpose(body.purpose) if body.purpose else None)
    except DependencyUnavailable as exc:
        if exc.code == "verifier_unavailable":
            provider_up.set(0)
        raise
    provider_up.set(1)
    return public_verification(started.verification, clock, started.display_code)


@router.get("/{verification_id}", response_model=VerificationPublic,
            operation_id="get_verification", summary="Read a verification (poll ARS calls)",
            responses=responses_for("get_verification"))
async def get_verification(verification_id: str, principal: IssueClient,
                           verifications: VerificationsDep, clock: ClockDep
                           ) -> VerificationPublic:
    verification = await verifications.get(client_id=principal.client_id,
                                                     verification_id=verification_id)
    return public_verification(verification, clock)


@router.post("/{verification_id}/confirm", response_model=VerificationPublic,
             operation_id="confirm_verification", summary="Confirm an SMS code",
             responses=responses_for("confirm_verification"))
async def confirm_verification(verification_id: str, body: VerificationConfirm,
                               principal: IssueClient,
                               verifications: VerificationsDep, clock: ClockDep
                           ) -> VerificationPublic:
    verification = await verifications.confirm_sms(
        client_id=principal.client_id, verification_id=verification_id, code=body.code)
    return public_verification(verification, clock)
