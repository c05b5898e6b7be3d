"""app/pki/ocsp.py: request parsing, response signing, the responder certificate profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.pki import ocsp as pki
from app.pki import ocsp_responder
from app.pki.ca import CertificateAuthority, Profile, create_ca, issue_end_entity, subject_for
from app.pki.keys import generate_user_key
from tests.status.conftest import ocsp_request, pkilint

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca(common_name="Unit CA", organization="Certcloud", country="KR",
                     now=NOW - timedelta(days=1), validity_years=5)


@pytest.fixture(scope="module")
def leaf(ca: CertificateAuthority) -> x509.Certificate:
    key = generate_user_key("p256")
    return issue_end_entity(ca, Profile("2.25.1", "http://status.test"),
                            public_key=key.public_key(), subject=subject_for("홍길동", "p-1"),
                            serial=x509.random_serial_number(), not_before=NOW,
                            not_after=NOW + timedelta(days=30))


@pytest.fixture(scope="module")
def responder(ca: CertificateAuthority) -> pki.ResponderIdentity:
    key = ocsp_responder.generate_responder_key("rsa2048")
    certificate = ocsp_responder.issue_responder_certificate(
        ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(),
        serial=x509.random_serial_number(), not_before=ocsp_responder.backdated(NOW),
        not_after=NOW + timedelta(days=7))
    return pki.ResponderIdentity(key, certificate)


def _asn1_request(cert_ids: list[dict[str, object]], extensions: list[dict[str, object]]
                  | None = None) -> bytes:
    tbs: dict[str, object] = {"request_list": [{"req_cert": cid} for cid in cert_ids]}
    if extensions is not None:
        tbs["request_extensions"] = extensions
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def _cert_id(hashes_: tuple[bytes, bytes], serial: int, name: str = "sha1") -> dict[str, object]:
    return {"hash_algorithm": {"algorithm": name}, "issuer_name_hash": hashes_[0],
            "issuer_key_hash": hashes_[1], "serial_number": serial}


# --- parsing -----------------------------------------------------------------------------


def test_parse_single_request_with_nonce(ca: CertificateAuthority, leaf: x509.Certificate
                                         ) -> None:
    parsed = pki.parse_request(ocsp_request(leaf, ca.certificate, nonce=b"n" * 32))
    assert parsed.nonce == b"n" * 32
    (cert_id,) = parsed.cert_ids
    assert cert_id.serial == leaf.serial_number and cert_id.hash_name == "sha1"
    assert pki.IssuerHashes.of(ca.certificate).matches(cert_id)


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(),
                                       hashes.SHA512()])
def test_issuer_hashes_match_what_clients_compute(ca: CertificateAuthority,
                                                  leaf: x509.Certificate,
                                                  algorithm: hashes.HashAlgorithm) -> None:
    parsed = pki.parse_request(ocsp_request(leaf, ca.certificate, algorithm=algorithm))
    assert parsed.cert_ids[0].hash_name == algorithm.name
    assert pki.IssuerHashes.of(ca.certificate).matches(parsed.cert_ids[0])


def test_issuer_hashes_do_not_match_another_issuer(ca: CertificateAuthority) -> None:
    other = create_ca(common_name="Other CA", organization="Elsewhere", country="KR",
                      now=NOW, validity_years=1)
    other_leaf = issue_end_entity(other, Profile("2.25.1", "http://x"),
                                  public_key=generate_user_key("p256").public_key(),
                                  subject=subject_for("x", "y"), serial=7, not_before=NOW,
                                  not_after=NOW + timedelta(days=1))
    parsed = pki.parse_request(ocsp_request(other_leaf, other.certificate))
    assert not pki.IssuerHashes.of(ca.certificate).matches(parsed.cert_ids[0])


def test_parse_several_cert_ids(ca: CertificateAuthority) -> None:
    issuer = pki.IssuerHashes.of(ca.certificate)
    der = _asn1_request([_cert_id(issuer.by_hash["sha1"], 5),
                         _cert_id(issuer.by_hash["sha256"], 6, "sha256")],
                        [{"extn_id": "nonce", "critical": False, "extn_value": b"abc"}])
    parsed = pki.parse_request(der)
    assert [c.serial for c in parsed.cert_ids] == [5, 6]
    assert [c.hash_name for c in parsed.cert_ids] == ["sha1", "sha256"]
    assert parsed.nonce == b"abc"
    assert all(issuer.matches(c) for c in parsed.cert_ids)


@pytest.mark.parametrize("der, why", [
    (b"", "empty"),
    (b"\x30\x03\x02\x01\x01", "not an OCSPRequest"),
    (b"garbage" * 10, "garbage"),
    (b"\x30" + b"\x82\x30\x00" + b"\x00" * 12288, "over 10 KiB"),
])
def test_malformed_requests(der: bytes, why: str) -> None:
    with pytest.raises(pki.OCSPRefusal) as refused:
        pki.parse_request(der)
    assert refused.value.status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST, why


def test_trailing_bytes_are_malformed(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(ocsp_request(leaf, ca.certificate) + b"\x00")


def test_nonce_over_32_octets_is_refused(ca: CertificateAuthority, leaf: x509.Certificate
                                         ) -> None:
    pki.parse_request(ocsp_request(leaf, ca.certificate, nonce=b"x" * 32))
    with pytest.raises(pki.OCSPRefusal) as refused:
        pki.parse_request(ocsp_request(leaf, ca.certificate, nonce=b"x" * 33))
    assert refused.value.status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    issuer = pki.IssuerHashes.of(ca.certificate)
    several = _asn1_request([_cert_id(issuer.by_hash["sha1"], 5)] * 2,
                            [{"extn_id": "nonce", "critical": False, "extn_value": b"y" * 33}])
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(several)


def test_empty_nonce_is_refused(ca: CertificateAuthority) -> None:
    issuer = pki.IssuerHashes.of(ca.certificate)
    der = _asn1_request([_cert_id(issuer.by_hash["sha1"], 5)],
                        [{"extn_id": "nonce", "critical": False, "extn_value": b""}])
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(der)


def test_unsupported_hash_is_malformed(ca: CertificateAuthority) -> None:
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request([_cert_id((b"a" * 16, b"b" * 16), 5, "md5")]))
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request([_cert_id((b"a" * 16, b"b" * 16), 5, "md5")] * 2))


def test_zero_or_too_many_cert_ids_are_malformed(ca: CertificateAuthority) -> None:
    issuer = pki.IssuerHashes.of(ca.certificate)
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request([]))
    pki.parse_request(_asn1_request([_cert_id(issuer.by_hash["sha1"], 5)] * pki.MAX_CERT_IDS))
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request(
            [_cert_id(issuer.by_hash["sha1"], 5)] * (pki.MAX_CERT_IDS + 1)))


def test_unknown_critical_extension_is_malformed_but_non_critical_is_ignored(
        ca: CertificateAuthority) -> None:
    issuer = pki.IssuerHashes.of(ca.certificate)
    cert_id = _cert_id(issuer.by_hash["sha1"], 5)
    ignored = {"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}
    assert pki.parse_request(_asn1_request([cert_id], [ignored])).nonce is None
    critical = {"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request([cert_id], [critical]))
    with pytest.raises(pki.OCSPRefusal):
        pki.parse_request(_asn1_request([cert_id, cert_id], [critical]))


# --- signing ---------------------------------------------------------------------------------


def _verify(response: ocsp.OCSPResponse, responder: pki.ResponderIdentity) -> None:
    public_key = responder.certificate.public_key()
    assert response.signature_hash_algorithm is not None
    public_key.verify(response.signature, response.tbs_response_bytes,  # type: ignore[union-attr,call-arg]
                      padding.PKCS1v15(), response.signature_hash_algorithm)


def test_single_answers(ca: CertificateAuthority, leaf: x509.Certificate,
                        responder: pki.ResponderIdentity, tmp_path: Path) -> None:
    cert_id = pki.parse_request(ocsp_request(leaf, ca.certificate)).cert_ids[0]
    revoked_at = NOW - timedelta(hours=1)
    cases = [
        (pki.SingleAnswer(cert_id, pki.CertStatus.GOOD), ocsp.OCSPCertStatus.GOOD, None),
        (pki.SingleAnswer(cert_id, pki.CertStatus.REVOKED, revoked_at,
                          x509.ReasonFlags.key_compromise), ocsp.OCSPCertStatus.REVOKED,
         x509.ReasonFlags.key_compromise),
        (pki.SingleAnswer(cert_id, pki.CertStatus.REVOKED, revoked_at, None),
         ocsp.OCSPCertStatus.REVOKED, None),
        (pki.SingleAnswer(cert_id, pki.CertStatus.UNKNOWN), ocsp.OCSPCertStatus.UNKNOWN, None),
    ]
    for index, (answer, expected, reason) in enumerate(cases):
        der = pki.sign_response(responder, [answer], this_update=NOW,
                                next_update=NOW + timedelta(days=1), produced_at=NOW,
                                nonce=b"nonce-1" if index == 0 else None)
        response = ocsp.load_der_ocsp_response(der)
        assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status is expected
        assert response.revocation_reason == reason
        assert response.serial_number == leaf.serial_number
        assert response.this_update_utc == NOW
        assert response.next_update_utc == NOW + timedelta(days=1)
        assert response.certificates == [responder.certificate]
        assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
            responder.certificate.public_key()).digest
        nonces = [e.value.nonce for e in response.extensions if isinstance(e.value,
                                                                           x509.OCSPNonce)]
        assert nonces == ([b"nonce-1"] if index == 0 else [])
        if expected is ocsp.OCSPCertStatus.REVOKED:
            assert response.revocation_time_utc == revoked_at
        _verify(response, responder)
        path = tmp_path / f"r{index}.der"
        path.write_bytes(der)
        pkilint("ocsp", path)


def test_several_answers_in_one_response(ca: CertificateAuthority, leaf: x509.Certificate,
                                         responder: pki.ResponderIdentity,
                                         tmp_path: Path) -> None:
    issuer = pki.IssuerHashes.of(ca.certificate)
    first = pki.parse_request(ocsp_request(leaf, ca.certificate)).cert_ids[0]
    second = pki.CertId("sha256", *issuer.by_hash["sha256"], 12345)
    third = pki.CertId("sha1", *issuer.by_hash["sha1"], 999)
    der = pki.sign_response(responder, [
        pki.SingleAnswer(first, pki.CertStatus.GOOD),
        pki.SingleAnswer(second, pki.CertStatus.REVOKED, NOW, x509.ReasonFlags.superseded),
        pki.SingleAnswer(third, pki.CertStatus.UNKNOWN),
    ], this_update=NOW, next_update=NOW + timedelta(hours=6), produced_at=NOW, nonce=b"xyz")
    response = ocsp.load_der_ocsp_response(der)
    singles = list(response.responses)
    assert [s.serial_number for s in singles] == [leaf.serial_number, 12345, 999]
    assert [s.certificate_status for s in singles] == [
        ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN]
    assert singles[1].revocation_reason is x509.ReasonFlags.superseded
    assert singles[1].hash_algorithm.name == "sha256"
    assert response.produced_at_utc == NOW
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"xyz"
    _verify(response, responder)
    path = tmp_path / "several.der"
    path.write_bytes(der)
    pkilint("ocsp", path)


def test_ec_responder_signs_too(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    key = ocsp_responder.generate_responder_key("p256")
    certificate = ocsp_responder.issue_responder_certificate(
        ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(), serial=77,
        not_before=NOW, not_after=NOW + timedelta(days=1))
    identity = pki.ResponderIdentity(key, certificate)
    cert_id = pki.parse_request(ocsp_request(leaf, ca.certificate)).cert_ids[0]
    for answers in ([pki.SingleAnswer(cert_id, pki.CertStatus.GOOD)],
                    [pki.SingleAnswer(cert_id, pki.CertStatus.GOOD)] * 2):
        response = ocsp.load_der_ocsp_response(pki.sign_response(
            identity, answers, this_update=NOW, next_update=NOW + timedelta(hours=1),
            produced_at=NOW))
        public_key = certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(response.signature, response.tbs_response_bytes,
                          ec.ECDSA(hashes.SHA256()))


def test_unsuccessful_responses_are_constant() -> None:
    for status in (ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
                   ocsp.OCSPResponseStatus.UNAUTHORIZED, ocsp.OCSPResponseStatus.TRY_LATER):
        der = pki.unsuccessful_response(status)
        assert ocsp.load_der_ocsp_response(der).response_status is status
        assert der == pki.unsuccessful_response(status)


# --- the responder certificate --------------------------------------------------------------


def test_responder_certificate_profile(ca: CertificateAuthority,
                                       responder: pki.ResponderIdentity,
                                       tmp_path: Path) -> None:
    certificate = responder.certificate
    assert certificate.issuer == ca.certificate.subject
    ca.certificate.public_key().verify(  # type: ignore[union-attr,call-arg]
        certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
        hashes.SHA256())
    extensions = certificate.extensions
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert extensions.get_extension_for_class(x509.OCSPNoCheck).critical is False
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier \
        == ca.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime <= timedelta(days=7, minutes=5)
    path = tmp_path / "responder.der"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    pkilint("cert", path)
