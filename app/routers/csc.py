"""The CSC API v1 (Cloud Signature Consortium, 1.0.4.0 field names) under /csc/v1/.

Errors keep the CSC (OAuth 2.0 style) shape ``{"error", "error_description"}``:

* 400 ``invalid_request``: a missing or mistyped parameter, an unknown credential, broken
  base64, a hash length that fits no algorithm, too many hashes, an unknown, used, expired or
  foreign SAD, hashes the SAD does not cover, a credential that is revoked or expired;
* 400 ``invalid_pin``: a wrong PIN (it counts towards the lockout; ``remaining_attempts`` says
  how many tries are left); 400 ``access_denied``: the credential is locked after five;
* 401 ``invalid_token`` (no or bad Bearer token), 403 ``insufficient_scope`` (RFC 6750);
* 429, 503 ``temporarily_unavailable`` and 500 ``server_error`` as in RFC 6749.

A route class turns every failure of these routes, validation included, into that shape, so
nothing here reaches the problem+json handlers of ``/v1``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException

from app.deps import CaDep, CscDep, SettingsDep, SignClient
from app.domain.errors import (
    Conflict,
    DependencyUnavailable,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PinInvalid,
    PinLocked,
    RateLimited,
    Unauthenticated,
)
from app.routers.problem_catalog import csc_responses_for
from app.services.auth import Scope
from app.services.csc import MAX_HASHES, SAD_LIFETIME, generalized_time

log = logging.getLogger(__name__)

SPECS = "1.0.4.0"
METHODS = ["credentials/list", "credentials/info", "credentials/authorize",
           "signatures/signHash"]
# A small inline logo (the spec wants a URI of an image).
LOGO = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" '
    b'height="64" rx="12" fill="#1f4e8c"/><text x="32" y="41" font-size="22" '
    b'text-anchor="middle" fill="#fff" font-family="sans-serif">CC</text></svg>').decode()


class CscError(Exception):
    def __init__(self, status: int, error: str, description: str,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers, self.extra = headers, extra


def csc_response(exc: CscError) -> JSONResponse:
    body = {"error": exc.error, "error_description": exc.description, **exc.extra}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def from_domain(exc: DomainError) -> CscError:
    """A domain error in the CSC shape."""
    if isinstance(exc, Unauthenticated):
        return CscError(401, "invalid_token", exc.detail,
                        {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if isinstance(exc, Forbidden):
        return CscError(403, "insufficient_scope", exc.detail,
                        {"WWW-Authenticate": f'Bearer error="insufficient_scope", '
                                             f'scope="{Scope.SIGN.value}"'})
    if isinstance(exc, PinInvalid):
        return CscError(400, "invalid_pin", f"The PIN is invalid: {exc.detail}",
                        remaining_attempts=exc.extra.get("remaining_attempts"))
    if isinstance(exc, PinLocked):
        return CscError(400, "access_denied", f"The credential is locked: {exc.detail}",
                        remaining_attempts=0)
    if isinstance(exc, NotFound):
        return CscError(400, "invalid_request", "Invalid parameter credentialID")
    if isinstance(exc, InvalidInput | Conflict):
        return CscError(400, "invalid_request", exc.detail)
    if isinstance(exc, RateLimited):
        return CscError(429, "rate_limited", exc.detail,
                        {"Retry-After": str(exc.extra.get("retry_after", 1))})
    if isinstance(exc, DependencyUnavailable):
        log.warning("dependency unavailable", extra={"code_name": exc.code})
        return CscError(503, "temporarily_unavailable", exc.detail)
    return CscError(400, "invalid_request", exc.detail)


_TYPE_NAMES = {"credentialID": "string", "userID": "string", "SAD": "string", "PIN": "string",
               "OTP": "string", "hashAlgo": "string", "signAlgo": "string",
               "signAlgoParams": "string", "certificates": "string", "clientData": "string",
               "description": "string", "pageToken": "string", "lang": "string",
               "numSignatures": "integer", "maxResults": "integer", "hash": "array",
               "certInfo": "boolean", "authInfo": "boolean"}
_TYPE_ERRORS = frozenset({"missing", "string_type", "int_type", "bool_type", "list_type",
                          "model_type", "model_attributes_type", "dict_type"})


def from_validation(exc: RequestValidationError) -> CscError:
    """The first problem, worded as the CSC specification words it."""
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return CscError(400, "invalid_request", "The request body is not valid JSON")
        loc = [str(part) for part in error.get("loc", ())]
        if len(loc) < 2 or loc[0] != "body":
            continue
        name = loc[1]
        if len(loc) > 2:  # an element of an array (hash)
            return CscError(400, "invalid_request", f"Invalid parameter {name}")
        if error.get("type") in _TYPE_ERRORS:
            kind = _TYPE_NAMES.get(name)
            what = f"{kind} parameter" if kind else "parameter"
            return CscError(400, "invalid_request", f"Missing (or invalid type) {what} {name}")
        return CscError(400, "invalid_request", f"Invalid parameter {name}")
    return CscError(400, "invalid_request", "The request body must be a JSON object")


class CscRoute(APIRoute):
    """Every failure of a CSC route, in the CSC error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except CscError as exc:
                return csc_response(exc)
            except RequestValidationError as exc:
                return csc_response(from_validation(exc))
            except DomainError as exc:
                return csc_response(from_domain(exc))
            except HTTPException as exc:
                if exc.status_code == 400:  # a body that is not decodable JSON
                    return csc_response(CscError(400, "invalid_request",
                                                 "the body is not valid JSON"))
                raise  # 413 and the like: the edge answers them as for every path
            except Exception as exc:
                log.error("unhandled error", exc_info=exc)
                return csc_response(CscError(500, "server_error",
                                             "an unexpected error occurred"))

        return handler


