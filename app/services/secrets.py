"""Server secrets and the keyed hashes made with them (RRN lookup, OTP codes, PIN patterns,
the audit chain, contact data in the audit trail). Each secret protects one thing; the
README's key table says which."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from app.settings import MIN_SECRET_LENGTH, PLACEHOLDERS, Settings
from app.storage.files import create_new

if TYPE_CHECKING:
    from app.storage.token_hmac import TokenHmacKey

LEGACY_AUDIT_KEY_ID = "legacy"
PATTERNS_VERSION = 2


class StartupError(Exception):
    """Configuration that must stop the service from starting; the message is one line."""


@dataclass(frozen=True)
class TokenKey:
    kid: str
    secret: bytes = field(repr=False)


class ChainKey(Protocol):
    """A key of the audit chain: in process, or in the token (``TokenHmacKey``)."""

    @property
    def key_id(self) -> str: ...

    async def macs(self, messages: Sequence[bytes]) -> list[str]: ...


@dataclass(frozen=True)
class LocalChainKey:
    key_id: str
    secret: bytes = field(repr=False)

    async def macs(self, messages: Sequence[bytes]) -> list[str]:
        return [hmac.new(self.secret, m, hashlib.sha256).hexdigest() for m in messages]


@dataclass(frozen=True)
class AuditKeys:
    """``current`` keys new rows. ``legacy`` (derived from the code key) only verifies the rows
    written before the chain had a key of its own; ``others`` verify, never write."""

    current: ChainKey
    legacy: ChainKey
    others: tuple[ChainKey, ...] = ()

    @property
    def ranked(self) -> tuple[ChainKey, ...]:
        """Oldest first: rows never go back to an older key."""
        return (self.legacy, *self.others, self.current)

    def by_id(self, key_id: str) -> ChainKey | None:
        return next((k for k in self.ranked if k.key_id == key_id), None)

    def rank(self, key_id: str) -> int:
        return next((n for n, k in enumerate(self.ranked) if k.key_id == key_id), -1)


def env_audit_key_id(secret: bytes) -> str:
    """A public name for an audit key from the environment (an HMAC of it, not a hash)."""
    return "env-" + hmac.new(secret, b"certcloud audit key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class ServerSecrets:
    rrn_hmac_key: bytes = field(repr=False)  # empty when the RRN key is in the token
    code_hmac_key: bytes = field(repr=False)
    token_keys: tuple[TokenKey, ...]
    audit_hmac_key: bytes | None = field(default=None, repr=False)
    pin_pattern_key: bytes | None = field(default=None, repr=False)
    token_audit_key: TokenHmacKey | None = None  # CERTCLOUD_KEYS__KIND=pkcs11
    token_rrn_key: TokenHmacKey | None = None

    def rrn_hmac(self, rrn_digits: str) -> str:
        """Blocking when the key is in the token; async code awaits ``rrn_lookup_hmac``."""
        message = b"rrn:" + rrn_digits.encode()
        if self.token_rrn_key is not None:
            return self.token_rrn_key.digest(message).hex()
        return hmac.new(self.rrn_hmac_key, message, hashlib.sha256).hexdigest()

    async def rrn_lookup_hmac(self, rrn_digits: str) -> str:
        """The HMAC that finds a person by RRN (computed in the token when it holds the key)."""
        if self.token_rrn_key is not None:
            return (await self.token_rrn_key.digests([b"rrn:" + rrn_digits.encode()]))[0].hex()
        return self.rrn_hmac(rrn_digits)

    def birth_pattern_hmac(self, person_salt: str, digits: str) -> str:
        """Version 1 (legacy) patterns, keyed with the RRN key: only verified, never written."""
        message = f"pin-pattern:{person_salt}:{digits}".encode()
        if self.token_rrn_key is not None:
            return self.token_rrn_key.digest(message).hex()
        return hmac.new(self.rrn_hmac_key, message, hashlib.sha256).hexdigest()

    def _pattern_hmac_v2(self, person_salt: str, digits: str) -> str:
        if not self.pin_pattern_key:
            raise RuntimeError("no PIN pattern key")
        message = f"pin-pattern:v2:{person_salt}:{digits}".encode()
        return hmac.new(self.pin_pattern_key, message, hashlib.sha256).hexdigest()

    def birth_patterns_record(self, patterns: set[str]) -> str:
        """The stored form of a person's birth-date patterns (JSON, version 2): salted HMACs
        under the PIN pattern key, which the RRN key's holder does not have."""
        salt = secrets.token_hex(8)
        hashed = sorted(self._pattern_hmac_v2(salt, p) for p in patterns)
        return json.dumps({"v": PATTERNS_VERSION, "salt": salt, "h": hashed})

    def birth_pattern_test(self, stored: str) -> Callable[[str], bool]:
        """Whether a digit string is one of the stored patterns (either version)."""
        record = json.loads(stored)
        hashed, salt = frozenset(record.get("h", ())), str(record.get("salt", ""))
        keyed = (self._pattern_hmac_v2 if record.get("v") == PATTERNS_VERSION
                 else self.birth_pattern_hmac)
        return lambda digits: keyed(salt, digits) in hashed

    @staticmethod
    def patterns_are_current(stored: str) -> bool:
        return bool(json.loads(stored).get("v") == PATTERNS_VERSION)

    @cached_property
    def audit_key(self) -> AuditKeys:
        """The audit chain's keys: its own (token or CERTCLOUD_AUDIT_HMAC_KEY) writes."""
        legacy = LocalChainKey(LEGACY_AUDIT_KEY_ID, hmac.new(
            self.code_hmac_key, b"audit-chain", hashlib.sha256).digest())
        env = (LocalChainKey(env_audit_key_id(self.audit_hmac_key), self.audit_hmac_key)
               if self.audit_hmac_key else None)
        current: ChainKey | None = self.token_audit_key or env
        if current is None:
            raise RuntimeError("the audit chain has no key")
        others = (env,) if env is not None and current is not env else ()
        return AuditKeys(current=current, legacy=legacy, others=others)

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


