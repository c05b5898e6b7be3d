"""POST /tsa, the RFC 3161 time-stamping authority, against openssl's own client and
verifier; its refusals (a timestamp-reply with status rejection, or problem+json at the HTTP
level, never a 500); its certificate's profile."""

from __future__ import annotations

import os
from datetime import timedelta
from hashlib import sha256
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.pki.tsp import TimeStampResp
from app.settings import DEFAULT_TSA_POLICY_OID, Settings
from tests.support.app import FixedClock, Service, running
from tests.support.status import der, pem
from tests.support.tools import openssl, pkilint_document, run

QUERY = {"Content-Type": "application/timestamp-query"}


def _tsa_certificate(service: Service) -> x509.Certificate:
    signer = service.container.tsa.signers.usable(service.clock.now())
    assert signer is not None
    return signer.identity.certificate


def _query(tmp_path: Path, algorithm: str, *, nonce: bool = True, cert: bool = True,
           extra: tuple[str, ...] = ()) -> tuple[Path, Path]:
    data = tmp_path / "data.txt"
    data.write_bytes(os.urandom(100))
    query = tmp_path / f"{algorithm}-{nonce}-{cert}.tsq"
    run([openssl(), "ts", "-query", "-data", str(data), f"-{algorithm}",
         *(() if nonce else ("-no_nonce",)), *(("-cert",) if cert else ()), *extra,
         "-out", str(query)])
    return data, query


async def _post(service: Service, body: bytes, **headers: str) -> bytes:
    reply = await service.http.post("/tsa", content=body, headers={**QUERY, **headers})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/timestamp-reply"
    return reply.content


def _token_info(reply_der: bytes) -> tuple[TimeStampResp, tsp.TSTInfo, cms.SignedData]:
    response = TimeStampResp.load(reply_der)
    assert response["status"]["status"].native == "granted", response["status"].native
    signed = response["time_stamp_token"]["content"]
    return response, signed["encap_content_info"]["content"].parsed, signed


@pytest.mark.parametrize(("algorithm", "nonce", "cert"), [
    ("sha256", True, True), ("sha256", False, False), ("sha512", True, False),
    ("sha512", False, True), ("sha384", True, True)])
async def test_openssl_verifies_the_tsa_reply(service: Service, tmp_path: Path, algorithm: str,
                                              nonce: bool, cert: bool) -> None:
    data, query = _query(tmp_path, algorithm, nonce=nonce, cert=cert)
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(await _post(service, query.read_bytes()))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(service.container.issuer.ca.certificate_pem)
    tsa = tmp_path / "tsa.pem"
    tsa.write_bytes(pem(_tsa_certificate(service)))
    for against in (["-queryfile", str(query)], ["-data", str(data)]):
        verified = run([openssl(), "ts", "-verify", "-in", str(reply), *against,
                        "-CAfile", str(ca), "-untrusted", str(tsa)])
        assert "Verification: OK" in verified.stdout
    _response, info, signed = _token_info(reply.read_bytes())
    requested = tsp.TimeStampReq.load(query.read_bytes())
    assert info["nonce"].native == requested["nonce"].native
    assert (info["nonce"].native is None) == (not nonce)
    assert info["policy"].dotted == DEFAULT_TSA_POLICY_OID
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["ordering"].native is False
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == algorithm
    assert info["gen_time"].native == service.clock.now()
    # RFC 3161 §2.4.1: the TSA certificate only when certReq asks for it.
    assert (len(signed["certificates"]) > 0) == cert
    # ESSCertIDv2 of the TSA certificate (RFC 5816).
    attrs = {a["type"].native: a["values"][0] for a in signed["signer_infos"][0]["signed_attrs"]}
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["cert_hash"].native == sha256(der(_tsa_certificate(service))).digest()


async def test_serial_numbers_differ_and_a_wrong_trust_anchor_fails(
        service: Service, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "sha256")
    first = _token_info(await _post(service, query.read_bytes()))[1]
    second = _token_info(await _post(service, query.read_bytes()))[1]
    assert first["serial_number"].native != second["serial_number"].native
    assert first["serial_number"].native.bit_length() > 100
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(await _post(service, query.read_bytes()))
    other = tmp_path / "other.pem"  # the TSA certificate is no trust anchor of itself
    other.write_bytes(pem(_tsa_certificate(service)))
    failed = run([openssl(), "ts", "-verify", "-in", str(reply), "-queryfile", str(query),
                  "-CAfile", str(other)], check=False)
    assert failed.returncode != 0


def _rejection(reply_der: bytes) -> set[str]:
    response = TimeStampResp.load(reply_der)
    status = response["status"]
    assert status["status"].native == "rejection"
    assert response["time_stamp_token"].native is None
    return set(status["fail_info"].native)


