"""What every ``certcloud`` command shares: the settings, one error line, and the wiring."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

from app.clock import SystemClock
from app.services.secrets import StartupError
from app.settings import Settings

if TYPE_CHECKING:
    from app.bootstrap import Wiring

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    click.echo(f"certcloud: {message}", err=True)
    sys.exit(1)


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        fail(f"invalid configuration: {str(exc).splitlines()[0]}")


def run(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except StartupError as exc:
        fail(str(exc))


def run_wired(action: Callable[[Wiring], Awaitable[T]],
              settings: Settings | None = None) -> T:
    """Runs ``action`` with the parts of :mod:`app.bootstrap`, closed afterwards."""
    from app.bootstrap import command_wiring  # imports everything: not for --help

    chosen = settings or load_settings()

    async def wired() -> T:
        async with command_wiring(chosen, SystemClock()) as wiring:
            return await action(wiring)

    return run(wired)
