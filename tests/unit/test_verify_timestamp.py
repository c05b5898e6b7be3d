"""A CMS carrying a signature time-stamp token (CAdES-T): the verifier takes the signing time
from the token once the token checks (its TSA certificate issued by a trusted CA, its imprint
the hash of the signature value). The token is made by ``openssl ts -reply`` with a TSA
certificate from a test CA made here; the service's own TSA is another piece of work."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.domain.certificates import Certificate, StoredState
from app.pki.cms import build_signed_data
from app.pki.signing import Mechanism
from app.pki.verify import check_timestamp, parse_cms
from app.services.limits import RateLimiter
from app.services.signature_verification import SignatureVerificationService, VerifyRequest

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DATA = b"time-stamped"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(ca_key: rsa.RSAPrivateKey, ca_name: x509.Name, key: rsa.RSAPrivateKey, cn: str, *,
           ca: bool = False, tsa: bool = False) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=30))
               .not_valid_after(NOW + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if tsa:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return builder.sign(ca_key, hashes.SHA256())


class _Pki:
    def __init__(self, tmp: Path) -> None:
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca = _issue(self.ca_key, _name("Test CA"), self.ca_key, "Test CA", ca=True)
        self.signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signer = _issue(self.ca_key, self.ca.subject, self.signer_key, "signer")
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tsa = _issue(self.ca_key, self.ca.subject, tsa_key, "Test TSA", tsa=True)
        self.tmp = tmp
        (tmp / "tsa.pem").write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
        (tmp / "tsa.key").write_bytes(tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (tmp / "serial").write_text("01\n")
        (tmp / "tsa.cnf").write_text(
            "[ tsa ]\ndefault_tsa = tsa_config\n[ tsa_config ]\n"
            f"serial = {tmp / 'serial'}\nsigner_digest = sha256\n"
            "default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\n"
            "ess_cert_id_alg = sha256\n")

    def cms(self) -> bytes:
        return build_signed_data(key=self.signer_key,
                                 certificate_der=self.signer.public_bytes(
                                     serialization.Encoding.DER),
                                 mechanism=Mechanism("sha256"), signed_at=NOW, content=DATA)

    def token_over(self, message: bytes) -> bytes:
        """``openssl ts -query`` over ``message``, then ``-reply -token_out``: the DER token."""
        (self.tmp / "message.bin").write_bytes(message)
        for command in (
            ["openssl", "ts", "-query", "-data", str(self.tmp / "message.bin"), "-sha256",
             "-cert", "-out", str(self.tmp / "req.tsq")],
            ["openssl", "ts", "-reply", "-config", str(self.tmp / "tsa.cnf"), "-queryfile",
             str(self.tmp / "req.tsq"), "-signer", str(self.tmp / "tsa.pem"), "-inkey",
             str(self.tmp / "tsa.key"), "-token_out", "-out", str(self.tmp / "token.der")],
        ):
            done = subprocess.run(command, capture_output=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr.decode()
        return (self.tmp / "token.der").read_bytes()


def _with_token(signature_der: bytes, token: bytes) -> bytes:
    info = cms.ContentInfo.load(signature_der)
    signer = info["content"]["signer_infos"][0]
    signer["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute({
        "type": "signature_time_stamp_token", "values": [cms.ContentInfo.load(token)]})])
    return info.dump()


@pytest.fixture
def pki(tmp_path: Path) -> _Pki:
    return _Pki(tmp_path)


def test_a_token_over_the_signature_value_gives_the_time(pki: _Pki) -> None:
    signed = pki.cms()
    value = parse_cms(signed).signature
    stamped = _with_token(signed, pki.token_over(value))
    parsed = parse_cms(stamped)
    assert parsed.timestamp_token is not None
    check = check_timestamp(parsed.timestamp_token, parsed.signature, [pki.ca])
    assert check.problem is None and check.time is not None
    assert abs(check.time - datetime.now(UTC)) < timedelta(minutes=5)  # openssl's clock


def test_a_token_over_something_else_or_from_another_ca_does_not_count(pki: _Pki,
                                                                        tmp_path: Path
                                                                        ) -> None:
    signed = pki.cms()
    value = parse_cms(signed).signature
    other = parse_cms(_with_token(signed, pki.token_over(b"another signature")))
    assert other.timestamp_token is not None
    assert check_timestamp(other.timestamp_token, value, [pki.ca]).problem == (
        "timestamp_mismatch")
    token = pki.token_over(value)
    (tmp_path / "stranger").mkdir()
    stranger = _Pki(tmp_path / "stranger")
    assert check_timestamp(token, value, [stranger.ca]).problem == "timestamp_untrusted"
    assert check_timestamp(b"\x30\x03\x02\x01\x00", value, [pki.ca]).problem == (
        "timestamp_invalid")


class _Records:
    def __init__(self, certificate: x509.Certificate) -> None:
        self.certificate = certificate

    async def by_serial(self, serial: str) -> Certificate | None:
        if serial != format(self.certificate.serial_number, "x"):
            return None
        return Certificate(
            id="c1", person_id="p1", serial=serial, state=StoredState.ACTIVE,
            not_before=self.certificate.not_valid_before_utc,
            not_after=self.certificate.not_valid_after_utc,
            certificate_der=self.certificate.public_bytes(serialization.Encoding.DER),
            issued_by_client="bank", replaces_id=None, revocation_reason=None,
            revoked_at=None, wrong_pins=0)


class _Counters:
    async def increment(self, bucket: str, window_start: int, window_seconds: int) -> int:
        return 1

    async def read(self, bucket: str, window_start: int) -> int:
        return 0

    async def check(self) -> None: ...

    async def close(self) -> None: ...


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def test_verify_reports_the_timestamp_as_time_source(pki: _Pki) -> None:
    service = SignatureVerificationService(_Records(pki.signer), [pki.ca], _Clock(),
                                           RateLimiter(_Counters()))
    signed = pki.cms()
    stamped = _with_token(signed, pki.token_over(parse_cms(signed).signature))
    result = await service.verify(VerifyRequest(signature=stamped, format="cms"),
                                  source="test")
    assert result.valid and result.reasons == []
    assert result.time_source is not None and result.time_source.value == "timestamp"
    assert result.signing_time is not None and result.signing_time > NOW
    plain = await service.verify(VerifyRequest(signature=signed, format="cms"), source="test")
    assert plain.time_source is not None and plain.time_source.value == "signed_attributes"
    assert plain.signing_time == NOW
    bad = _with_token(signed, pki.token_over(b"not this signature"))
    result = await service.verify(VerifyRequest(signature=bad, format="cms"), source="test")
    assert result.valid is False and result.reasons == ["timestamp_mismatch"]
    assert result.time_source is not None and result.time_source.value == "signed_attributes"
