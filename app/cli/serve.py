"""``certcloud serve``: the start-up checks once, then uvicorn's workers."""

from __future__ import annotations

import asyncio
import os

import click

from app.cli.common import fail, load_settings
from app.clock import SystemClock
from app.services.secrets import StartupError
from app.settings import Settings


def _with_port(settings: Settings, port: int) -> Settings:
    """Without an explicit CERTCLOUD_PUBLIC_BASE_URL, the default one names ``--port``, here
    and in every worker (they read the environment)."""
    if "public_base_url" in settings.model_fields_set:
        return settings
    url = f"http://127.0.0.1:{port}"
    os.environ["CERTCLOUD_PUBLIC_BASE_URL"] = url
    return settings.model_copy(update={"public_base_url": url})


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int,
              help="Also the port of the default public base URL (CERTCLOUD_PUBLIC_BASE_URL "
                   "wins when set).")
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--allow-remote-development", is_flag=True,
              help="Let development mode (the sandbox verifier, /sandbox/messages with every "
                   "code, generated secrets) listen on a non-loopback --host.")
def serve(host: str, port: int, workers: int, allow_remote_development: bool) -> None:
    """Serve the API with uvicorn (uvloop + httptools)."""
    import uvicorn

    from app.startup import is_loopback_host, preflight, startup_warnings

    settings = load_settings()
    if not settings.is_production and not is_loopback_host(host):
        if not allow_remote_development:
            fail(f"cannot start: development mode shows every SMS code at /sandbox/messages, "
                 f"so it listens on loopback only, not {host}; set "
                 f"CERTCLOUD_ENVIRONMENT=production, or pass --allow-remote-development")
        click.echo(f"certcloud: warning: development mode on {host}: anyone who reaches it "
                   "reads every SMS code at /sandbox/messages", err=True)
    settings = _with_port(settings, port)
    try:
        # Once, before any worker starts: workers then find everything in place.
        asyncio.run(preflight(settings, SystemClock()))
    except StartupError as exc:
        fail(f"cannot start: {exc}")
    for warning in startup_warnings(settings):
        click.echo(f"certcloud: warning: {warning}", err=True)
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                loop="uvloop", http="httptools", log_config=None, access_log=False,
                server_header=False)  # no banner naming the server software