async def test_requests_the_tsa_will_not_stamp_get_a_rejection(service: Service,
                                                                tmp_path: Path) -> None:
    assert _rejection(await _post(service, b"garbage")) == {"bad_data_format"}
    assert _rejection(await _post(service, b"")) == {"bad_data_format"}
    _data, sha1 = _query(tmp_path, "sha1")
    assert _rejection(await _post(service, sha1.read_bytes())) == {"bad_alg"}
    _data, policy = _query(tmp_path, "sha256", extra=("-tspolicy", "1.2.3.4"))
    assert _rejection(await _post(service, policy.read_bytes())) == {"unaccepted_policy"}
    _data, ours = _query(tmp_path, "sha256", extra=("-tspolicy", DEFAULT_TSA_POLICY_OID))
    _token_info(await _post(service, ours.read_bytes()))
    # A SHA-256 imprint 31 bytes long.
    short = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x00" * 31}}).dump()
    assert _rejection(await _post(service, short)) == {"bad_data_format"}
    # Trailing bytes after a valid request.
    assert _rejection(await _post(service, ours.read_bytes() + b"\x00")) == {"bad_data_format"}
    # openssl reads the rejection as one.
    reply = tmp_path / "rejected.tsr"
    reply.write_bytes(await _post(service, b"garbage"))
    shown = run([openssl(), "ts", "-reply", "-in", str(reply), "-text"])
    assert "Status: Rejected" in shown.stdout
    assert "the data submitted has the wrong format" in shown.stdout


async def test_http_level_refusals_are_problems(service: Service, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "sha256")
    wrong = await service.http.post("/tsa", content=query.read_bytes(),
                                    headers={"Content-Type": "application/octet-stream"})
    assert wrong.status_code == 415
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["code"] == "unsupported_media_type"
    big = await service.http.post("/tsa", content=b"0" * 4097, headers=QUERY)
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"0" * 1000

    streamed = await service.http.post("/tsa", content=chunks(), headers=QUERY)
    assert streamed.status_code == 413 and streamed.json()["code"] == "body_too_large"
    assert (await service.http.get("/tsa")).status_code == 405


async def test_anonymous_requests_are_limited_per_address(settings: Settings,
                                                          clock: FixedClock,
                                                          tmp_path: Path) -> None:
    limited = settings.model_copy(update={"tsa": settings.tsa.model_copy(
        update={"requests_per_address_per_minute": 2})})
    async with running(limited, clock) as service:
        for _ in range(2):
            await _post(service, b"garbage")  # refusals count too: parsing is work
        refused = await service.http.post("/tsa", content=b"garbage", headers=QUERY)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited_tsa_requests_per_address"
        assert int(refused.headers["retry-after"]) > 0


async def test_tsa_certificate_profile_and_lint(service: Service, tmp_path: Path) -> None:
    cert = _tsa_certificate(service)
    ca = service.container.issuer.ca.certificate
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.content_commitment or usage.value.key_cert_sign
                or usage.value.crl_sign or usage.value.key_encipherment)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [DEFAULT_TSA_POLICY_OID]
    pkilint_document("lint_pkix_cert", pem(cert), tmp_path)


async def test_the_signer_survives_a_restart_and_rolls_over(settings: Settings,
                                                            clock: FixedClock) -> None:
    async with running(settings, clock) as service:
        first = _tsa_certificate(service)
    async with running(settings, clock) as service:
        assert _tsa_certificate(service) == first  # loaded, not issued again
    # A minute inside the renewal window of the first certificate.
    later = FixedClock(first.not_valid_after_utc
                       - timedelta(seconds=settings.tsa.renew_before_seconds - 60))
    async with running(settings, later) as service:
        renewed = _tsa_certificate(service)
        assert renewed != first and renewed.serial_number != first.serial_number
        assert renewed.not_valid_after_utc > first.not_valid_after_utc


async def test_a_failed_renewal_keeps_stamping_with_the_current_certificate(
        settings: Settings, clock: FixedClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.domain.errors import DependencyUnavailable
    from app.services.tsa.signers import TsaSigners

    async with running(settings, clock) as service:
        first = _tsa_certificate(service)
    later = FixedClock(first.not_valid_after_utc
                       - timedelta(seconds=settings.tsa.renew_before_seconds - 60))

    async def token_down(*_args: object) -> None:
        raise DependencyUnavailable("the key store is unavailable", code="key_store_unavailable")

    async with running(settings, clock) as service:
        monkeypatch.setattr(TsaSigners, "_issue", token_down)
        service.container.tsa.signers._clock = later
        service.container.tsa._clock = later
        _data, query = _query(tmp_path, "sha256")
        info = _token_info(await _post(service, query.read_bytes()))[1]
        assert info["gen_time"].native == later.now()
        assert _tsa_certificate(service) == first
