"""Signature time-stamps from the built-in TSA: a CMS signature with ``"timestamp": true`` is
CAdES-T (pyHanko validates the token against our CA, openssl checks it as an RFC 3161 token),
and a PDF signed over CSC gets its time-stamp from POST /tsa through pyHanko's own client."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext

from app.settings import DEFAULT_TSA_POLICY_OID
from tests.api.signing.test_csc_pdf import _blank_pdf, _sign_pdf, live_url
from tests.support.app import START, Service
from tests.support.bank import Bank, Holder
from tests.support.signing import b64, ca_pem_path, openssl_verify, unb64
from tests.support.tools import run

__all__ = ["live_url"]

DATA = "타임스탬프 서명 테스트".encode()
SIGNATURE_TIME_STAMP = "1.2.840.113549.1.9.16.2.14"


async def _sign(bank: Bank, holder: Holder, **body: Any) -> Any:
    body.setdefault("pin", holder.pin)
    return await bank.post(f"/v1/certificates/{holder.id}/signatures", body)


def _context(service: Service) -> ValidationContext:
    ca = asn1_x509.Certificate.load(service.container.issuer.ca.certificate_der)
    return ValidationContext(trust_roots=[ca], moment=START + timedelta(minutes=1),
                             allow_fetching=False, revocation_mode="soft-fail")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_cms_with_timestamp_is_cades_t_and_pyhanko_validates_it(
        service: Service, bank: Bank, holder: Holder, tmp_path: Path, algorithm: str) -> None:
    reply = await _sign(bank, holder, data=b64(DATA), format="cms", detached=True,
                        digest_algorithm=algorithm, timestamp=True)
    assert reply.status_code == 200, reply.text
    der = unb64(reply.json()["signature"])
    signed_data = cms.ContentInfo.load(der)["content"]
    signer = signed_data["signer_infos"][0]
    unsigned = signer["unsigned_attrs"]
    assert [a["type"].dotted for a in unsigned] == [SIGNATURE_TIME_STAMP]
    token = unsigned[0]["values"][0]
    info = token["content"]["encap_content_info"]["content"].parsed
    imprint = info["message_imprint"]
    assert imprint["hash_algorithm"]["algorithm"].native == algorithm
    assert imprint["hashed_message"].native == hashlib.new(
        algorithm, signer["signature"].native).digest()
    assert info["gen_time"].native == START
    assert info["policy"].dotted == DEFAULT_TSA_POLICY_OID

    status = await async_validate_detached_cms(DATA, signed_data,
                                               signer_validation_context=_context(service),
                                               ts_validation_context=_context(service))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    stamp = status.timestamp_validity
    assert stamp is not None, status.pretty_print_details()
    assert stamp.intact and stamp.valid and stamp.trusted, stamp.pretty_print_details()
    assert stamp.timestamp == START

    # Unsigned attributes are outside the signature: openssl still verifies the CMS.
    assert openssl_verify(ca_pem_path(service), tmp_path, der, content=DATA).returncode == 0
    # And the token is an RFC 3161 token over the signature value, by openssl's own check.
    (tmp_path / "token.der").write_bytes(token.dump())
    (tmp_path / "signature.bin").write_bytes(signer["signature"].native)
    verified = run(["openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"),
                    "-data", str(tmp_path / "signature.bin"), "-CAfile",
                    str(ca_pem_path(service))])
    assert "Verification: OK" in verified.stdout


async def test_a_tampered_timestamp_fails_in_pyhanko(service: Service, bank: Bank,
                                                    holder: Holder) -> None:
    """The check can fail: a token over another signature value is not valid for this one."""
    first = cms.ContentInfo.load(unb64((await _sign(
        bank, holder, data=b64(DATA), format="cms", detached=True, timestamp=True)).json()[
        "signature"]))
    other = cms.ContentInfo.load(unb64((await _sign(
        bank, holder, data=b64(DATA + b"!"), format="cms", detached=True,
        timestamp=True)).json()["signature"]))
    signer = first["content"]["signer_infos"][0]
    signer["unsigned_attrs"] = other["content"]["signer_infos"][0]["unsigned_attrs"].copy()
    mixed = cms.ContentInfo.load(first.dump(force=True))
    status = await async_validate_detached_cms(DATA, mixed["content"],
                                               signer_validation_context=_context(service),
                                               ts_validation_context=_context(service))
    assert status.timestamp_validity is None or not status.timestamp_validity.intact


async def test_timestamp_is_for_cms_only_and_costs_no_try(bank: Bank, holder: Holder) -> None:
    reply = await _sign(bank, holder, data=b64(DATA), format="raw", timestamp=True,
                        pin="000000")
    assert reply.status_code == 422
    assert reply.json()["code"] == "timestamp_requires_cms"
    not_bool = await _sign(bank, holder, data=b64(DATA), format="cms", timestamp="yes")
    assert not_bool.status_code == 422
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["remaining_pin_attempts"] == 5


async def test_no_tsa_certificate_is_a_503_before_the_pin(service: Service, bank: Bank,
                                                          holder: Holder,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    signers = service.container.tsa.signers
    monkeypatch.setattr(signers, "usable", lambda now: None)
    reply = await _sign(bank, holder, data=b64(DATA), format="cms", timestamp=True,
                        pin="000000")
    assert reply.status_code == 503
    assert reply.json()["code"] == "timestamp_unavailable"
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["remaining_pin_attempts"] == 5
    refused = await service.http.post("/tsa", content=b"0",
                                      headers={"Content-Type": "application/timestamp-query"})
    assert refused.status_code == 200  # garbage is refused before a signer is needed


@pytest.mark.interop
async def test_pdf_over_csc_with_a_timestamp_from_post_tsa(service: Service, bank: Bank,
                                                          holder: Holder,
                                                          live_url: str) -> None:
    timestamper = HTTPTimeStamper(f"{live_url}/tsa")
    signed = await _sign_pdf(live_url, bank.token, holder, holder.pin, _blank_pdf(),
                             timestamper=timestamper)
    embedded = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
    status = await async_validate_pdf_signature(embedded,
                                                signer_validation_context=_context(service),
                                                ts_validation_context=_context(service))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    stamp = status.timestamp_validity
    assert stamp is not None and stamp.valid and stamp.trusted, status.pretty_print_details()
    assert stamp.timestamp == START
    tsa = service.container.tsa.signers.usable(service.clock.now())
    assert tsa is not None
    assert stamp.signing_cert.sha256 == asn1_x509.Certificate.load(
        tsa.identity.certificate.public_bytes(serialization.Encoding.DER)).sha256
