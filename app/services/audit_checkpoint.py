"""Signed checkpoints of the audit chain's head.

A checkpoint names a sequence number and the hash the chain has there, with the time, signed by
the CA key (a key file or the token, through the key's own ``sign``, as for certificates).
Kept somewhere else (a ticket, another host, a printout), it catches a rewrite of the chain up
to that row even by someone who holds every server secret but the CA key: the row's hash in the
database no longer matches.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.domain.repositories import AuditLog
from app.pki.ca import CertificateAuthority

PURPOSE = "certcloud-audit-checkpoint"  # a signature over this is no certificate, CRL or OCSP
_FIELDS = ("seq", "hash", "time", "signer")


class CheckpointError(ValueError):
    """A checkpoint file that is malformed, badly signed or from another signer."""


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps({"purpose": PURPOSE, **{name: body[name] for name in _FIELDS}},
                      sort_keys=True, separators=(",", ":")).encode()


def _hash_for(key: Any) -> hashes.HashAlgorithm:
    return hashes.SHA384() if isinstance(key, ec.EllipticCurvePublicKey) else hashes.SHA256()


async def head(log: AuditLog) -> tuple[int, str]:
    return await log.head()


def sign_checkpoint(ca: CertificateAuthority, seq: int, head_hash: str, now: datetime
                    ) -> dict[str, Any]:
    """Blocking (a token CA waits for the token): run it in a worker thread."""
    body: dict[str, Any] = {"seq": seq, "hash": head_hash, "time": now.isoformat(),
                            "signer": fingerprint(ca.certificate)}
    public = ca.key.public_key()
    data = _signed_bytes(body)
    if isinstance(ca.key, rsa.RSAPrivateKey):
        signature = ca.key.sign(data, padding.PKCS1v15(), _hash_for(public))
        algorithm = "rsa-pkcs1-sha256"
    elif isinstance(ca.key, ec.EllipticCurvePrivateKey):
        signature = ca.key.sign(data, ec.ECDSA(_hash_for(public)))
        algorithm = "ecdsa-sha384"
    else:
        raise TypeError("the CA key must be RSA or EC")
    return {**body, "algorithm": algorithm,
            "signature": base64.b64encode(signature).decode()}


def check_signature(checkpoint: Any, certificate: x509.Certificate) -> tuple[int, str]:
    """The checkpoint's (seq, hash) once its signature by ``certificate`` checks out.

    :raises CheckpointError: malformed, another signer, or a bad signature.
    """
    if not isinstance(checkpoint, dict) or not all(name in checkpoint for name in
                                                   (*_FIELDS, "signature")):
        raise CheckpointError("the checkpoint is not a certcloud audit checkpoint")
    seq, head_hash = checkpoint["seq"], checkpoint["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or \
            not isinstance(head_hash, str):
        raise CheckpointError("the checkpoint's seq or hash is malformed")
    if checkpoint["signer"] != fingerprint(certificate):
        raise CheckpointError("the checkpoint was signed by another CA "
                              f"(signer {str(checkpoint['signer'])[:16]}…)")
    try:
        signature = base64.b64decode(str(checkpoint["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("the checkpoint's signature is not base64") from None
    public = certificate.public_key()
    data = _signed_bytes(checkpoint)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), _hash_for(public))
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(_hash_for(public)))
        else:
            raise CheckpointError("the CA key is neither RSA nor EC")
    except InvalidSignature:
        raise CheckpointError("the checkpoint's signature does not verify") from None
    return seq, head_hash


async def chain_problems(log: AuditLog, seq: int, head_hash: str) -> list[str]:
    """What the database says against a (verified) checkpoint."""
    if seq == 0:
        return []
    stored = await log.hash_of(seq)
    if stored is None:
        return [f"row {seq} of the checkpoint is missing: the chain was cut"]
    if stored != head_hash:
        return [f"row {seq} has another hash than the checkpoint says: the chain up to it "
                "was rewritten"]
    return []
