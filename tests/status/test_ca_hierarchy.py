"""The service under a bank's own offline root: the issuing CA made with `ca init --csr`'s code,
signed by the root with `openssl x509 -req`, imported with the root as chain. Leaves, the OCSP
responder certificate and the CRL are the issuing CA's, and relying parties holding only the
root verify them with `openssl verify -untrusted`, `openssl ocsp` and pyHanko."""

from __future__ import annotations

import base64
import shutil
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from app.ca_setup import import_ca, init_ca
from app.settings import Settings
from app.storage.local_keyring import LocalKeyRing
from tests.conftest import Bank, FixedClock, Service, make_settings, truncate_all
from tests.offline_root import Root, make_root
from tests.signing.conftest import issue_holder
from tests.signing.test_csc_pdf import _blank_pdf, _sign_pdf, live_url
from tests.status.conftest import OCSP_REQUEST, der, issue, ocsp_request, openssl, revoke, run

pytestmark = pytest.mark.interop
__all__ = ["live_url"]  # the live uvicorn server fixture, on this module's service


@pytest.fixture(scope="module")
def hierarchy_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Root]:
    """A data directory whose CA was imported under a root (made once: RSA keys are slow)."""
    from datetime import UTC, datetime

    from app.clock import SystemClock

    base = tmp_path_factory.mktemp("hierarchy")
    now = datetime.now(UTC)
    settings = Settings(data_dir=base / "var", ca={"common_name": "Test Bank Issuing CA",
                                                   "organization": "Test Bank"})
    created = init_ca(settings, SystemClock(), csr_path=base / "issuing.csr")
    assert created.csr_path is not None
    root = make_root(base / "root", now)
    issued = root.sign_csr_with_openssl(created.csr_path, base / "issuing.pem")
    import_ca(settings, SystemClock(), issued.read_bytes(), root.pem_path.read_bytes())
    LocalKeyRing.create(settings.keyring_path, now)
    return base / "var", root


@pytest.fixture
async def settings(tmp_path: Path, hierarchy_template: tuple[Path, Root],
                   database_url: str) -> Settings:
    data_dir = tmp_path / "var"
    shutil.copytree(hierarchy_template[0], data_dir)
    await truncate_all(database_url)
    return make_settings(data_dir, database_url, keys={"kind": "local"},
                         ca={"key_store": "file"})


@pytest.fixture
def root(hierarchy_template: tuple[Path, Root]) -> Root:
    return hierarchy_template[1]


@pytest.fixture
def files(tmp_path: Path, service: Service, root: Root) -> dict[str, Path]:
    """What a relying party has: the root, and the chain the service serves."""
    ca = service.container.issuer.ca
    paths = {"root": root.pem_path, "chain": tmp_path / "chain.pem",
             "issuing": tmp_path / "issuing.pem"}
    paths["chain"].write_bytes(ca.chain_pem)
    paths["issuing"].write_bytes(ca.certificate_pem)
    return paths


def _ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _aki(item: Any) -> bytes | None:
    return item.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value.key_identifier  # type: ignore[no-any-return]


def _write_pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


async def test_the_chain_is_served_and_a_leaf_verifies_against_the_root(
        service: Service, bank: Bank, root: Root, files: dict[str, Path],
        tmp_path: Path) -> None:
    served = await service.http.get("/ca/chain.pem")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/pem-certificate-chain"
    chain = x509.load_pem_x509_certificates(served.content)
    issuing = service.container.issuer.ca.certificate
    assert chain == [issuing, root.certificate]
    single = await service.http.get("/ca/certificate")
    assert x509.load_der_x509_certificate(single.content) == issuing

    _body, leaf = await issue(bank, 1)
    assert leaf.issuer == issuing.subject != root.certificate.subject
    assert _aki(leaf) == _ski(issuing) != _ski(root.certificate)
    leaf_path = _write_pem(tmp_path / "leaf.pem", leaf)
    chain_path = tmp_path / "served-chain.pem"
    chain_path.write_bytes(served.content)
    verified = run([openssl(), "verify", "-CAfile", str(files["root"]), "-untrusted",
                    str(chain_path), str(leaf_path)])
    assert f"{leaf_path}: OK" in verified.stdout
    alone = run([openssl(), "verify", "-CAfile", str(files["root"]), str(leaf_path)],
                check=False)
    assert alone.returncode != 0  # the issuing CA is needed: the root did not sign the leaf


