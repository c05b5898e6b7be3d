"""Fuzz the base64 and binary fields that signing takes from clients: POST
/v1/certificates/{id}/signatures (data, digest, items; formats and algorithms) and the CSC API
(hash lists, numSignatures, SAD, signAlgo, hashAlgo, signAlgoParams), with the right PIN so
that well-formed inputs really get signed (and CMS really gets built around arbitrary data).
Also arbitrary JSON bodies on each of those routes. Never a 5xx; a signature that comes back
is valid base64."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ, FuzzTarget, assert_not_5xx
from tests.support.people import PIN

# Identifiers the CSC API knows, and some it does not.
SIGN_ALGOS = ["1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13",
              "1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10", "1.2.840.10045.4.3.2",
              "1.2.840.10045.4.3.3", "1.2.840.10045.2.1", "1.2.3", "", "sha256WithRSA"]
RSA_BY_DIGEST_SIZE = {32: "1.2.840.113549.1.1.11", 48: "1.2.840.113549.1.1.12",
                      64: "1.2.840.113549.1.1.13"}
ECDSA_BY_DIGEST_SIZE = {32: "1.2.840.10045.4.3.2", 48: "1.2.840.10045.4.3.3",
                        64: "1.2.840.10045.4.3.4"}
HASH_ALGOS = ["2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3",
              "1.3.14.3.2.26", "2.16.840.1.101.3.4.2.99", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


def b64_field() -> st.SearchStrategy[Any]:
    """Mostly base64 of bytes of telling sizes (digest lengths, empty, large), sometimes not
    base64 at all, or not a string."""
    sized = st.sampled_from([0, 1, 20, 31, 32, 33, 48, 64, 65, 1000]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n))
    encoded = st.one_of(sized, st.binary(max_size=300)).map(
        lambda raw: base64.b64encode(raw).decode())
    return st.one_of(
        encoded, encoded, encoded,
        encoded.map(lambda s: s.rstrip("=")),  # unpadded
        encoded.map(lambda s: s.replace("+", "-").replace("/", "_")),  # URL-safe alphabet
        st.text(max_size=60),
        st.sampled_from(["", "=", "====", "A", "AA==\n", " QUFB ", "\x00", "ï¿½"]),
        st.none(), st.integers(), st.lists(st.text(max_size=8), max_size=3))


def _sign_algo(target: FuzzTarget, digest_size: int) -> str:
    key = x509.load_pem_x509_certificate(
        target.certificate["certificate_pem"].encode()).public_key()
    table = ECDSA_BY_DIGEST_SIZE if isinstance(key, ec.EllipticCurvePublicKey) \
        else RSA_BY_DIGEST_SIZE
    return table[digest_size]


def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    return True


@st.composite
def signature_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"pin": PIN}
    shape = draw(st.sampled_from(["data", "digest", "both", "items", "none"]))
    if shape in ("data", "both"):
        body["data"] = draw(b64_field())
    if shape in ("digest", "both"):
        body["digest"] = draw(b64_field())
    if shape == "items":
        body["items"] = draw(st.lists(st.fixed_dictionaries({}, optional={
            "data": b64_field(), "digest": b64_field()}), max_size=4)
            | st.sampled_from([[], None, "x", [1]]))
    for name, values in (("format", st.sampled_from(["raw", "cms", "CMS", "pkcs7", 1])),
                         ("detached", st.sampled_from([True, False, "true", 0, None])),
                         ("digest_algorithm", st.sampled_from(
                             ["sha256", "sha384", "sha512", "sha1", "md5", "", None])),
                         ("padding", st.sampled_from(["pkcs1v15", "pss", "oaep", None]))):
        if draw(st.booleans()):
            body[name] = draw(values)
    return body


@FUZZ
@given(body=signature_bodies())
async def test_signature_fields_never_5xx(body: dict[str, Any], target: FuzzTarget) -> None:
    reply = await target.bank.post(f"/v1/certificates/{target.certificate['id']}/signatures",
                                   body)
    target.count("POST /v1/certificates/{id}/signatures", reply.status_code)
    assert_not_5xx(reply)
    assert reply.status_code != 423, "the right PIN must never lock the certificate"
    if reply.status_code == 200:
        answer = reply.json()
        for signature in [answer.get("signature")] + (answer.get("signatures") or []):
            if signature is not None:
                assert _is_base64(signature)
    else:
        assert reply.headers["content-type"] == "application/problem+json"


def digests() -> st.SearchStrategy[list[str]]:
    """1 to 3 well-formed digests of one SHA-2 size (some repeated): what a SAD is made for."""
    return st.sampled_from([32, 48, 64]).flatmap(lambda n: st.lists(
        st.binary(min_size=n, max_size=n).map(lambda raw: base64.b64encode(raw).decode()),
        min_size=1, max_size=3))


@st.composite
def authorize_bodies(draw: st.DrawFn, credential_id: str) -> dict[str, Any]:
    if draw(st.booleans()):  # well-formed, so that a SAD is issued and signHash gets fuzzed
        hashes: Any = draw(digests())
        return {"credentialID": credential_id, "numSignatures": len(hashes), "hash": hashes,
                "PIN": PIN}
    hashes = draw(st.lists(b64_field(), max_size=5) | st.sampled_from([None, "x", [], {}]))
    count = len(hashes) if isinstance(hashes, list) else 1
    body: dict[str, Any] = {
        "credentialID": draw(st.sampled_from([credential_id, credential_id, "", "x" * 64])
                             | st.text(max_size=70)),
        "numSignatures": draw(st.sampled_from([count, count, count, 0, -1, 101, 2**40])
                              | json_values),
        "hash": hashes, "PIN": PIN}
    if draw(st.booleans()):
        body["OTP"] = draw(st.none() | st.text(max_size=8))
    if draw(st.booleans()):
        body["description"] = draw(json_values)
    return body


@settings(FUZZ, max_examples=100)  # each example is two or three requests and a signature
@given(data=st.data())
async def test_csc_authorize_and_sign_hash_never_5xx(data: st.DataObject,
                                                     target: FuzzTarget) -> None:
    credential_id = target.certificate["id"]
    body = data.draw(authorize_bodies(credential_id))
    authorized = await target.bank.post("/csc/v1/credentials/authorize", body)
    target.count("POST /csc/v1/credentials/authorize", authorized.status_code)
    assert_not_5xx(authorized)
    assert "access_denied" not in authorized.text, "the right PIN must never lock it"
    sad = authorized.json().get("SAD") if authorized.status_code == 200 else None
    authorized_sad = sad
    hashes: list[Any] = body["hash"] if isinstance(body["hash"], list) else []
    if sad and data.draw(st.booleans()):  # the well-formed call, to reach the signatures
        size = len(base64.b64decode(hashes[0]))
        signed = await target.bank.post("/csc/v1/signatures/signHash", {
            "credentialID": credential_id, "SAD": sad, "hash": hashes,
            "signAlgo": _sign_algo(target, size)})
        target.count("POST /csc/v1/signatures/signHash", signed.status_code)
        assert signed.status_code == 200, signed.text
        assert len(signed.json()["signatures"]) == len(hashes)
        sad = None  # used: what follows fuzzes a spent SAD
    sign_body: dict[str, Any] = {
        "credentialID": data.draw(st.sampled_from([credential_id, credential_id, "nope"])),
        "SAD": data.draw(st.sampled_from([sad, authorized_sad]) | st.text(max_size=80)
                         | json_values),
        "hash": data.draw(st.sampled_from([hashes, hashes[:1], hashes[::-1], []])
                          | st.lists(b64_field(), max_size=3)),
        "signAlgo": data.draw(st.sampled_from(SIGN_ALGOS) | st.text(max_size=20)),
    }
    if data.draw(st.booleans()):
        sign_body["hashAlgo"] = data.draw(st.sampled_from(HASH_ALGOS) | json_values)
    if data.draw(st.booleans()):
        sign_body["signAlgoParams"] = data.draw(b64_field())
    signed = await target.bank.post("/csc/v1/signatures/signHash", sign_body)
    target.count("POST /csc/v1/signatures/signHash", signed.status_code)
    assert_not_5xx(signed)
    if signed.status_code == 200:
        assert all(_is_base64(s) for s in signed.json()["signatures"])
    else:
        assert set(signed.json()) >= {"error", "error_description"}


CSC_ROUTES = ["/csc/v1/info", "/csc/v1/credentials/list", "/csc/v1/credentials/info",
              "/csc/v1/credentials/authorize", "/csc/v1/signatures/signHash"]


@FUZZ
@given(route=st.sampled_from([*CSC_ROUTES, "signatures"]), body=json_values,
       raw=st.none() | st.binary(max_size=200))
async def test_arbitrary_bodies_never_5xx(route: str, body: Any, raw: bytes | None,
                                          target: FuzzTarget) -> None:
    if route == "signatures":
        route = f"/v1/certificates/{target.certificate['id']}/signatures"
        if isinstance(body, dict) and "pin" in body:
            body["pin"] = PIN  # a wrong PIN would only lock the certificate
    if isinstance(body, dict) and "PIN" in body:
        body["PIN"] = PIN
    headers = {**target.bank.headers, "Content-Type": "application/json"}
    if raw is not None:
        reply = await target.http.post(route, content=raw, headers=headers)
    else:
        reply = await target.http.post(route, json=body, headers=headers)
    target.count(f"arbitrary body {route.split('/')[-1]}", reply.status_code)
    assert_not_5xx(reply)
