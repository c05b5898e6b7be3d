"""``certcloud ca`` commands of a CA hierarchy: what ``ca init`` prints, and ``ca import``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from app.ca_setup import CaCreated


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


@click.command("import")
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
    from app.cli import _fail, _settings
    from app.clock import SystemClock
    from app.services.secrets import StartupError

    settings = _settings()
    try:
        installed = import_ca(settings, SystemClock(), Path(certificate_file).read_bytes(),
                              Path(chain_file).read_bytes() if chain_file else None)
    except StartupError as exc:
        _fail(str(exc))
        return
    certificate = installed.certificate
    root = installed.chain[-1] if installed.chain else certificate
    click.echo(f"CA certificate: {settings.ca_dir / 'ca.cert.pem'} "
               f"({certificate.subject.rfc4514_string()})")
    click.echo(f"CA certificate SHA-256 fingerprint: {installed.fingerprint}")
    click.echo(f"chain: {installed.chain_path} ({len(installed.chain)} certificate(s), root "
               f"{root.subject.rfc4514_string()})")
