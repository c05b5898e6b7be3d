"""Every problem ``code`` a reply can carry: its status, a real example of its detail, what it
means and what the caller should do. The OpenAPI examples and the pages at ``/problems/{code}``
are made from this one table (``tests/api/test_problem_catalog.py`` checks it against the code
base)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TITLES = {400: "Bad request", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 413: "Body too large",
          414: "URI too long", 415: "Unsupported media type", 422: "Invalid request",
          423: "Certificate locked", 429: "Too many requests", 500: "Internal error",
          503: "Service unavailable"}


@dataclass(frozen=True)
class ProblemCode:
    status: int
    detail: str  # as a reply words it
    meaning: str
    action: str
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reply_title(self) -> str:
        return self.title or TITLES[self.status]


_RETRY = "Wait for the number of seconds in Retry-After (and `retry_after`), then retry."
_FIX = "Correct the request; retrying it unchanged gives the same answer."
_OUTAGE = ("A part of the service is down; nothing was changed. Retry with backoff (with the "
           "same Idempotency-Key for a POST) and tell the operator if it lasts.")
_NEW_VERIFICATION = "Start a new phone verification for this person and purpose."


def _limit(what: str, limit: int, window: int) -> ProblemCode:
    return ProblemCode(429, f"too many requests ({what}); retry in 42 s",
                       f"The limit on {what.replace('_', ' ')} ({limit} per {window} s) is used "
                       "up for this window.", _RETRY,
                       extra={"retry_after": 42, "limit": limit, "window_seconds": window})


def _bad(detail: str, meaning: str, action: str = _FIX, status: int = 422,
         **extra: Any) -> ProblemCode:
    return ProblemCode(status, detail, meaning, action, extra=extra)


_ERRORS = [{"loc": ["body", "pin"], "msg": "Field required", "type": "missing"}]
_VERIFICATION_STATE = "Check the verification's status with GET /v1/verifications/{id}. "

CODES: dict[str, ProblemCode] = {
    # The HTTP edge: any operation.
    "bad_request": _bad("There was an error parsing the body", "The body could not be decoded "
                        "(e.g. bytes that are not UTF-8).", status=400),
    "malformed_json": _bad("the request body is not valid JSON", "The body is not JSON.",
                           errors=[{"loc": ["body", "1"], "msg": "JSON decode error",
                                    "type": "json_invalid"}]),
    "invalid_request": _bad("body.pin: Field required", "A field is missing, of the wrong type "
                            "or out of range; `errors` lists each (never the value sent).",
                            errors=_ERRORS),
    "unsupported_media_type": _bad("this operation takes application/json",
                                   "The Content-Type is not one the operation accepts.",
                                   "Send the body with the media type the operation "
                                   "documents (application/json for /v1).", status=415),
    "body_too_large": _bad("request bodies are limited to 65536 bytes",
                           "The body is larger than the service accepts.",
                           "Send less (e.g. a digest instead of the data).", status=413),
    "uri_too_long": _bad("OCSP requests are limited to 10000 bytes", "The GET OCSP request is "
                         "too long.", "Send it with POST /ocsp instead.", status=414),
    "not_found": _bad("Not Found", "No such path (or the sandbox is not available here).",
                      "Check the path against the API reference.", status=404),
    "method_not_allowed": _bad("Method Not Allowed", "The path exists but not with this "
                               "method.", "Use a method the Allow header names.", status=405),
    "http_error": _bad("Bad Request", "An HTTP-level refusal without a more precise code.",
                       status=400),
    "not_acceptable": _bad("Not Acceptable", "No reply in a media type the Accept header "
                           "allows.", "Accept the media type the operation documents.",
                           status=406),
    "internal_error": ProblemCode(500, "an unexpected error occurred", "A bug: the request "
                                  "failed in an unexpected way and nothing was committed.",
                                  "Retry later and report the request_id to the operator."),
    "database_unavailable": ProblemCode(503, "the database is unavailable", "The database "
                                        "could not be reached or timed out.", _OUTAGE),
    "value_out_of_range": _bad("a value is out of range for the database",
                               "A number or text is larger than the database can hold."),
    "concurrent_change": ProblemCode(409, "verification changed concurrently", "Another request "
                                     "changed the same record at the same moment.",
                                     "Read the resource again, then retry."),
    # Idempotency-Key
    "idempotency_key_invalid": ProblemCode(
        422, "Idempotency-Key must be 1-255 visible ASCII characters", "The Idempotency-Key "
        "header is malformed.", "Use e.g. a UUID as the key.", title="Invalid Idempotency-Key"),
    "idempotency_key_reused": ProblemCode(
        422, "this Idempotency-Key was used with another request", "The key was already used "
        "by this client with a different method, path or body.", "Use a new key for a new "
        "request.", title="Idempotency-Key reused"),
    "idempotency_in_progress": ProblemCode(
        409, "a request with this Idempotency-Key is still being processed", "The first "
        "request with this key has not finished yet.", "Retry after Retry-After seconds: you "
        "get the first request's reply.", title="Request in progress"),
    # Bearer tokens and scopes.
    "token_missing": ProblemCode(401, "a Bearer access token is required", "No "
                                 "`Authorization: Bearer` header was sent.",
                                 "Get a token from POST /oauth2/token and send it."),
    "token_invalid": ProblemCode(401, "the access token is missing, invalid or expired",
                                 "The token is malformed, forged, signed by a retired key or "
                                 "expired.", "Get a new token from POST /oauth2/token."),
    "client_disabled": ProblemCode(401, "the client is disabled", "The bank client was "
                                   "disabled by the operator.", "Ask the operator to enable "
                                   "it (`certcloud clients enable`)."),
    "scope_missing": ProblemCode(403, "the token lacks the scope certificates:issue", "The "
                                 "token was issued without the scope this operation needs.",
                                 "Request a token with that scope (the client must hold it)."),
    # Rate limits.
    "rate_limited_verifications_per_client": _limit("verifications_per_client", 1000, 3600),
    "rate_limited_verifications_per_phone": _limit("verifications_per_phone", 5, 3600),
    "rate_limited_wrong_codes_per_phone": _limit("wrong_codes_per_phone", 10, 3600),
    "rate_limited_wrong_codes_per_client": _limit("wrong_codes_per_client", 500, 3600),
    "rate_limited_signatures_per_certificate": _limit("signatures_per_certificate", 60, 60),
    "rate_limited_lookups_per_client": _limit("lookups_per_client", 60, 60),
    "rate_limited_tsa_requests_per_address": _limit("tsa_requests_per_address", 120, 60),
    "rate_limited_signature_checks_per_address": _limit("signature_checks_per_address", 120,
                                                        60),
    "rate_limited_identity_checks_per_client": _limit("identity_checks_per_client", 30, 60),
    "rate_limiter_unavailable": ProblemCode(503, "the rate-limit store is unavailable", "The "
                                            "shared counter store (Redis) cannot be reached; "
                                            "limited operations are refused.", _OUTAGE),
    "pin_kdf_busy": ProblemCode(429, "too many PIN checks waiting; retry", "Too many PIN key "
                                "derivations are queued on this server.", _RETRY,
                                extra={"retry_after": 1}),
    "pin_checks_busy": ProblemCode(429, "too many PIN checks of this certificate in flight; "
                                   "retry", "Another PIN check of this certificate is running.",
                                   _RETRY, extra={"retry_after": 1}),
}
CODES.update({
    # Phone verifications.
    "phone_invalid": _bad("phone must be in E.164 form, e.g. +821012345678", "The phone "
                          "number is not an E.164 number."),
    "phone_unsupported": _bad("SENS delivers to Korean (+82) numbers only", "The configured "
                              "SMS provider cannot reach this number."),
    "channel_unsupported": ProblemCode(503, "NAVER Cloud SENS does not place voice calls",
                                       "The configured provider does not offer this channel.",
                                       "Use the other channel (sms or ars)."),
    "verifier_unavailable": ProblemCode(503, "the SMS provider did not answer", "The phone "
                                        "provider (SMS or ARS) failed or timed out.", _OUTAGE),
    "verification_not_found": _bad("no such verification", "No verification with this id "
                                   "for this bank client.", "Check the id.", status=404),
    "verification_not_yours": ProblemCode(409, "verification belongs to another bank client",
                                          "The verification was started by another client.",
                                          _NEW_VERIFICATION),
    "verification_channel_mismatch": ProblemCode(
        409, "a ars verification cannot be confirmed this way", "ARS verifications are "
        "confirmed by the call, not by a code sent here.", "Poll the verification instead."),
    "verification_code_invalid": _bad("the code does not match", "The SMS code is wrong; "
                                      "`remaining_attempts` tells how many tries are left.",
                                      "Ask the person to check the code; at 0 start a new "
                                      "verification.", remaining_attempts=2),
    "verification_unconfirmed": ProblemCode(409, "verification is not confirmed yet", "The "
                                            "code was not confirmed yet.", _VERIFICATION_STATE
                                            + "Confirm it first."),
    "verification_verified": ProblemCode(409, "verification is verified", "The verification "
                                         "is already confirmed.", "Use it; do not confirm it "
                                         "again."),
    "verification_used": ProblemCode(409, "verification is used", "The verification was "
                                     "already used for an operation.", _NEW_VERIFICATION),
    "verification_failed": ProblemCode(409, "verification is failed", "Too many wrong codes.",
                                       _NEW_VERIFICATION),
    "verification_expired": ProblemCode(409, "verification is expired", "The code or the "
                                        "confirmed verification timed out.", _NEW_VERIFICATION),
    "verification_phone_mismatch": ProblemCode(409, "verification was made for another phone",
                                               "The verification's phone is not the "
                                               "person's.", _NEW_VERIFICATION),
    "verification_purpose_mismatch": ProblemCode(409, "verification was made for issue, not "
                                                 "revoke", "The verification was started for "
                                                 "another purpose.", _NEW_VERIFICATION),
    "callback_signature_invalid": ProblemCode(401, "ARS callback signature is invalid", "The "
                                              "provider callback is not signed by the "
                                              "provider.", "Only the ARS provider calls this."),
    "callback_invalid": _bad("ARS callback carries no digits", "The callback has no digits."),
    # People, PINs, certificates.
    "rrn_invalid": _bad("rrn does not hold a real birth date", "The resident registration "
                        "number is malformed or impossible."),
    "name_invalid": _bad("name holds an invisible or control character (U+200B)", "The name "
                         "is blank or holds characters a certificate must not carry."),
    "pin_format": _bad("pin must be exactly 6 digits", "The PIN is not 6 digits."),
    "pin_malformed": _bad("pin must be exactly 6 digits", "The PIN given is not exactly 6 "
                          "ASCII digits; no try was counted and the key was not touched."),
    "pin_weak": _bad("pin must not be a straight run of digits", "The PIN is easy to guess "
                     "(one digit, a run, or the birth date).", "Ask the person for another "
                     "PIN."),
    "pin_unchanged": _bad("new_pin must differ from pin", "The new PIN is the old one."),
    "terms_not_accepted": _bad("the terms must be accepted", "`terms_accepted` is false."),
    "bank_checks_incomplete": _bad("the bank must confirm the withdrawal-account password and "
                                   "the customer's contact data", "A bank check is missing."),
    "proof_required": _bad("give either pin or verification_id", "Revocation and suspension "
                           "need exactly one proof."),
    "reason_invalid": _bad("reason must be one of unspecified, key_compromise, superseded, "
                           "cessation_of_operation", "The revocation reason is not allowed."),
    "certificate_not_found": _bad("no such certificate", "No certificate with this id.",
                                  "Check the id (lookup by RRN lists them).", status=404),
    "certificate_revoked": ProblemCode(409, "certificate is revoked", "The certificate is "
                                       "revoked.", "Reissue a new certificate."),
    "certificate_expired": ProblemCode(409, "certificate is expired", "The certificate is "
                                       "past its validity.", "Reissue a new certificate."),
    "certificate_suspended": ProblemCode(
        409, "certificate is suspended", "The certificate is suspended (on hold): it signs "
        "nothing and cannot be unlocked, renewed, reissued or have its PIN changed; relying "
        "parties see it revoked with reason certificateHold.",
        "Resume it with a phone verification (`POST /v1/certificates/{id}/resume`), or revoke "
        "it."),
    "certificate_not_suspended": ProblemCode(
        409, "certificate is not suspended", "Only a suspended certificate can be resumed; "
        "this one is active.", "Nothing to do: the certificate is in force."),
    "suspension_lapsed": ProblemCode(
        409, "the suspension lasted over 30 days; the certificate is revoked for good",
        "A suspension not resumed within the maximum hold (30 days by default) becomes a "
        "permanent revocation (reason cessation_of_operation).", "Issue a new certificate."),
    "certificate_superseded": ProblemCode(409, "certificate was superseded; reissue from its "
                                          "successor", "A newer certificate replaced this one.",
                                          "Use the newest certificate of the person."),
    "pin_invalid": ProblemCode(403, "wrong PIN", "The PIN is wrong. The try counts; "
                               "`remaining_attempts` says how many are left before the lock.",
                               "Ask the person for the PIN again.", title="Wrong PIN",
                               extra={"remaining_attempts": 3}),
    "pin_locked": ProblemCode(423, "certificate is locked after five wrong PINs; unlock it "
                              "with a phone verification or reissue", "Five wrong PINs in a "
                              "row locked the certificate.", "Unlock it (POST .../unlock with a "
                              "phone verification) or reissue.", extra={"remaining_attempts": 0}),
    "key_store_unavailable": ProblemCode(503, "the key store is unavailable", "The HSM token "
                                         "holding the master key or CA key is unreachable.",
                                         _OUTAGE),
    "key_store_error": ProblemCode(503, "the key store cannot open this key", "The master key "
                                   "that wraps this certificate's key is not held.", _OUTAGE),
    # Signing.
    "payload_required": _bad("give data, digest or items", "Nothing (or both data and "
                             "digest) was given to sign."),
    "too_many_items": _bad("at most 100 items can be signed at once", "Too many items."),
    "detached_invalid": _bad("detached applies to cms signatures only", "`detached` without "
                             "`format: cms`."),
    "digest_requires_detached": _bad("a digest can only be signed as raw or as detached cms",
                                     "An attached CMS signature needs the data."),
    "digest_length_invalid": _bad("a sha256 digest is 32 bytes, not 20", "The digest's length "
                                  "does not fit the digest algorithm."),
    "padding_unsupported": _bad("PSS applies to RSA keys only", "The padding does not fit the "
                                "key type."),
    "base64_invalid": _bad("data is not valid base64", "A field is not standard base64."),
    "timestamp_requires_cms": _bad("timestamp applies to cms signatures only", "`timestamp` "
                                   "without `format: cms` (a raw signature has nowhere to "
                                   "carry the token)."),
    "timestamp_unavailable": ProblemCode(503, "the time-stamping authority cannot sign now; "
                                         "retry", "No TSA certificate is valid just now (it "
                                         "is being renewed, or the CA key is unreachable); "
                                         "nothing was signed and no PIN try was counted.",
                                         _OUTAGE),
    "serial_invalid": _bad("serial must be hexadecimal", "The serial is not hexadecimal."),
    # Relying parties (signature verification, identity check).
    "signature_malformed": _bad("the signature is not a DER CMS SignedData", "The signature "
                                "cannot be read as DER CMS (ContentInfo with SignedData)."),
    "cms_not_signed_data": _bad("the CMS is not SignedData", "The CMS ContentInfo holds "
                                "another content type."),
    "cms_signer_count": _bad("the SignedData must carry exactly one SignerInfo", "Only "
                             "SignedData with one signer is verified."),
    "certificate_required": _bad("a raw signature needs certificate_pem or serial", "The "
                                 "signer's certificate is missing (or given twice)."),
    "certificate_invalid": _bad("certificate_pem is not a PEM certificate", "certificate_pem "
                                "cannot be read as a PEM X.509 certificate."),
    "certificate_without_vid": ProblemCode(409, "the certificate carries no VID (issued before "
                                           "identity binding)", "The certificate was issued "
                                           "before certificates carried a VID.",
                                           "Check a newer certificate of the person."),
    # Status.
    "crl_unavailable": ProblemCode(503, "no CRL has been published yet", "No CRL was "
                                   "published yet.", _OUTAGE),
})

# The CSC routes answer in the CSC shape {"error", "error_description"}: these internal codes
# name why, the reply carries the standard ``error`` and this description.
CSC_CODES: dict[str, tuple[str, str]] = {
    "user_id_invalid": ("invalid_request", "Invalid parameter userID"),
    "credential_invalid": ("invalid_request", "Invalid parameter credentialID"),
    "num_signatures_invalid": ("invalid_request", "Invalid parameter numSignatures"),
    "too_many_items": ("invalid_request", "Numbers of signatures is too high"),
    "hash_required": ("invalid_request", "Missing (or invalid type) array parameter hash"),
    "base64_invalid": ("invalid_request", "Invalid Base64 hash string parameter"),
    "digest_length_invalid": ("invalid_request", "Invalid parameter hash: a sha256 digest is "
                              "32 bytes"),
    "sad_invalid": ("invalid_request", "Invalid parameter SAD"),
    "sad_used": ("invalid_request", "The SAD was already used"),
    "sad_expired": ("invalid_request", "SAD expired"),
    "hash_not_authorized": ("invalid_request", "Hash is not authorized by the SAD"),
    "sign_algo_params_invalid": ("invalid_request", "Invalid parameter signAlgoParams"),
    "algorithm_invalid": ("invalid_request", "Invalid parameter signAlgo"),
    "credential_unusable": ("invalid_request", "The credential is revoked or expired"),
    "invalid_request": ("invalid_request", "Missing (or invalid type) string parameter "
                        "credentialID"),
    "pin_invalid": ("invalid_pin", "The PIN is invalid: wrong PIN"),
    "pin_malformed": ("invalid_request", "Invalid parameter PIN"),
    "rate_limited_signatures_per_certificate": ("rate_limited", "too many requests "
                                                "(signatures_per_certificate); retry in 42 s"),
    "rate_limited_lookups_per_client": ("rate_limited", "too many requests "
                                        "(lookups_per_client); retry in 42 s"),
    "rate_limiter_unavailable": ("temporarily_unavailable", "the rate limiter is unavailable"),
    "pin_locked": ("access_denied", "The credential is locked: certificate is locked after "
                   "five wrong PINs"),
    "token_invalid": ("invalid_token", "the access token is missing, invalid or expired"),
    "scope_missing": ("insufficient_scope", "the token lacks the scope certificates:sign"),
    "pin_checks_busy": ("rate_limited", "too many PIN checks of this certificate in flight; "
                        "retry"),
    "database_unavailable": ("temporarily_unavailable", "the database is unavailable"),
}
CSC_STATUS = {"invalid_request": 400, "invalid_pin": 400, "access_denied": 400,
              "invalid_token": 401, "insufficient_scope": 403, "rate_limited": 429,
              "temporarily_unavailable": 503}

# Raised in the code base but never a problem reply: operator CLI commands (`certcloud keys
# retire`, `clients enable`, `clients create --scope`); the OCSP responder, which answers an
# outage as an OCSP ``tryLater`` response; the token endpoint's limits, which it answers as
# RFC 6749 ``{"error": "rate_limited"}``.
NOT_IN_REPLIES = frozenset({"key_not_found", "key_current", "key_in_use", "key_grace",
                            "key_not_retired", "client_not_found", "scope_invalid",
                            "status_busy", "rate_limited_token_attempts_per_address",
                            "rate_limited_token_failures_per_client"})

# Answered by the HTTP edge for any path, so documented by no single operation (their pages
# exist): a method the path does not have, an Accept nothing fits, a bug.
ANY_PATH = frozenset({"method_not_allowed", "not_acceptable", "http_error", "internal_error"})