async def test_ocsp_is_signed_in_the_issuing_cas_name(
        service: Service, bank: Bank, files: dict[str, Path], tmp_path: Path) -> None:
    issuing = service.container.issuer.ca.certificate
    _good, good = await issue(bank, 1)
    bad_body, bad = await issue(bank, 2)
    await revoke(bank, bad_body["id"], reason="key_compromise")
    reply = await service.http.post("/ocsp", content=ocsp_request(good, issuing),
                                    headers=OCSP_REQUEST)
    response = ocsp.load_der_ocsp_response(reply.content)
    responder, *rest = response.certificates
    assert rest == [issuing]  # the responder's chain up to (not including) the root
    assert responder.issuer == issuing.subject and _aki(responder) == _ski(issuing)
    response_path = tmp_path / "good.der"
    response_path.write_bytes(reply.content)
    # Without -issuer openssl trusts nothing but the root: the response carries the chain.
    done = run([openssl(), "ocsp", "-respin", str(response_path), "-CAfile",
                str(files["root"])])
    assert "Response verify OK" in done.stdout + done.stderr
    good_path = _write_pem(tmp_path / "good.pem", good)
    done = run([openssl(), "ocsp", "-respin", str(response_path), "-CAfile",
                str(files["root"]), "-issuer", str(files["issuing"]), "-cert", str(good_path),
                "-no_nonce"])
    assert f"{good_path}: good" in done.stdout + done.stderr

    # several CertIDs (a response assembled apart from cryptography's builder), one revoked
    bad_path = _write_pem(tmp_path / "bad.pem", bad)
    request_path = tmp_path / "two.req"
    run([openssl(), "ocsp", "-issuer", str(files["issuing"]), "-cert", str(good_path),
         "-cert", str(bad_path), "-no_nonce", "-reqout", str(request_path)])
    reply = await service.http.post("/ocsp", content=request_path.read_bytes(),
                                    headers=OCSP_REQUEST)
    two_path = tmp_path / "two.der"
    two_path.write_bytes(reply.content)
    done = run([openssl(), "ocsp", "-respin", str(two_path), "-reqin", str(request_path),
                "-CAfile", str(files["root"])])
    assert "Response verify OK" in done.stdout + done.stderr
    done = run([openssl(), "ocsp", "-respin", str(two_path), "-CAfile", str(files["root"]),
                "-issuer", str(files["issuing"]), "-cert", str(good_path), "-cert",
                str(bad_path), "-no_nonce"])
    output = done.stdout + done.stderr
    assert f"{good_path}: good" in output and f"{bad_path}: revoked" in output


async def test_the_crl_is_the_issuing_cas(service: Service, bank: Bank, files: dict[str, Path],
                                          tmp_path: Path) -> None:
    issuing = service.container.issuer.ca.certificate
    _good, good = await issue(bank, 1)
    bad_body, bad = await issue(bank, 2)
    await revoke(bank, bad_body["id"], reason="key_compromise")
    crl = x509.load_der_x509_crl((await service.http.get("/crl")).content)
    assert crl.issuer == issuing.subject and _aki(crl) == _ski(issuing)
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    base = [openssl(), "verify", "-crl_check", "-CAfile", str(files["root"]), "-untrusted",
            str(files["chain"]), "-CRLfile", str(crl_path)]
    good_path = _write_pem(tmp_path / "good.pem", good)
    assert f"{good_path}: OK" in run([*base, str(good_path)]).stdout
    failed = run([*base, str(_write_pem(tmp_path / "bad.pem", bad))], check=False)
    assert failed.returncode != 0 and "certificate revoked" in failed.stdout + failed.stderr


async def test_pyhanko_validates_a_csc_signed_pdf_against_the_root(
        service: Service, bank: Bank, root: Root, live_url: str, clock: FixedClock) -> None:
    holder = await issue_holder(bank, 1)
    info = await bank.post("/csc/v1/credentials/info", {"credentialID": holder.id,
                                                         "certificates": "chain"})
    assert [base64.b64decode(c) for c in info.json()["cert"]["certificates"]] == [
        der(holder.x509), der(service.container.issuer.ca.certificate), der(root.certificate)]
    signed = await _sign_pdf(live_url, bank.token, holder, holder.pin, _blank_pdf())
    embedded = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
    issuing_der = der(service.container.issuer.ca.certificate)
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(der(root.certificate))],
                                other_certs=[asn1_x509.Certificate.load(issuing_der)],
                                allow_fetching=False, revocation_mode="soft-fail",
                                moment=clock.now() + timedelta(minutes=1))
    status = await async_validate_pdf_signature(embedded, signer_validation_context=context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    path = [cert.sha256 for cert in status.validation_path.iter_certs(include_root=True)]
    assert path == [asn1_x509.Certificate.load(c).sha256 for c in (
        der(root.certificate), issuing_der, der(holder.x509))]
