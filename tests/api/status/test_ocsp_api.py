"""The OCSP responder through the app: answers, caching, revocation, bad input, rollover."""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from sqlalchemy import delete

from app.domain.errors import DependencyUnavailable
from app.pki import ocsp as ocsp_pki
from app.services.status import StatusService
from app.storage.status_repository import StatusRepository
from app.storage.status_tables import ocsp_responses
from tests.support.app import Service, count_calls
from tests.support.bank import Bank
from tests.support.people import PIN, person
from tests.support.status import OCSP_REQUEST, get_path, issue, ocsp_request, post_ocsp, revoke


def _status(service: Service) -> StatusService:
    status: StatusService = service.container.status
    return status


def _ca(service: Service) -> x509.Certificate:
    return service.container.issuer.ca.certificate


def _check_signed(response: ocsp.OCSPResponse, service: Service) -> None:
    """Signed by the delegated responder, which the CA issued and which is in the response."""
    responder = _status(service).responder_certificate
    assert responder is not None and response.certificates == [responder]
    responder.verify_directly_issued_by(_ca(service))
    public_key = responder.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert response.signature_hash_algorithm is not None
    public_key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                      response.signature_hash_algorithm)


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts OCSP response signatures."""
    yield count_calls(monkeypatch, ocsp_pki, "sign_response")


async def test_good_revoked_unknown_and_nonce(service: Service, bank: Bank) -> None:
    resource, cert = await issue(bank, 1)
    ca = _ca(service)

    good = await post_ocsp(service.http, ocsp_request(cert, ca))
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.serial_number == cert.serial_number
    assert good.this_update_utc == service.clock.now()
    assert good.next_update_utc == service.clock.now() + timedelta(days=1)
    assert not list(good.extensions)  # no nonce asked, none given
    _check_signed(good, service)

    with_nonce = await post_ocsp(service.http, ocsp_request(cert, ca, nonce=b"\x01" * 32))
    assert with_nonce.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert with_nonce.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        b"\x01" * 32)
    _check_signed(with_nonce, service)

    service.clock.advance(timedelta(minutes=3))
    revoked_at = service.clock.now()
    await revoke(bank, resource["id"], reason="key_compromise")
    revoked = await post_ocsp(service.http, ocsp_request(cert, ca))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == revoked_at
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    _check_signed(revoked, service)

    unknown_der = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *ocsp_pki.IssuerHashes.of(ca).by_hash["sha1"], 0xDEADBEEF, hashes.SHA1()
    ).build().public_bytes(serialization.Encoding.DER)
    unknown = await post_ocsp(service.http, unknown_der)
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert unknown.serial_number == 0xDEADBEEF


async def test_unspecified_reason_is_not_stated(service: Service, bank: Bank) -> None:
    resource, cert = await issue(bank, 2)
    await revoke(bank, resource["id"])
    revoked = await post_ocsp(service.http, ocsp_request(cert, _ca(service)))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is None


async def test_sha256_and_several_cert_ids_in_one_request(service: Service, bank: Bank
                                                          ) -> None:
    ca = _ca(service)
    _first, first_cert = await issue(bank, 3)
    second, second_cert = await issue(bank, 4)
    await revoke(bank, second["id"], reason="key_compromise")

    single = await post_ocsp(service.http,
                             ocsp_request(first_cert, ca, algorithm=hashes.SHA256()))
    assert single.hash_algorithm.name == "sha256"
    assert single.certificate_status is ocsp.OCSPCertStatus.GOOD

    issuer = ocsp_pki.IssuerHashes.of(ca)

    def cert_id(name: str, serial: int) -> dict[str, object]:
        name_hash, key_hash = issuer.by_hash[name]
        return {"hash_algorithm": {"algorithm": name}, "issuer_name_hash": name_hash,
                "issuer_key_hash": key_hash, "serial_number": serial}

    several = asn1_ocsp.OCSPRequest({"tbs_request": {
        "request_list": [{"req_cert": cert_id("sha256", first_cert.serial_number)},
                         {"req_cert": cert_id("sha1", second_cert.serial_number)},
                         {"req_cert": cert_id("sha256", 0x5EED)}],
        "request_extensions": [{"extn_id": "nonce", "critical": False,
                                "extn_value": b"several"}]}}).dump()
    response = await post_ocsp(service.http, several)
    singles = list(response.responses)
    assert [s.serial_number for s in singles] == [first_cert.serial_number,
                                                  second_cert.serial_number, 0x5EED]
    assert [s.certificate_status for s in singles] == [
        ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN]
    assert singles[1].revocation_reason is x509.ReasonFlags.key_compromise
    assert [s.hash_algorithm.name for s in singles] == ["sha256", "sha1", "sha256"]
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"several"
    _check_signed(response, service)


async def test_another_issuer_is_unauthorized(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 5)
    wrong = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        b"\x11" * 20, b"\x22" * 20, cert.serial_number, hashes.SHA1()
    ).build().public_bytes(serialization.Encoding.DER)
    response = await post_ocsp(service.http, wrong)
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_get_with_rfc5019_caching_headers(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 6)
    request_der = ocsp_request(cert, _ca(service))
    reply = await service.http.get(get_path(request_der))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/ocsp-response"
    response = ocsp.load_der_ocsp_response(reply.content)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    cache_control = reply.headers["cache-control"]
    assert "public" in cache_control and "no-transform" in cache_control
    assert "must-revalidate" in cache_control
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 3600
    assert response.next_update_utc is not None
    assert max_age <= (response.next_update_utc - service.clock.now()).total_seconds()
    assert parsedate_to_datetime(reply.headers["last-modified"]) == response.this_update_utc
    assert parsedate_to_datetime(reply.headers["expires"]) == response.next_update_utc
    etag = reply.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')

    again = await service.http.get(get_path(request_der), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await service.http.get(get_path(request_der), headers={"If-None-Match": '"x"'})
    assert other.status_code == 200 and other.content == reply.content

    # The same request by POST gets the same bytes, without caching headers.
    posted = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert posted.content == reply.content and "etag" not in posted.headers


async def test_get_path_may_hold_slash_plus_and_equals(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 7)
    for attempt in range(3000):
        nonce = os.urandom(12 + attempt % 3)  # random bytes; lengths vary the padding
        request_der = ocsp_request(cert, _ca(service), nonce=nonce)
        encoded = base64.b64encode(request_der).decode()
        if "/" in encoded and "+" in encoded and encoded.endswith("="):
            break
    else:
        pytest.fail("no request with /, + and = in its base64")
    for path in ("/ocsp/" + urllib.parse.quote(encoded, safe=""),  # fully URL-encoded
                 "/ocsp/" + encoded):  # as some clients send it
        reply = await service.http.get(path)
        assert reply.status_code == 200
        response = ocsp.load_der_ocsp_response(reply.content)
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("body, why", [
    (b"", "empty body"),
    (b"\x00\x01garbage\xff" * 20, "garbage"),
    (b"\x30\x80\x02\x01\x01\x00\x00", "indefinite length BER"),
    (b"\x30\x0a" + b"\x04\x08" + b"A" * 8, "a DER SEQUENCE that is no OCSPRequest"),
])
async def test_malformed_post_gets_an_ocsp_error(service: Service, body: bytes,
                                                 why: str) -> None:
    reply = await service.http.post("/ocsp", content=body, headers=OCSP_REQUEST)
    assert reply.status_code == 200, why
    assert reply.headers["content-type"] == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(reply.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


async def test_nonce_over_32_bytes_is_refused(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 8)
    reply = await service.http.post(
        "/ocsp", content=ocsp_request(cert, _ca(service), nonce=b"n" * 33),
        headers=OCSP_REQUEST)
    assert reply.status_code == 200
    assert ocsp.load_der_ocsp_response(reply.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


@pytest.mark.parametrize("path, why", [
    ("/ocsp/not-base64!!", "not base64"),
    ("/ocsp/MEQwQjBAMD4wPDAJBgUrDgMCGgUABBQ", "truncated, no padding"),
    ("/ocsp/" + base64.b64encode(b"garbage").decode(), "base64 of garbage"),
    ("/ocsp/%ZZ", "broken percent-encoding"),
])
async def test_malformed_get_gets_an_ocsp_error(service: Service, path: str, why: str) -> None:
    reply = await service.http.get(path)
    assert reply.status_code == 200, why
    assert ocsp.load_der_ocsp_response(reply.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST), why
    assert reply.headers["cache-control"] == "no-store"


async def test_http_level_refusals_are_problem_json(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 9)
    request_der = ocsp_request(cert, _ca(service))
    for headers in ({"Content-Type": "application/octet-stream"},
                    {"Content-Type": "application/json"}, {}):
        reply = await service.http.post("/ocsp", content=request_der, headers=headers)
        assert reply.status_code == 415, headers
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "unsupported_media_type"
    with_params = await service.http.post(
        "/ocsp", content=request_der,
        headers={"Content-Type": "Application/OCSP-Request; charset=binary"})
    assert with_params.status_code == 200

    big = await service.http.post("/ocsp", content=b"\x30" * (10 * 1024 + 1),
                                  headers=OCSP_REQUEST)
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"
    assert big.headers["content-type"] == "application/problem+json"

    async def chunked() -> Any:  # no Content-Length: counted as it streams
        for _ in range(11):
            yield b"\x30" * 1024

    streamed = await service.http.post("/ocsp", content=chunked(), headers=OCSP_REQUEST)
    assert streamed.status_code == 413

    long_get = await service.http.get("/ocsp/" + "A" * 20000)
    assert long_get.status_code == 414
    assert long_get.headers["content-type"] == "application/problem+json"

    wrong_method = await service.http.put("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_outage_is_try_later(service: Service, bank: Bank,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _resource, cert = await issue(bank, 1)

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise DependencyUnavailable("the database is unavailable", code="database_unavailable")

    monkeypatch.setattr(StatusRepository, "get_response", down)
    monkeypatch.setattr(StatusRepository, "certificate_states", down)
    for nonce in (None, b"abc"):
        response = await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=nonce))
        assert response.response_status is ocsp.OCSPResponseStatus.TRY_LATER

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(StatusRepository, "get_response", broken)
    response = await post_ocsp(service.http, ocsp_request(cert, _ca(service)))
    assert response.response_status is ocsp.OCSPResponseStatus.INTERNAL_ERROR


async def test_a_cached_answer_costs_no_signature(service: Service, bank: Bank,
                                                  signatures: list[int]) -> None:
    _resource, cert = await issue(bank, 2)
    request_der = ocsp_request(cert, _ca(service))
    first = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert len(signatures) == 1  # signed once, stored in the database and in memory
    for _ in range(20):
        again = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
        assert again.content == first.content
        got = await service.http.get(get_path(request_der))
        assert got.content == first.content
    assert len(signatures) == 1
    assert _status(service).memory_size == 1

    # Another replica (or a restart) with an empty memory serves the stored response.
    _status(service)._forget_all()
    third = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert third.content == first.content and len(signatures) == 1

    # A nonce means a fresh signature every time, and nothing is cached for it.
    await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=b"1"))
    await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=b"1"))
    assert len(signatures) == 3 and _status(service).memory_size == 1


async def test_unknown_answers_are_not_cached(service: Service, signatures: list[int]) -> None:
    request_der = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *ocsp_pki.IssuerHashes.of(_ca(service)).by_hash["sha1"], 0xC0FFEE, hashes.SHA1()
    ).build().public_bytes(serialization.Encoding.DER)
    for _ in range(2):
        response = await post_ocsp(service.http, request_der)
        assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert len(signatures) == 2 and _status(service).memory_size == 0
    async with service.container.db.transaction(write=False) as conn:
        assert await StatusRepository(conn).count_responses() == 0


async def test_revocation_replaces_the_cached_response_at_once(
        service: Service, bank: Bank, signatures: list[int]) -> None:
    resource, cert = await issue(bank, 3)
    ca = _ca(service)
    sha1, sha256 = ocsp_request(cert, ca), ocsp_request(cert, ca, algorithm=hashes.SHA256())
    for request_der in (sha1, sha256):
        assert (await post_ocsp(service.http, request_der)).certificate_status is (
            ocsp.OCSPCertStatus.GOOD)
    assert _status(service).memory_size == 2

    await revoke(bank, resource["id"], reason="key_compromise")
    signed_at_revocation = len(signatures)
    async with service.container.db.transaction(write=False) as conn:
        repo = StatusRepository(conn)
        for name in ("sha1", "sha256"):
            row = await repo.get_response(resource["serial"], name)
            assert row is not None and row.cert_status == "revoked"
            stored = ocsp.load_der_ocsp_response(bytes(row.response_der))
            assert stored.certificate_status is ocsp.OCSPCertStatus.REVOKED
    for request_der in (sha1, sha256):
        response = await post_ocsp(service.http, request_der)
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
    assert len(signatures) == signed_at_revocation  # pre-signed in the revoking transaction


async def test_superseded_and_reason_upgrade(service: Service, bank: Bank) -> None:
    holder = person(4)
    first = (await bank.issue(holder)).json()
    first_cert = x509.load_pem_x509_certificate(first["certificate_pem"].encode())
    ca = _ca(service)
    assert (await post_ocsp(service.http, ocsp_request(first_cert, ca))).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)
    second = await bank.issue(holder, pin="417093")  # a new issuance supersedes the first
    assert second.status_code == 201
    superseded = await post_ocsp(service.http, ocsp_request(first_cert, ca))
    assert superseded.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert superseded.revocation_reason is x509.ReasonFlags.superseded
    upgraded = await bank.post(f"/v1/certificates/{first['id']}/revoke",
                               {"pin": PIN, "reason": "key_compromise"})
    assert upgraded.status_code == 200, upgraded.text
    compromised = await post_ocsp(service.http, ocsp_request(first_cert, ca))
    assert compromised.revocation_reason is x509.ReasonFlags.key_compromise
    assert compromised.revocation_time_utc == superseded.revocation_time_utc


async def test_issuance_presigns_and_the_refresher_fills_gaps_and_resigns(
        service: Service, bank: Bank, signatures: list[int]) -> None:
    _resource, cert = await issue(bank, 5)
    status = _status(service)
    request_der = ocsp_request(cert, _ca(service))
    before = len(signatures)
    first = await post_ocsp(service.http, request_der)
    assert first.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert len(signatures) == before  # pre-signed at issuance: no signature at the first query
    assert (await status.refresh_ocsp()).as_dict() == {"resigned": 0, "presigned": 0,
                                                       "dropped": 0}

    # A pre-signing the issuance could not store (the database dropped just then) is left to
    # the refresher.
    _other, other_cert = await issue(bank, 7)
    async with service.container.db.transaction() as conn:
        removed = await conn.execute(delete(ocsp_responses).where(
            ocsp_responses.c.serial == f"{other_cert.serial_number:x}"))
    assert removed.rowcount == 1
    assert (await status.refresh_ocsp()).presigned == 1
    before = len(signatures)
    assert (await post_ocsp(service.http, ocsp_request(other_cert, _ca(service)))
            ).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert len(signatures) == before

    # Past the refresh point (12 h before nextUpdate) the refresher re-signs both, and memory
    # stops serving the old one.
    service.clock.advance(timedelta(hours=12, minutes=1))
    assert (await status.refresh_ocsp()).resigned == 2
    second = await post_ocsp(service.http, request_der)
    assert second.this_update_utc == service.clock.now()
    assert first.this_update_utc is not None and second.this_update_utc is not None
    assert second.this_update_utc > first.this_update_utc


async def test_responder_rolls_over_before_it_expires(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 6)
    status = _status(service)
    old = status.responder_certificate
    assert old is not None
    renew_before = timedelta(seconds=service.settings.status.responder_renew_before_seconds)
    service.clock.set(old.not_valid_after_utc - renew_before - timedelta(minutes=1))
    await status.maintain()
    assert status.responder_certificate == old  # not yet due
    service.clock.advance(timedelta(minutes=2))
    await status.maintain()
    new = status.responder_certificate
    assert new is not None and new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc
    response = await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=b"r"))
    assert response.certificates == [new]
    _check_signed(response, service)


async def test_no_response_outlives_its_responder(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 7)
    status = _status(service)
    responder = status.responder_certificate
    assert responder is not None
    # The refresher is stopped here, so the responder is not rolled over.
    service.clock.set(responder.not_valid_after_utc - timedelta(hours=3))
    response = await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=b"n"))
    assert response.next_update_utc == responder.not_valid_after_utc
    service.clock.set(responder.not_valid_after_utc - timedelta(minutes=1))
    late = await post_ocsp(service.http, ocsp_request(cert, _ca(service), nonce=b"n"))
    assert late.response_status is ocsp.OCSPResponseStatus.TRY_LATER


async def test_responder_key_is_stored_wrapped(service: Service) -> None:
    from sqlalchemy import select

    from app.storage.status_tables import ocsp_responders

    status = _status(service)
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(ocsp_responders))).all()
    assert len(rows) == 1
    row = rows[0]
    responder = status.responder_certificate
    assert responder is not None and bytes(row.certificate_der) == responder.public_bytes(
        serialization.Encoding.DER)
    with pytest.raises(ValueError):
        serialization.load_der_private_key(bytes(row.wrapped_key), None)
    with pytest.raises(ValueError):  # bound to its row: another id does not open it
        await service.container.protector.unwrap(row.master_key_id, bytes(row.wrapped_key),
                                                 b"certcloud:ocsp-responder:other")
    plain = await service.container.protector.unwrap(
        row.master_key_id, bytes(row.wrapped_key), f"certcloud:ocsp-responder:{row.id}".encode())
    key = serialization.load_der_private_key(plain, None)
    assert key.public_key() == responder.public_key()


async def test_fast_lane_serves_hits_and_counts_them(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, _ca(service))
    registry = service.app.state.metrics.registry

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    miss = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert "x-request-id" in miss.headers  # a miss goes through the whole stack
    hit = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert hit.content == miss.content
    assert "x-request-id" not in hit.headers  # answered before the other middleware
    assert hit.headers["content-length"] == str(len(hit.content))
    got = await service.http.get(get_path(request_der))
    assert got.content == miss.content and "x-request-id" not in got.headers
    not_modified = await service.http.get(get_path(request_der),
                                          headers={"If-None-Match": f'W/{got.headers["etag"]}'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert sample("certcloud_ocsp_responses_total", status="good") == 4
    assert sample("certcloud_http_requests_total", method="POST", route="/ocsp",
                  status="200") == 2
    assert sample("certcloud_http_requests_total", method="GET",
                  route="/ocsp/{encoded:path}", status="304") == 1


async def test_a_chunked_body_is_read_whole_and_replayed_on_a_miss(service: Service,
                                                                   bank: Bank) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, _ca(service))

    async def chunks() -> Any:
        yield request_der[:10]
        yield request_der[10:]

    for _ in range(2):  # a miss (replayed to the route), then a hit (the fast lane)
        reply = await service.http.post("/ocsp", content=chunks(), headers=OCSP_REQUEST)
        assert reply.status_code == 200
        assert ocsp.load_der_ocsp_response(reply.content).certificate_status is (
            ocsp.OCSPCertStatus.GOOD)


async def test_a_failed_presign_never_fails_the_issuance(service: Service, bank: Bank,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    status = _status(service)

    async def unavailable(*_args: object, **_kwargs: object) -> None:
        raise DependencyUnavailable("database gone", code="database_unavailable")

    monkeypatch.setattr(status, "_single", unavailable)
    issued = await bank.issue(person(8))
    assert issued.status_code == 201, issued.text
    monkeypatch.undo()
    assert (await status.refresh_ocsp()).presigned == 1
