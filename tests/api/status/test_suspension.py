"""Issue 18, item 4, what relying parties see: a suspended certificate is revoked with reason
certificateHold to ``openssl ocsp`` and on the CRL (``openssl verify -crl_check`` fails, pkilint
passes the CRL with the hold entry); once resumed OCSP says good and the next CRL leaves it
out. The pre-signed OCSP answers are replaced in both transitions' transactions, so no replica
serves the old one. The JSON status says ``suspended``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from app.storage.status_repository import StatusRepository
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.people import person
from tests.support.status import issue, ocsp_request, pem, post_ocsp
from tests.support.tools import openssl, pkilint, run

PIN = "902714"


def _openssl_ocsp(service: Service, workdir: Path, cert_path: Path, request_der: bytes,
                  response_der: bytes) -> str:
    """``openssl ocsp -respin`` on the app's reply: it must verify; returns the text."""
    ca = workdir / "ca.pem"
    ca.write_bytes(pem(service.container.issuer.ca.certificate))
    response = workdir / "resp.der"
    response.write_bytes(response_der)
    done = run([openssl(), "ocsp", "-respin", str(response), "-issuer", str(ca),
                "-cert", str(cert_path), "-CAfile", str(ca), "-no_nonce", "-resp_text"])
    output = done.stdout + done.stderr
    assert "Response verify OK" in output, output
    return output


async def _ocsp_reply(service: Service, request_der: bytes) -> bytes:
    reply = await service.http.post("/ocsp", content=request_der,
                                    headers={"Content-Type": "application/ocsp-request"})
    assert reply.status_code == 200
    return reply.content


def _verify_crl_check(service: Service, workdir: Path, cert_path: Path, crl_der: bytes
                      ) -> tuple[int, str]:
    ca = workdir / "ca.pem"
    ca.write_bytes(pem(service.container.issuer.ca.certificate))
    crl_pem = workdir / "crl.pem"
    crl_pem.write_bytes(x509.load_der_x509_crl(crl_der).public_bytes(serialization.Encoding.PEM))
    done = run([openssl(), "verify", "-crl_check", "-CAfile", str(ca), "-CRLfile",
                str(crl_pem), str(cert_path)], check=False)
    return done.returncode, done.stdout + done.stderr


async def _suspend(bank: Bank, certificate_id: str) -> dict[str, Any]:
    reply = await bank.post(f"/v1/certificates/{certificate_id}/suspend", {"pin": PIN})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def _resume(bank: Bank, certificate_id: str, n: int) -> dict[str, Any]:
    proof = await bank.verified(person(n)["phone"], "resume")
    reply = await bank.post(f"/v1/certificates/{certificate_id}/resume",
                            {"verification_id": proof})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def test_openssl_sees_the_hold_and_its_release(service: Service, bank: Bank,
                                                     tmp_path: Path) -> None:
    resource, cert = await issue(bank, 1)
    cert_path = tmp_path / "ee.pem"
    cert_path.write_text(resource["certificate_pem"])
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    assert f"{cert_path}: good" in _openssl_ocsp(
        service, tmp_path, cert_path, request_der, await _ocsp_reply(service, request_der))
    code, _ = _verify_crl_check(service, tmp_path, cert_path,
                                (await service.http.get("/crl")).content)
    assert code == 0

    await _suspend(bank, resource["id"])
    output = _openssl_ocsp(service, tmp_path, cert_path, request_der,
                           await _ocsp_reply(service, request_der))
    assert f"{cert_path}: revoked" in output, output
    assert "Reason: certificateHold" in output, output
    crl_der = (await service.http.get("/crl")).content
    code, output = _verify_crl_check(service, tmp_path, cert_path, crl_der)
    assert code != 0 and "certificate revoked" in output, output
    entry = x509.load_der_x509_crl(crl_der).get_revoked_certificate_by_serial_number(
        cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.certificate_hold)
    (tmp_path / "hold.crl").write_bytes(crl_der)
    pkilint("crl", tmp_path / "hold.crl")
    status = (await service.http.get(f"/v1/status/{resource['serial']}")).json()
    assert status["status"] == "suspended"

    await _resume(bank, resource["id"], 1)
    output = _openssl_ocsp(service, tmp_path, cert_path, request_der,
                           await _ocsp_reply(service, request_der))
    assert f"{cert_path}: good" in output, output
    crl_der = (await service.http.get("/crl")).content
    assert x509.load_der_x509_crl(crl_der).get_revoked_certificate_by_serial_number(
        cert.serial_number) is None
    code, output = _verify_crl_check(service, tmp_path, cert_path, crl_der)
    assert code == 0, output
    assert (await service.http.get(f"/v1/status/{resource['serial']}")).json()[
        "status"] == "good"


async def _stored_status(service: Service, serial: str) -> str | None:
    async with service.container.db.transaction(write=False) as conn:
        row = await StatusRepository(conn).get_response(serial, "sha1")
    if row is None:
        return None
    stored = ocsp.load_der_ocsp_response(bytes(row.response_der))
    assert stored.certificate_status.name.lower() == row.cert_status
    return str(row.cert_status)


async def test_the_presigned_answers_follow_both_transitions(service: Service,
                                                             bank: Bank) -> None:
    resource, cert = await issue(bank, 2)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    assert (await post_ocsp(service.http, request_der)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)
    assert await _stored_status(service, resource["serial"]) == "good"
    await _suspend(bank, resource["id"])
    # Signed in the suspending transaction: shared by every replica, never a stale good.
    assert await _stored_status(service, resource["serial"]) == "revoked"
    held = await post_ocsp(service.http, request_der)
    assert held.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert held.revocation_reason is x509.ReasonFlags.certificate_hold
    await _resume(bank, resource["id"], 2)
    assert await _stored_status(service, resource["serial"]) == "good"  # re-signed
    assert (await post_ocsp(service.http, request_der)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)


async def test_a_lapsed_hold_is_revoked_on_ocsp_and_crl(service: Service, bank: Bank) -> None:
    resource, cert = await issue(bank, 3)
    held = await _suspend(bank, resource["id"])
    # The responder's certificate is short-lived: a short hold rather than 30 days of clock.
    service.container.suspensions.max_hold = timedelta(minutes=1)
    service.clock.advance(timedelta(minutes=1))
    assert await service.container.suspensions.lapse_due(service.clock.now()) == 1
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    response = await post_ocsp(service.http, request_der)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert response.revocation_time_utc is not None
    assert response.revocation_time_utc.isoformat().replace("+00:00", "Z") == (
        held["revoked_at"].replace("+00:00", "Z"))
    entry = x509.load_der_x509_crl((await service.http.get("/crl")).content
                                   ).get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.cessation_of_operation)
    assert entry.revocation_date_utc.isoformat() == response.revocation_time_utc.isoformat()
