"""``certcloud db upgrade`` and ``certcloud sweep``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from app.cli.common import load_settings, run_wired

if TYPE_CHECKING:
    from app.bootstrap import Wiring


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations (default: to head)."""
    from app.storage import migrate
    from app.storage.files import private_directory

    settings = load_settings()
    private_directory(settings.data_dir)
    migrate.upgrade(settings.resolved_database_url, revision)
    click.echo(f"database at {revision}")


@click.command()
def sweep() -> None:
    """Remove unfinished pending certificates, old idempotency records and rate windows."""
    from app.bootstrap import unit_of_work
    from app.services.sweeper import sweep as run_sweep

    async def run(wiring: Wiring) -> None:
        report = await run_sweep(unit_of_work(wiring.db, None), wiring.clock.now())
        click.echo(json.dumps(vars(report)))

    run_wired(run)
