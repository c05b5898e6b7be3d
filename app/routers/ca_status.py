"""Relying parties, no account: the CA certificate and JSON status."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import CaDep, CertificatesDep, ClockDep
from app.domain.certificates import CertificateStatus
from app.domain.errors import InvalidInput
from app.domain.serials import parse_serial
from app.routers.problem_catalog import responses_for
from app.routers.schemas import StatusPublic

router = APIRouter(tags=["status"])
StatusWord = Literal["good", "revoked", "expired"]
_STATUS_WORD: dict[CertificateStatus, StatusWord] = {
    CertificateStatus.ACTIVE: "good", CertificateStatus.REVOKED: "revoked",
    CertificateStatus.EXPIRED: "expired"}


@router.get("/ca/certificate", response_class=Response, operation_id="ca_certificate_der",
            summary="The CA certificate (DER)",
            responses={200: {"content": {"application/pkix-cert": {}}}})
async def ca_certificate(ca: CaDep) -> Response:
    return Response(ca.certificate_der, media_type="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/ca/certificate.pem", response_class=Response, operation_id="ca_certificate_pem",
            summary="The CA certificate (PEM)",
            responses={200: {"content": {"application/x-pem-file": {}}}})
async def ca_certificate_pem(ca: CaDep) -> Response:
    return Response(ca.certificate_pem, media_type="application/x-pem-file",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/ca/chain.pem", response_class=Response, operation_id="ca_chain_pem",
            summary="The issuing CA, then the chain above it up to the root (PEM)",
            description="For a self-signed CA (development's default) just the CA itself.",
            responses={200: {"content": {"application/pem-certificate-chain": {}}}})
async def ca_chain_pem(ca: CaDep) -> Response:
    return Response(ca.chain_pem,
                    media_type="application/pem-certificate-chain",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/v1/status/{serial}", response_model=StatusPublic, operation_id="get_status",
            summary="Certificate status by serial (lowercase hex)",
            responses=responses_for("get_status"))
async def get_status(serial: str, certificates: CertificatesDep,
                     clock: ClockDep) -> StatusPublic:
    normalized = parse_serial(serial)
    if normalized is None:
        raise InvalidInput("serial must be hexadecimal", code="serial_invalid")
    certificate = await certificates.by_serial(normalized)
    if certificate is None:
        return StatusPublic(serial=normalized, status="unknown", not_after=None,
                            revoked_at=None, revocation_reason=None)
    status = certificate.status_at(clock.now())
    return StatusPublic(
        serial=certificate.serial, status=_STATUS_WORD[status], not_after=certificate.not_after,
        revoked_at=certificate.revoked_at,
        revocation_reason=(certificate.revocation_reason.api_name
                           if certificate.revocation_reason is not None else None))
