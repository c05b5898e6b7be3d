"""Import and size rules of the edge (issue 13, "what must hold"): the routers reach storage and
the PKI only through the services and the wiring, the CLI gets its database from the wiring, and
no file in app/ grows past 400 lines.
(tests/unit/test_architecture.py holds the services' and the domain's rules.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
MAX_LINES = 400
FORBIDDEN_IN_ROUTERS = ("app.storage", "app.pki")


def imported_modules(source: str) -> set[str]:
    """Every module a source imports, anywhere in it (also inside functions and
    ``TYPE_CHECKING`` blocks): ``from app import storage`` counts as ``app.storage``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def reaches(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(name for name in modules
                  if any(name == bad or name.startswith(f"{bad}.") for bad in forbidden))


def test_the_rule_sees_every_form_of_import() -> None:
    """The checker itself: each way of importing storage is caught, a lookalike is not."""
    sources = ["import app.storage.db", "from app.storage.db import Database",
               "from app import storage", "from app import pki as p",
               "def f():\n    from app.pki.ocsp import CertId\n",
               "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import app.pki\n"]
    for source in sources:
        assert reaches(imported_modules(source), FORBIDDEN_IN_ROUTERS), source
    assert not reaches(imported_modules("import app.storageroom\nfrom app import services"),
                       FORBIDDEN_IN_ROUTERS)


@pytest.mark.parametrize("path", sorted((APP / "routers").rglob("*.py")),
                         ids=lambda path: path.name)
def test_routers_import_neither_storage_nor_pki(path: Path) -> None:
    assert reaches(imported_modules(path.read_text()), FORBIDDEN_IN_ROUTERS) == []


@pytest.mark.parametrize("path", sorted((APP / "cli").rglob("*.py")), ids=lambda path: path.name)
def test_cli_commands_take_the_database_from_the_wiring(path: Path) -> None:
    """app.bootstrap opens the database (with the settings' timeout); no command does."""
    source = path.read_text()
    assert reaches(imported_modules(source), ("app.storage.db",)) == []
    assert "Database(" not in source and "make_engine(" not in source


def test_no_file_in_app_is_over_400_lines() -> None:
    lengths = {path.relative_to(APP).as_posix(): len(path.read_text().splitlines())
               for path in APP.rglob("*.py")}
    assert lengths, APP
    too_long = {name: lines for name, lines in lengths.items()
                if lines > MAX_LINES}
    assert too_long == {}
