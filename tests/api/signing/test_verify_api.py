"""POST /v1/signatures/verify (issue 14, item 1): the relying party's one call. Signatures made
through the signing API, and some made in the test with a holder's real key (opened with its
PIN) at a signing time the API would never use (after revocation, after expiry)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.ca_setup import init_ca
from app.pki.cms import build_signed_data
from app.pki.signing import Mechanism
from tests.support.app import START, Service, running, with_limits
from tests.support.bank import Bank, Holder, issue_holder, make_bank, refresh_token
from tests.support.signing import b64, unb64

DATA = "이체 확인: 100,000원".encode()
VERIFY = "/v1/signatures/verify"


async def _sign(bank: Bank, holder: Holder, **body: Any) -> bytes:
    body.setdefault("pin", holder.pin)
    reply = await bank.post(f"/v1/certificates/{holder.id}/signatures", body)
    assert reply.status_code == 200, reply.text
    return unb64(reply.json()["signature"])


async def _verify(service: Service, **body: Any) -> Any:
    return await service.http.post(VERIFY, json=body)  # no token: no account needed


async def _valid(service: Service, **body: Any) -> dict[str, Any]:
    reply = await _verify(service, **body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def test_attached_cms_verifies_with_its_signer_and_time(service: Service, bank: Bank,
                                                              holder: Holder) -> None:
    signature = await _sign(bank, holder, data=b64(DATA), format="cms")
    body = await _valid(service, signature=b64(signature), format="cms")
    assert body["valid"] is True and body["reasons"] == []
    assert body["signer"]["serial"] == holder.certificate["serial"]
    assert body["signer"]["certificate_pem"] == holder.certificate["certificate_pem"]
    assert "CN=홍길동1" in body["signer"]["subject"]
    assert body["time_source"] == "signed_attributes"
    assert body["signing_time"].startswith(START.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["status_at_signing"] == "active" and body["status_now"] == "active"
    assert body["revocation"] is None


async def test_detached_over_data_and_over_digest(service: Service, bank: Bank,
                                                  holder: Holder) -> None:
    over_data = await _sign(bank, holder, data=b64(DATA), format="cms", detached=True)
    digest = hashlib.sha256(DATA).digest()
    over_digest = await _sign(bank, holder, digest=b64(digest), format="cms", detached=True)
    for signature in (over_data, over_digest):
        assert (await _valid(service, signature=b64(signature), data=b64(DATA)))["valid"]
        assert (await _valid(service, signature=b64(signature), digest=b64(digest)))["valid"]
        tampered = await _valid(service, signature=b64(signature), data=b64(DATA + b"0"))
        assert tampered["valid"] is False and tampered["reasons"] == ["content_mismatch"]


async def test_raw_with_serial_or_certificate(service: Service, bank: Bank,
                                              holder: Holder) -> None:
    signature = b64(await _sign(bank, holder, data=b64(DATA), format="raw"))
    by_serial = await _valid(service, signature=signature, format="raw", data=b64(DATA),
                             serial=holder.certificate["serial"])
    assert by_serial["valid"] is True and by_serial["signing_time"] is None
    assert by_serial["time_source"] is None and by_serial["status_now"] == "active"
    by_pem = await _valid(service, signature=signature, format="raw",
                          digest=b64(hashlib.sha256(DATA).digest()),
                          certificate_pem=holder.certificate["certificate_pem"])
    assert by_pem["valid"] is True
    pss = b64(await _sign(bank, holder, data=b64(DATA), format="raw", padding="pss"))
    assert (await _valid(service, signature=pss, format="raw", data=b64(DATA), padding="pss",
                         serial=holder.certificate["serial"]))["valid"]
    tampered = await _valid(service, signature=signature, format="raw", data=b64(b"other"),
                            serial=holder.certificate["serial"])
    assert tampered == {**tampered, "valid": False, "reasons": ["signature_invalid"]}


async def test_tampered_attached_content(service: Service, bank: Bank, holder: Holder) -> None:
    signature = await _sign(bank, holder, data=b64(DATA), format="cms")
    assert DATA in signature
    tampered = signature.replace(DATA, DATA[:-1] + b"!")
    body = await _valid(service, signature=b64(tampered))
    assert body["valid"] is False and body["reasons"] == ["content_mismatch"]
    # Attached content that differs from the data the relying party holds.
    body = await _valid(service, signature=b64(signature), data=b64(b"what I was shown"))
    assert body["reasons"] == ["content_mismatch"]


async def test_wrong_certificate(service: Service, bank: Bank, holder: Holder) -> None:
    other = await issue_holder(bank, 2)
    raw = b64(await _sign(bank, holder, data=b64(DATA), format="raw"))
    body = await _valid(service, signature=raw, format="raw", data=b64(DATA),
                        serial=other.certificate["serial"])
    assert body["valid"] is False and body["reasons"] == ["signature_invalid"]
    assert body["signer"]["serial"] == other.certificate["serial"]
    cms = b64(await _sign(bank, holder, data=b64(DATA), format="cms"))
    body = await _valid(service, signature=cms, certificate_pem=other.certificate[
        "certificate_pem"])
    assert body["valid"] is False
    assert body["reasons"] == ["signer_mismatch", "signature_invalid"]


async def test_revoked_after_signing_stays_valid_and_is_reported(
        service: Service, bank: Bank, holder: Holder) -> None:
    signature = b64(await _sign(bank, holder, data=b64(DATA), format="cms"))
    service.clock.advance(timedelta(days=10))
    await refresh_token(bank)
    revoked = await bank.post(f"/v1/certificates/{holder.id}/revoke",
                              {"pin": holder.pin, "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text
    body = await _valid(service, signature=signature)
    assert body["valid"] is True and body["reasons"] == []
    assert body["status_at_signing"] == "active" and body["status_now"] == "revoked"
    assert body["revocation"]["reason"] == "key_compromise"
    assert body["revocation"]["revoked_at"] == revoked.json()["revoked_at"].replace("+00:00",
                                                                                    "Z")


async def _cms_at(service: Service, holder: Holder, when: Any) -> str:
    """A CMS made with the holder's own key (opened with the PIN) and signingTime ``when``."""
    certificate, key = await service.container.pin_gate.open_key(
        holder.id, holder.pin, require_usable=False)
    return b64(build_signed_data(key=key, certificate_der=certificate.certificate_der,
                                 mechanism=Mechanism("sha256"), signed_at=when, content=DATA))


