"""Fuzz the OCSP request path, the one place where the service parses DER a stranger sends:
random bytes and mutated valid requests (one CertID, read by cryptography; several, read by
asn1crypto) over POST /ocsp and GET /ocsp/{base64}, and the parser itself. Nothing may
escape: the parser only refuses (malformedRequest), and the HTTP answer is never a 5xx."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

import httpx
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import given
from hypothesis import strategies as st

from app.pki.ocsp import OCSPRefusal, parse_request
from tests.fuzz.conftest import FUZZ, FuzzTarget, assert_not_5xx

OCSP_REQUEST = "application/ocsp-request"


def _seeds(target: FuzzTarget) -> list[bytes]:
    """Valid requests for the issued certificate: plain, with a nonce, SHA-256 CertID, and
    two CertIDs (the asn1crypto path)."""
    issuer = x509.load_der_x509_certificate(target.container.issuer.ca.certificate_der)
    subject = x509.load_pem_x509_certificate(target.certificate["certificate_pem"].encode())
    seeds = []
    for algorithm, nonce in ((hashes.SHA1(), None), (hashes.SHA1(), os.urandom(16)),
                             (hashes.SHA256(), os.urandom(32))):
        builder = ocsp.OCSPRequestBuilder().add_certificate(subject, issuer, algorithm)
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        seeds.append(builder.build().public_bytes(serialization.Encoding.DER))
    single = ocsp.load_der_ocsp_request(seeds[0])
    cert_id = {"hash_algorithm": {"algorithm": "sha1"},
               "issuer_name_hash": single.issuer_name_hash,
               "issuer_key_hash": single.issuer_key_hash,
               "serial_number": single.serial_number}
    other = {**cert_id, "serial_number": single.serial_number + 1}
    several = asn1_ocsp.OCSPRequest({"tbs_request": {
        "request_list": [{"req_cert": cert_id}, {"req_cert": other}],
        "request_extensions": [{"extn_id": "nonce", "critical": False,
                                "extn_value": asn1_core.OctetString(os.urandom(8))}]}})
    seeds.append(several.dump())
    return seeds


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(
            ["flip", "set", "insert", "delete", "truncate", "splice", "length"]))
        if operation == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set":
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF]))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del data[at:]
        elif operation == "splice":
            data[at:at + draw(st.integers(0, 16))] = draw(st.binary(max_size=16))
        else:  # a length octet claiming more (or less) than there is
            data[at] = draw(st.sampled_from([0x84, 0x88, 0xFF, 0x00]))
    return bytes(data)


def _inputs(target: FuzzTarget) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=600), mutated(_seeds(target)))


_SEEDS: dict[int, list[bytes]] = {}


def _cached_seeds(target: FuzzTarget) -> list[bytes]:
    return _SEEDS.setdefault(id(target), _seeds(target))


async def test_seeds_are_answered(target: FuzzTarget) -> None:
    """The fuzzers start from requests the responder really answers."""
    for der in _cached_seeds(target):
        reply = await target.http.post("/ocsp", content=der,
                                       headers={"Content-Type": OCSP_REQUEST})
        assert reply.status_code == 200
        parsed = ocsp.load_der_ocsp_response(reply.content)
        assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL


@FUZZ
@given(data=st.data())
def test_parser_only_refuses(data: st.DataObject, target: FuzzTarget) -> None:
    der = data.draw(st.one_of(st.binary(max_size=600), mutated(_cached_seeds(target))))
    try:
        request = parse_request(der)
    except OCSPRefusal:
        target.count("ocsp.parse_request", "refused")
        return
    target.count("ocsp.parse_request", "parsed")
    assert len(request.cert_ids) >= 1


def _ocsp_outcome(reply: httpx.Response) -> str:
    """The HTTP status, and for an OCSP response its responseStatus."""
    if reply.status_code != 200:
        return str(reply.status_code)
    try:
        status = ocsp.load_der_ocsp_response(reply.content).response_status
    except ValueError:
        return "200 unparsable"
    return f"200 {status.name}"


def _check_ocsp_reply(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, status
    if status == 200:
        assert content_type == "application/ocsp-response"
        ocsp.load_der_ocsp_response(body)  # always a well-formed OCSPResponse


@FUZZ
@given(data=st.data())
async def test_post_ocsp_never_5xx(data: st.DataObject, target: FuzzTarget) -> None:
    der = data.draw(st.one_of(st.binary(max_size=600), mutated(_cached_seeds(target))))
    content_type = data.draw(st.sampled_from([OCSP_REQUEST, OCSP_REQUEST, OCSP_REQUEST,
                                              "application/octet-stream", ""]))
    reply = await target.http.post("/ocsp", content=der, headers={"Content-Type": content_type})
    target.count("POST /ocsp", _ocsp_outcome(reply))
    _check_ocsp_reply(reply.status_code, reply.headers.get("content-type", ""), reply.content)


@FUZZ
@given(data=st.data())
async def test_get_ocsp_never_5xx(data: st.DataObject, target: FuzzTarget) -> None:
    kind = data.draw(st.sampled_from(["der", "der", "text"]))
    if kind == "der":
        der = data.draw(st.one_of(st.binary(max_size=600), mutated(_cached_seeds(target))))
        encoded = base64.b64encode(der).decode()
        if data.draw(st.booleans()):
            encoded = encoded.rstrip("=")  # unpadded, as some clients send it
        path = quote(encoded, safe="") if data.draw(st.booleans()) else encoded
    else:
        path = quote(data.draw(st.text(max_size=200)), safe="/")
    reply = await target.http.get(f"/ocsp/{path}")
    target.count("GET /ocsp", _ocsp_outcome(reply))
    assert_not_5xx(reply)
    if reply.status_code == 200:
        _check_ocsp_reply(200, reply.headers.get("content-type", ""), reply.content)