def secret_bits(value: str) -> int:
    """How strong a secret is, as we count it: its length times the bits a character of the
    narrowest usual alphabet holds (hex 4, base64/base64url 6; anything else also 6). A value
    with fewer than 8 distinct characters is not random and counts 0."""
    body = value.rstrip("=")
    if len(set(body)) < 8:
        return 0
    per_char = 4 if all(c in _HEX for c in body) else 6
    return len(body) * per_char


MIN_SECRET_BITS = 256  # 64 hex or 43 base64url characters (32 random bytes)
_HEX = frozenset("0123456789abcdefABCDEF")


def _strength_problem(name: str, value: str, *, production: bool) -> str | None:
    if value.strip().lower() in PLACEHOLDERS or len(value) < MIN_SECRET_LENGTH:
        return (f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; "
                "set a real secret")
    if production and secret_bits(value) < MIN_SECRET_BITS:
        return (f"{name} holds less than {MIN_SECRET_BITS} bits (need 43 base64url or 64 hex "
                "random characters)")
    return None


_NAMES = ("rrn_hmac_key", "code_hmac_key", "token_signing_keys", "audit_hmac_key",
          "pin_pattern_key")


def _production_problems(given: dict[str, str | None], *, pkcs11: bool) -> list[str]:
    """Every weak or missing production secret, and any value used for two of them."""
    problems: list[str] = []
    values: list[tuple[str, str]] = []
    for name, value in given.items():
        env = f"CERTCLOUD_{name.upper()}"
        if value is None:
            if pkcs11 and name in ("rrn_hmac_key", "audit_hmac_key"):
                continue  # held in the token
            problems.append(f"{env} is not set (production creates no secrets)")
        elif name == "token_signing_keys":
            try:
                keys = _parse_token_keys(value)
            except StartupError as exc:
                problems.append(str(exc))
                continue
            values += [(f"{env} key {key.kid!r}", key.secret.decode()) for key in keys]
        else:
            values.append((env, value))
    for name, value in values:
        problem = _strength_problem(name, value, production=True)
        if problem:
            problems.append(problem)
    seen: dict[str, str] = {}
    for name, value in values:
        if value in seen:
            problems.append(f"{name} has the same value as {seen[value]}; every secret must "
                            "be its own")
        seen.setdefault(value, name)
    return problems


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def load_secrets(settings: Settings) -> ServerSecrets:
    """Production: every secret from the environment, strong and distinct (all problems in
    one line). Development: unset secrets are generated once into ``<data_dir>/secrets.json``
    and reused on later starts. With ``CERTCLOUD_KEYS__KIND=pkcs11``
    the audit chain key and the RRN lookup key are the token's (see ``bootstrap``)."""
    given = {name: _secret(getattr(settings, name)) for name in _NAMES}
    pkcs11 = settings.keys.kind == "pkcs11"
    if settings.is_production:
        problems = _production_problems(given, pkcs11=pkcs11)
        if problems:
            raise StartupError("; ".join(problems))
        values = {name: value or "" for name, value in given.items()}
    else:
        stored = _development_secrets(settings.data_dir)
        values = {name: value or stored[name] for name, value in given.items()}
    token_audit, token_rrn = _token_keys(settings) if pkcs11 else (None, None)
    return ServerSecrets(rrn_hmac_key=values["rrn_hmac_key"].encode(),
                         code_hmac_key=values["code_hmac_key"].encode(),
                         token_keys=_parse_token_keys(values["token_signing_keys"]),
                         audit_hmac_key=values["audit_hmac_key"].encode() or None,
                         pin_pattern_key=values["pin_pattern_key"].encode(),
                         token_audit_key=token_audit, token_rrn_key=token_rrn)


def _token_keys(settings: Settings) -> tuple[TokenHmacKey, TokenHmacKey | None]:
    """The token's audit key and, unless CERTCLOUD_RRN_HMAC_KEY is set, its RRN key (not
    opened yet; ``bootstrap.prepare_token_secrets`` checks them)."""
    from app.storage.pkcs11 import TokenError, token_session
    from app.storage.token_hmac import TokenHmacKey

    try:
        token = token_session(settings.keys)
    except TokenError as exc:
        raise StartupError(str(exc)) from None
    rrn = (TokenHmacKey(token, settings.keys.rrn_key_label)
           if settings.rrn_hmac_key is None else None)
    return TokenHmacKey(token, settings.keys.audit_key_label), rrn


def _development_secrets(data_dir: Path) -> dict[str, str]:
    """``secrets.json``, made whole on first start. One made before the audit and pattern keys
    existed is left as it is; those two then live in ``secrets-v2.json``."""
    made = _create_once(data_dir / "secrets.json", _NAMES)
    missing = tuple(name for name in _NAMES if name not in made)
    return {**made, **(_create_once(data_dir / "secrets-v2.json", missing) if missing else {})}


def _create_once(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    if path.exists():
        return dict(json.loads(path.read_text()))

    def token() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")

    values = {name: f"dev-{secrets.token_hex(4)}:{token()}" if name == "token_signing_keys"
              else token() for name in names}
    try:
        create_new(path, json.dumps(values))
    except FileExistsError:  # another process made it first, whole
        return dict(json.loads(path.read_text()))
    return values
