"""Raw signatures over a digest the caller already has (``Prehashed``).

RSA keys sign with PKCS#1 v1.5 by default, or RSASSA-PSS on request (MGF1 with the same hash,
salt as long as the digest, RFC 4055's recommendation); EC keys sign with ECDSA and return the
DER ``ECDSA-Sig-Value``. Nothing here touches storage or knows about PINs.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.pki.keys import UserPrivateKey

HashName = Literal["sha256", "sha384", "sha512"]
HASH_NAMES: tuple[HashName, ...] = ("sha256", "sha384", "sha512")

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
DIGEST_SIZES: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
_BY_SIZE: dict[int, HashName] = {32: "sha256", 48: "sha384", 64: "sha512"}

# Digest algorithm OIDs (NIST) and the signature algorithm OIDs a client may name.
HASH_OIDS: dict[str, HashName] = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_OID_OF: dict[str, str] = {name: oid for oid, name in HASH_OIDS.items()}
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
RSA_WITH: dict[str, HashName] = {
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
ECDSA_WITH: dict[str, HashName] = {
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}


class Padding(enum.StrEnum):
    """RSA signature padding. EC keys ignore it (ECDSA has none) but refuse PSS."""

    PKCS1V15 = "pkcs1v15"
    PSS = "pss"


class SigningInputError(ValueError):
    """The request cannot be signed as asked (wrong digest length, unsupported algorithm)."""


@dataclass(frozen=True)
class Mechanism:
    """What to do for one signature: the digest algorithm and, for RSA, the padding."""

    hash_name: HashName
    padding: Padding = Padding.PKCS1V15


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """:raises SigningInputError: an unsupported digest algorithm."""
    try:
        return _HASHES[name]()
    except KeyError:
        raise SigningInputError(f"unsupported digest algorithm {name!r}") from None


def digest(data: bytes, name: str) -> bytes:
    """The digest of ``data`` with the named algorithm."""
    hasher = hashes.Hash(hash_algorithm(name))
    hasher.update(data)
    return hasher.finalize()


def check_digest(value: bytes, name: str) -> None:
    """:raises SigningInputError: ``value`` is not as long as a digest of ``name`` is."""
    expected = DIGEST_SIZES.get(name)
    if expected is None:
        raise SigningInputError(f"unsupported digest algorithm {name!r}")
    if len(value) != expected:
        raise SigningInputError(f"a {name} digest is {expected} bytes, not {len(value)}")


def hash_name_for_size(size: int) -> HashName:
    """The supported digest algorithm whose output is ``size`` bytes long.

    :raises SigningInputError: no supported digest is that long.
    """
    try:
        return _BY_SIZE[size]
    except KeyError:
        raise SigningInputError(f"no supported digest is {size} bytes long") from None


def check_mechanism(key: UserPrivateKey | PublicKeyTypes, mechanism: Mechanism) -> None:
    """:raises SigningInputError: PSS asked of an EC key, or a key type we do not sign with."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if mechanism.padding is Padding.PSS:
            raise SigningInputError("PSS padding is for RSA keys; this key is an EC key")
        return
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise SigningInputError("unsupported key type")


def pss_padding(hash_name: str) -> padding.PSS:
    """RSASSA-PSS as this service makes it: MGF1 with the message hash, salt = digest size."""
    return padding.PSS(mgf=padding.MGF1(hash_algorithm(hash_name)),
                       salt_length=DIGEST_SIZES[hash_name])


def sign_digest(key: UserPrivateKey, value: bytes, mechanism: Mechanism) -> bytes:
    """Sign a digest: PKCS#1 v1.5 or PSS for RSA, DER ECDSA for EC.

    :param value: the digest, exactly as long as ``mechanism.hash_name`` produces.
    :raises SigningInputError: a digest of the wrong length, or a mechanism the key cannot do.
    """
    check_digest(value, mechanism.hash_name)
    check_mechanism(key, mechanism)
    prehashed = Prehashed(hash_algorithm(mechanism.hash_name))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(value, ec.ECDSA(prehashed))
    pad: padding.AsymmetricPadding = (pss_padding(mechanism.hash_name)
                                      if mechanism.padding is Padding.PSS
                                      else padding.PKCS1v15())
    return key.sign(value, pad, prehashed)


def sign_digests(key: UserPrivateKey, values: Sequence[bytes], mechanism: Mechanism
                 ) -> list[bytes]:
    """:func:`sign_digest` for each digest, in order (checked all before any is signed)."""
    for value in values:
        check_digest(value, mechanism.hash_name)
    check_mechanism(key, mechanism)
    return [sign_digest(key, value, mechanism) for value in values]


def csc_signature_algorithms(public_key: PublicKeyTypes) -> list[str]:
    """The signature algorithm OIDs a CSC client may name for this key (``key/algo``)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return list(ECDSA_WITH)
    if isinstance(public_key, rsa.RSAPublicKey):
        return [*RSA_WITH, RSA_ENCRYPTION]
    return []


def mechanism_for_csc(public_key: PublicKeyTypes, sign_algo: str, hash_algo: str | None
                      ) -> Mechanism:
    """The mechanism a CSC ``signAlgo`` (and ``hashAlgo``) asks for.

    ``sha256WithRSAEncryption`` and ``ecdsa-with-SHA256`` (and their 384/512 kin) imply the
    digest; ``rsaEncryption`` needs ``hashAlgo``. A ``hashAlgo`` that contradicts ``signAlgo`` is
    refused. RSASSA-PSS is not offered over CSC (see ``app.services.csc``).

    :raises SigningInputError: an algorithm this key does not sign with, or a contradiction.
    """
    if sign_algo not in csc_signature_algorithms(public_key):
        raise SigningInputError("unsupported signAlgo for this credential")
    implied = RSA_WITH.get(sign_algo) or ECDSA_WITH.get(sign_algo)
    named = None
    if hash_algo is not None:
        named = HASH_OIDS.get(hash_algo)
        if named is None:
            raise SigningInputError("unsupported hashAlgo")
    if implied is not None and named is not None and implied != named:
        raise SigningInputError("hashAlgo contradicts signAlgo")
    hash_name = implied or named
    if hash_name is None:
        raise SigningInputError("hashAlgo is required with this signAlgo")
    return Mechanism(hash_name)
