"""Automatic renewal: a signature in the last 30 days before expiry renews the certificate (new
key under the same PIN, new serial, predecessor superseded) and is made with the renewed one;
past not_after nothing signs or renews."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.domain.certificates import RENEWAL_WINDOW, VALIDITY
from app.domain.errors import DependencyUnavailable
from tests.support.app import START, Service
from tests.support.bank import Bank, Holder, refresh_token
from tests.support.problems import assert_problem
from tests.support.signing import b64, ca_pem_path, openssl_verify, unb64

DATA = b"renewal test"


async def _sign(bank: Bank, certificate_id: str, pin: str, **body: object) -> httpx.Response:
    return await bank.post(f"/v1/certificates/{certificate_id}/signatures",
                           {"pin": pin, "data": b64(DATA), "format": "raw", **body})


def _rsa_key(pem: str) -> rsa.RSAPublicKey:
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


async def test_outside_the_window_nothing_is_renewed(service: Service, bank: Bank,
                                                     holder: Holder) -> None:
    service.clock.set(START + VALIDITY - RENEWAL_WINDOW - timedelta(minutes=1))
    await refresh_token(bank)
    reply = await _sign(bank, holder.id, holder.pin)
    assert reply.status_code == 200, reply.text
    assert reply.json()["renewed"] is None


async def test_signature_in_the_window_renews_and_uses_the_new_certificate(
        service: Service, bank: Bank, holder: Holder, tmp_path: Path) -> None:
    old_key = holder.x509.public_key()
    now = START + VALIDITY - timedelta(days=10)
    service.clock.set(now)
    await refresh_token(bank)

    wrong = await _sign(bank, holder.id, "000000")  # a wrong PIN renews nothing
    assert wrong.status_code == 403
    reply = await _sign(bank, holder.id, holder.pin)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    renewed = body["renewed"]
    assert renewed is not None
    assert renewed["id"] != holder.id and renewed["serial"] != holder.certificate["serial"]
    assert renewed["replaces_id"] == holder.id and renewed["status"] == "active"
    assert renewed["issued_by_client"] == bank.client_id
    assert renewed["remaining_pin_attempts"] == 5
    new_cert = x509.load_pem_x509_certificate(renewed["certificate_pem"].encode())
    assert new_cert.not_valid_before_utc == now
    assert new_cert.not_valid_after_utc == now + VALIDITY
    assert new_cert.subject == holder.x509.subject
    assert new_cert.public_key() != old_key  # a new key pair

    # The signature of this very reply is the renewed certificate's.
    assert body["certificate_pem"] == renewed["certificate_pem"]
    new_key = _rsa_key(renewed["certificate_pem"])
    new_key.verify(unb64(body["signature"]), DATA, padding.PKCS1v15(), hashes.SHA256())

    old = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert old["status"] == "revoked" and old["revocation_reason"] == "superseded"
    again_old = await _sign(bank, holder.id, holder.pin)
    assert again_old.status_code == 409 and again_old.json()["code"] == "certificate_revoked"

    # The same PIN opens the new key; the new certificate is far from its window.
    cms = await _sign(bank, renewed["id"], holder.pin, format="cms")
    assert cms.status_code == 200 and cms.json()["renewed"] is None
    verified = openssl_verify(ca_pem_path(service), tmp_path, unb64(cms.json()["signature"]),
                              at=now)
    assert verified.returncode == 0, verified.stderr

    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder.person["rrn"]})).json()
    assert [c["id"] for c in found["data"]] == [renewed["id"], holder.id]


async def test_renewal_on_the_last_day_with_cms_and_batch(service: Service, bank: Bank,
                                                          holder: Holder, tmp_path: Path) -> None:
    now = START + VALIDITY - timedelta(seconds=1)
    service.clock.set(now)
    await refresh_token(bank)
    reply = await bank.post(f"/v1/certificates/{holder.id}/signatures", {
        "pin": holder.pin, "format": "cms", "items": [{"data": b64(b"a")}, {"data": b64(b"b")}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["renewed"] is not None
    for content, signature in zip((b"a", b"b"), body["signatures"], strict=True):
        verified = openssl_verify(ca_pem_path(service), tmp_path, unb64(signature), at=now)
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout == content
    signer = verified_signer_serial(unb64(body["signatures"][0]))
    assert signer == body["renewed"]["serial"]


def verified_signer_serial(der: bytes) -> str:
    from asn1crypto import cms

    signer = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    return format(signer["sid"].chosen["serial_number"].native, "x")


async def test_past_not_after_nothing_signs_or_renews(service: Service, bank: Bank,
                                                      holder: Holder) -> None:
    service.clock.set(START + VALIDITY)
    await refresh_token(bank)
    reply = await _sign(bank, holder.id, holder.pin)
    assert_problem(reply, 409, "certificate_expired")
    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder.person["rrn"]})).json()
    assert found["count"] == 1 and found["data"][0]["status"] == "expired"
    assert found["data"][0]["remaining_pin_attempts"] == 5  # not even a PIN try

    # The way back is a reissue.
    proof = await bank.verified(holder.person["phone"], "reissue")
    reissued = await bank.post(f"/v1/certificates/{holder.id}/reissue",
                               {"verification_id": proof, "pin": "583920"})
    assert reissued.status_code == 201, reissued.text


async def test_a_locked_certificate_in_the_window_is_not_renewed(service: Service, bank: Bank,
                                                                 holder: Holder) -> None:
    service.clock.set(START + VALIDITY - timedelta(days=3))
    await refresh_token(bank)
    for _ in range(5):
        await _sign(bank, holder.id, "000000")
    locked = await _sign(bank, holder.id, holder.pin)
    assert locked.status_code == 423
    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder.person["rrn"]})).json()
    assert found["count"] == 1


async def test_concurrent_signatures_in_the_window_renew_once(service: Service, bank: Bank,
                                                              holder: Holder) -> None:
    service.clock.set(START + VALIDITY - timedelta(days=1))
    await refresh_token(bank)
    replies = await asyncio.gather(*[_sign(bank, holder.id, holder.pin) for _ in range(4)])
    assert {r.status_code for r in replies} <= {200, 409}, [r.text for r in replies]
    ok = [r.json() for r in replies if r.status_code == 200]
    assert ok
    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder.person["rrn"]})).json()
    active = [c for c in found["data"] if c["status"] == "active"]
    assert len(active) == 1 and found["count"] == 2  # one renewal, one successor
    for body in ok:
        # Each signature verifies under the certificate the reply names.
        _rsa_key(body["certificate_pem"]).verify(unb64(body["signature"]), DATA,
                                                 padding.PKCS1v15(), hashes.SHA256())
        assert body["renewed"] is None or body["renewed"]["id"] == active[0]["id"]


async def test_a_failed_renewal_still_signs_with_the_current_certificate(
        service: Service, bank: Bank, holder: Holder, monkeypatch: pytest.MonkeyPatch) -> None:
    async def key_store_down(**_kwargs: object) -> None:
        raise DependencyUnavailable("the key store is down", code="key_store_error")

    monkeypatch.setattr(service.container.certificates, "renew", key_store_down)
    service.clock.set(START + VALIDITY - timedelta(days=2))
    await refresh_token(bank)
    reply = await _sign(bank, holder.id, holder.pin)
    assert reply.status_code == 200, reply.text
    assert reply.json()["renewed"] is None
    _rsa_key(holder.certificate["certificate_pem"]).verify(
        unb64(reply.json()["signature"]), DATA, padding.PKCS1v15(), hashes.SHA256())
    monkeypatch.undo()
    later = await _sign(bank, holder.id, holder.pin)  # the next signature renews
    assert later.status_code == 200 and later.json()["renewed"] is not None
