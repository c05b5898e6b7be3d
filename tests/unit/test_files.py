"""Secret files (development secrets, the local key ring) appear whole or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.storage.files import create_new


def test_a_new_file_is_private_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secrets.json"
    create_new(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]  # no temporary left


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    create_new(path, "first")
    with pytest.raises(FileExistsError):
        create_new(path, "second")
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]
