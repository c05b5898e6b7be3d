"""A bank's offline root for the CA hierarchy tests: made with ``cryptography``; it signs the
issuing CA's CSR with ``openssl x509 -req`` as a root operator would, or with ``cryptography``
for the certificates a careless root might send back."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

# What the root puts in an issuing CA's certificate (openssl x509 -req -extfile).
ISSUING_CA_EXTENSIONS = """basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Bank"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ca_usage(*, cert_sign: bool = True, crl_sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


@dataclass
class Root:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    pem_path: Path
    key_path: Path

    def sign(self, public_key: CertificatePublicKeyTypes, subject: x509.Name, *, now: datetime,
             ca: bool = True, usage: x509.KeyUsage | None = None, ski: bool = True,
             days: int = 3650, path_length: int | None = 0) -> x509.Certificate:
        """A certificate for ``public_key`` signed by this root (for the bad cases)."""
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(self.certificate.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                           critical=True)
            .add_extension(usage or ca_usage(), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False))
        if ski:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        return builder.sign(self.key, hashes.SHA384())

    def sign_csr_with_openssl(self, csr_path: Path, out_path: Path) -> Path:
        """``openssl x509 -req``, as the root's operator signs the issuing CA."""
        extensions = out_path.with_suffix(".ext")
        extensions.write_text(ISSUING_CA_EXTENSIONS)
        subprocess.run(["openssl", "x509", "-req", "-in", str(csr_path), "-CA",
                        str(self.pem_path), "-CAkey", str(self.key_path), "-CAcreateserial",
                        "-days", "3650", "-sha384", "-extfile", str(extensions),
                        "-out", str(out_path)], check=True, capture_output=True, timeout=60)
        return out_path


def make_root(directory: Path, now: datetime, *, common_name: str = "Test Bank Offline Root",
              path_length: int | None = 1, not_before: datetime | None = None,
              not_after: datetime | None = None, file_name: str = "root") -> Root:
    """A self-signed root (P-384) and its files ``<file_name>.pem`` and ``.key``."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365 * 20))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(ca_usage(), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA384()))
    directory.mkdir(parents=True, exist_ok=True)
    pem_path, key_path = directory / f"{file_name}.pem", directory / f"{file_name}.key"
    pem_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Root(key, certificate, pem_path, key_path)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
