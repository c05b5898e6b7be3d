"""The CA and end-entity profiles, linted with pkilint."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from app.settings import DEFAULT_POLICY_OID
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.people import person
from tests.support.tools import pkilint_document


def lint(pem: bytes, tmp_path: Path) -> str:
    return pkilint_document("lint_pkix_cert", pem, tmp_path)


async def test_end_entity_certificate_profile_and_lint(service: Service, bank: Bank,
                                                       tmp_path: Path) -> None:
    issued = (await bank.issue(person(7))).json()
    pem = issued["certificate_pem"].encode()
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions
    key_usage = ext.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert key_usage.value.content_commitment and not key_usage.value.key_cert_sign
    policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [DEFAULT_POLICY_OID]
    assert not DEFAULT_POLICY_OID.startswith("1.2.410.200005")
    aia = {d.access_method: d.access_location.value
           for d in ext.get_extension_for_class(x509.AuthorityInformationAccess).value}
    assert aia[AuthorityInformationAccessOID.OCSP] == "http://certcloud.test/ocsp"
    assert aia[AuthorityInformationAccessOID.CA_ISSUERS] == "http://certcloud.test/ca/certificate"
    crldp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crldp[0].full_name[0].value == "http://certcloud.test/crl"
    ext.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    ext.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    assert cert.serial_number.bit_length() >= 64
    with pytest.raises(x509.ExtensionNotFound):
        ext.get_extension_for_class(x509.ExtendedKeyUsage)

    ca_pem = (await service.http.get("/ca/certificate.pem")).content
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    lint(pem, tmp_path)


async def test_ca_certificate_lint(service: Service, tmp_path: Path) -> None:
    der = (await service.http.get("/ca/certificate")).content
    ca = x509.load_der_x509_certificate(der)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lint(ca.public_bytes(serialization.Encoding.PEM), tmp_path)


async def test_p256_user_keys(service: Service, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.services.issuer import Issuer

    issuer = service.container.issuer
    service.container.certificates.issuer = Issuer(issuer.ca, issuer.profile, "p256")
    from tests.support.bank import make_bank

    bank = await make_bank(service.http, service.container)
    issued = await bank.issue(person(8))
    assert issued.status_code == 201
    cert = x509.load_pem_x509_certificate(issued.json()["certificate_pem"].encode())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    lint(issued.json()["certificate_pem"].encode(), tmp_path)


def test_the_lint_gate_catches_a_bad_profile(tmp_path: Path) -> None:
    """The helper must be able to fail: an empty subject with no subjectAltName is an error."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    bad = (x509.CertificateBuilder().subject_name(x509.Name([]))
           .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
           .public_key(key.public_key()).serial_number(1)
           .not_valid_before(now).not_valid_after(now + timedelta(days=1))
           .sign(key, hashes.SHA256()))
    with pytest.raises(AssertionError, match="pkilint"):
        lint(bad.public_bytes(serialization.Encoding.PEM), tmp_path)
