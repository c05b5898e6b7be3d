"""The issuing CA: its key and certificate, and the end-entity certificate profile."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from app.storage.files import private_directory

CA_KEY_FILE = "ca.key.pem"
CA_CERT_FILE = "ca.cert.pem"
# For a CA whose key stays in a PKCS#11 token: which token and label hold it (no secret).
CA_KEY_REF_FILE = "ca.key.pkcs11.json"
# A CA whose certificate comes from the bank's own root: the request made for it (the CA is
# pending while there is a request but no certificate), and the certificates above it.
CA_CSR_FILE = "ca.csr.pem"
CA_CHAIN_FILE = "chain.pem"
CA_PREVIOUS_FILE = "previous.pem"  # earlier CA certificates still trusted for verification


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA's signing key (a file key, or any object with the cryptography key interface,
    such as a token-backed key), its certificate and, under a bank's own root, the
    certificates above it (issuer first, the self-signed root last; empty for a root)."""

    key: CertificateIssuerPrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def chain_pem(self) -> bytes:
        """The issuing CA, then the chain above it."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM)
                        for cert in (self.certificate, *self.chain))

    @property
    def chain_der(self) -> list[bytes]:
        """The issuing CA, then the chain above it (DER)."""
        return [cert.public_bytes(serialization.Encoding.DER)
                for cert in (self.certificate, *self.chain)]

    @property
    def below_root(self) -> tuple[x509.Certificate, ...]:
        """What a relying party holding only the root needs besides a leaf: the issuing CA
        and any intermediates (nothing for a self-signed CA)."""
        return (self.certificate, *self.chain[:-1]) if self.chain else ()

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Profile:
    """What goes into every end-entity certificate besides the subject and key."""

    policy_oid: str
    public_base_url: str

    @property
    def ocsp_url(self) -> str:
        return f"{self.public_base_url}/ocsp"

    @property
    def ca_issuers_url(self) -> str:
        return f"{self.public_base_url}/ca/certificate"

    @property
    def crl_url(self) -> str:
        return f"{self.public_base_url}/crl"


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    return hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()


def issued_by(
    ca_key: CertificateIssuerPrivateKeyTypes, ca_certificate: x509.Certificate, *,
    subject: x509.Name, public_key: CertificatePublicKeyTypes, serial: int,
    not_before: datetime, not_after: datetime,
) -> tuple[x509.CertificateBuilder, hashes.SHA256 | hashes.SHA384]:
    """A certificate the CA issues, started: subject, issuer, key, serial and validity; and
    the hash to sign it with (by the CA key's type). The caller adds its extensions, among
    them :func:`authority_key_identifier`, and signs with ``ca_key``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    return builder, _hash_for(ca_key)


def authority_key_identifier(ca_certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AuthorityKeyIdentifier of a certificate ``ca_certificate`` issues: its SKI."""
    ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def service_subject(ca_certificate: x509.Certificate, common_name: str) -> x509.Name:
    """The name of a certificate the CA issues to one of its own services (the OCSP
    responder, the TSA): the CA's country and organization, then ``common_name``."""
    organization = ca_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    country = ca_certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return x509.Name([
        *(x509.NameAttribute(NameOID.COUNTRY_NAME, str(a.value)) for a in country[:1]),
        *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(a.value)) for a in organization[:1]),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def create_ca(
    *, common_name: str, organization: str, country: str, now: datetime, validity_years: int
) -> CertificateAuthority:
    """Make a new RSA-3072 root for issuing personal certificates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return CertificateAuthority(key, self_sign_ca(key, common_name=common_name,
                                                  organization=organization, country=country,
                                                  now=now, validity_years=validity_years))


def self_sign_ca(
    key: CertificateIssuerPrivateKeyTypes, *, common_name: str, organization: str, country: str,
    now: datetime, validity_years: int,
) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    public_key = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * validity_years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, _hash_for(key))
    )


def save_ca(ca: CertificateAuthority, directory: Path) -> None:
    """Write the key (mode 0600, in a directory made 0700) and the certificate; refuses to
    overwrite an existing CA."""
    if (directory / CA_CERT_FILE).exists():
        raise FileExistsError(f"a CA already exists in {directory}")
    save_ca_key(ca.key, directory)
    (directory / CA_CERT_FILE).write_bytes(ca.certificate_pem)


def save_ca_key(key: CertificateIssuerPrivateKeyTypes, directory: Path) -> Path:
    """Write the CA key file (mode 0600, in a directory made 0700); refuses to overwrite."""
    private_directory(directory)
    key_path = directory / CA_KEY_FILE
    if key_path.exists() or (directory / CA_KEY_REF_FILE).exists():
        raise FileExistsError(f"a CA key already exists in {directory}")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    return key_path


def load_ca_key(directory: Path) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """:raises FileNotFoundError: when the CA key is not a file there."""
    key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be RSA or EC")
    return key


def save_ca_certificate(certificate: x509.Certificate, directory: Path,
                        key_reference: dict[str, str]) -> None:
    """Write the certificate of a CA whose key stays in a token, and where that key is (token
    and label); refuses to overwrite an existing CA."""
    cert_path = directory / CA_CERT_FILE
    if cert_path.exists():
        raise FileExistsError(f"a CA already exists in {directory}")
    save_key_reference(key_reference, directory)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def save_key_reference(key_reference: dict[str, str], directory: Path) -> None:
    """Where the token-held CA key is; refuses to overwrite any CA key."""
    private_directory(directory)
    ref_path = directory / CA_KEY_REF_FILE
    if (directory / CA_KEY_FILE).exists() or ref_path.exists():
        raise FileExistsError(f"a CA key already exists in {directory}")
    ref_path.write_text(json.dumps(key_reference, indent=2) + "\n")


def ca_key_reference(directory: Path) -> dict[str, str] | None:
    """Where the token-held CA key is, or None for a CA with a key file."""
    path = directory / CA_KEY_REF_FILE
    return dict(json.loads(path.read_text())) if path.exists() else None


def load_ca_certificate(directory: Path) -> x509.Certificate:
    """:raises FileNotFoundError: when no CA was initialised there."""
    return x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())


def ca_exists(directory: Path) -> bool:
    return (directory / CA_CERT_FILE).exists()


def ca_pending(directory: Path) -> bool:
    """A CA key and its request are there, the certificate from the root is not (yet)."""
    return (directory / CA_CSR_FILE).exists() and not ca_exists(directory)


def load_chain(directory: Path) -> tuple[x509.Certificate, ...]:
    """The certificates above the issuing CA (none for a self-signed one)."""
    path = directory / CA_CHAIN_FILE
    return tuple(x509.load_pem_x509_certificates(path.read_bytes())) if path.exists() else ()


def install_ca_certificate(certificate: x509.Certificate, chain: Sequence[x509.Certificate],
                           directory: Path) -> None:
    """Write the certificate the root issued and the chain above it; the certificate last,
    since its presence is what makes the CA installed. Refuses to overwrite."""
    cert_path = directory / CA_CERT_FILE
    if cert_path.exists():
        raise FileExistsError(f"a CA is already installed in {directory}")
    (directory / CA_CHAIN_FILE).write_bytes(
        b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain))
    fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))


def load_previous_cas(directory: Path) -> tuple[x509.Certificate, ...]:
    """Earlier CA certificates (PEM, in ``previous.pem``) kept after a CA key or certificate
    rollover: signatures by certificates they issued still verify. None when absent."""
    path = directory / CA_PREVIOUS_FILE
    if not path.exists():
        return ()
    return tuple(x509.load_pem_x509_certificates(path.read_bytes()))


def load_ca(directory: Path) -> CertificateAuthority:
    """:raises FileNotFoundError: when no CA was initialised there."""
    cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
    return CertificateAuthority(load_ca_key(directory), cert, load_chain(directory))


def sha256_fingerprint(der: bytes) -> str:
    """As ``openssl x509 -fingerprint -sha256`` prints it (upper-case hex, colons)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def subject_for(name: str, person_id: str) -> x509.Name:
    """The holder's name and a unique id; never the RRN."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, person_id),
    ])


def issue_end_entity(
    ca: CertificateAuthority, profile: Profile, *, public_key: CertificatePublicKeyTypes,
    subject: x509.Name, serial: int, not_before: datetime, not_after: datetime,
    identify_data: x509.OtherName | None = None,
) -> x509.Certificate:
    """Sign a personal signing certificate: digitalSignature + nonRepudiation, no EKU (so CMS
    verifiers accept it for any purpose), the service policy, AIA and CRL distribution point,
    and the holder's KISA identifyData (VID, ``app.pki.vid``) in subjectAltName when given."""
    builder, algorithm = issued_by(ca.key, ca.certificate, subject=subject,
                                   public_key=public_key, serial=serial,
                                   not_before=not_before, not_after=not_after)
    if identify_data is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([identify_data]),
                                        critical=False)
    return (
        builder
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
        .add_extension(x509.CertificatePolicies([
            x509.PolicyInformation(x509.ObjectIdentifier(profile.policy_oid), None)]),
            critical=False)
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(profile.ocsp_url)),
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                   x509.UniformResourceIdentifier(profile.ca_issuers_url)),
        ]), critical=False)
        .add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.UniformResourceIdentifier(profile.crl_url)],
                                   None, None, None)]), critical=False)
        .sign(ca.key, algorithm)
    )
