"""The delegated OCSP responder's key and certificate (RFC 6960 §4.2.2.2), issued by the CA
and kept short-lived; :mod:`app.pki.ocsp` signs the responses with them."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def generate_responder_key(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A fresh responder key: ``rsa2048`` or ``p256``."""
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown responder key algorithm {algorithm!r}")


def issue_responder_certificate(
    *, ca_key: CertificateIssuerPrivateKeyTypes, ca_certificate: x509.Certificate,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, serial: int, not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued by the CA,
    digitalSignature, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck (§4.2.2.2.1), so clients
    never ask about the responder itself; kept short-lived instead."""
    organization = ca_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    country = ca_certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    subject = x509.Name([
        *(x509.NameAttribute(NameOID.COUNTRY_NAME, str(a.value)) for a in country[:1]),
        *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(a.value)) for a in organization[:1]),
        x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP Responder {not_before:%Y%m%d%H%M%S}"),
    ])
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    algorithm = hashes.SHA384() if isinstance(ca_key, ec.EllipticCurvePrivateKey) else (
        hashes.SHA256())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, algorithm)
    )


def backdated(moment: datetime) -> datetime:
    """Validity starts a little earlier than ``moment`` for clients whose clock runs behind."""
    return moment - timedelta(minutes=5)