async def test_revoked_before_signing(service: Service, bank: Bank, holder: Holder) -> None:
    revoked = await bank.post(f"/v1/certificates/{holder.id}/revoke", {"pin": holder.pin})
    assert revoked.status_code == 200
    service.clock.advance(timedelta(hours=2))
    body = await _valid(service, signature=await _cms_at(service, holder,
                                                         START + timedelta(hours=1)))
    assert body["valid"] is False and body["reasons"] == ["revoked_before_signing"]
    assert body["status_at_signing"] == "revoked" and body["status_now"] == "revoked"
    raw = b64(await _raw_with_key(service, holder))
    body = await _valid(service, signature=raw, format="raw", data=b64(DATA),
                        serial=holder.certificate["serial"])
    assert body["reasons"] == ["certificate_revoked"]  # no signing time: judged now


async def _raw_with_key(service: Service, holder: Holder) -> bytes:
    from app.pki.signing import sign_digest

    _, key = await service.container.pin_gate.open_key(holder.id, holder.pin,
                                                       require_usable=False)
    return sign_digest(key, hashlib.sha256(DATA).digest(), Mechanism("sha256"))


async def test_expired_at_signing(service: Service, bank: Bank, holder: Holder) -> None:
    not_after = holder.x509.not_valid_after_utc
    service.clock.set(not_after + timedelta(days=2))
    body = await _valid(service, signature=await _cms_at(service, holder,
                                                         not_after + timedelta(days=1)))
    assert body["valid"] is False and body["reasons"] == ["expired_at_signing"]
    assert body["status_at_signing"] == "expired" and body["status_now"] == "expired"
    # A signature made while it was valid still verifies after expiry.
    body = await _valid(service, signature=await _cms_at(service, holder,
                                                         START + timedelta(days=1)))
    assert body["valid"] is True and body["status_now"] == "expired"
    future = await _valid(service, signature=await _cms_at(service, holder,
                                                           not_after + timedelta(days=30)))
    assert "signing_time_in_future" in future["reasons"]