router = APIRouter(prefix="/csc/v1", tags=["csc"], route_class=CscRoute)

class CscBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    clientData: StrictStr | None = None  # CSC field names are camelCase


# --- info ---------------------------------------------------------------------------------


class InfoRequest(BaseModel):
    lang: StrictStr | None = None


class InfoReply(BaseModel):
    specs: str
    name: str
    logo: str
    region: str
    lang: str
    description: str
    authType: list[str]
    oauth2: str
    methods: list[str]


@router.post("/info", response_model=InfoReply, operation_id="csc_info",
             summary="CSC: the service and the methods it implements",
             description="Unlike the CSC specification, this needs a Bearer token too: every "
                         "/csc/v1 call of a bank is authenticated.",
             responses=csc_responses_for("csc_info"))
async def info(_principal: SignClient, settings: SettingsDep,
               _body: InfoRequest | None = None) -> InfoReply:
    return InfoReply(
        specs=SPECS, name="Certcloud", logo=LOGO, region="KR", lang="en-US",
        description="Certcloud remote signing with personal cloud certificates (SCAL 2: the "
                    "PIN authorises exactly the hashes it is given).",
        authType=["oauth2client"], oauth2=settings.public_base_url,
        methods=METHODS)


# --- credentials/list ---------------------------------------------------------------------


class ListRequest(CscBody):
    userID: StrictStr = Field(
        max_length=14, description="The holder's RRN", json_schema_extra={"writeOnly": True})
    maxResults: StrictInt | None = Field(None, ge=1)
    pageToken: StrictStr | None = None


class ListReply(BaseModel):
    credentialIDs: list[str]


@router.post("/credentials/list", response_model=ListReply, operation_id="csc_credentials_list",
             summary="CSC: the holder's active credential (userID is the RRN)",
             responses=csc_responses_for("csc_credentials_list"))
async def credentials_list(body: ListRequest, principal: SignClient,
                           csc: CscDep) -> ListReply:
    if body.pageToken is not None:
        raise CscError(400, "invalid_request", "Invalid parameter pageToken")
    found = await csc.list_credentials(client_id=principal.client_id, user_id=body.userID)
    return ListReply(credentialIDs=found[: body.maxResults] if body.maxResults else found)


# --- credentials/info ---------------------------------------------------------------------


class InfoCredentialRequest(CscBody):
    credentialID: StrictStr = Field(max_length=64)
    certificates: Literal["none", "single", "chain"] = "single"
    certInfo: StrictBool = False
    authInfo: StrictBool = False
    lang: StrictStr | None = None


class KeyInfo(BaseModel):
    status: Literal["enabled", "disabled"]
    algo: list[str]
    len: int
    curve: str | None = None


class CertInfo(BaseModel):
    status: Literal["valid", "revoked", "expired"]
    certificates: list[str] | None = None
    issuerDN: str | None = None
    serialNumber: str | None = None
    subjectDN: str | None = None
    validFrom: str | None = None
    validTo: str | None = None


class PinInfo(BaseModel):
    presence: Literal["true", "false", "optional"]
    format: Literal["A", "N"] | None = None
    label: str | None = None
    description: str | None = None


class CredentialInfoReply(BaseModel):
    description: str
    key: KeyInfo
    cert: CertInfo
    authMode: Literal["implicit", "explicit", "oauth2code"]
    PIN: PinInfo
    OTP: PinInfo
    SCAL: Literal["1", "2"]
    multisign: int
    lang: str


