"""``certcloud audit verify`` and ``audit checkpoint``: the hash-chained audit trail."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.common import run_wired
from app.services.secrets import StartupError

if TYPE_CHECKING:
    from app.bootstrap import Wiring
    from app.services.audit import ChainReport


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False),
              help="Also check the chain against this signed checkpoint "
                   "(from `certcloud audit checkpoint`).")
def audit_verify(checkpoint_file: str | None) -> None:
    """Check every row of the chain; exits 1 if a row was edited, removed or reordered, or
    the chain does not match the checkpoint."""
    from app.services import audit, audit_checkpoint
    from app.storage.audit_log import AuditLog

    given = Path(checkpoint_file).read_bytes() if checkpoint_file is not None else None

    async def verify(wiring: Wiring) -> ChainReport:
        keys = (await wiring.secrets()).audit_key
        point: tuple[int, str] | None = None
        if given is not None:
            ca_ = await wiring.ca()
            try:
                point = audit_checkpoint.check_signature(json.loads(given), ca_.certificate)
            except ValueError as exc:  # CheckpointError, bad JSON or UTF-8
                raise StartupError(f"checkpoint refused: {exc}") from None
        async with wiring.db.transaction(write=False) as conn:
            report = await audit.verify_chain(AuditLog(conn), keys)
            if point is not None:
                report.problems.extend(
                    await audit_checkpoint.chain_problems(AuditLog(conn), *point))
            return report

    report = run_wired(verify)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(f"{report.checked} audit events checked: "
               f"{'intact' if report.intact else 'TAMPERED'}")
    sys.exit(0 if report.intact else 1)


@audit_group.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also write the checkpoint to this file (keep it somewhere else).")
def audit_checkpoint_command(out: str | None) -> None:
    """Sign the chain's head with the CA key and print it as JSON (seq, hash, time, signer
    fingerprint, signature); refuses a chain that does not verify."""
    from app.services import audit, audit_checkpoint
    from app.storage.audit_log import AuditLog

    async def make(wiring: Wiring) -> dict[str, Any]:
        keys = (await wiring.secrets()).audit_key
        ca_ = await wiring.ca()
        async with wiring.db.transaction(write=False) as conn:
            report = await audit.verify_chain(AuditLog(conn), keys)
            seq, head_hash = await audit_checkpoint.head(AuditLog(conn))
        if not report.intact:
            raise StartupError(f"the chain does not verify ({report.problems[0]}); no "
                               "checkpoint made")
        return await asyncio.to_thread(audit_checkpoint.sign_checkpoint, ca_, seq, head_hash,
                                       wiring.clock.now())

    checkpoint = run_wired(make)
    text = json.dumps(checkpoint)
    if out:
        Path(out).write_text(text + "\n")
    click.echo(text)
