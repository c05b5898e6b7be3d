"""A production configuration that passes every start-up check: distinct secrets of 256 bits
(43 base64url characters), Argon2id at RFC 9106's second option, provider credentials. As
environment variables (for `certcloud` processes) and as Settings fields (in process)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any


def strong_secret(name: str) -> str:
    """43 base64url characters (256 bits), fixed per name so tests can repeat them."""
    digest = hashlib.sha256(f"certcloud test secret {name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


SECRETS = {name: strong_secret(name) for name in
           ("rrn_hmac_key", "code_hmac_key", "audit_hmac_key", "pin_pattern_key")}
SECRETS["token_signing_keys"] = f"k1:{strong_secret('token_signing_keys')}"
ARGON2 = {"time_cost": 3, "memory_kib": 65536, "parallelism": 1}
PROVIDER = {"kind": "provider",
            "sens": {"service_id": "ncp:sms:kr:1:certcloud", "access_key": "AK-test",
                     "secret_key": "SK-test", "sender": "0215880000"},
            "twilio": {"account_sid": "AC-test", "auth_token": "twilio-test",
                       "caller_id": "+15005550006"}}


def production_fields() -> dict[str, Any]:
    return {"environment": "production", **SECRETS, "argon2": dict(ARGON2),
            "verifier": {**PROVIDER, "sens": dict(PROVIDER["sens"]),
                         "twilio": dict(PROVIDER["twilio"])}}


def production_env() -> dict[str, str]:
    env = {"CERTCLOUD_ENVIRONMENT": "production",
           **{f"CERTCLOUD_{name.upper()}": value for name, value in SECRETS.items()},
           **{f"CERTCLOUD_ARGON2__{name.upper()}": str(value) for name, value in ARGON2.items()},
           "CERTCLOUD_VERIFIER__KIND": "provider"}
    for provider in ("sens", "twilio"):
        for name, value in PROVIDER[provider].items():  # type: ignore[attr-defined]
            env[f"CERTCLOUD_VERIFIER__{provider.upper()}__{name.upper()}"] = value
    return env
