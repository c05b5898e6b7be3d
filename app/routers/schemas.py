"""Request and reply bodies (the public contract of API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from app.domain.certificates import Certificate
from app.services.issuer import pem_of

_SECRET: dict[str, Any] = {"writeOnly": True}


class ProblemFieldError(BaseModel):
    """One field that failed validation: where and why, never the value sent."""
    model_config = ConfigDict(extra="forbid")
    loc: list[str] = Field(description="e.g. [\"body\", \"pin\"]")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. `missing`")


class Problem(BaseModel):
    """An error reply (RFC 9457). ``type`` is a page of this service explaining ``code``."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "type": "http://127.0.0.1:8000/problems/pin_invalid", "title": "Wrong PIN",
        "status": 403, "detail": "wrong PIN", "code": "pin_invalid", "remaining_attempts": 3,
        "request_id": "5b0c1f6f4f7a4bd8a2b1f0c3d9e8a7b6"}]})
    type: str = Field(description="GET it for a page explaining the code: "
                                  "{CERTCLOUD_PUBLIC_BASE_URL}/problems/{code}")
    title: str
    status: int
    detail: str
    code: str = Field(description="A stable machine word naming the problem")
    request_id: str | None = Field(None, description="Also in the X-Request-ID header; quote "
                                                     "it to the operator")
    errors: list[ProblemFieldError] | None = Field(
        None, description="`invalid_request` and `malformed_json`: each field that failed")
    remaining_attempts: int | None = Field(
        None, description="`pin_invalid`, `pin_locked`, `verification_code_invalid`: tries "
                          "left before the lock")
    retry_after: int | None = Field(None, description="429: seconds to wait (as Retry-After)")
    limit: int | None = Field(None, description="429 `rate_limited_*`: the window's allowance")
    window_seconds: int | None = Field(None, description="429 `rate_limited_*`: the window")
    component: str | None = Field(None, description="`/readyz` 503: the first component down")
    components: dict[str, Literal["up", "down"]] | None = Field(
        None, description="`/readyz` 503: every component, `up` or `down`")


class TokenReply(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


class VerificationCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"phone": "+821012345678", "channel": "sms", "purpose": "issue"}]})
    phone: str = Field(max_length=32, description="E.164, e.g. +821012345678")
    channel: Literal["sms", "ars"]
    purpose: Literal["issue", "reissue", "unlock", "revoke", "suspend", "resume"] | None = None


class VerificationPublic(BaseModel):
    id: str
    channel: Literal["sms", "ars"]
    status: Literal["pending", "verified", "used", "failed", "expired"]
    purpose: Literal["issue", "reissue", "unlock", "revoke", "suspend", "resume"] | None
    expires_at: datetime
    display_code: str | None = Field(
        None, description="ARS only: shown on screen, keyed in by the person during the call")


class VerificationConfirm(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "123456"}]})
    code: str = Field(max_length=16, json_schema_extra=_SECRET)


class Person(BaseModel):
    # The name becomes the certificate's subject CN: at most 64 bytes of UTF-8 (RFC 5280
    # ub-common-name, as cryptography counts it), no control characters; the domain refuses
    # the invisible ones too (app.domain.identity.check_person_name).
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$",
                      examples=["홍길동"],
                      description="Visible characters only: controls, format characters (bidi "
                                  "overrides, zero-width), private-use and unassigned code "
                                  "points are refused with 422 `name_invalid`")
    rrn: str = Field(max_length=14, examples=["900101-1234567"], json_schema_extra=_SECRET)
    phone: str = Field(max_length=32, examples=["+821012345678"])
    email: str = Field(max_length=254,
                       pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$",
                       examples=["hong@example.com"])

    @field_validator("name")
    @classmethod
    def _fits_a_common_name(cls, value: str) -> str:
        if len(value.encode()) > 64:
            raise ValueError("name must fit in 64 bytes of UTF-8 (the certificate's common name)")
        return value


