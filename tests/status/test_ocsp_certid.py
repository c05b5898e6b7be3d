"""Each SingleResponse carries its request's CertID byte for byte (issue 12, part 1).

Bouncy Castle's ``CertificateID.equals`` compares the encoding: a request's
``SEQUENCE {sha1}`` answered with ``SEQUENCE {sha1, NULL}`` is not found, and its response
cache is keyed by it. The four shapes are SHA-1 and SHA-256, with NULL parameters and without.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509 import ocsp

from app.pki import ocsp as pki
from app.pki import ocsp_responder
from app.pki.ca import CertificateAuthority, Profile, create_ca, issue_end_entity, subject_for
from app.pki.keys import generate_user_key
from app.services.status import StatusService
from app.storage.status_repository import StatusRepository
from tests.conftest import Bank, Service
from tests.status.conftest import OCSP_REQUEST, issue, revoke

NOW = datetime.now(UTC).replace(microsecond=0)

# The AlgorithmIdentifiers as clients encode them, written out so the test does not lean on
# the code under test: OID, then NULL parameters or none.
_OIDS = {"sha1": bytes.fromhex("06052b0e03021a"),
         "sha256": bytes.fromhex("0609608648016503040201")}
SHAPES = [(name, with_null) for name in ("sha1", "sha256") for with_null in (True, False)]


def _algorithm(name: str, with_null: bool) -> asn1_algos.DigestAlgorithm:
    body = _OIDS[name] + (b"\x05\x00" if with_null else b"")
    return asn1_algos.DigestAlgorithm.load(b"\x30" + bytes([len(body)]) + body)


def cert_id_der(issuer: x509.Certificate, serial: int, name: str, with_null: bool) -> bytes:
    name_hash, key_hash = pki.IssuerHashes.of(issuer).by_hash[name]
    return bytes(asn1_ocsp.CertId({
        "hash_algorithm": _algorithm(name, with_null), "issuer_name_hash": name_hash,
        "issuer_key_hash": key_hash, "serial_number": serial}).dump())


def request_der(cert_ids: list[bytes], nonce: bytes | None = None) -> bytes:
    tbs: dict[str, object] = {"request_list": [
        {"req_cert": asn1_ocsp.CertId.load(cid)} for cid in cert_ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False,
                                      "extn_value": nonce}]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def echoed(response_der: bytes) -> list[tuple[bytes, str]]:
    """Each SingleResponse's CertID DER and status."""
    basic = asn1_ocsp.OCSPResponse.load(response_der).basic_ocsp_response
    return [(bytes(single["cert_id"].dump(force=False)), single["cert_status"].name)
            for single in basic["tbs_response_data"]["responses"]]


# --- app/pki/ocsp.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca(common_name="Unit CA", organization="Certcloud", country="KR",
                     now=NOW - timedelta(days=1), validity_years=5)


@pytest.fixture(scope="module")
def responder(ca: CertificateAuthority) -> pki.ResponderIdentity:
    key = ocsp_responder.generate_responder_key("rsa2048")
    certificate = ocsp_responder.issue_responder_certificate(
        ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(),
        serial=x509.random_serial_number(), not_before=ocsp_responder.backdated(NOW),
        not_after=NOW + timedelta(days=7))
    return pki.ResponderIdentity(key, certificate)


def _serial(ca: CertificateAuthority) -> int:
    key = generate_user_key("p256")
    return issue_end_entity(ca, Profile("2.25.1", "http://status.test"),
                            public_key=key.public_key(), subject=subject_for("홍길동", "p-1"),
                            serial=x509.random_serial_number(), not_before=NOW,
                            not_after=NOW + timedelta(days=30)).serial_number


_ANSWERS = {
    "good": lambda cid: pki.SingleAnswer(cid, pki.CertStatus.GOOD),
    "revoked": lambda cid: pki.SingleAnswer(cid, pki.CertStatus.REVOKED, NOW,
                                            x509.ReasonFlags.key_compromise),
    "unknown": lambda cid: pki.SingleAnswer(cid, pki.CertStatus.UNKNOWN),
}


@pytest.mark.parametrize(("name", "with_null"), SHAPES)
@pytest.mark.parametrize("status", sorted(_ANSWERS))
def test_one_cert_id_is_echoed_verbatim(ca: CertificateAuthority,
                                        responder: pki.ResponderIdentity, name: str,
                                        with_null: bool, status: str) -> None:
    sent = cert_id_der(ca.certificate, _serial(ca), name, with_null)
    for nonce in (None, b"nonce-7"):
        request = pki.parse_request(request_der([sent], nonce))
        assert request.cert_ids[0].der == sent
        der = pki.sign_response(responder, [_ANSWERS[status](request.cert_ids[0])],
                                this_update=NOW, next_update=NOW + timedelta(hours=1),
                                produced_at=NOW, nonce=request.nonce)
        assert echoed(der) == [(sent, status)]
        assert ocsp.load_der_ocsp_response(der).response_status is (
            ocsp.OCSPResponseStatus.SUCCESSFUL)