@router.post("/credentials/info", response_model=CredentialInfoReply,
             response_model_exclude_none=True, operation_id="csc_credentials_info",
             summary="CSC: key algorithms, certificate chain (signer first) and PIN rules",
             responses=csc_responses_for("csc_credentials_info"))
async def credentials_info(body: InfoCredentialRequest, _principal: SignClient,
                           csc: CscDep, ca: CaDep) -> CredentialInfoReply:
    credential = await csc.credential(body.credentialID)
    certificate = credential.certificate
    chain: list[bytes] = []
    if body.certificates != "none":
        chain.append(certificate.certificate_der)
    if body.certificates == "chain":
        chain += ca.chain_der
    cert = CertInfo(
        status="valid" if credential.status.value == "active" else credential.status.value,
        certificates=[base64.b64encode(der).decode() for der in chain] or None)
    if body.certInfo:
        cert.issuerDN = credential.parsed.issuer.rfc4514_string()
        cert.subjectDN = credential.parsed.subject.rfc4514_string()
        cert.serialNumber = certificate.serial
        cert.validFrom = generalized_time(certificate.not_before)
        cert.validTo = generalized_time(certificate.not_after)
    return CredentialInfoReply(
        description="Certcloud personal signing certificate",
        key=KeyInfo(status="enabled" if credential.key_enabled else "disabled",
                    algo=credential.algorithms, len=credential.key_bits,
                    curve=credential.curve_oid),
        cert=cert, authMode="explicit",
        PIN=PinInfo(presence="true", format="N", label="PIN",
                    description="The 6-digit certificate PIN"),
        OTP=PinInfo(presence="false"), SCAL="2", multisign=MAX_HASHES, lang="en-US")


# --- credentials/authorize ----------------------------------------------------------------


class AuthorizeRequest(CscBody):
    credentialID: StrictStr = Field(max_length=64)
    numSignatures: StrictInt
    hash: list[StrictStr] = Field(description="base64 digests; SCAL 2 binds the SAD to them")
    PIN: StrictStr = Field(max_length=16, json_schema_extra={"writeOnly": True})
    OTP: StrictStr | None = None
    description: StrictStr | None = None


class AuthorizeReply(BaseModel):
    SAD: str
    expiresIn: int = Field(description="seconds")


@router.post("/credentials/authorize", response_model=AuthorizeReply,
             operation_id="csc_credentials_authorize",
             summary="CSC: PIN + hashes -> a single-use SAD for exactly those hashes",
             description=f"The SAD is valid for {int(SAD_LIFETIME.total_seconds())} seconds, "
                         "once, for this bank client and credential. A wrong PIN counts "
                         "towards the lockout of the certificate.",
             responses=csc_responses_for("csc_credentials_authorize"))
async def credentials_authorize(body: AuthorizeRequest, principal: SignClient,
                                csc: CscDep) -> JSONResponse:
    if body.OTP is not None:
        raise CscError(400, "invalid_request", "OTP is not used by this credential")
    authorization = await csc.authorize(
        client_id=principal.client_id, credential_id=body.credentialID, pin=body.PIN,
        num_signatures=body.numSignatures, hashes_b64=body.hash)
    reply = AuthorizeReply(SAD=authorization.sad, expiresIn=authorization.expires_in)
    return JSONResponse(reply.model_dump(), headers={"Cache-Control": "no-store"})


# --- signatures/signHash ------------------------------------------------------------------


class SignHashRequest(CscBody):
    credentialID: StrictStr = Field(max_length=64)
    SAD: StrictStr = Field(max_length=512)
    hash: list[StrictStr]
    hashAlgo: StrictStr | None = Field(None, max_length=64)
    signAlgo: StrictStr = Field(max_length=64)
    signAlgoParams: StrictStr | None = Field(None, max_length=1024)


class SignHashReply(BaseModel):
    signatures: list[str]


@router.post("/signatures/signHash", response_model=SignHashReply,
             operation_id="csc_signatures_sign_hash",
             summary="CSC: the raw signatures of the authorised hashes, in the order given",
             responses=csc_responses_for("csc_signatures_sign_hash"))
async def signatures_sign_hash(body: SignHashRequest, principal: SignClient,
                               csc: CscDep) -> SignHashReply:
    signatures = await csc.sign_hash(
        client_id=principal.client_id, credential_id=body.credentialID, sad=body.SAD,
        hashes_b64=body.hash, sign_algo=body.signAlgo, hash_algo=body.hashAlgo,
        sign_algo_params=body.signAlgoParams)
    return SignHashReply(signatures=[base64.b64encode(s).decode() for s in signatures])
