"""``certcloud ca init`` (self-signed, or a CSR for the bank's root) and ``ca import``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli.common import fail, load_settings
from app.clock import SystemClock
from app.services.secrets import StartupError

if TYPE_CHECKING:
    from app.ca_setup import CaCreated


@click.group()
def ca() -> None:
    """The issuing CA."""


@ca.command("init")
@click.option("--pkcs11", "pkcs11_", is_flag=True,
              help="Generate the CA key inside the PKCS#11 token (CERTCLOUD_KEYS__PKCS11_MODULE, "
                   "__TOKEN_LABEL, __PIN or __PIN_FILE); it never leaves the token.")
@click.option("--key-algorithm", type=click.Choice(["rsa3072", "rsa4096", "p256", "p384"]),
              default=None, help="For --pkcs11 (default: CERTCLOUD_CA__KEY_ALGORITHM).")
@click.option("--csr", "csr_file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Under the bank's own root: write a CSR for the CA key to this file instead "
                   "of a self-signed certificate; the CA is pending until `certcloud ca import`.")
def ca_init(pkcs11_: bool, key_algorithm: str | None, csr_file: str | None) -> None:
    """Create the issuing CA (RSA-3072, or in the token with --pkcs11), self-signed or, with
    --csr, pending the root's certificate, and, if missing, the first master key (the local
    key ring, or a token key with CERTCLOUD_KEYS__KIND=pkcs11)."""
    from app.cli.keys import init_token_hmac
    from app.startup import init_ca, load_key_protector
    from app.storage.local_keyring import LocalKeyRing

    settings = load_settings()
    if key_algorithm is not None:
        settings.ca.key_algorithm = key_algorithm  # type: ignore[assignment]
    clock = SystemClock()
    try:
        created = init_ca(settings, clock, pkcs11=pkcs11_,
                          csr_path=Path(csr_file) if csr_file else None)
    except StartupError as exc:
        fail(str(exc))
    if settings.keys.kind == "pkcs11":
        settings_dev = settings.model_copy(update={"environment": "development"})
        try:  # makes the first master key in the token if there is none
            protector = load_key_protector(settings_dev, clock)
        except StartupError as exc:
            fail(str(exc))
        click.echo(f"master key in the token: {protector.current_key_id()}")
        init_token_hmac(settings, generate_rrn_key=True, strict=False)
    elif not settings.keyring_path.exists():
        LocalKeyRing.create(settings.keyring_path, clock.now())
        click.echo(f"key ring created at {settings.keyring_path}")
    print_created(created, settings.ca_dir)


def print_created(created: CaCreated, ca_dir: Path) -> None:
    """What ``ca init`` made, as ``step ca init`` tells it: the key, the certificate or CSR,
    and the fingerprint to compare out of band."""
    click.echo(f"CA key: {created.key_location}")
    if created.certificate_path is not None:
        click.echo(f"CA certificate: {created.certificate_path} (self-signed)")
        click.echo(f"CA certificate SHA-256 fingerprint: {created.fingerprint}")
        where = "key in the PKCS#11 token" if created.in_token else "key file"
        click.echo(f"CA created in {ca_dir} ({where})")
        return
    click.echo(f"CSR: {created.csr_path}")
    click.echo(f"CSR public key SHA-256 fingerprint: {created.fingerprint}")
    click.echo("CA pending: have the root sign the CSR, then run "
               "`certcloud ca import CERT --chain CHAIN.pem`")


@ca.command("import")
@click.argument("certificate_file", metavar="CERT",
                type=click.Path(exists=True, dir_okay=False))
@click.option("--chain", "chain_file", type=click.Path(exists=True, dir_okay=False),
              help="PEM: the certificates above CERT, up to and including the self-signed "
                   "root.")
def ca_import(certificate_file: str, chain_file: str | None) -> None:
    """Install the certificate the root issued for the pending CA (from `ca init --csr`)
    and its chain, after checking the key, that it may issue certificates and CRLs, and
    that the chain verifies up to a self-signed root."""
    from app.ca_setup import import_ca

    settings = load_settings()
    try:
        installed = import_ca(settings, SystemClock(), Path(certificate_file).read_bytes(),
                              Path(chain_file).read_bytes() if chain_file else None)
    except StartupError as exc:
        fail(str(exc))
    certificate = installed.certificate
    root = installed.chain[-1] if installed.chain else certificate
    click.echo(f"CA certificate: {settings.ca_dir / 'ca.cert.pem'} "
               f"({certificate.subject.rfc4514_string()})")
    click.echo(f"CA certificate SHA-256 fingerprint: {installed.fingerprint}")
    click.echo(f"chain: {installed.chain_path} ({len(installed.chain)} certificate(s), root "
               f"{root.subject.rfc4514_string()})")
