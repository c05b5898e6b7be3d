"""A CA key inside the token signs certificates, CRLs and OCSP responses through cryptography's
own builders, and `openssl` accepts what comes out."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from app.pki.ca import CertificateAuthority, Profile, self_sign_ca, subject_for
from app.pki.keys import generate_user_key
from app.pki.token_keys import (
    KeyNotOnToken,
    TokenECPrivateKey,
    TokenRSAPrivateKey,
    generate_token_key,
    load_token_key,
)
from app.services.issuer import Issuer
from app.storage.pkcs11 import TokenSession
from tests.support.app import START

pytestmark = pytest.mark.hsm


def pem(obj: Any) -> bytes:
    return bytes(obj.public_bytes(serialization.Encoding.PEM))


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def token_ca(token: TokenSession, algorithm: str) -> CertificateAuthority:
    key = generate_token_key(token, f"ca-{algorithm}", algorithm)
    certificate = self_sign_ca(key, common_name=f"Token CA {algorithm}", organization="Certcloud",
                               country="KR", now=START - timedelta(days=1), validity_years=20)
    return CertificateAuthority(key, certificate)


@pytest.mark.parametrize("algorithm", ["rsa3072", "p384"])
async def test_token_ca_signs_certificate_crl_and_ocsp(token: TokenSession, tmp_path: Path,
                                                       algorithm: str) -> None:
    ca = token_ca(token, algorithm)
    assert isinstance(ca.key, TokenRSAPrivateKey if algorithm == "rsa3072"
                      else TokenECPrivateKey)
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)

    # A certificate, through the service's own issuer (it signs in a worker thread).
    issuer = Issuer(ca, Profile("2.25.1", "http://certcloud.test"), "rsa2048")
    user_key = generate_user_key("rsa2048")
    der = await issuer.sign(key=user_key, name="홍길동", person_id="p-1", serial=0x1234ABCD,
                            not_before=START, not_after=START + timedelta(days=3 * 365))
    leaf = x509.load_der_x509_certificate(der)
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    verified = openssl("verify", "-attime", str(int(START.timestamp()) + 60),
                       "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem"))
    assert verified.returncode == 0 and "leaf.pem: OK" in verified.stdout, verified.stderr
    assert leaf.subject == subject_for("홍길동", "p-1")

    # A CRL naming it, built with the whole list at once.
    digest = hashes.SHA384() if algorithm == "p384" else hashes.SHA256()
    revoked = (x509.RevokedCertificateBuilder().serial_number(leaf.serial_number)
               .revocation_date(START + timedelta(hours=1))
               .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
               .build())
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    crl = (x509.CertificateRevocationListBuilder(
               issuer_name=ca.certificate.subject, last_update=START + timedelta(hours=1),
               next_update=START + timedelta(days=1), revoked_certificates=[revoked])
           .add_extension(x509.CRLNumber(7), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                          critical=False)
           .sign(ca.key, digest))
    (tmp_path / "crl.pem").write_bytes(pem(crl))
    checked = openssl("crl", "-in", str(tmp_path / "crl.pem"), "-CAfile",
                      str(tmp_path / "ca.pem"), "-noout", "-text")
    assert checked.returncode == 0, checked.stderr
    assert "verify OK" in checked.stderr + checked.stdout
    assert format(leaf.serial_number, "X") in checked.stdout
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]

    # An OCSP response saying "revoked", signed by the CA key in the token. (openssl checks
    # its times against the wall clock, whatever -attime says.)
    now = datetime.now(UTC).replace(microsecond=0)
    response = (ocsp.OCSPResponseBuilder()
                .add_response(cert=leaf, issuer=ca.certificate, algorithm=hashes.SHA256(),
                              cert_status=ocsp.OCSPCertStatus.REVOKED,
                              this_update=now - timedelta(minutes=1),
                              next_update=now + timedelta(hours=1),
                              revocation_time=START + timedelta(hours=1),
                              revocation_reason=x509.ReasonFlags.key_compromise)
                .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
                .sign(ca.key, digest))
    (tmp_path / "resp.der").write_bytes(response.public_bytes(serialization.Encoding.DER))
    answered = openssl("ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer",
                       str(tmp_path / "ca.pem"), "-CAfile", str(tmp_path / "ca.pem"),
                       "-sha256", "-cert", str(tmp_path / "leaf.pem"), "-no_nonce",
                       "-resp_text")
    assert answered.returncode == 0, answered.stderr
    assert "Response verify OK" in answered.stderr + answered.stdout
    assert "leaf.pem: revoked" in answered.stdout, answered.stdout
    assert "WARNING" not in answered.stdout
    assert "Reason: keyCompromise" in answered.stdout


async def test_rsa_pss_and_prehashed(token: TokenSession, tmp_path: Path) -> None:
    ca = token_ca(token, "rsa3072")
    key = ca.key
    assert isinstance(key, rsa.RSAPrivateKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pss")]))
            .issuer_name(ca.certificate.subject).public_key(leaf_key.public_key())
            .serial_number(99).not_valid_before(START).not_valid_after(START + timedelta(days=1))
            .sign(key, hashes.SHA256(), rsa_padding=pss))
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    verified = openssl("verify", "-attime", str(int(START.timestamp()) + 60), "-CAfile",
                       str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    max_salt = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=padding.PSS.MAX_LENGTH)
    signature = key.sign(b"data", max_salt, hashes.SHA512())
    key.public_key().verify(signature, b"data", max_salt, hashes.SHA512())

    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    hasher = hashes.Hash(hashes.SHA384())
    hasher.update(b"data")
    signature = key.sign(hasher.finalize(), padding.PKCS1v15(), Prehashed(hashes.SHA384()))
    key.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA384())


async def test_token_keys_refuse_export_and_mismatch(token: TokenSession) -> None:
    ca = token_ca(token, "p256")
    key = ca.key
    assert isinstance(key, TokenECPrivateKey)
    with pytest.raises(TypeError, match="cannot be exported"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    with pytest.raises(TypeError, match="cannot be exported"):
        key.private_numbers()
    with pytest.raises(ValueError, match="already on the token"):
        generate_token_key(token, "ca-p256", "p256")
    # Loading checks the label names the key the certificate was made for.
    assert load_token_key(token, "ca-p256", ca.certificate.public_key()).label == "ca-p256"
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ValueError, match="does not match"):
        load_token_key(token, "ca-p256", other)
    with pytest.raises(KeyNotOnToken):
        load_token_key(token, "no-such-key", other)
    await key.check()
