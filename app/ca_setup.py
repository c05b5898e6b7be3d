"""``certcloud ca init`` and ``ca import``: a self-signed issuing CA (development's default), or
a key and a CSR for the bank's own offline root, then the certificate and chain it sends back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.domain.ports import Clock
from app.pki.ca import (
    CA_CERT_FILE,
    CA_CHAIN_FILE,
    CA_CSR_FILE,
    CA_KEY_FILE,
    CA_KEY_REF_FILE,
    ca_exists,
    ca_key_reference,
    ca_pending,
    create_ca,
    install_ca_certificate,
    load_ca_key,
    save_ca,
    save_ca_key,
    save_key_reference,
    sha256_fingerprint,
)
from app.pki.ca_request import ImportRefused, ca_request, check_issued_ca, public_key_der
from app.services.secrets import StartupError
from app.settings import Settings
from app.storage.files import private_directory


@dataclass(frozen=True)
class CaCreated:
    """What ``ca init`` made, for the operator to read."""

    key_location: str
    certificate_path: Path | None  # a self-signed CA
    csr_path: Path | None  # a pending CA
    fingerprint: str  # of the certificate, or of the CSR's public key

    @property
    def in_token(self) -> bool:
        return self.key_location.startswith("PKCS#11")


@dataclass(frozen=True)
class CaInstalled:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    chain_path: Path

    @property
    def fingerprint(self) -> str:
        return sha256_fingerprint(self.certificate.public_bytes(serialization.Encoding.DER))


def pending_problem(settings: Settings) -> str:
    return (f"the CA in {settings.ca_dir} is pending: its CSR awaits the root's signature; "
            "run `certcloud ca import CERT --chain CHAIN.pem`")


def _uses_token(settings: Settings, pkcs11: bool) -> bool:
    return pkcs11 or settings.ca.key_store == "pkcs11"


def _token_location(reference: dict[str, str]) -> str:
    return (f"PKCS#11 token {reference['token_label']!r}, key label "
            f"{reference['key_label']!r}")


def init_ca(settings: Settings, clock: Clock, *, pkcs11: bool = False,
            csr_path: Path | None = None) -> CaCreated:
    """A new CA in the data directory; refuses to replace one. With ``pkcs11`` (or
    ``CERTCLOUD_CA__KEY_STORE=pkcs11``) the key is generated inside the token. With
    ``csr_path`` no certificate is made: a CSR is written there and the CA stays pending
    until ``ca import``.

    :raises StartupError: one line naming the problem.
    """
    ca_dir = settings.ca_dir
    if ca_exists(ca_dir):
        raise StartupError(f"a CA already exists in {ca_dir}")
    if ca_pending(ca_dir):
        raise StartupError(pending_problem(settings))
    if (ca_dir / CA_KEY_FILE).exists() or (ca_dir / CA_KEY_REF_FILE).exists():
        raise StartupError(f"a CA key already exists in {ca_dir}, but no certificate or "
                           "CSR; remove the CA directory to start again")
    private_directory(settings.data_dir)
    if csr_path is not None and csr_path.exists():
        raise StartupError(f"{csr_path} exists; the CSR is never written over a file")
    if csr_path is not None and not csr_path.parent.is_dir():
        raise StartupError(f"{csr_path.parent} is not a directory; the CSR cannot go there")
    if _uses_token(settings, pkcs11):
        from app.storage.pkcs11 import TokenError
        from app.storage.pkcs11_ca import generate_token_ca_key, init_token_ca

        try:
            if csr_path is None:
                ca = init_token_ca(settings, clock.now())
                return CaCreated(_token_location(ca_key_reference(ca_dir) or {}),
                                 ca_dir / CA_CERT_FILE, None,
                                 sha256_fingerprint(ca.certificate_der))
            key, reference = generate_token_ca_key(settings)
        except TokenError as exc:
            raise StartupError(str(exc)) from None
        save_key_reference(reference, ca_dir)
        return _write_request(settings, key, csr_path, _token_location(reference))
    if csr_path is None:
        ca = create_ca(common_name=settings.ca.common_name,
                       organization=settings.ca.organization, country=settings.ca.country,
                       now=clock.now(), validity_years=settings.ca.validity_years)
        save_ca(ca, ca_dir)
        return CaCreated(str(ca_dir / CA_KEY_FILE), ca_dir / CA_CERT_FILE, None,
                         sha256_fingerprint(ca.certificate_der))
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_file = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return _write_request(settings, key_file, csr_path, str(save_ca_key(key_file, ca_dir)))


def _write_request(settings: Settings, key: Any, csr_path: Path, location: str) -> CaCreated:
    csr = ca_request(key, common_name=settings.ca.common_name,
                     organization=settings.ca.organization, country=settings.ca.country)
    pem = csr.public_bytes(serialization.Encoding.PEM)
    (settings.ca_dir / CA_CSR_FILE).write_bytes(pem)  # the CA is pending from here on
    try:
        with csr_path.open("xb") as handle:
            handle.write(pem)
    except OSError as exc:
        raise StartupError(f"the CSR could not be written to {csr_path} ({exc.strerror}); "
                           f"it is also in {settings.ca_dir / CA_CSR_FILE}") from None
    return CaCreated(location, None, csr_path, sha256_fingerprint(public_key_der(key.public_key())))


def _load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise StartupError(f"{what} is not a certificate in PEM or DER") from None


def import_ca(settings: Settings, clock: Clock, certificate_data: bytes,
              chain_data: bytes | None) -> CaInstalled:
    """Install the certificate the root issued for the pending CA, and the chain above it,
    after checking them (:func:`app.pki.ca_request.check_issued_ca`) and that the key is
    still there (the file, or the token key by a test signature).

    :raises StartupError: one line naming the problem.
    """
    ca_dir = settings.ca_dir
    if ca_exists(ca_dir):
        raise StartupError(f"a CA is already installed in {ca_dir}; nothing to import")
    if not ca_pending(ca_dir):
        raise StartupError(f"no pending CA in {ca_dir}; run `certcloud ca init --csr FILE` "
                           "first")
    csr = x509.load_pem_x509_csr((ca_dir / CA_CSR_FILE).read_bytes())
    given = _load_certificates(certificate_data, "CERT")
    if len(given) != 1:
        raise StartupError(f"CERT holds {len(given)} certificates; give the CA's own "
                           "certificate, and the ones above it with --chain")
    certificate = given[0]
    chain = _load_certificates(chain_data, "the chain") if chain_data is not None else []
    try:
        ordered = check_issued_ca(certificate, pending_key=csr.public_key(), chain=chain,
                                  now=clock.now())
    except ImportRefused as exc:
        raise StartupError(f"not imported: {exc}") from None
    _check_key_present(settings, certificate)
    install_ca_certificate(certificate, ordered, ca_dir)
    return CaInstalled(certificate, ordered, ca_dir / CA_CHAIN_FILE)


def _check_key_present(settings: Settings, certificate: x509.Certificate) -> None:
    reference = ca_key_reference(settings.ca_dir)
    if reference is None:
        key = load_ca_key(settings.ca_dir)
        if public_key_der(key.public_key()) != public_key_der(certificate.public_key()):
            raise StartupError(f"not imported: the key file in {settings.ca_dir} is not the "
                               "pending CA's key")
        return
    from app.storage.pkcs11 import TokenError
    from app.storage.pkcs11_ca import load_token_ca_key

    try:
        load_token_ca_key(settings, reference, certificate.public_key())
    except TokenError as exc:
        raise StartupError(f"not imported: {exc}") from None
