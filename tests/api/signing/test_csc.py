"""The CSC API v1 under /csc/v1: credentials, SCAL 2 authorisation and signHash, bad input."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.services.csc import MAX_HASHES, SAD_LIFETIME
from tests.support.app import Service
from tests.support.bank import Bank, Holder, issue_holder, make_bank, refresh_token
from tests.support.signing import b64, unb64

SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
SHA384_WITH_RSA = "1.2.840.113549.1.1.12"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
SHA256 = "2.16.840.1.101.3.4.2.1"
SHA384 = "2.16.840.1.101.3.4.2.2"


def _hashes(*texts: bytes, name: str = "sha256") -> list[str]:
    return [b64(hashlib.new(name, t).digest()) for t in texts]


async def _csc(bank: Bank, method: str, body: dict[str, Any]) -> httpx.Response:
    return await bank.post(f"/csc/v1/{method}", body)


async def _authorize(bank: Bank, holder: Holder, hashes_b64: list[str],
                     pin: str | None = None) -> httpx.Response:
    return await _csc(bank, "credentials/authorize", {
        "credentialID": holder.id, "numSignatures": len(hashes_b64), "hash": hashes_b64,
        "PIN": pin or holder.pin})


async def _sign_hash(bank: Bank, holder: Holder, sad: str, hashes_b64: list[str],
                     sign_algo: str = SHA256_WITH_RSA, **extra: Any) -> httpx.Response:
    return await _csc(bank, "signatures/signHash", {
        "credentialID": holder.id, "SAD": sad, "hash": hashes_b64, "signAlgo": sign_algo,
        **extra})


def _csc_error(reply: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == error and isinstance(body["error_description"], str), body
    assert "type" not in body  # not problem+json
    return dict(body)


async def test_info_list_and_credential_info(service: Service, bank: Bank,
                                             holder: Holder) -> None:
    info = await _csc(bank, "info", {})
    assert info.status_code == 200, info.text
    assert info.json()["specs"] == "1.0.4.0"
    assert set(info.json()["methods"]) >= {"credentials/list", "credentials/info",
                                           "credentials/authorize", "signatures/signHash"}
    assert info.json()["authType"] == ["oauth2client"]

    listed = await _csc(bank, "credentials/list", {"userID": holder.person["rrn"]})
    assert listed.status_code == 200 and listed.json()["credentialIDs"] == [holder.id]
    nobody = await _csc(bank, "credentials/list", {"userID": "850505-2000000"})
    assert nobody.json()["credentialIDs"] == []
    _csc_error(await _csc(bank, "credentials/list", {"userID": "123"}), 400, "invalid_request")

    reply = await _csc(bank, "credentials/info", {"credentialID": holder.id,
                                                  "certificates": "chain", "certInfo": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["key"] == {"status": "enabled", "len": 2048, "algo": [
        SHA256_WITH_RSA, SHA384_WITH_RSA, "1.2.840.113549.1.1.13", RSA_ENCRYPTION]}
    chain = [base64.b64decode(c) for c in body["cert"]["certificates"]]
    assert chain == [holder.x509.public_bytes(_der()),
                     service.container.issuer.ca.certificate_der]  # signer first
    assert body["cert"]["status"] == "valid"
    assert body["cert"]["serialNumber"] == holder.certificate["serial"]
    assert body["cert"]["validTo"].endswith("Z") and len(body["cert"]["validTo"]) == 15
    assert body["authMode"] == "explicit" and body["SCAL"] == "2"
    assert body["PIN"]["presence"] == "true" and body["multisign"] == MAX_HASHES

    single = (await _csc(bank, "credentials/info", {"credentialID": holder.id})).json()
    assert len(single["cert"]["certificates"]) == 1 and "issuerDN" not in single["cert"]


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


async def test_authorize_then_sign_hash(bank: Bank, holder: Holder) -> None:
    texts = [b"first document", b"second document", b"third"]
    hashes_b64 = _hashes(*texts)
    authorized = await _authorize(bank, holder, hashes_b64)
    assert authorized.status_code == 200, authorized.text
    assert authorized.json()["expiresIn"] == int(SAD_LIFETIME.total_seconds())
    assert authorized.headers["cache-control"] == "no-store"
    sad = authorized.json()["SAD"]

    order = [2, 0, 1]  # any order, answered in the order asked
    signed = await _sign_hash(bank, holder, sad, [hashes_b64[i] for i in order],
                              hashAlgo=SHA256)
    assert signed.status_code == 200, signed.text
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    for i, signature in zip(order, signed.json()["signatures"], strict=True):
        public_key.verify(unb64(signature), texts[i], padding.PKCS1v15(), hashes.SHA256())

    # Single use.
    replay = await _sign_hash(bank, holder, sad, hashes_b64)
    _csc_error(replay, 400, "invalid_request")


async def test_rsa_encryption_with_hash_algo_and_sha384(bank: Bank, holder: Holder) -> None:
    hashes_b64 = _hashes(b"x", name="sha384")
    sad = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]
    # rsaEncryption needs hashAlgo; sha256WithRSA does not fit 48-byte hashes.
    _csc_error(await _sign_hash(bank, holder, sad, hashes_b64, RSA_ENCRYPTION), 400,
               "invalid_request")
    _csc_error(await _sign_hash(bank, holder, sad, hashes_b64, SHA256_WITH_RSA), 400,
               "invalid_request")
    _csc_error(await _sign_hash(bank, holder, sad, hashes_b64, SHA384_WITH_RSA,
                                hashAlgo=SHA256), 400, "invalid_request")
    ok = await _sign_hash(bank, holder, sad, hashes_b64, RSA_ENCRYPTION, hashAlgo=SHA384)
    assert ok.status_code == 200, ok.text  # the failed attempts left the SAD usable
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(unb64(ok.json()["signatures"][0]), b"x", padding.PKCS1v15(),
                      hashes.SHA384())


async def test_ecdsa_credential(ec_bank: Bank) -> None:
    holder = await issue_holder(ec_bank, 6)
    body = (await _csc(ec_bank, "credentials/info", {"credentialID": holder.id})).json()
    assert body["key"]["len"] == 256 and body["key"]["curve"] == "1.2.840.10045.3.1.7"
    assert "1.2.840.10045.4.3.2" in body["key"]["algo"]
    hashes_b64 = _hashes(b"ec document")
    sad = (await _authorize(ec_bank, holder, hashes_b64)).json()["SAD"]
    signed = await _sign_hash(ec_bank, holder, sad, hashes_b64, "1.2.840.10045.4.3.2")
    assert signed.status_code == 200, signed.text
    public_key = holder.x509.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(unb64(signed.json()["signatures"][0]),
                      hashlib.sha256(b"ec document").digest(),
                      ec.ECDSA(Prehashed(hashes.SHA256())))


async def test_wrong_pin_at_authorize_counts_towards_the_lockout(bank: Bank,
                                                                 holder: Holder) -> None:
    hashes_b64 = _hashes(b"doc")
    for remaining in (4, 3, 2, 1, 0):
        wrong = await _authorize(bank, holder, hashes_b64, pin="000000")
        body = _csc_error(wrong, 400, "invalid_pin")
        assert body["remaining_attempts"] == remaining
        assert "000000" not in wrong.text
    locked = await _authorize(bank, holder, hashes_b64)
    _csc_error(locked, 400, "access_denied")
    info = (await _csc(bank, "credentials/info", {"credentialID": holder.id})).json()
    assert info["key"]["status"] == "disabled"
    v1 = await bank.post(f"/v1/certificates/{holder.id}/signatures",
                         {"pin": holder.pin, "data": b64(b"x")})
    assert v1.status_code == 423  # one counter for both APIs


async def test_sad_is_bound_to_hashes_bank_credential_and_time(service: Service, bank: Bank,
                                                               holder: Holder) -> None:
    other_holder = await issue_holder(bank, 2)
    other_bank = await make_bank(service.http, service.container, "other-bank")
    hashes_b64 = _hashes(b"a", b"b")
    sad = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]

    # Hashes the SAD does not cover; one more copy than authorised.
    _csc_error(await _sign_hash(bank, holder, sad, _hashes(b"c")), 400, "invalid_request")
    _csc_error(await _sign_hash(bank, holder, sad, [hashes_b64[0]] * 2), 400,
               "invalid_request")
    # Another bank with the stolen SAD; another credential.
    _csc_error(await _sign_hash(other_bank, holder, sad, hashes_b64), 400, "invalid_request")
    _csc_error(await _sign_hash(bank, other_holder, sad, hashes_b64), 400, "invalid_request")
    _csc_error(await _sign_hash(bank, holder, "made-up-sad", hashes_b64), 400,
               "invalid_request")
    # None of that used the SAD up: a subset of its hashes signs.
    ok = await _sign_hash(bank, holder, sad, hashes_b64[1:])
    assert ok.status_code == 200 and len(ok.json()["signatures"]) == 1

    late = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]
    service.clock.advance(SAD_LIFETIME + timedelta(seconds=1))
    await refresh_token(bank)
    body = _csc_error(await _sign_hash(bank, holder, late, hashes_b64), 400, "invalid_request")
    assert "expired" in body["error_description"]


BAD_AUTHORIZE: list[tuple[dict[str, Any], str]] = [
    ({"hash": ["%%%not-base64"]}, "Base64"),
    ({"hash": [b64(b"x" * 20)]}, "hash length"),  # a SHA-1 length: no supported algorithm
    ({"hash": [b64(b"x" * 32), b64(b"x" * 48)], "numSignatures": 2}, "hash length"),
    ({"hash": [b64(b"x" * 32)] * (MAX_HASHES + 1), "numSignatures": MAX_HASHES + 1},
     "too high"),
    ({"hash": []}, "hash"),
    ({"hash": [b64(b"x" * 32)], "numSignatures": 2}, "numSignatures"),
    ({"hash": [b64(b"x" * 32)], "numSignatures": 0}, "numSignatures"),
    ({"hash": [b64(b"x" * 32)], "numSignatures": "1"}, "numSignatures"),
    ({"hash": [b64(b"x" * 32)], "credentialID": "no-such-credential"}, "credentialID"),
    ({"hash": [b64(b"x" * 32)], "credentialID": None}, "credentialID"),
    ({"hash": [b64(b"x" * 32)], "PIN": 902714}, "PIN"),
    ({"hash": "not-a-list"}, "hash"),
    ({"hash": [5]}, "hash"),
]


async def test_bad_authorize_requests(bank: Bank, holder: Holder) -> None:
    for body, needle in BAD_AUTHORIZE:
        request = {"credentialID": holder.id, "numSignatures": 1, "PIN": "000000", **body}
        reply = await _csc(bank, "credentials/authorize", request)
        error = _csc_error(reply, 400, "invalid_request")
        assert needle in error["error_description"], (body, error)
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["remaining_pin_attempts"] == 5  # all rejected before the PIN was tried


async def test_bad_sign_hash_requests(bank: Bank, holder: Holder) -> None:
    hashes_b64 = _hashes(b"doc")
    sad = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]
    for body in ({"hash": ["***"]}, {"hash": []}, {"signAlgo": "1.2.3.4"},
                 {"signAlgo": "1.2.840.10045.4.3.2"},  # ECDSA for an RSA key
                 {"signAlgoParams": b64(b"\x30\x00")}, {"SAD": 5},
                 {"hash": [hashes_b64[0]] * (MAX_HASHES + 1)}):
        request = {"credentialID": holder.id, "SAD": sad, "hash": hashes_b64,
                   "signAlgo": SHA256_WITH_RSA, **body}
        _csc_error(await _csc(bank, "signatures/signHash", request), 400, "invalid_request")
    ok = await _sign_hash(bank, holder, sad, hashes_b64)
    assert ok.status_code == 200, ok.text


async def test_revoked_between_authorize_and_sign_hash(bank: Bank, holder: Holder) -> None:
    hashes_b64 = _hashes(b"doc")
    sad = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]
    assert (await bank.post(f"/v1/certificates/{holder.id}/revoke",
                            {"pin": holder.pin})).status_code == 200
    _csc_error(await _sign_hash(bank, holder, sad, hashes_b64), 400, "invalid_request")


async def test_csc_auth_errors_keep_the_csc_shape(service: Service, holder: Holder) -> None:
    body = {"credentialID": holder.id}
    missing = await service.http.post("/csc/v1/credentials/info", json=body)
    _csc_error(missing, 401, "invalid_token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    bad = await service.http.post("/csc/v1/credentials/info", json=body,
                                  headers={"Authorization": "Bearer nope"})
    _csc_error(bad, 401, "invalid_token")
    reader = await make_bank(service.http, service.container, "reader",
                             scopes=["certificates:read"])
    _csc_error(await _csc(reader, "credentials/info", body), 403, "insufficient_scope")
    _csc_error(await _csc(reader, "info", {}), 403, "insufficient_scope")
    broken = await service.http.post(
        "/csc/v1/credentials/info", content=b"{not json",
        headers={"Content-Type": "application/json",
                 "Authorization": (await _token(service))})
    _csc_error(broken, 400, "invalid_request")


async def _token(service: Service) -> str:
    bank = await make_bank(service.http, service.container, "token-bank")
    return f"Bearer {bank.token}"


async def test_renewal_window_does_not_renew_over_csc(service: Service, bank: Bank,
                                                      holder: Holder) -> None:
    from app.domain.certificates import VALIDITY
    from tests.support.app import START

    service.clock.set(START + VALIDITY - timedelta(days=5))
    await refresh_token(bank)
    hashes_b64 = _hashes(b"doc")
    sad = (await _authorize(bank, holder, hashes_b64)).json()["SAD"]
    signed = await _sign_hash(bank, holder, sad, hashes_b64)
    assert signed.status_code == 200
    public_key = holder.x509.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(unb64(signed.json()["signatures"][0]), b"doc", padding.PKCS1v15(),
                      hashes.SHA256())
    found = (await bank.post("/v1/certificates/lookup", {"rrn": holder.person["rrn"]})).json()
    assert found["count"] == 1
