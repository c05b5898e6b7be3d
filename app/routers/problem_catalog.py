"""Which problem codes each operation can answer, by operation id, and their OpenAPI
``responses`` (one example per code, grouped by status). The lists are static: they were made
by following each handler through its services; ``tests/api/test_problem_catalog.py`` checks
them against the codes raised in the code base."""

from __future__ import annotations

from typing import Any

from app.routers.problem_codes import CODES, CSC_CODES, CSC_STATUS

PROBLEM_JSON = "application/problem+json"
EXAMPLE_REQUEST_ID = "5b0c1f6f4f7a4bd8a2b1f0c3d9e8a7b6"
EXAMPLE_BASE = "http://127.0.0.1:8000"

_AUTH = ("token_missing", "token_invalid", "client_disabled", "scope_missing",
         "database_unavailable")
_JSON_BODY = ("bad_request", "malformed_json", "invalid_request", "unsupported_media_type",
              "body_too_large")
_IDEMPOTENT = ("idempotency_key_invalid", "idempotency_key_reused", "idempotency_in_progress")
_WRITE = (*_AUTH, *_JSON_BODY, *_IDEMPOTENT, "concurrent_change")
_CERTIFICATE = ("certificate_not_found", "certificate_revoked", "certificate_expired",
                "certificate_suspended")
_PIN = ("pin_malformed", "pin_invalid", "pin_locked", "pin_checks_busy", "pin_kdf_busy",
        "key_store_error", "key_store_unavailable", *_CERTIFICATE)
_USE_VERIFICATION = ("verification_not_found", "verification_not_yours",
                     "verification_unconfirmed", "verification_used", "verification_failed",
                     "verification_expired", "verification_phone_mismatch",
                     "verification_purpose_mismatch")
_NEW_KEY = ("pin_format", "pin_weak", "pin_kdf_busy", "key_store_unavailable")
_SIGN = ("payload_required", "too_many_items", "detached_invalid", "digest_requires_detached",
         "digest_length_invalid", "padding_unsupported", "base64_invalid",
         "timestamp_requires_cms", "timestamp_unavailable",
         "certificate_superseded", "rate_limited_signatures_per_certificate",
         "rate_limiter_unavailable")
_CONFIRM = ("verification_not_found", "verification_not_yours", "verification_verified",
            "verification_used", "verification_failed", "verification_expired",
            "verification_channel_mismatch", "verification_code_invalid",
            "rate_limited_wrong_codes_per_phone", "rate_limited_wrong_codes_per_client",
            "rate_limiter_unavailable")
_CSC = ("token_missing", "token_invalid", "client_disabled", "scope_missing",
        "database_unavailable", "invalid_request", "body_too_large")
_CSC_IDEMPOTENT = ("idempotency_key_invalid", "idempotency_key_reused",
                   "idempotency_in_progress")

