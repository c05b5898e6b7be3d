"""POST /v1/certificates/{id}/signatures, checked by real verifiers: cryptography for raw
signatures, ``openssl cms -verify -CAfile`` for CMS, pyHanko for the CAdES attributes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext

from tests.support.app import START, Service
from tests.support.bank import Bank, Holder, issue_holder, make_bank
from tests.support.signing import b64, ca_pem_path, openssl_verify, unb64

DATA = "전자서명 테스트: 이체 100,000원".encode()
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def _digest(data: bytes, name: str = "sha256") -> bytes:
    return hashlib.new(name, data).digest()


async def _sign(bank: Bank, holder: Holder, **body: Any) -> Any:
    body.setdefault("pin", holder.pin)
    return await bank.post(f"/v1/certificates/{holder.id}/signatures", body)


# --- raw ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
async def test_raw_pkcs1_over_data_and_over_digest(bank: Bank, holder: Holder,
                                                  algorithm: str) -> None:
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    over_data = await _sign(bank, holder, data=b64(DATA), digest_algorithm=algorithm,
                            format="raw")
    assert over_data.status_code == 200, over_data.text
    body = over_data.json()
    assert set(body) == {"signature", "format", "certificate_pem", "renewed"}
    assert body["format"] == "raw" and body["renewed"] is None
    assert body["certificate_pem"] == holder.certificate["certificate_pem"]
    public_key.verify(unb64(body["signature"]), DATA, padding.PKCS1v15(), HASHES[algorithm]())

    over_digest = await _sign(bank, holder, digest=b64(_digest(DATA, algorithm)),
                              digest_algorithm=algorithm, format="raw")
    assert over_digest.status_code == 200, over_digest.text
    # PKCS#1 v1.5 is deterministic: the same digest, the same signature.
    assert over_digest.json()["signature"] == body["signature"]


async def test_raw_pss_on_request(bank: Bank, holder: Holder) -> None:
    reply = await _sign(bank, holder, data=b64(DATA), format="raw", padding="pss")
    assert reply.status_code == 200, reply.text
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(unb64(reply.json()["signature"]), DATA,
                      padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                      hashes.SHA256())
    with pytest.raises(InvalidSignature):  # and it is not PKCS#1 v1.5
        public_key.verify(unb64(reply.json()["signature"]), DATA, padding.PKCS1v15(),
                          hashes.SHA256())


async def test_ecdsa_keys_sign_der_ecdsa_and_cms(ec_service: Service, ec_bank: Bank,
                                                 tmp_path: Path) -> None:
    holder = await issue_holder(ec_bank, 5)
    public_key = holder.x509.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for algorithm in ("sha256", "sha384"):
        reply = await _sign(ec_bank, holder, digest=b64(_digest(DATA, algorithm)),
                            digest_algorithm=algorithm, format="raw")
        assert reply.status_code == 200, reply.text
        public_key.verify(unb64(reply.json()["signature"]), _digest(DATA, algorithm),
                          ec.ECDSA(Prehashed(HASHES[algorithm]())))
    attached = await _sign(ec_bank, holder, data=b64(DATA), format="cms")
    assert attached.status_code == 200, attached.text
    verified = openssl_verify(ca_pem_path(ec_service), tmp_path,
                              unb64(attached.json()["signature"]))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == DATA
    pss = await _sign(ec_bank, holder, data=b64(DATA), format="raw", padding="pss")
    assert pss.status_code == 422 and pss.json()["code"] == "padding_unsupported"


# --- CMS ------------------------------------------------------------------------------------


def _signer_info(der: bytes) -> tuple[cms.SignedData, Any]:
    content_info = cms.ContentInfo.load(der)
    assert content_info["content_type"].native == "signed_data"
    signed_data = content_info["content"]
    return signed_data, signed_data["signer_infos"][0]


async def test_cms_attached_verifies_with_openssl(service: Service, bank: Bank, holder: Holder,
                                                  tmp_path: Path) -> None:
    reply = await _sign(bank, holder, data=b64(DATA), format="cms")
    assert reply.status_code == 200, reply.text
    der = unb64(reply.json()["signature"])
    verified = openssl_verify(ca_pem_path(service), tmp_path, der)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == DATA

    signed_data, signer = _signer_info(der)
    assert signed_data["encap_content_info"]["content"].native == DATA
    assert signer["sid"].name == "issuer_and_serial_number"
    assert format(signer["sid"].chosen["serial_number"].native, "x") == holder.certificate[
        "serial"]
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attrs) == {"content_type", "signing_time", "message_digest",
                          "signing_certificate_v2"}
    assert attrs["content_type"].native == "data"
    assert attrs["signing_time"].native == START
    assert attrs["message_digest"].native == _digest(DATA)
    ess = attrs["signing_certificate_v2"]["certs"][0]
    cert_der = holder.x509.public_bytes(serialization.Encoding.DER)
    assert ess["cert_hash"].native == hashlib.sha256(cert_der).digest()
    certs = [c.chosen for c in signed_data["certificates"]]
    assert [format(c.serial_number, "x") for c in certs] == [holder.certificate["serial"]]


async def test_cms_detached_over_data_and_over_digest(service: Service, bank: Bank,
                                                      holder: Holder, tmp_path: Path) -> None:
    ca_pem = ca_pem_path(service)
    for body in ({"data": b64(DATA)}, {"digest": b64(_digest(DATA))}):
        reply = await _sign(bank, holder, format="cms", detached=True, **body)
        assert reply.status_code == 200, reply.text
        der = unb64(reply.json()["signature"])
        signed_data, _ = _signer_info(der)
        assert signed_data["encap_content_info"]["content"].native is None
        verified = openssl_verify(ca_pem, tmp_path, der, content=DATA)
        assert verified.returncode == 0, verified.stderr
        tampered = openssl_verify(ca_pem, tmp_path, der, content=DATA + b"!")
        assert tampered.returncode != 0


async def test_cms_cades_attributes_validate_with_pyhanko(service: Service, bank: Bank,
                                                          holder: Holder) -> None:
    """pyHanko checks what OpenSSL does not: signingCertificateV2 must name the signer."""
    from asn1crypto import x509 as asn1_x509

    ca = asn1_x509.Certificate.load(service.container.issuer.ca.certificate_der)
    context = ValidationContext(trust_roots=[ca], moment=START, allow_fetching=False,
                                revocation_mode="soft-fail")
    for algorithm in ("sha256", "sha512"):
        reply = await _sign(bank, holder, data=b64(DATA), format="cms", detached=True,
                            digest_algorithm=algorithm)
        signed_data, _ = _signer_info(unb64(reply.json()["signature"]))
        status = await async_validate_detached_cms(DATA, signed_data,
                                                   signer_validation_context=context)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()


async def test_cms_pss(service: Service, bank: Bank, holder: Holder, tmp_path: Path) -> None:
    reply = await _sign(bank, holder, data=b64(DATA), format="cms", padding="pss",
                        digest_algorithm="sha384")
    assert reply.status_code == 200, reply.text
    der = unb64(reply.json()["signature"])
    _, signer = _signer_info(der)
    assert signer["signature_algorithm"]["algorithm"].native == "rsassa_pss"
    verified = openssl_verify(ca_pem_path(service), tmp_path, der)
    assert verified.returncode == 0, verified.stderr


# --- batch ----------------------------------------------------------------------------------


async def test_batch_signs_in_order_under_one_pin_check(service: Service, bank: Bank,
                                                        holder: Holder, tmp_path: Path) -> None:
    texts = [f"거래 {i}".encode() for i in range(5)]
    reply = await _sign(bank, holder, format="cms", items=[{"data": b64(t)} for t in texts])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "signature" not in body and len(body["signatures"]) == 5
    for text, signature in zip(texts, body["signatures"], strict=True):
        verified = openssl_verify(ca_pem_path(service), tmp_path, unb64(signature))
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout == text

    mixed = await _sign(bank, holder, format="raw", items=[
        {"data": b64(texts[0])}, {"digest": b64(_digest(texts[1]))}])
    assert mixed.status_code == 200, mixed.text
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    for text, signature in zip(texts[:2], mixed.json()["signatures"], strict=True):
        public_key.verify(unb64(signature), text, padding.PKCS1v15(), hashes.SHA256())


# --- bad input: a clean 4xx, nothing signed, no PIN try spent -----------------------------


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"data": "not base64!!"}, "base64_invalid"),
    ({"digest": "QUJD"}, "digest_length_invalid"),  # 3 bytes is no sha256 digest
    ({"digest": b64(b"x" * 32), "digest_algorithm": "sha384"}, "digest_length_invalid"),
    ({"digest": b64(b"x" * 32), "format": "cms"}, "digest_requires_detached"),
    ({"data": b64(DATA), "digest": b64(b"x" * 32)}, "payload_required"),
    ({}, "payload_required"),
    ({"data": b64(DATA), "detached": True}, "detached_invalid"),
    ({"items": []}, "payload_required"),
    ({"items": [{"data": b64(b"a")}] * 101}, "too_many_items"),
    ({"items": [{"data": b64(b"a")}], "data": b64(b"a")}, "payload_required"),
    ({"items": [{"data": b64(b"a"), "digest": b64(b"x" * 32)}]}, "payload_required"),
    ({"items": [{"digest": "%%%"}]}, "base64_invalid"),
    ({"data": b64(DATA), "digest_algorithm": "md5"}, "invalid_request"),
    ({"data": b64(DATA), "format": "pkcs7"}, "invalid_request"),
    ({"data": b64(DATA), "detached": "yes"}, "invalid_request"),
    ({"data": 12}, "invalid_request"),
]


async def test_bad_input_is_a_clean_4xx_and_costs_no_try(bank: Bank, holder: Holder) -> None:
    for body, code in BAD_INPUT:
        reply = await _sign(bank, holder, pin="000000", **body)  # a wrong PIN, never tried
        assert reply.status_code == 422, (body, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == code, (body, reply.text)
        assert "signature" not in reply.json()
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["remaining_pin_attempts"] == 5


async def test_unknown_revoked_and_unauthorised(service: Service, bank: Bank,
                                                holder: Holder) -> None:
    unknown = await bank.post("/v1/certificates/no-such-id/signatures",
                              {"pin": holder.pin, "data": b64(DATA)})
    assert unknown.status_code == 404 and unknown.json()["code"] == "certificate_not_found"

    no_token = await service.http.post(f"/v1/certificates/{holder.id}/signatures",
                                       json={"pin": holder.pin, "data": b64(DATA)})
    assert no_token.status_code == 401
    reader = await make_bank(service.http, service.container, "reader",
                             scopes=["certificates:read"])
    no_scope = await _sign(reader, holder, data=b64(DATA))
    assert no_scope.status_code == 403 and no_scope.json()["code"] == "scope_missing"

    revoked = await bank.post(f"/v1/certificates/{holder.id}/revoke", {"pin": holder.pin})
    assert revoked.status_code == 200
    after = await _sign(bank, holder, data=b64(DATA))
    assert after.status_code == 409 and after.json()["code"] == "certificate_revoked"


async def test_pin_never_echoed(bank: Bank, holder: Holder) -> None:
    for pin in ("000000", holder.pin):
        reply = await _sign(bank, holder, pin=pin, data="***")
        assert pin not in reply.text
    wrong = await _sign(bank, holder, pin="000000", data=b64(DATA))
    assert "000000" not in wrong.text
