"""Private keys held in a PKCS#11 token, usable wherever cryptography takes a private key.

:class:`TokenRSAPrivateKey` and :class:`TokenECPrivateKey` subclass cryptography's key
interfaces, so ``CertificateBuilder``, ``CertificateRevocationListBuilder`` and
``OCSPResponseBuilder`` ``.sign()`` them like file keys: the same signing code path serves both.
Their ``sign()`` hashes in process and has the token sign the digest (RSA: CKM_RSA_PKCS over a
DigestInfo, or CKM_RSA_PKCS_PSS; EC: CKM_ECDSA, the raw ``r‖s`` turned into DER). The private
key never leaves the token: ``private_bytes`` and ``private_numbers`` refuse.

That cryptography accepts such subclasses is not documented; ``tests/hsm`` signs a certificate,
a CRL and an OCSP response through SoftHSM2 and checks them with ``openssl`` to hold it to that.

``sign()`` is blocking: it runs where the builder runs (a worker thread in the services) and
waits for the process-wide token lock. A token that fails raises
:class:`app.domain.errors.DependencyUnavailable` (HTTP 503).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.mechanisms import MGF
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

T = TypeVar("T")

TOKEN_KEY_ALGORITHMS = ("rsa3072", "rsa4096", "p256", "p384")
_CURVES: dict[str, tuple[str, ec.EllipticCurve]] = {
    "p256": ("secp256r1", ec.SECP256R1()), "p384": ("secp384r1", ec.SECP384R1())}

# DER of DigestInfo up to the digest (RFC 8017 §9.2, note 1).
_DIGEST_INFO = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_PSS_HASH = {"sha224": (Mechanism.SHA224, MGF.SHA224), "sha256": (Mechanism.SHA256, MGF.SHA256),
             "sha384": (Mechanism.SHA384, MGF.SHA384), "sha512": (Mechanism.SHA512, MGF.SHA512)}


class KeyNotOnToken(LookupError):
    """No object with this label (and class) on the token."""


class TokenTrouble(Exception):
    """The token answered, but not as a healthy token would (a key it held is gone)."""


class TokenContextLike(Protocol):
    session: Any

    def find_key(self, label: str, object_class: ObjectClass) -> Any: ...


class TokenRunner(Protocol):
    """What a token key needs: :class:`app.storage.pkcs11.TokenSession`."""

    token_label: str

    def call(self, fn: Callable[[Any], T]) -> T: ...

    async def run(self, fn: Callable[[Any], T]) -> T: ...


def _digest(data: bytes, algorithm: Any) -> tuple[bytes, hashes.HashAlgorithm]:
    if isinstance(algorithm, Prehashed):
        inner: hashes.HashAlgorithm = algorithm._algorithm
        if len(data) != inner.digest_size:
            raise ValueError("the prehashed data does not match the digest size")
        return data, inner
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise TypeError("a hash algorithm is required")
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize(), algorithm


class _TokenKey:
    """What the RSA and EC token keys share: the label, the runner, signing on the token."""

    _token: TokenRunner
    label: str

    def _sign_on_token(self, payload: bytes, mechanism: Mechanism, param: Any = None) -> bytes:
        label = self.label

        def op(ctx: TokenContextLike) -> bytes:
            try:
                key = ctx.find_key(label, ObjectClass.PRIVATE_KEY)
            except KeyNotOnToken:
                raise TokenTrouble(f"the private key {label!r} is not on the token") from None
            return bytes(key.sign(payload, mechanism=mechanism, mechanism_param=param))

        return self._token.call(op)

    async def check(self) -> None:
        """Readiness: the key is still found on the token.

        :raises DependencyUnavailable: the token does not answer, or lost the key.
        """
        label = self.label

        def op(ctx: TokenContextLike) -> None:
            try:
                ctx.find_key(label, ObjectClass.PRIVATE_KEY)
            except KeyNotOnToken:
                raise TokenTrouble(f"the private key {label!r} is not on the token") from None

        await self._token.run(op)

    def _refuse_export(self) -> Any:
        raise TypeError(f"the key {self.label!r} is held in the PKCS#11 token "
                        f"{self._token.token_label!r} and cannot be exported")


class TokenRSAPrivateKey(_TokenKey, rsa.RSAPrivateKey):
    """An RSA private key in a token, known by its label."""

    def __init__(self, token: TokenRunner, label: str, public_key: rsa.RSAPublicKey) -> None:
        self._token, self.label, self._public = token, label, public_key

    def sign(self, data: bytes | bytearray | memoryview, padding: padding.AsymmetricPadding,
             algorithm: Any) -> bytes:
        digest, hash_algorithm = _digest(bytes(data), algorithm)
        name = hash_algorithm.name
        if isinstance(padding, _PKCS1v15):
            if name not in _DIGEST_INFO:
                raise ValueError(f"{name} is not offered for token RSA signatures")
            return self._sign_on_token(_DIGEST_INFO[name] + digest, Mechanism.RSA_PKCS)
        if isinstance(padding, _PSS):
            if name not in _PSS_HASH:
                raise ValueError(f"{name} is not offered for token RSA-PSS signatures")
            salt = padding._salt_length
            if salt is _PSS.DIGEST_LENGTH:
                salt = hash_algorithm.digest_size
            elif salt is _PSS.MAX_LENGTH:
                salt = (self.key_size + 6) // 8 - hash_algorithm.digest_size - 2
            if not isinstance(salt, int):
                raise ValueError("the PSS salt length must be a number, DIGEST_LENGTH or "
                                 "MAX_LENGTH")
            mech, mgf = _PSS_HASH[name]
            return self._sign_on_token(digest, Mechanism.RSA_PKCS_PSS, (mech, mgf, salt))
        raise ValueError("token RSA keys sign with PKCS#1 v1.5 or PSS padding")

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise TypeError(f"the token key {self.label!r} signs only")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        return self._refuse_export()

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        return self._refuse_export()

    def __copy__(self) -> TokenRSAPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenRSAPrivateKey:
        return self

    def __repr__(self) -> str:
        return f"TokenRSAPrivateKey(label={self.label!r}, bits={self.key_size})"


class TokenECPrivateKey(_TokenKey, ec.EllipticCurvePrivateKey):
    """An EC private key in a token, known by its label."""

    def __init__(self, token: TokenRunner, label: str,
                 public_key: ec.EllipticCurvePublicKey) -> None:
        self._token, self.label, self._public = token, label, public_key

    def sign(self, data: bytes | bytearray | memoryview,
             signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise ValueError("token EC keys sign with ECDSA")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._sign_on_token(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                    int.from_bytes(raw[half:], "big"))

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey
                 ) -> bytes:
        raise TypeError(f"the token key {self.label!r} signs only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        return self._refuse_export()

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        return self._refuse_export()

    def __copy__(self) -> TokenECPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenECPrivateKey:
        return self

    def __repr__(self) -> str:
        return f"TokenECPrivateKey(label={self.label!r}, curve={self.curve.name})"


_PKCS1v15 = padding.PKCS1v15
_PSS = padding.PSS
TokenPrivateKey = TokenRSAPrivateKey | TokenECPrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _wrap(token: TokenRunner, label: str, public_key: Any) -> TokenPrivateKey:
    if isinstance(public_key, rsa.RSAPublicKey):
        return TokenRSAPrivateKey(token, label, public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return TokenECPrivateKey(token, label, public_key)
    raise ValueError("token keys are RSA or EC")


def _self_test(key: TokenPrivateKey) -> None:
    """Sign on the token and verify with the public key: the label names the right key."""
    message = b"certcloud token key check " + os.urandom(16)
    try:
        if isinstance(key, TokenRSAPrivateKey):
            signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
            key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
            key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError(f"the key labelled {key.label!r} on the token does not match the "
                         "expected public key") from None


def generate_token_key(token: TokenRunner, label: str, algorithm: str) -> TokenPrivateKey:
    """Generate a signing key pair inside the token: private half sensitive, non-extractable,
    sign-only; both halves stored under ``label``.

    :param algorithm: one of :data:`TOKEN_KEY_ALGORITHMS`.
    :raises ValueError: unknown algorithm, or a key with this label exists already.
    """
    if algorithm not in TOKEN_KEY_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(TOKEN_KEY_ALGORITHMS)}")
    key_id = os.urandom(8)
    private_template = {Attribute.TOKEN: True, Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                        Attribute.SIGN: True, Attribute.DECRYPT: False,
                        Attribute.UNWRAP: False, Attribute.DERIVE: False}
    public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True,
                       Attribute.ENCRYPT: False, Attribute.WRAP: False}

    def op(ctx: TokenContextLike) -> Any:
        existing = list(ctx.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                 Attribute.LABEL: label}))
        if existing:
            raise ValueError(f"a private key labelled {label!r} is already on the token")
        options: dict[str, Any] = {
            "id": key_id, "label": label, "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": public_template, "private_template": private_template}
        if algorithm.startswith("rsa"):
            public, _private = ctx.session.generate_keypair(KeyType.RSA, int(algorithm[3:]),
                                                            **options)
            return rsa.RSAPublicNumbers(
                int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[Attribute.MODULUS], "big")).public_key()
        params = ctx.session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(
                _CURVES[algorithm][0])}, local=True)
        public, _private = params.generate_keypair(**options)
        return serialization.load_der_public_key(encode_ec_public_key(public))

    key = _wrap(token, label, token.call(op))
    _self_test(key)
    return key


def load_token_key(token: TokenRunner, label: str, public_key: Any) -> TokenPrivateKey:
    """The token key labelled ``label`` whose public half is ``public_key`` (from the CA
    certificate); a test signature proves they belong together.

    :raises KeyNotOnToken: no private key with this label.
    :raises ValueError: the key on the token is not the one ``public_key`` belongs to.
    """
    def op(ctx: TokenContextLike) -> None:
        ctx.find_key(label, ObjectClass.PRIVATE_KEY)

    token.call(op)
    key = _wrap(token, label, public_key)
    _self_test(key)
    return key
