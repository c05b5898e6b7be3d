"""Server secrets and the keyed hashes made with them (RRN lookup, OTP codes, PIN patterns,
contact data in the audit trail)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from app.settings import MIN_SECRET_LENGTH, PLACEHOLDERS, Settings
from app.storage.files import create_new


class StartupError(Exception):
    """Configuration that must stop the service from starting; the message is one line."""


@dataclass(frozen=True)
class TokenKey:
    kid: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class ServerSecrets:
    rrn_hmac_key: bytes = field(repr=False)
    code_hmac_key: bytes = field(repr=False)
    token_keys: tuple[TokenKey, ...]

    def rrn_hmac(self, rrn_digits: str) -> str:
        return hmac.new(self.rrn_hmac_key, b"rrn:" + rrn_digits.encode(),
                        hashlib.sha256).hexdigest()

    def birth_pattern_hmac(self, person_salt: str, digits: str) -> str:
        message = f"pin-pattern:{person_salt}:{digits}".encode()
        return hmac.new(self.rrn_hmac_key, message, hashlib.sha256).hexdigest()

    @property
    def audit_key(self) -> bytes:
        return hmac.new(self.code_hmac_key, b"audit-chain", hashlib.sha256).digest()

    def contact_hmac(self, field: str, value: str) -> str:
        """Names a phone or a name in the audit trail without showing it: equal values give
        equal HMACs, so a contact change can be followed across events."""
        key = hmac.new(self.code_hmac_key, b"contact-hmac", hashlib.sha256).digest()
        return hmac.new(key, f"{field}:{value}".encode(), hashlib.sha256).hexdigest()

    def code_hash(self, verification_id: str, code: str) -> str:
        return hmac.new(self.code_hmac_key, f"otp:{verification_id}:{code}".encode(),
                        hashlib.sha256).hexdigest()


def _parse_token_keys(value: str) -> tuple[TokenKey, ...]:
    keys = []
    for item in value.split(","):
        kid, sep, secret = item.strip().partition(":")
        if not sep or not kid or not secret:
            raise StartupError("CERTCLOUD_TOKEN_SIGNING_KEYS must be 'kid:secret[,kid:secret…]'")
        keys.append(TokenKey(kid, secret.encode()))
    return tuple(keys)


def _check_strong(name: str, value: str) -> None:
    if value.strip().lower() in PLACEHOLDERS or len(value) < MIN_SECRET_LENGTH:
        raise StartupError(f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} "
                           "characters; set a real secret")


def load_secrets(settings: Settings) -> ServerSecrets:
    """Production: every secret from the environment, strong. Development: unset secrets are
    generated once into ``<data_dir>/secrets.json`` and reused on later starts."""
    given = {
        "rrn_hmac_key": settings.rrn_hmac_key.get_secret_value() if settings.rrn_hmac_key
        else None,
        "code_hmac_key": settings.code_hmac_key.get_secret_value() if settings.code_hmac_key
        else None,
        "token_signing_keys": settings.token_signing_keys.get_secret_value()
        if settings.token_signing_keys else None,
    }
    if settings.is_production:
        for name, value in given.items():
            env = f"CERTCLOUD_{name.upper()}"
            if value is None:
                raise StartupError(f"{env} is not set (production creates no secrets)")
            if name == "token_signing_keys":
                for key in _parse_token_keys(value):
                    _check_strong(f"{env} key {key.kid!r}", key.secret.decode())
            else:
                _check_strong(env, value)
    else:
        stored = _development_secrets(settings.data_dir / "secrets.json")
        given = {name: value or stored[name] for name, value in given.items()}
    assert given["rrn_hmac_key"] and given["code_hmac_key"] and given["token_signing_keys"]
    return ServerSecrets(rrn_hmac_key=given["rrn_hmac_key"].encode(),
                         code_hmac_key=given["code_hmac_key"].encode(),
                         token_keys=_parse_token_keys(given["token_signing_keys"]))


def _development_secrets(path: Path) -> dict[str, str]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)

    def token() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")

    values = {"rrn_hmac_key": token(), "code_hmac_key": token(),
              "token_signing_keys": f"dev-{secrets.token_hex(4)}:{token()}"}
    try:
        create_new(path, json.dumps(values))
    except FileExistsError:  # another process made it first, whole
        return dict(json.loads(path.read_text()))
    return values
