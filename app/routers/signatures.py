"""POST /v1/certificates/{id}/signatures: raw and CMS signatures, one or a batch per PIN."""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.deps import ClockDep, SignClient, SigningDep
from app.domain.errors import InvalidInput
from app.routers.encoding import optional_base64_field
from app.routers.problem_catalog import responses_for
from app.routers.schemas import CertificatePublic
from app.services.signing import (
    MAX_BATCH,
    Mechanism,
    Padding,
    Payload,
    SignatureFormat,
    SignOptions,
)

router = APIRouter(prefix="/v1/certificates", tags=["signatures"])

_SECRET: dict[str, Any] = {"writeOnly": True}
_B64 = "standard base64 (RFC 4648 §4, with padding)"


class SignatureItem(BaseModel):
    """One item of a batch: the data, or its digest (same rules as the single fields)."""

    data: str | None = Field(None, description=f"The data to sign, {_B64}")
    digest: str | None = Field(None, description=f"Its digest instead, {_B64}")


class SignatureCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"pin": "902714", "data": "7KCE7J6QIOyEnOuqhQ==", "format": "cms", "detached": False},
        {"pin": "902714", "digest": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
         "digest_algorithm": "sha256", "format": "raw"},
        {"pin": "902714", "items": [{"data": "7JW97KCV7ISc"}, {"data": "7J207LK0"}],
         "format": "cms"},
    ]})
    pin: str = Field(max_length=16, json_schema_extra=_SECRET)
    data: str | None = Field(None, description=f"The data to sign, {_B64}")
    digest: str | None = Field(
        None, description=f"The digest of the data, {_B64}: with `raw`, or with `cms` and "
                          "`detached: true`")
    items: list[SignatureItem] | None = Field(
        None, description=f"Batch signing: up to {MAX_BATCH} items signed under one PIN check, "
                          "answered in order in `signatures`. Excludes `data` and `digest`.")
    digest_algorithm: Literal["sha256", "sha384", "sha512"] = "sha256"
    format: Literal["raw", "cms"] = Field(
        "raw", description="`raw`: PKCS#1 v1.5 (or PSS) for RSA, DER ECDSA for EC, over the "
                           "digest; `cms`: DER CMS SignedData (CAdES-BES)")
    detached: StrictBool = Field(False, description="`cms` only: leave the content out")
    timestamp: StrictBool = Field(
        False, description="`cms` only: add a signature time-stamp from the service's TSA "
                           "(unsigned attribute id-aa-signatureTimeStampToken over the "
                           "signature value: CAdES-T); with `raw`, 422 "
                           "`timestamp_requires_cms`")
    padding: Literal["pkcs1v15", "pss"] = Field(
        "pkcs1v15", description="RSA keys only: PSS uses MGF1 with the digest algorithm and a "
                                "salt as long as the digest")
    include_r: StrictBool = Field(
        False, description="Also return `r_value`, the signing certificate's VID random R "
                           "(KISA identity binding), as KFTC's SDK returns `rValue`: whoever "
                           "knows the holder's RRN then checks the certificate's VID")


class SignaturePublic(BaseModel):
    signature: str | None = Field(
        None, description="base64; single requests (`data` or `digest`)")
    signatures: list[str] | None = Field(
        None, description="base64, in the order of `items`; batch requests only")
    format: Literal["raw", "cms"]
    certificate_pem: str = Field(description="The certificate whose key made the signature(s)")
    renewed: CertificatePublic | None = Field(
        description="Set when this request renewed the certificate (last 30 days before "
                    "expiry); the signature(s) were then made with the renewed certificate")
    r_value: str | None = Field(
        None, description="base64 of the signing certificate's VID random R; only with "
                          "`include_r` (null for a certificate issued without a VID)")


def _payloads(body: SignatureCreate) -> tuple[list[Payload], bool]:
    """The payloads and whether this is a batch request."""
    if body.items is not None:
        if body.data is not None or body.digest is not None:
            raise InvalidInput("give items, or data or digest, not both",
                               code="payload_required")
        return [Payload(data=optional_base64_field(item.data, f"items[{i}].data"),
                        digest=optional_base64_field(item.digest, f"items[{i}].digest"))
                for i, item in enumerate(body.items)], True
    return [Payload(data=optional_base64_field(body.data, "data"),
                    digest=optional_base64_field(body.digest, "digest"))], False


@router.post(
    "/{certificate_id}/signatures", response_model=SignaturePublic,
    operation_id="create_signature",
    summary="Sign data or a digest with the certificate's key (raw or CMS), checked by the PIN",
    description="A wrong PIN is 403 `pin_invalid` with `remaining_attempts`; five in a row lock "
                "the certificate (423 `pin_locked`); a correct PIN resets the count. Inside the "
                "last 30 days before expiry the certificate is renewed first (new key under the "
                "same PIN, `renewed` set) and the signature is made with the renewed one. "
                f"`items` signs up to {MAX_BATCH} data items or digests under one PIN check.",
    responses=responses_for("create_signature"))
async def create_signature(certificate_id: str, body: SignatureCreate, principal: SignClient,
                           signing: SigningDep, clock: ClockDep) -> JSONResponse:
    payloads, batch = _payloads(body)
    signed = await signing.sign(
        client_id=principal.client_id, certificate_id=certificate_id, pin=body.pin,
        payloads=payloads,
        options=SignOptions(format=SignatureFormat(body.format),
                            mechanism=Mechanism(body.digest_algorithm, Padding(body.padding)),
                            detached=body.detached, timestamp=body.timestamp,
                            include_r=body.include_r))
    now = clock.now()
    encoded = [base64.b64encode(s).decode() for s in signed.signatures]
    reply = SignaturePublic(
        signature=None if batch else encoded[0], signatures=encoded if batch else None,
        format=body.format,
        certificate_pem=CertificatePublic.of(signed.certificate, now).certificate_pem,
        renewed=None if signed.renewed is None else CertificatePublic.of(signed.renewed, now),
        r_value=None if signed.random_r is None else base64.b64encode(signed.random_r).decode())
    excluded = {"signature" if batch else "signatures"} | (set() if body.include_r
                                                          else {"r_value"})
    content = reply.model_dump(mode="json", exclude=excluded)
    return JSONResponse(content, headers={"Cache-Control": "no-store"})