def _foreign_signature() -> tuple[str, str]:
    """A CMS by a certificate from a CA that is not Certcloud's."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Elsewhere CA")])
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([
        x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "someone")])).issuer_name(name)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(START - timedelta(days=1)).not_valid_after(START + timedelta(days=9))
        .sign(ca_key, hashes.SHA256()))
    der = leaf.public_bytes(serialization.Encoding.DER)
    return b64(build_signed_data(key=leaf_key, certificate_der=der,
                                 mechanism=Mechanism("sha256"), signed_at=START,
                                 content=DATA)), leaf.public_bytes(
        serialization.Encoding.PEM).decode()


async def test_not_issued_here_and_unknown(service: Service, bank: Bank, holder: Holder
                                           ) -> None:
    signature, pem = _foreign_signature()
    body = await _valid(service, signature=signature)
    assert body["valid"] is False and body["reasons"] == ["not_issued_here"]
    assert body["signer"]["subject"] == "CN=someone" and body["status_now"] is None
    body = await _valid(service, signature=signature, certificate_pem=pem)
    assert body["reasons"] == ["not_issued_here"]
    raw = b64(await _sign(bank, holder, data=b64(DATA), format="raw"))
    body = await _valid(service, signature=raw, format="raw", data=b64(DATA), serial="abc123")
    assert body == {**body, "valid": False, "reasons": ["certificate_unknown"], "signer": None}


async def test_garbage_is_a_422_problem(service: Service, bank: Bank, holder: Holder) -> None:
    cms = b64(await _sign(bank, holder, data=b64(DATA), format="cms", detached=True))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"signature": "not base64!"}, "base64_invalid"),
        ({"signature": b64(b"\x30\x03\x02\x01")}, "signature_malformed"),
        ({"signature": b64(b"garbage" * 40)}, "signature_malformed"),
        ({"signature": b64(holder.x509.public_bytes(serialization.Encoding.DER))},
         "signature_malformed"),
        ({"signature": cms}, "payload_required"),
        ({"signature": cms, "data": b64(DATA), "digest": b64(bytes(32))}, "payload_required"),
        ({"signature": cms, "digest": b64(bytes(20))}, "digest_length_invalid"),
        ({"signature": cms, "data": b64(DATA), "certificate_pem": "-----BEGIN nothing"},
         "certificate_invalid"),
        ({"signature": cms, "format": "raw", "data": b64(DATA)}, "certificate_required"),
        ({"signature": cms, "format": "raw"}, "payload_required"),
        ({"signature": cms, "format": "raw", "data": b64(DATA), "serial": "xyz"},
         "serial_invalid"),
        ({"signature": cms, "format": "pkcs7"}, "invalid_request"),
    ]
    for body, code in cases:
        reply = await _verify(service, **body)
        assert reply.status_code == 422, (code, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == code, reply.text
    huge = await _verify(service, signature="A" * (70 * 1024))
    assert huge.status_code == 413 and huge.json()["code"] == "body_too_large"


async def test_limited_per_source_address(settings: Any, clock: Any) -> None:
    async with running(with_limits(settings, signature_checks_per_address_per_minute=2),
                       clock) as service:
        for _ in range(2):
            assert (await _verify(service, signature=b64(b"\x30\x00"))).status_code == 422
            bank = await make_bank(service.http, service.container)
            assert bank  # malformed input is refused before it is counted
        signature, _ = _foreign_signature()
        for _ in range(2):
            assert (await _verify(service, signature=signature)).status_code == 200
        limited = await _verify(service, signature=signature)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited_signature_checks_per_address"
        assert "retry-after" in limited.headers


async def test_signature_by_an_earlier_ca_verifies(settings: Any, clock: Any) -> None:
    """After a CA rollover (a new CA key and certificate), the old CA certificate is kept in
    ``previous.pem``; signatures by certificates it issued still verify. Without it they are
    not_issued_here, so the file is what makes them count."""
    async with running(settings, clock) as service:
        bank = await make_bank(service.http, service.container)
        holder = await issue_holder(bank, 7)
        signature = b64(await _sign(bank, holder, data=b64(DATA), format="cms"))
    old_ca = (settings.ca_dir / "ca.cert.pem").read_bytes()
    shutil.move(settings.ca_dir, settings.data_dir / "old-ca")
    if settings.ca.key_store == "pkcs11":  # the old CA key stays on the token, under its label
        settings.ca.key_label = f"certcloud-ca-{uuid.uuid4().hex[:8]}"
    init_ca(settings, clock)  # a new CA key and certificate
    assert (settings.ca_dir / "ca.cert.pem").read_bytes() != old_ca
    async with running(settings, clock) as service:
        body = await _valid(service, signature=signature)
        assert body["reasons"] == ["not_issued_here"]
    (settings.ca_dir / "previous.pem").write_bytes(old_ca)
    async with running(settings, clock) as service:
        body = await _valid(service, signature=signature)
        assert body["valid"] is True and body["reasons"] == []
        assert body["signer"]["serial"] == holder.certificate["serial"]
