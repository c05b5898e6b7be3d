"""An issuing CA under a bank's own root: the request for its certificate, and the checks on
what the root sends back before it is installed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import NameOID


class ImportRefused(ValueError):
    """The certificate or chain cannot be installed; the message says why, in one line."""


def ca_request(key: CertificateIssuerPrivateKeyTypes, *, common_name: str, organization: str,
               country: str) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for an issuing CA: basicConstraints CA with pathLen 0 (it issues
    only end-entity certificates), keyUsage keyCertSign and cRLSign, its key identifier."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    algorithm = hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else (
        hashes.SHA256())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, algorithm)
    )


def public_key_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> object | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_valid_at(certificate: x509.Certificate, now: datetime, what: str) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ImportRefused(
            f"{what} {_name(certificate)!r} is not valid now (valid from "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)")


def _check_can_sign_certificates(certificate: x509.Certificate, what: str) -> None:
    constraints = _extension(certificate, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise ImportRefused(f"{what} {_name(certificate)!r} is not a CA certificate "
                            "(basicConstraints CA is not set)")
    usage = _extension(certificate, x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        raise ImportRefused(f"{what} {_name(certificate)!r} may not sign certificates "
                            "(keyUsage lacks keyCertSign)")


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check_issued_ca(certificate: x509.Certificate, *, pending_key: CertificatePublicKeyTypes,
                    chain: Sequence[x509.Certificate], now: datetime
                    ) -> tuple[x509.Certificate, ...]:
    """Check the certificate the root issued for the pending key, and that ``chain`` leads
    from it to a self-signed root, signature by signature, each valid at ``now`` and allowed
    to sign certificates (pathLen included). Returns the chain in order, issuer first.

    :raises ImportRefused: the first problem found, in one line.
    """
    if public_key_der(certificate.public_key()) != public_key_der(pending_key):
        raise ImportRefused("the certificate is for another key than the pending CA's (its "
                            "public key is not the one in the CSR)")
    _check_can_sign_certificates(certificate, "the certificate")
    usage = _extension(certificate, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not (usage.key_cert_sign and usage.crl_sign):
        raise ImportRefused("the certificate is not fit for issuing: its keyUsage must have "
                            "keyCertSign and cRLSign")
    if _extension(certificate, x509.SubjectKeyIdentifier) is None:
        raise ImportRefused("the certificate has no subjectKeyIdentifier (RFC 5280 4.2.1.2 "
                            "requires one in a CA certificate)")
    _check_valid_at(certificate, now, "the certificate")
    path: list[x509.Certificate] = []
    remaining = list(chain)
    current = certificate
    while not (current.subject == current.issuer and _signed_by(current, current)):
        named = [c for c in remaining if c.subject == current.issuer]
        issuer = next((c for c in named if _signed_by(current, c)), None)
        if issuer is None:
            if named:
                raise ImportRefused(f"the signature on {_name(current)!r} does not verify "
                                    f"with the key of {_name(named[0])!r} in the chain")
            raise ImportRefused(
                f"the chain has no issuer of {_name(current)!r} "
                f"({current.issuer.rfc4514_string()!r}); pass the certificates up to the "
                "self-signed root with --chain")
        _check_can_sign_certificates(issuer, "the chain's")
        _check_valid_at(issuer, now, "the chain's")
        constraints = _extension(issuer, x509.BasicConstraints)
        below = len(path) + 1  # CA certificates between it and the leaves
        if isinstance(constraints, x509.BasicConstraints) and (
                constraints.path_length is not None and constraints.path_length < below):
            raise ImportRefused(f"the chain's {_name(issuer)!r} allows pathLen "
                                f"{constraints.path_length}, but {below} CA(s) are below it")
        path.append(issuer)
        remaining.remove(issuer)
        current = issuer
    if remaining:
        raise ImportRefused(f"the chain holds {_name(remaining[0])!r}, which is not on the "
                            "path from the certificate to its root")
    return tuple(path)
