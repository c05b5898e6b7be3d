"""Client secrets at rest: a keyed hash, compared in constant time.

A client secret is 256 random bits, so nothing can search for it and a slow password hash
buys nothing; it only made every token attempt (unknown client ids included) cost an
Argon2id run that anyone could ask for. The hash is HMAC-SHA256 under a key derived (HKDF,
a label of its own) from ``CERTCLOUD_CODE_HMAC_KEY``, stored as
``hmac-sha256$<key id>$<hex digest>``: the key id says which key made it, so a hash made
under another key is told apart from a wrong secret. Rows made before keep their Argon2id
hash (``$argon2id$…``); it still verifies and is rewritten to the keyed form on the first
success.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

SCHEME = "hmac-sha256"
_LABEL = b"certcloud:client-secret-hash:v1"
_legacy = PasswordHasher()


class Verdict(enum.Enum):
    VALID = "valid"
    VALID_LEGACY = "valid_legacy"  # right secret, stored as Argon2id: rewrite it
    INVALID = "invalid"


def derive_key(code_hmac_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        code_hmac_key)


class ClientSecretHasher:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self.key_id = hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:16]
        # Compared against when the client id is unknown, so that path costs the same.
        self._dummy = self.hash("unknown-client")

    def _digest(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    def hash(self, secret: str) -> str:
        return f"{SCHEME}${self.key_id}${self._digest(secret)}"

    @staticmethod
    def is_legacy(stored: str | None) -> bool:
        """An Argon2id hash from before: slow to check, so run :meth:`verify_legacy` off the
        event loop."""
        return stored is not None and stored.startswith("$argon2")

    def verify(self, stored: str | None, secret: str) -> Verdict:
        """Check ``secret`` against a keyed hash (``None``: the client id is unknown, which
        costs the same one keyed hash)."""
        scheme, _, rest = (stored or self._dummy).partition("$")
        key_id, _, digest = rest.partition("$")
        computed = self._digest(secret)
        matches = hmac.compare_digest(computed.encode(), digest.encode())
        if stored is None or scheme != SCHEME:
            return Verdict.INVALID
        if not hmac.compare_digest(key_id.encode(), self.key_id.encode()):
            log.warning("client secret hashed under another key; issue the client a new one")
            return Verdict.INVALID
        return Verdict.VALID if matches else Verdict.INVALID

    @staticmethod
    def verify_legacy(stored: str, secret: str) -> Verdict:
        try:
            _legacy.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return Verdict.INVALID
        return Verdict.VALID_LEGACY
