"""Certificate lifecycle endpoints for bank front-ends."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import (
    CertificatesDep,
    ClockDep,
    IssueClient,
    LookupDep,
    ReadClient,
    RevokeClient,
    SignClient,
)
from app.domain.certificates import RevocationReason
from app.routers.problem_catalog import responses_for
from app.routers.schemas import (
    CertificateCreate,
    CertificateList,
    CertificatePublic,
    LookupRequest,
    PinChange,
    ReissueRequest,
    RevokeRequest,
    UnlockRequest,
)
from app.services.certificates import PersonDetails

router = APIRouter(prefix="/v1/certificates", tags=["certificates"])


@router.post("", status_code=201, response_model=CertificatePublic,
             operation_id="issue_certificate", summary="Issue a certificate",
             responses=responses_for("issue_certificate"))
async def issue_certificate(body: CertificateCreate, principal: IssueClient,
                            certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.issue(
        client_id=principal.client_id, verification_id=body.verification_id,
        person=PersonDetails(body.person.name, body.person.rrn, body.person.phone,
                             body.person.email),
        terms_accepted=body.terms_accepted,
        account_password_verified=body.bank_checks.account_password_verified,
        contact_confirmed=body.bank_checks.contact_confirmed, pin=body.pin)
    return CertificatePublic.of(certificate, clock.now())


@router.post("/lookup", response_model=CertificateList, operation_id="lookup_certificates",
             summary="Find a person's certificates by RRN (newest first)",
             description="Each bank client may look up only so many RRNs a minute (429 "
                         "`rate_limited_lookups_per_client` with `Retry-After` past that); "
                         "every lookup, found or not, is audited with a keyed hash of the RRN.",
             responses=responses_for("lookup_certificates"))
async def lookup_certificates(body: LookupRequest, principal: ReadClient,
                              lookup: LookupDep, clock: ClockDep) -> CertificateList:
    found = await lookup.lookup(client_id=principal.client_id, rrn=body.rrn,
                                via="v1")
    now = clock.now()
    return CertificateList(data=[CertificatePublic.of(c, now) for c in found], count=len(found))


@router.get("/{certificate_id}", response_model=CertificatePublic,
            operation_id="get_certificate", summary="Read a certificate",
            responses=responses_for("get_certificate"))
async def get_certificate(certificate_id: str, _principal: ReadClient,
                          certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.get(certificate_id)
    return CertificatePublic.of(certificate, clock.now())


@router.post("/{certificate_id}/reissue", status_code=201, response_model=CertificatePublic,
             operation_id="reissue_certificate",
             summary="Reissue with a new key and PIN after a phone verification",
             responses=responses_for("reissue_certificate"))
async def reissue_certificate(certificate_id: str, body: ReissueRequest,
                              principal: IssueClient,
                              certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.reissue(
        client_id=principal.client_id, certificate_id=certificate_id,
        verification_id=body.verification_id, pin=body.pin)
    return CertificatePublic.of(certificate, clock.now())


@router.post("/{certificate_id}/unlock", response_model=CertificatePublic,
             operation_id="unlock_certificate",
             summary="Clear a PIN lockout after a phone verification (the PIN stays)",
             responses=responses_for("unlock_certificate"))
async def unlock_certificate(certificate_id: str, body: UnlockRequest, principal: IssueClient,
                             certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.unlock(
        client_id=principal.client_id, certificate_id=certificate_id,
        verification_id=body.verification_id)
    return CertificatePublic.of(certificate, clock.now())


@router.post("/{certificate_id}/pin", response_model=CertificatePublic,
             operation_id="change_pin", summary="Change the PIN (the key is rewrapped)",
             responses=responses_for("change_pin"))
async def change_pin(certificate_id: str, body: PinChange, principal: SignClient,
                     certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.change_pin(
        certificate_id=certificate_id, pin=body.pin, new_pin=body.new_pin,
        client_id=principal.client_id)
    return CertificatePublic.of(certificate, clock.now())


@router.post("/{certificate_id}/revoke", response_model=CertificatePublic,
             operation_id="revoke_certificate",
             summary="Revoke, proven by the PIN or a phone verification (idempotent)",
             responses=responses_for("revoke_certificate"))
async def revoke_certificate(certificate_id: str, body: RevokeRequest,
                             principal: RevokeClient,
                             certificates: CertificatesDep, clock: ClockDep
                            ) -> CertificatePublic:
    certificate = await certificates.revoke(
        client_id=principal.client_id, certificate_id=certificate_id,
        reason=RevocationReason.from_api_name(body.reason), pin=body.pin,
        verification_id=body.verification_id)
    return CertificatePublic.of(certificate, clock.now())
