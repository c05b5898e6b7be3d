"""The operator's daily commands, run as the real ``certcloud`` executable."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from tests.integration.test_serve import certcloud, env_for


def test_version_is_the_package_version(tmp_path: Path) -> None:
    done = certcloud("--version", env=env_for(tmp_path, "sqlite+aiosqlite:///unused.db"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"certcloud, version {version('certcloud')}"


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    done = certcloud("--versio", env=env_for(tmp_path, "sqlite+aiosqlite:///unused.db"))
    assert done.returncode == 2 and "No such option" in done.stderr
