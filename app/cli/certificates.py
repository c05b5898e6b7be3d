"""``certcloud certificates``: list, show and (CA-side) revoke issued certificates."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import click

from app.cli.common import fail, run_wired
from app.clock import SystemClock
from app.routers.schemas import RevocationReasonName

if TYPE_CHECKING:
    from app.bootstrap import Wiring

T = TypeVar("T")
STATUSES = ("active", "revoked", "expired", "locked")
COLUMNS = ("ID", "SERIAL", "STATUS", "LOCKED", "NOT_BEFORE", "NOT_AFTER", "BANK")


@click.group("certificates")
def certificates_group() -> None:
    """Issued certificates: list, show, revoke (CA-side)."""


def _read(action: Callable[[Any], Awaitable[T]]) -> T:
    """``action`` in one read-only transaction."""

    async def read(wiring: Wiring) -> T:
        async with wiring.db.transaction(write=False) as conn:
            return await action(conn)

    return run_wired(read)


def _resource(certificate: Any, now: datetime) -> dict[str, Any]:
    from app.routers.schemas import CertificatePublic

    return CertificatePublic.of(certificate, now).model_dump(mode="json")


@certificates_group.command("list")
@click.option("--bank", "client_id", metavar="CLIENT_ID", help="Issued through this client.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--issued-from", type=click.DateTime(), help="Issued at or after (UTC).")
@click.option("--issued-to", type=click.DateTime(), help="Issued before (UTC).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def certificates_list(client_id: str | None, status: str | None, issued_from: datetime | None,
                      issued_to: datetime | None, as_json: bool) -> None:
    """Issued certificates, oldest first; a table with a header row by default."""
    from datetime import UTC

    from app.storage.certificate_query import CertificateFilter, list_certificates

    def utc(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.replace(tzinfo=UTC)

    now = SystemClock().now()
    where = CertificateFilter(client_id, status, utc(issued_from), utc(issued_to))
    found = _read(lambda conn: list_certificates(conn, where, now))
    if as_json:
        for certificate in found:
            resource = _resource(certificate, now)
            resource.pop("certificate_pem")
            click.echo(json.dumps(resource))
        return
    rows = [COLUMNS] + [
        (c.id, c.serial, c.status_at(now).value, "yes" if c.locked else "no",
         c.not_before.strftime("%Y-%m-%d %H:%M"), c.not_after.strftime("%Y-%m-%d %H:%M"),
         c.issued_by_client) for c in found]
    widths = [max(len(row[n]) for row in rows) for n in range(len(COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                       strict=True)).rstrip())


@certificates_group.command("show")
@click.argument("id_or_serial", metavar="ID|SERIAL")
def certificates_show(id_or_serial: str) -> None:
    """One certificate as JSON (the API's resource) with its issuing bank."""
    from app.storage.certificate_query import find_certificate
    from app.storage.repository import Repository

    async def show(conn: Any) -> dict[str, Any] | None:
        certificate = await find_certificate(conn, id_or_serial)
        if certificate is None:
            return None
        bank = await Repository(conn).get_client(certificate.issued_by_client)
        return {**_resource(certificate, SystemClock().now()),
                "bank": {"client_id": certificate.issued_by_client,
                         "name": bank.name if bank is not None else None}}

    shown = _read(show)
    if shown is None:
        fail(f"no certificate {id_or_serial}")
    click.echo(json.dumps(shown))


@certificates_group.command("revoke")
@click.argument("id_or_serial", metavar="ID|SERIAL")
@click.option("--reason", required=True, type=click.Choice(get_args(RevocationReasonName)))
def certificates_revoke(id_or_serial: str, reason: str) -> None:
    """Revoke as the CA (no PIN, no verification); audited as the operator, published to
    OCSP and the CRL. Prints the certificate resource."""
    from app.domain.certificates import RevocationReason
    from app.domain.errors import DomainError
    from app.services.operator_revocation import OperatorRevocation

    async def revoke(wiring: Wiring) -> Any:
        status = await wiring.status(audited=True)
        return await OperatorRevocation(status.uow, status, wiring.clock).revoke(
            id_or_serial, RevocationReason.from_api_name(reason))

    try:
        revoked = run_wired(revoke)
    except DomainError as exc:
        fail(exc.detail)
    click.echo(json.dumps(_resource(revoked, SystemClock().now())))
