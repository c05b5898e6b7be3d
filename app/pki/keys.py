"""User key pairs and the inner (PIN) lock: Argon2id key derivation + AES-256-GCM."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Literal

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KeyAlgorithm = Literal["rsa2048", "p256"]
UserPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_MAGIC = b"CCP1"
_HEADER = struct.Struct(">4sIIB")  # magic, time cost, memory KiB, parallelism
_SALT_LEN, _NONCE_LEN = 16, 12


class WrongPin(Exception):
    """The PIN-derived key did not open the blob."""


@dataclass(frozen=True)
class KdfParams:
    time_cost: int
    memory_kib: int
    parallelism: int


def generate_user_key(algorithm: KeyAlgorithm) -> UserPrivateKey:
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate_service_key(algorithm: str, purpose: str) -> UserPrivateKey:
    """A fresh key for one of the CA's own services (``purpose``: the OCSP responder, the
    TSA) from its configured name, ``rsa2048`` or ``p256``; ValueError for anything else."""
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown {purpose} key algorithm {algorithm!r}")


def private_key_to_der(key: UserPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_key_from_der(der: bytes) -> UserPrivateKey:
    # The DER was made here and has just passed AES-GCM authentication bound to its
    # certificate, so cryptography's RSA key check (about 100 ms a load) buys nothing.
    key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("unsupported user key type")
    return key


def _derive(pin: str, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(pin.encode(), salt, time_cost=params.time_cost,
                           memory_cost=params.memory_kib, parallelism=params.parallelism,
                           hash_len=32, type=Type.ID)


def seal_with_pin(plaintext: bytes, pin: str, params: KdfParams, associated_data: bytes) -> bytes:
    """Encrypt under a key derived from the PIN. The KDF parameters and salt travel in the
    header (authenticated as associated data), so old blobs open after a parameter change."""
    salt, nonce = os.urandom(_SALT_LEN), os.urandom(_NONCE_LEN)
    header = _HEADER.pack(_MAGIC, params.time_cost, params.memory_kib, params.parallelism)
    sealed = AESGCM(_derive(pin, salt, params)).encrypt(nonce, plaintext,
                                                        header + salt + associated_data)
    return header + salt + nonce + sealed


def open_with_pin(blob: bytes, pin: str, associated_data: bytes) -> bytes:
    """:raises WrongPin: the PIN (or the blob) does not match.
    :raises ValueError: the blob is not a PIN-sealed blob."""
    if len(blob) < _HEADER.size + _SALT_LEN + _NONCE_LEN + 16:
        raise ValueError("PIN-sealed blob is truncated")
    magic, time_cost, memory_kib, parallelism = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise ValueError("not a PIN-sealed blob")
    params = KdfParams(time_cost, memory_kib, parallelism)
    salt = blob[_HEADER.size : _HEADER.size + _SALT_LEN]
    nonce = blob[_HEADER.size + _SALT_LEN : _HEADER.size + _SALT_LEN + _NONCE_LEN]
    sealed = blob[_HEADER.size + _SALT_LEN + _NONCE_LEN :]
    try:
        return AESGCM(_derive(pin, salt, params)).decrypt(
            nonce, sealed, blob[: _HEADER.size] + salt + associated_data)
    except InvalidTag:
        raise WrongPin() from None