ROUTE_CODES: dict[str, tuple[str, ...]] = {
    "issue_token": ("body_too_large",),  # its other errors are RFC 6749's, documented apart
    "start_verification": (*_WRITE, "phone_invalid", "phone_unsupported", "channel_unsupported",
                           "verifier_unavailable", "rate_limited_verifications_per_client",
                           "rate_limited_verifications_per_phone", "rate_limiter_unavailable"),
    "get_verification": (*_AUTH, "verification_not_found"),
    "confirm_verification": (*_WRITE, *_CONFIRM),
    "issue_certificate": (*_WRITE, *_NEW_KEY, *_USE_VERIFICATION, "terms_not_accepted",
                          "bank_checks_incomplete", "rrn_invalid", "name_invalid",
                          "phone_invalid", "value_out_of_range"),
    "lookup_certificates": (*_AUTH, *_JSON_BODY, "rrn_invalid",
                            "rate_limited_lookups_per_client", "rate_limiter_unavailable"),
    "get_certificate": (*_AUTH, "certificate_not_found"),
    "reissue_certificate": (*_WRITE, *_NEW_KEY, *_USE_VERIFICATION, "certificate_not_found",
                            "certificate_superseded", "certificate_suspended"),
    "unlock_certificate": (*_WRITE, *_USE_VERIFICATION, *_CERTIFICATE),
    "change_pin": (*_WRITE, *_PIN, "pin_format", "pin_weak", "pin_unchanged"),
    "revoke_certificate": (*_WRITE, *_PIN, *_USE_VERIFICATION, "proof_required",
                           "reason_invalid"),
    "suspend_certificate": (*_WRITE, *_PIN, *_USE_VERIFICATION, "proof_required"),
    "resume_certificate": (*_WRITE, *_USE_VERIFICATION, "certificate_not_found",
                           "certificate_not_suspended", "certificate_revoked",
                           "certificate_expired", "suspension_lapsed",
                           "certificate_superseded"),
    "create_signature": (*_WRITE, *_PIN, *_SIGN),
    "verify_signature": (*_JSON_BODY, "base64_invalid", "signature_malformed",
                         "cms_not_signed_data", "cms_signer_count", "payload_required",
                         "digest_length_invalid", "certificate_required",
                         "certificate_invalid", "serial_invalid", "database_unavailable",
                         "rate_limited_signature_checks_per_address",
                         "rate_limiter_unavailable"),
    "check_identity": (*_AUTH, *_JSON_BODY, "rrn_invalid", "certificate_required",
                       "certificate_invalid", "serial_invalid", "certificate_not_found",
                       "certificate_without_vid", "key_store_error", "key_store_unavailable",
                       "rate_limited_identity_checks_per_client", "rate_limiter_unavailable"),
    "get_status": ("serial_invalid", "database_unavailable"),
    "list_audit_events": (*_AUTH, "invalid_request", "value_out_of_range"),
    "readyz": ("database_unavailable", "rate_limiter_unavailable", "key_store_unavailable"),
    "metrics": ("token_missing", "token_invalid", "client_disabled", "scope_missing"),
    "ocsp_post": ("body_too_large", "unsupported_media_type"),
    "ocsp_get": ("not_found", "uri_too_long"),
    "tsa_post": ("body_too_large", "unsupported_media_type",
                 "rate_limited_tsa_requests_per_address", "rate_limiter_unavailable",
                 "database_unavailable", "key_store_unavailable"),
    "crl": ("crl_unavailable", "database_unavailable"),
    "problem_page": ("not_found",),
    "problem_index": (),
    "healthz": (),
    "ca_certificate_der": (),
    "ca_certificate_pem": (),
    "ca_chain_pem": (),
    "sandbox_messages": ("not_found", "invalid_request", "phone_invalid"),
    "sandbox_ars_keypad": (*_JSON_BODY, "not_found", "concurrent_change", *_CONFIRM),
    # CSC: the CSC error shape (see CSC_CODES); codes name the cause.
    "csc_info": (*_CSC, *_CSC_IDEMPOTENT),
    "csc_credentials_list": (*_CSC, *_CSC_IDEMPOTENT, "user_id_invalid",
                             "rate_limited_lookups_per_client", "rate_limiter_unavailable"),
    "csc_credentials_info": (*_CSC, *_CSC_IDEMPOTENT, "credential_invalid"),
    "csc_credentials_authorize": (
        *_CSC, *_CSC_IDEMPOTENT, "credential_invalid", "num_signatures_invalid",
        "too_many_items", "hash_required", "base64_invalid", "digest_length_invalid",
        "pin_malformed", "pin_invalid", "pin_locked", "pin_checks_busy", "pin_kdf_busy",
        "rate_limited_signatures_per_certificate", "rate_limiter_unavailable", "key_store_error",
        "key_store_unavailable", "credential_unusable"),
    "csc_signatures_sign_hash": (
        *_CSC, *_CSC_IDEMPOTENT, "credential_invalid", "too_many_items", "hash_required",
        "base64_invalid", "digest_length_invalid", "sad_invalid", "sad_used", "sad_expired",
        "hash_not_authorized", "sign_algo_params_invalid", "algorithm_invalid",
        "credential_unusable", "key_store_unavailable", "rate_limited_signatures_per_certificate",
        "rate_limiter_unavailable"),
}
# Not in the OpenAPI document (provider callbacks), but answering problem codes all the same.
HIDDEN_ROUTE_CODES: dict[str, tuple[str, ...]] = {
    "twilio_callback": ("not_found", "callback_signature_invalid", "callback_invalid"),
}


