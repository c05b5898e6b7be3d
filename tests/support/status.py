"""OCSP and CRL helpers: requests, certificates as bytes, issue and revoke through a bank."""

from __future__ import annotations

import base64
import urllib.parse
from datetime import datetime, timedelta
from typing import Any

import httpx
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from app.pki import ocsp as pki
from app.pki import ocsp_responder
from app.pki.ca import CertificateAuthority, Profile, create_ca, issue_end_entity, subject_for
from app.pki.keys import generate_user_key
from tests.support.bank import Bank, issue_holder
from tests.support.people import PIN

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate, *,
                 algorithm: hashes.HashAlgorithm | None = None,
                 nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def get_path(request_der: bytes) -> str:
    """RFC 6960 A.1: the URL-encoded base64 of the request."""
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")


async def post_ocsp(http: httpx.AsyncClient, request_der: bytes) -> ocsp.OCSPResponse:
    reply = await http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(reply.content)


async def issue(bank: Bank, n: int, pin: str = PIN) -> tuple[dict[str, Any], x509.Certificate]:
    """A certificate for person ``n``: its resource and the parsed certificate."""
    holder = await issue_holder(bank, n, pin)
    return holder.certificate, holder.x509


async def revoke(bank: Bank, certificate_id: str, pin: str = PIN,
                 reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"pin": pin}
    if reason is not None:
        body["reason"] = reason
    reply = await bank.post(f"/v1/certificates/{certificate_id}/revoke", body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


# --- app/pki on its own: a CA, a responder and a leaf made in memory ---------------------


def unit_ca(now: datetime) -> CertificateAuthority:
    return create_ca(common_name="Unit CA", organization="Certcloud", country="KR",
                     now=now - timedelta(days=1), validity_years=5)


def unit_responder(ca: CertificateAuthority, now: datetime) -> pki.ResponderIdentity:
    key = ocsp_responder.generate_responder_key("rsa2048")
    certificate = ocsp_responder.issue_responder_certificate(
        ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(),
        serial=x509.random_serial_number(), not_before=ocsp_responder.backdated(now),
        not_after=now + timedelta(days=7))
    return pki.ResponderIdentity(key, certificate)


def unit_leaf(ca: CertificateAuthority, now: datetime) -> x509.Certificate:
    key = generate_user_key("p256")
    return issue_end_entity(ca, Profile("2.25.1", "http://status.test"),
                            public_key=key.public_key(), subject=subject_for("홍길동", "p-1"),
                            serial=x509.random_serial_number(), not_before=now,
                            not_after=now + timedelta(days=30))


def nonce_extension(nonce: bytes) -> dict[str, object]:
    return {"extn_id": "nonce", "critical": False, "extn_value": nonce}


def asn1_request(cert_ids: list[Any], extensions: list[dict[str, object]] | None = None
                 ) -> bytes:
    """An OCSPRequest built with asn1crypto (not the code under test) from CertIDs (dicts or
    asn1crypto CertId values) and request extensions."""
    tbs: dict[str, object] = {"request_list": [{"req_cert": cid} for cid in cert_ids]}
    if extensions is not None:
        tbs["request_extensions"] = extensions
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())
