"""requirements.lock (scripts/lock) agrees with pyproject.toml: the image installs from it with
--require-hashes, so a pin changed in one place only would ship another version or fail."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, tuple[str, list[str]]]:
    """Each locked package: its version and its hashes."""
    text = (ROOT / "requirements.lock").read_text()
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text):
        found = _PIN.match(block)
        if block.startswith("#") or found is None:
            continue
        entries[_normal(found.group(1))] = (found.group(2),
                                            re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def test_every_pyproject_pin_is_locked_at_its_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _lock()
    for requirement in project["dependencies"]:
        found = _PIN.match(requirement)
        assert found, f"pyproject pins every runtime dependency exactly: {requirement}"
        name, version = _normal(found.group(1)), found.group(2)
        assert name in locked, f"{name} is not in requirements.lock: run scripts/lock"
        assert locked[name][0] == version, (
            f"{name}: pyproject pins {version}, requirements.lock has {locked[name][0]}")


def test_every_locked_package_has_hashes_and_no_test_tool() -> None:
    locked = _lock()
    assert len(locked) > 20
    for name, (_version, hashes) in locked.items():
        assert hashes, f"{name} has no hash in requirements.lock"
    test_only = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    for requirement in test_only:
        name = _normal(_PIN.match(requirement).group(1))  # type: ignore[union-attr]
        assert name not in locked, f"{name} (a test tool) would ship in the image"
