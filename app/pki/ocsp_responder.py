"""The delegated OCSP responder's key and certificate (RFC 6960 §4.2.2.2), issued by the CA
and kept short-lived; :mod:`app.pki.ocsp` signs the responses with them."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.pki.ca import authority_key_identifier, issued_by, service_subject
from app.pki.keys import generate_service_key


def generate_responder_key(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A fresh responder key: ``rsa2048`` or ``p256``."""
    return generate_service_key(algorithm, "responder")


def issue_responder_certificate(
    *, ca_key: CertificateIssuerPrivateKeyTypes, ca_certificate: x509.Certificate,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, serial: int, not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued by the CA,
    digitalSignature, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck (§4.2.2.2.1), so clients
    never ask about the responder itself; kept short-lived instead."""
    subject = service_subject(ca_certificate, f"OCSP Responder {not_before:%Y%m%d%H%M%S}")
    builder, algorithm = issued_by(
        ca_key, ca_certificate, subject=subject,
        public_key=public_key, serial=serial, not_before=not_before, not_after=not_after)
    return (
        builder
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(ca_certificate), critical=False)
        .sign(ca_key, algorithm)
    )


def backdated(moment: datetime) -> datetime:
    """Validity starts a little earlier than ``moment`` for clients whose clock runs behind."""
    return moment - timedelta(minutes=5)
