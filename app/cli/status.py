"""``certcloud crl`` and ``certcloud ocsp refresh``: the revocation status a command publishes
(a status service without a lease or background loops, from :mod:`app.bootstrap`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.common import run_wired

if TYPE_CHECKING:
    from app.bootstrap import Wiring


@click.command("crl")
@click.option("--if-due", is_flag=True,
              help="Only when due: near nextUpdate, or older than the newest revocation.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also write the current CRL (DER) to this file.")
def crl_command(if_due: bool, out: str | None) -> None:
    """Issue a new CRL now (for cron: `certcloud crl --if-due`). Waits until every running
    replica serves it, then prints one JSON object."""

    async def action(wiring: Wiring) -> tuple[dict[str, Any], bytes]:
        status = await wiring.status()
        issued = not if_due or await status.crl_due()
        if issued:
            await status.regenerate_crl()
        confirmed = await status.await_all_replicas()
        copy = await status.current_crl()
        meta = copy.meta
        return {"issued": issued, "crl_number": meta.number, "entries": meta.entries,
                "bytes": len(copy.der), "this_update": meta.this_update.isoformat(),
                "next_update": meta.next_update.isoformat(), "sha256": meta.sha256,
                "replicas_confirmed": confirmed}, copy.der

    summary, der = run_wired(action)
    if out:
        Path(out).write_bytes(der)
    click.echo(json.dumps(summary))


@click.group("ocsp")
def ocsp_group() -> None:
    """The OCSP responder."""


@ocsp_group.command("refresh")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def ocsp_refresh(batch_size: int) -> None:
    """Roll the responder certificate over when due, re-sign pre-signed responses that near
    nextUpdate and pre-sign missing ones, until none is left; prints one JSON object."""
    from app.domain.serials import serial_hex

    async def action(wiring: Wiring) -> dict[str, Any]:
        status = await wiring.status()
        totals = {"resigned": 0, "presigned": 0, "dropped": 0}
        while True:
            report = (await status.refresh_ocsp(batch_size)).as_dict()
            for name, count in report.items():
                totals[name] += count
            if report["resigned"] + report["dropped"] < batch_size and (
                    report["presigned"] < batch_size):
                break
        responder = status.responder_certificate
        assert responder is not None  # start() made one
        return {**totals, "responder_serial": serial_hex(responder.serial_number),
                "responder_not_after": responder.not_valid_after_utc.isoformat()}

    click.echo(json.dumps(run_wired(action)))
