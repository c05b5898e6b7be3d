"""app.pki.signing and app.pki.cms on their own: every mechanism against cryptography's
verifiers, the CSC algorithm table, and the CMS builder's refusals."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.pki.ca import Profile, create_ca, issue_end_entity, subject_for
from app.pki.cms import build_signed_data, signing_time
from app.pki.keys import generate_user_key
from app.pki.signing import (
    Mechanism,
    Padding,
    SigningInputError,
    csc_signature_algorithms,
    hash_name_for_size,
    mechanism_for_csc,
    sign_digest,
    sign_digests,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    key = generate_user_key("rsa2048")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    key = generate_user_key("p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512"])
def test_every_mechanism_verifies(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey,
                                  name: str) -> None:
    value = hashlib.new(name, b"data").digest()
    prehashed = Prehashed(HASHES[name]())
    rsa_key.public_key().verify(sign_digest(rsa_key, value, Mechanism(name)), value,
                                padding.PKCS1v15(), prehashed)
    rsa_key.public_key().verify(
        sign_digest(rsa_key, value, Mechanism(name, Padding.PSS)), value,
        padding.PSS(mgf=padding.MGF1(HASHES[name]()), salt_length=len(value)), prehashed)
    ec_key.public_key().verify(sign_digest(ec_key, value, Mechanism(name)), value,
                               ec.ECDSA(prehashed))


def test_refusals(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(SigningInputError):
        sign_digest(rsa_key, b"x" * 20, Mechanism("sha256"))
    with pytest.raises(SigningInputError):
        sign_digest(ec_key, b"x" * 32, Mechanism("sha256", Padding.PSS))
    with pytest.raises(SigningInputError):  # checked before anything is signed
        sign_digests(rsa_key, [b"x" * 32, b"x" * 31], Mechanism("sha256"))
    with pytest.raises(SigningInputError):
        hash_name_for_size(20)
    assert hash_name_for_size(48) == "sha384"


def test_csc_algorithm_table(rsa_key: rsa.RSAPrivateKey,
                             ec_key: ec.EllipticCurvePrivateKey) -> None:
    rsa_pub, ec_pub = rsa_key.public_key(), ec_key.public_key()
    assert mechanism_for_csc(rsa_pub, "1.2.840.113549.1.1.12", None) == Mechanism("sha384")
    assert mechanism_for_csc(rsa_pub, "1.2.840.113549.1.1.1",
                             "2.16.840.1.101.3.4.2.3") == Mechanism("sha512")
    assert mechanism_for_csc(ec_pub, "1.2.840.10045.4.3.2",
                             "2.16.840.1.101.3.4.2.1") == Mechanism("sha256")
    for key, sign_algo, hash_algo in [
        (rsa_pub, "1.2.840.113549.1.1.1", None),  # rsaEncryption needs hashAlgo
        (rsa_pub, "1.2.840.113549.1.1.11", "2.16.840.1.101.3.4.2.2"),  # contradiction
        (rsa_pub, "1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.2.1"),  # PSS: not over CSC
        (rsa_pub, "1.2.840.10045.4.3.2", None),  # ECDSA with an RSA key
        (ec_pub, "1.2.840.113549.1.1.11", None),
        (rsa_pub, "1.2.840.113549.1.1.1", "1.3.14.3.2.26"),  # SHA-1
    ]:
        with pytest.raises(SigningInputError):
            mechanism_for_csc(key, sign_algo, hash_algo)
    assert "1.2.840.10045.4.3.4" in csc_signature_algorithms(ec_pub)


def test_cms_builder(rsa_key: rsa.RSAPrivateKey) -> None:
    ca = create_ca(common_name="Unit CA", organization="Certcloud", country="KR",
                   now=NOW - timedelta(days=1), validity_years=5)
    cert = issue_end_entity(ca, Profile("2.25.1", "http://certcloud.test"),
                            public_key=rsa_key.public_key(), subject=subject_for("홍길동", "p1"),
                            serial=0x1234, not_before=NOW, not_after=NOW + timedelta(days=30))
    der = cert.public_bytes(serialization.Encoding.DER)
    mechanism = Mechanism("sha256")
    for kwargs in ({"content": b"a", "content_digest": b"x" * 32, "detached": True},
                   {}, {"content_digest": b"x" * 32},  # a digest needs detached
                   {"content_digest": b"x" * 31, "detached": True}):
        with pytest.raises(SigningInputError):
            build_signed_data(key=rsa_key, certificate_der=der, mechanism=mechanism,
                              signed_at=NOW, **kwargs)  # type: ignore[arg-type]
    signed = cms.ContentInfo.load(build_signed_data(
        key=rsa_key, certificate_der=der, mechanism=mechanism, signed_at=NOW,
        content=b"hello", extra_certificates=[ca.certificate_der]))["content"]
    assert signed["version"].native == "v1"
    assert len(signed["certificates"]) == 2
    signer = signed["signer_infos"][0]
    # The signature covers the DER SET OF the signed attributes (RFC 5652 §5.4).
    attrs = signer["signed_attrs"].untag().dump(force=True)
    rsa_key.public_key().verify(signer["signature"].native, attrs, padding.PKCS1v15(),
                                hashes.SHA256())


def test_signing_time_encoding() -> None:
    assert signing_time(NOW).name == "utc_time"
    assert signing_time(datetime(2050, 1, 1, tzinfo=UTC)).name == "generalized_time"
