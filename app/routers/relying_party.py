"""Relying parties: POST /v1/signatures/verify (no account) and POST /v1/identity/check."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.deps import IdentityCheckClient, IdentityCheckDep, SignatureVerificationDep
from app.domain.serials import serial_hex
from app.routers.encoding import base64_field, optional_base64_field
from app.routers.problem_catalog import responses_for
from app.services.issuer import pem_of
from app.services.signature_verification import VerifyRequest, VerifyResult

router = APIRouter(prefix="/v1", tags=["relying parties"])

_B64 = "standard base64 (RFC 4648 §4, with padding)"
_SECRET: dict[str, Any] = {"writeOnly": True}
# Inside the 64 KiB body limit; a longer field would be refused there anyway.
_MAX_B64 = 64 * 1024
_MAX_PEM = 16 * 1024


class VerifyBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"signature": "MIIG...base64 CMS...", "format": "cms"},
        {"signature": "MIIG...base64 detached CMS...", "format": "cms",
         "data": "7KCE7J6QIOyEnOuqhQ=="},
        {"signature": "k2Vh...base64...", "format": "raw",
         "digest": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
         "digest_algorithm": "sha256", "serial": "5f3a9c0e21b7d4"},
    ]})
    signature: str = Field(max_length=_MAX_B64, description=f"The signature, {_B64}: a DER CMS "
                           "SignedData (`cms`) or the raw signature value (`raw`)")
    format: Literal["cms", "raw"] = "cms"
    data: str | None = Field(None, max_length=_MAX_B64,
                             description=f"The signed data, {_B64} (detached CMS, raw)")
    digest: str | None = Field(None, max_length=256,
                               description=f"Its digest instead, {_B64}")
    digest_algorithm: Literal["sha256", "sha384", "sha512"] = Field(
        "sha256", description="For `raw` (a CMS names its own)")
    padding: Literal["pkcs1v15", "pss"] = Field("pkcs1v15", description="`raw` RSA only")
    certificate_pem: str | None = Field(None, max_length=_MAX_PEM,
                                        description="The signer's certificate (PEM)")
    serial: str | None = Field(None, max_length=64,
                               description="Or its serial (hex) as this service issued it")


class Signer(BaseModel):
    serial: str = Field(description="hex")
    subject: str = Field(description="RFC 4514")
    certificate_pem: str


class RevocationPublic(BaseModel):
    revoked_at: datetime
    reason: str


class VerifyReply(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"valid": True, "reasons": [],
         "signer": {"serial": "5f3a9c0e21b7d4", "subject": "2.5.4.5=3f9c...,CN=홍길동,C=KR",
                    "certificate_pem": "-----BEGIN CERTIFICATE-----\n..."},
         "signing_time": "2026-03-01T09:00:00Z", "time_source": "signed_attributes",
         "status_at_signing": "active", "status_now": "revoked",
         "revocation": {"revoked_at": "2026-05-01T09:00:00Z", "reason": "key_compromise"}},
    ]})
    valid: bool
    reasons: list[str] = Field(description="Stable codes, one per failure (empty when valid): "
                               "`signature_invalid`, `content_mismatch`, `signer_mismatch`, "
                               "`certificate_unknown`, `not_issued_here`, "
                               "`revoked_before_signing`, `expired_at_signing`, "
                               "`certificate_revoked`, `certificate_expired` (no signing "
                               "time), `signing_time_in_future`, `algorithm_unsupported`, "
                               "`timestamp_invalid`, `timestamp_mismatch`, "
                               "`timestamp_untrusted`")
    signer: Signer | None
    signing_time: datetime | None
    time_source: Literal["signed_attributes", "timestamp"] | None
    status_at_signing: Literal["active", "revoked", "expired"] | None
    status_now: Literal["active", "revoked", "expired"] | None
    revocation: RevocationPublic | None = Field(
        description="Set when the certificate is revoked now (also after the signing time)")

    @classmethod
    def of(cls, result: VerifyResult) -> VerifyReply:
        signer = None
        if result.signer is not None:
            from cryptography.hazmat.primitives import serialization

            der = result.signer.public_bytes(serialization.Encoding.DER)
            signer = Signer(serial=serial_hex(result.signer.serial_number),
                            subject=result.signer.subject.rfc4514_string(),
                            certificate_pem=pem_of(der))
        revocation = None if result.revocation is None else RevocationPublic(
            revoked_at=result.revocation.revoked_at, reason=result.revocation.reason)
        return cls(valid=result.valid, reasons=result.reasons, signer=signer,
                   signing_time=result.signing_time,
                   time_source=None if result.time_source is None else result.time_source.value,
                   status_at_signing=(None if result.status_at_signing is None
                                      else result.status_at_signing.value),
                   status_now=None if result.status_now is None else result.status_now.value,
                   revocation=revocation)


class IdentityCheckBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"serial": "5f3a9c0e21b7d4", "rrn": "900101-1234567"}]})
    serial: str | None = Field(None, max_length=64, description="hex")
    certificate_pem: str | None = Field(None, max_length=_MAX_PEM)
    rrn: str = Field(max_length=14, json_schema_extra=_SECRET)


class IdentityCheckReply(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"match": True}]})
    match: bool = Field(description="Whether the RRN is the one bound in the certificate's VID")


@router.post(
    "/signatures/verify", response_model=VerifyReply, operation_id="verify_signature",
    summary="Verify a signature and the signer's certificate status at signing time and now",
    description="No account needed; each source address may ask only so many a minute (429 "
                "`rate_limited_signature_checks_per_address`). A CMS SignedData (attached, or "
                "detached with `data` or `digest`), or a `raw` signature with `data` or "
                "`digest` and the signer's `certificate_pem` or `serial`. A certificate "
                "revoked after the signing time leaves the signature valid, with the "
                "revocation reported. Unreadable input is a 422 problem; a signature that does "
                "not hold is a 200 with `valid: false` and the `reasons`.",
    responses=responses_for("verify_signature"))
async def verify_signature(body: VerifyBody, request: Request,
                           verification: SignatureVerificationDep) -> JSONResponse:
    signature = base64_field(body.signature, "signature")
    source = request.client.host if request.client else "unknown"
    result = await verification.verify(VerifyRequest(
        signature=signature, format=body.format, data=optional_base64_field(body.data, "data"),
        digest=optional_base64_field(body.digest, "digest"), hash_name=body.digest_algorithm,
        pss=body.padding == "pss", certificate_pem=body.certificate_pem,
        serial=body.serial), source=source)
    return JSONResponse(VerifyReply.of(result).model_dump(mode="json"),
                        headers={"Cache-Control": "no-store"})


@router.post(
    "/identity/check", response_model=IdentityCheckReply, operation_id="check_identity",
    summary="Does this RRN belong to the certificate's holder? (KISA VID, scope identity:check)",
    description="Recomputes the certificate's VID (KISA identity binding) from the RRN and the "
                "certificate's random R. Each answer is an RRN oracle: only clients with the "
                "`identity:check` scope (never a default bank scope), only so many a minute "
                "(429 `rate_limited_identity_checks_per_client`), every check audited with a "
                "keyed hash of the RRN.",
    responses=responses_for("check_identity"))
async def check_identity(body: IdentityCheckBody, principal: IdentityCheckClient,
                         identity_check: IdentityCheckDep) -> JSONResponse:
    match = await identity_check.check(
        client_id=principal.client_id, serial=body.serial,
        certificate_pem=body.certificate_pem, rrn=body.rrn)
    return JSONResponse(IdentityCheckReply(match=match).model_dump(),
                        headers={"Cache-Control": "no-store"})
