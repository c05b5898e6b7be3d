"""The ``certcloud`` operator command: one module per command group, every one wired by
:mod:`app.bootstrap` (through :func:`app.cli.common.run_wired`)."""

from __future__ import annotations

import click

from app.cli import audit, ca, certificates, clients, db, keys, serve, status


@click.group()
@click.version_option(package_name="certcloud", prog_name="certcloud")
def main() -> None:
    """Certcloud: a certificate cloud (issue, hold, sign, revoke; OCSP, CRL, status)."""


for command in (serve.serve, db.db, db.sweep, ca.ca, clients.clients, audit.audit_group,
                keys.keys_group, status.crl_command, status.ocsp_group,
                certificates.certificates_group):
    main.add_command(command)