def test_several_cert_ids_each_echoed_verbatim(ca: CertificateAuthority,
                                               responder: pki.ResponderIdentity) -> None:
    serial = _serial(ca)
    sent = [cert_id_der(ca.certificate, serial + index, name, with_null)
            for index, (name, with_null) in enumerate(SHAPES)]
    statuses = ["good", "revoked", "unknown", "good"]
    for nonce in (None, b"n"):
        request = pki.parse_request(request_der(sent, nonce))
        answers = [_ANSWERS[status](cid)
                   for status, cid in zip(statuses, request.cert_ids, strict=True)]
        der = pki.sign_response(responder, answers, this_update=NOW,
                                next_update=NOW + timedelta(hours=1), produced_at=NOW,
                                nonce=request.nonce)
        assert echoed(der) == list(zip(sent, statuses, strict=True))


def test_shapes_have_distinct_storage_keys(ca: CertificateAuthority) -> None:
    keys = [pki.parse_request(request_der([cert_id_der(ca.certificate, 5, *shape)]))
            .cert_ids[0].shape for shape in SHAPES]
    assert keys == ["sha1", "sha1/a", "sha256", "sha256/a"]
    for key in keys:
        assert key is not None and len(key) <= 8  # ocsp_responses.hash_algorithm is String(8)
        assert pki.shape_key(*pki.parse_shape_key(key)) == key


def test_a_cert_id_rebuilt_from_its_key_encodes_as_clients_send_it(
        ca: CertificateAuthority) -> None:
    """What the refresher and a revocation re-sign must be the shape the request had."""
    for name, with_null in SHAPES:
        sent = cert_id_der(ca.certificate, 77, name, with_null)
        parsed = pki.parse_request(request_der([sent])).cert_ids[0]
        assert parsed.shape is not None
        hash_name, params = pki.parse_shape_key(parsed.shape)
        rebuilt = pki.CertId(hash_name, *pki.IssuerHashes.of(ca.certificate).by_hash[hash_name],
                             77, params=params)
        assert rebuilt.encoded() == sent


# --- through the app: stored per shape -----------------------------------------------------


def _status(service: Service) -> StatusService:
    status: StatusService = service.container.status
    return status


async def _post(service: Service, der: bytes) -> bytes:
    reply = await service.http.post("/ocsp", content=der, headers=OCSP_REQUEST)
    assert reply.status_code == 200
    return reply.content


async def test_each_shape_is_answered_and_stored_as_sent(service: Service, bank: Bank) -> None:
    resource, cert = await issue(bank, 3)
    ca_cert = service.container.issuer.ca.certificate
    sent = {shape: cert_id_der(ca_cert, cert.serial_number, *shape) for shape in SHAPES}
    first = {}
    for shape, cid in sent.items():
        first[shape] = await _post(service, request_der([cid]))
        assert echoed(first[shape]) == [(cid, "good")]
    serial = f"{cert.serial_number:x}"
    async with service.container.db.transaction(write=False) as conn:
        stored = sorted(await StatusRepository(conn).response_algorithms(serial))
    assert stored == ["sha1", "sha1/a", "sha256", "sha256/a"]  # four distinct answers

    # Another replica with an empty memory serves each shape its own stored answer.
    _status(service)._forget_all()
    for shape, cid in sent.items():
        assert await _post(service, request_der([cid])) == first[shape]

    # A revocation re-signs every stored shape, each still as clients send it.
    await revoke(bank, resource["id"])
    _status(service)._forget_all()
    revoked = {}
    for shape, cid in sent.items():
        revoked[shape] = await _post(service, request_der([cid]))
        assert echoed(revoked[shape]) == [(cid, "revoked")]
        assert echoed(await _post(service, request_der([cid], b"n"))) == [(cid, "revoked")]

    # The refresher re-signs each in its own shape.
    service.clock.advance(timedelta(hours=12, minutes=1))
    assert (await _status(service).refresh_ocsp()).resigned == 4
    for shape, cid in sent.items():
        again = await _post(service, request_der([cid]))
        assert again != revoked[shape] and echoed(again) == [(cid, "revoked")]