def problem_type(code: str, base: str = EXAMPLE_BASE) -> str:
    return f"{base.rstrip('/')}/problems/{code}"


def example_reply(code: str, base: str = EXAMPLE_BASE) -> dict[str, Any]:
    entry = CODES[code]
    return {"type": problem_type(code, base), "title": entry.reply_title, "status": entry.status,
            "detail": entry.detail, "code": code, **entry.extra,
            "request_id": EXAMPLE_REQUEST_ID}


def _by_status(codes: tuple[str, ...]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        grouped.setdefault(CODES[code].status, []).append(code)
    return dict(sorted(grouped.items()))


def responses_for(operation_id: str) -> dict[int | str, dict[str, Any]]:
    """The error ``responses`` of one /v1-style operation: problem+json, one example a code."""
    return problem_responses_of(ROUTE_CODES[operation_id])


def problem_responses_of(codes: tuple[str, ...]) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status, codes_here in _by_status(codes).items():
        out[status] = {"description": ", ".join(f"`{c}`" for c in codes_here), "content": {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"},
                           "examples": {c: {"summary": CODES[c].meaning,
                                            "value": example_reply(c)} for c in codes_here}}}}
    return out


def csc_error(code: str) -> tuple[int, str, str]:
    """The CSC reply for a cause: status, ``error`` and ``error_description``."""
    if code in CSC_CODES:
        error, description = CSC_CODES[code]
        return CSC_STATUS[error], error, description
    status = CODES[code].status
    error = {401: "invalid_token", 403: "insufficient_scope", 429: "rate_limited",
             503: "temporarily_unavailable"}.get(status, "invalid_request")
    return CSC_STATUS[error], error, CODES[code].detail


CSC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "error_description"], "properties": {
        "error": {"type": "string", "enum": sorted(CSC_STATUS)},
        "error_description": {"type": "string"},
        "remaining_attempts": {"type": "integer"}}}


def csc_responses_for(operation_id: str) -> dict[int | str, dict[str, Any]]:
    """The CSC shape for each cause; 413 stays problem+json (the edge answers it)."""
    out: dict[int | str, dict[str, Any]] = {}
    grouped: dict[int, dict[str, Any]] = {}
    for code in dict.fromkeys(ROUTE_CODES[operation_id]):
        if code == "body_too_large":
            continue
        status, error, description = csc_error(code)
        value: dict[str, Any] = {"error": error, "error_description": description}
        if code in ("pin_invalid", "pin_locked"):
            value["remaining_attempts"] = CODES[code].extra["remaining_attempts"]
        grouped.setdefault(status, {})[code] = {"summary": f"`{code}`", "value": value}
    for status, examples in sorted(grouped.items()):
        errors = sorted({e["value"]["error"] for e in examples.values()})
        out[status] = {"description": "CSC error: " + ", ".join(errors), "content": {
            "application/json": {"schema": CSC_ERROR_SCHEMA, "examples": examples}}}
    out[413] = problem_responses_of(("body_too_large",))[413]
    return out


def documented_codes(operation: dict[str, Any]) -> set[str]:
    """The codes an OpenAPI operation's examples name (for the tests)."""
    found: set[str] = set()
    for status, response in operation.get("responses", {}).items():
        if not status.startswith(("4", "5")):
            continue
        for media in response.get("content", {}).values():
            found.update(media.get("examples", {}))
    return found


def finish(schema: dict[str, Any]) -> None:
    """Drop FastAPI's own 422 (HTTPValidationError, never answered: validation errors are
    problem+json, and CSC's are its 400) from every operation."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response and "application/json" in response.get("content", {}):
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
