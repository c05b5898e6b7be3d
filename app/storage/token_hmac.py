"""HMAC-SHA256 keys held in the PKCS#11 token (the audit chain key, the RRN lookup key).

The key is a generic secret, sensitive and non-extractable, that only signs and verifies
(CKM_SHA256_HMAC): whoever copies the data directory and the environment cannot compute these
HMACs without the token. ``import_hmac_key`` brings an existing key (the RRN key that already
indexes every person) into the token, so lookups keep working without re-indexing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from app.pki.token_keys import KeyNotOnToken, TokenRunner
from app.storage.pkcs11 import TokenContext

# SoftHSM (and most HSMs) refuse an HMAC key shorter than the digest (CKR_KEY_SIZE_RANGE).
MIN_KEY_BYTES = 32
_TEMPLATE = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
             Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.VERIFY: True,
             Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.WRAP: False,
             Attribute.UNWRAP: False, Attribute.DERIVE: False}


class TokenHmacKey:
    """An HMAC-SHA256 key on the token, known by its label. ``key_id`` names it in the
    audit chain's rows."""

    def __init__(self, token: TokenRunner, label: str) -> None:
        self.token, self.label = token, label
        self.key_id = f"pkcs11:{label}"

    def _sign(self, ctx: TokenContext, messages: Sequence[bytes]) -> list[bytes]:
        key = ctx.find_key(self.label, ObjectClass.SECRET_KEY)
        return [bytes(key.sign(message, mechanism=Mechanism.SHA256_HMAC))
                for message in messages]

    def digest(self, message: bytes) -> bytes:
        """Blocking (waits for the token lock): for worker threads and the CLI.

        :raises KeyNotOnToken: no such key on the token (wrapped in a 503 by the session).
        """
        return self.token.call(lambda ctx: self._sign(ctx, [message]))[0]

    async def digests(self, messages: Sequence[bytes]) -> list[bytes]:
        """Many HMACs in one trip to the token's worker thread."""
        if not messages:
            return []
        return await self.token.run(lambda ctx: self._sign(ctx, messages))

    async def macs(self, messages: Sequence[bytes]) -> list[str]:
        return [digest.hex() for digest in await self.digests(messages)]

    def present(self) -> bool:
        def op(ctx: TokenContext) -> bool:
            try:
                ctx.find_key(self.label, ObjectClass.SECRET_KEY)
            except KeyNotOnToken:
                return False
            return True

        return self.token.call(op)

    def matches(self, secret: bytes) -> bool:
        """Whether the token key is this secret (one probe HMAC compared in constant time)."""
        probe = b"certcloud key probe " + os.urandom(16)
        return hmac.compare_digest(self.digest(probe),
                                   hmac.new(secret, probe, hashlib.sha256).digest())


def _refuse_existing(ctx: TokenContext, label: str) -> None:
    if list(ctx.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                     Attribute.LABEL: label})):
        raise ValueError(f"a secret key labelled {label!r} is already on the token")


def generate_hmac_key(token: TokenRunner, label: str) -> TokenHmacKey:
    """A new random 256-bit HMAC key made inside the token.

    :raises ValueError: a key with this label is already there.
    """
    def op(ctx: TokenContext) -> None:
        _refuse_existing(ctx, label)
        ctx.session.generate_key(KeyType.GENERIC_SECRET, 256, label=label, id=label.encode(),
                                 store=True,
                                 capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                                 template=_TEMPLATE)
        ctx.forget()

    token.call(op)
    return TokenHmacKey(token, label)


def import_hmac_key(token: TokenRunner, label: str, secret: bytes) -> TokenHmacKey:
    """Store an existing HMAC key in the token, sensitive and non-extractable from then on.

    :raises ValueError: the secret is too short for the token, or the label is taken.
    """
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"the key is shorter than {MIN_KEY_BYTES} bytes")

    def op(ctx: TokenContext) -> None:
        _refuse_existing(ctx, label)
        ctx.session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                   Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                                   Attribute.VALUE: secret, Attribute.LABEL: label,
                                   Attribute.ID: label.encode(), **_TEMPLATE})
        ctx.forget()

    token.call(op)
    return TokenHmacKey(token, label)