class BankChecks(BaseModel):
    account_password_verified: StrictBool
    contact_confirmed: StrictBool


class CertificateCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "verification_id": "3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a",
        "person": {"name": "홍길동", "rrn": "900101-1234567", "phone": "+821012345678",
                   "email": "hong@example.com"},
        "terms_accepted": True,
        "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
        "pin": "902714"}]})
    verification_id: str = Field(max_length=64)
    person: Person
    terms_accepted: StrictBool
    bank_checks: BankChecks
    pin: str = Field(max_length=16, json_schema_extra=_SECRET)


class ReissueRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"verification_id": "3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a", "pin": "902714"}]})
    verification_id: str = Field(max_length=64)
    pin: str = Field(max_length=16, json_schema_extra=_SECRET)


class UnlockRequest(BaseModel):
    verification_id: str = Field(max_length=64)


class PinChange(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"pin": "902714", "new_pin": "417093"}]})
    pin: str = Field(max_length=16, json_schema_extra=_SECRET)
    new_pin: str = Field(max_length=16, json_schema_extra=_SECRET)


RevocationReasonName = Literal[
    "unspecified", "key_compromise", "affiliation_changed", "superseded",
    "cessation_of_operation", "privilege_withdrawn"]


class RevokeRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"pin": "902714", "reason": "key_compromise"},
        {"verification_id": "3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a"}]})
    pin: str | None = Field(None, max_length=16, json_schema_extra=_SECRET)
    verification_id: str | None = Field(None, max_length=64)
    reason: RevocationReasonName = "unspecified"


class SuspendRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"pin": "902714"}, {"verification_id": "3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a"}]})
    pin: str | None = Field(None, max_length=16, json_schema_extra=_SECRET)
    verification_id: str | None = Field(None, max_length=64)


class ResumeRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"verification_id": "3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a"}]})
    verification_id: str = Field(max_length=64)


class LookupRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rrn": "900101-1234567"}]})
    rrn: str = Field(max_length=14, json_schema_extra=_SECRET)


class CertificatePublic(BaseModel):
    id: str
    serial: str = Field(description="lowercase hex, no 0x")
    status: Literal["active", "suspended", "revoked", "expired"]
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    replaces_id: str | None
    revocation_reason: str | None
    revoked_at: datetime | None
    locked: bool
    remaining_pin_attempts: int
    issued_by_client: str

    @classmethod
    def of(cls, certificate: Certificate, now: datetime) -> CertificatePublic:
        from app.domain.certificates import MAX_WRONG_PINS

        return cls(
            id=certificate.id, serial=certificate.serial,
            status=certificate.status_at(now).value, not_before=certificate.not_before,
            not_after=certificate.not_after,
            certificate_pem=pem_of(certificate.certificate_der),
            replaces_id=certificate.replaces_id,
            revocation_reason=(certificate.revocation_reason.api_name
                               if certificate.revocation_reason is not None else None),
            revoked_at=certificate.revoked_at, locked=certificate.locked,
            remaining_pin_attempts=max(MAX_WRONG_PINS - certificate.wrong_pins, 0),
            issued_by_client=certificate.issued_by_client)


class CertificateList(BaseModel):
    data: list[CertificatePublic]
    count: int


class StatusPublic(BaseModel):
    serial: str
    status: Literal["good", "suspended", "revoked", "expired", "unknown"] = Field(
        description="suspended: on hold; OCSP and the CRL say revoked, reason certificateHold")
    not_after: datetime | None
    revoked_at: datetime | None
    revocation_reason: str | None


class SandboxMessage(BaseModel):
    phone: str
    text: str
    code: str | None = Field(description="the code of a verification SMS; null for a notice")
    sent_at: datetime


class KeypadRequest(BaseModel):
    digits: str = Field(max_length=32)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(Health):
    components: dict[str, Literal["up", "down"]] = Field(
        examples=[{"database": "up", "counter_store": "up", "key_store": "up"}])
