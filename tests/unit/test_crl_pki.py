"""app/pki/crl.py: the CRL profile, and the child-process path (TBS built elsewhere, signed
here) giving the same CRL as the in-process builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import crl as pki
from app.pki.ca import CertificateAuthority, create_ca, self_sign_ca
from tests.support.tools import pkilint

NOW = datetime.now(UTC).replace(microsecond=0)
URL = "http://status.test/crl"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca(common_name="CRL CA", organization="Certcloud", country="KR",
                     now=NOW - timedelta(days=1), validity_years=5)


@pytest.fixture(scope="module")
def ec_ca() -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP384R1())
    return CertificateAuthority(key, self_sign_ca(
        key, common_name="EC CA", organization="Certcloud", country="KR",
        now=NOW - timedelta(days=1), validity_years=5))


def _params(ca: CertificateAuthority, number: int = 42) -> pki.CrlParams:
    return pki.CrlParams(ca.certificate_der, number, NOW, NOW + timedelta(days=7), URL)


ENTRIES = b"".join([
    pki.pack_entry("1234", NOW - timedelta(hours=2), 1),
    pki.pack_entry("abcdef", NOW - timedelta(hours=1), 4),
    pki.pack_entry("77", NOW, 0),
    pki.pack_entry("78", NOW, None),
])


def _check_profile(crl: x509.CertificateRevocationList, ca: CertificateAuthority,
                   number: int = 42) -> None:
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == NOW and crl.next_update_utc == NOW + timedelta(days=7)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.full_name == [x509.UniformResourceIdentifier(URL)]
    assert idp.value.only_contains_user_certs
    by_serial = {entry.serial_number: entry for entry in crl}
    assert set(by_serial) == {0x1234, 0xABCDEF, 0x77, 0x78}
    reasons = {}
    for serial, entry in by_serial.items():
        found = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
        reasons[serial] = found[0] if found else None
    # unspecified is left out (RFC 5280 §5.3.1), every other reason is stated
    assert reasons == {0x1234: x509.ReasonFlags.key_compromise,
                       0xABCDEF: x509.ReasonFlags.superseded, 0x77: None, 0x78: None}
    assert by_serial[0x1234].revocation_date_utc == NOW - timedelta(hours=2)


def test_crl_profile_and_lint(ca: CertificateAuthority, tmp_path: Path) -> None:
    der = pki.build_crl(ca.key, _params(ca), ENTRIES)
    _check_profile(x509.load_der_x509_crl(der), ca)
    path = tmp_path / "crl.der"
    path.write_bytes(der)
    pkilint("crl", path)


def test_empty_crl(ca: CertificateAuthority, tmp_path: Path) -> None:
    der = pki.build_crl(ca.key, _params(ca, 1), b"")
    crl = x509.load_der_x509_crl(der)
    assert len(crl) == 0 and crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    path = tmp_path / "empty.der"
    path.write_bytes(der)
    pkilint("crl", path)


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_child_process_path_gives_the_same_crl(which: str, ca: CertificateAuthority,
                                               ec_ca: CertificateAuthority,
                                               tmp_path: Path) -> None:
    authority = ca if which == "rsa" else ec_ca
    tbs = pki.build_tbs(pki.key_kind(authority.key), _params(authority), ENTRIES)
    der = pki.sign_tbs(authority.key, tbs)
    crl = x509.load_der_x509_crl(der)
    _check_profile(crl, authority)
    assert crl.tbs_certlist_bytes == tbs
    reference = x509.load_der_x509_crl(pki.build_crl(authority.key, _params(authority),
                                                     ENTRIES))
    assert reference.tbs_certlist_bytes == tbs  # same content, only the signature differs
    assert crl.signature_algorithm_oid == reference.signature_algorithm_oid
    path = tmp_path / f"child-{which}.der"
    path.write_bytes(der)
    pkilint("crl", path)


def test_sign_tbs_refuses_a_tbs_for_another_key_type(ca: CertificateAuthority,
                                                     ec_ca: CertificateAuthority) -> None:
    tbs = pki.build_tbs("ec", _params(ec_ca), ENTRIES)
    with pytest.raises(ValueError, match="another signature algorithm"):
        pki.sign_tbs(ca.key, tbs)
    with pytest.raises(ValueError):
        pki.sign_tbs(ca.key, b"\x30\x00garbage")


def test_reason_flags() -> None:
    assert pki.reason_flag(None) is None
    assert pki.reason_flag(0) is None
    assert pki.reason_flag(1) is x509.ReasonFlags.key_compromise
    assert pki.reason_flag(4) is x509.ReasonFlags.superseded


def test_packed_entries_round_trip() -> None:
    serial = (1 << 159) + 12345
    packed = pki.pack_entry(format(serial, "x"), NOW, 9) + pki.pack_entry("1", NOW, None)
    assert len(packed) == 2 * pki.ENTRY_SIZE
    assert pki.unpack_entries(packed) == [(serial, int(NOW.timestamp()), 9),
                                          (1, int(NOW.timestamp()), None)]
    with pytest.raises(ValueError):  # more than 20 octets
        pki.pack_entry("1" + "0" * 40, NOW, None)
    with pytest.raises(ValueError):
        pki.unpack_entries(packed[:-1])
