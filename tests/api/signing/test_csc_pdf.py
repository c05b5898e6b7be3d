"""A PDF signed end to end by pyHanko's CSCSigner against the running app (a real listening
uvicorn server: pyHanko's CSC client speaks aiohttp), then validated by pyHanko."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from typing import Any

import aiohttp
import pytest
import uvicorn
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from app.main import create_app
from tests.support.app import Service
from tests.support.bank import Bank, Holder

pytestmark = pytest.mark.interop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_url(service: Service) -> Iterator[str]:
    """Another instance of the app (same data directory, database and clock) behind uvicorn,
    in a thread with its own event loop."""
    app = create_app(service.settings, clock=service.clock)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="csc-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class PinAuthorization(CSCAuthorizationManager):
    """SCAL 2: each batch of hashes is authorised with the PIN at ``credentials/authorize``."""

    def __init__(self, session_info: CSCServiceSessionInfo, credential: CSCCredentialInfo,
                 session: aiohttp.ClientSession, pin: str) -> None:
        super().__init__(session_info, credential)
        self.session, self.pin = session, pin

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        request = self.format_csc_auth_request(pin=self.pin, hash_b64s=hash_b64s)
        async with self.session.post(
                self.csc_session_info.endpoint_url("credentials/authorize"),
                headers=self.auth_headers, json=request, raise_for_status=True) as reply:
            return self.parse_csc_auth_response(await reply.json())


def _blank_pdf() -> bytes:
    writer = PdfFileWriter()
    content = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 12 Tf 72 720 Td (Certcloud CSC test) Tj ET"))
    writer.insert_page(generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject(
            [generic.NumberObject(v) for v in (0, 0, 595, 842)]),
        generic.NameObject("/Contents"): content,
        generic.NameObject("/Resources"): generic.DictionaryObject(),
    }))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


async def _sign_pdf(url: str, token: str, holder: Holder, pin: str, pdf: bytes,
                    *, md_algorithm: str = "sha256", timestamper: Any = None) -> bytes:
    async with aiohttp.ClientSession() as session:
        session_info = CSCServiceSessionInfo(url, holder.id, oauth_token=token)
        credential = await fetch_certs_in_csc_credential(session, session_info)
        signer = CSCSigner(session, PinAuthorization(session_info, credential, session, pin))
        meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm=md_algorithm)
        out = await signers.async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), meta,
                                           signer=signer, timestamper=timestamper)
        return bytes(out.getvalue())


@pytest.mark.parametrize("md_algorithm", ["sha256", "sha512"])
async def test_pyhanko_signs_a_pdf_over_csc_and_validates_it(
        service: Service, bank: Bank, holder: Holder, live_url: str, md_algorithm: str) -> None:
    signed = await _sign_pdf(live_url, bank.token, holder, holder.pin, _blank_pdf(),
                             md_algorithm=md_algorithm)
    reader = PdfFileReader(BytesIO(signed))
    assert len(reader.embedded_signatures) == 1
    embedded = reader.embedded_signatures[0]
    ca = asn1_x509.Certificate.load(service.container.issuer.ca.certificate_der)
    context = ValidationContext(trust_roots=[ca], allow_fetching=False,
                                revocation_mode="soft-fail",
                                moment=service.clock.now() + timedelta(minutes=1))
    status = await async_validate_pdf_signature(embedded, signer_validation_context=context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.bottom_line
    assert format(status.signing_cert.serial_number, "x") == holder.certificate["serial"]
    assert embedded.md_algorithm == md_algorithm


async def test_pyhanko_with_a_wrong_pin_gets_nothing(bank: Bank, holder: Holder,
                                                     live_url: str) -> None:
    with pytest.raises(SigningError):
        await _sign_pdf(live_url, bank.token, holder, "000000", _blank_pdf())
    state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
    assert state["remaining_pin_attempts"] == 4
