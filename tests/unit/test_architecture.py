"""The house rules, read from the code's own imports (ast): each rule is a test of its own, so
rules added elsewhere (routers, the whole app's length) join as further functions."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
MAX_LINES = 400


def _modules(folder: str) -> list[Path]:
    return sorted((APP / folder).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports (at any depth: lazy imports count), with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _name(path: Path) -> str:
    return str(path.relative_to(APP.parent))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# Start-up key loading that reads the key files and the token: configuration, not a use case.
# It is the one service module left touching storage (the wiring's split of app/ will take it
# out of app/services); the test below fails once it no longer needs the exemption.
LOADS_KEYS_AT_START = {"app/services/secrets.py"}


def test_services_never_import_sqlalchemy_or_storage() -> None:
    found = [f"{_name(path)}:{line} imports {module}"
             for path in _modules("services") for line, module in _imports(path)
             if _within(module, "sqlalchemy")
             or (_within(module, "app.storage") and _name(path) not in LOADS_KEYS_AT_START)]
    assert found == [], "services take the unit of work (app.domain.ports), not storage"


def test_the_storage_exemption_is_still_needed() -> None:
    for name in LOADS_KEYS_AT_START:
        assert any(_within(module, "app.storage")
                   for _line, module in _imports(APP.parent / name)), name


def test_the_domain_imports_only_itself_and_the_standard_library() -> None:
    found = [f"{_name(path)}:{line} imports {module}"
             for path in _modules("domain") for line, module in _imports(path)
             if not _within(module, "app.domain")
             and module.split(".")[0] not in sys.stdlib_module_names]
    assert found == []


def test_no_file_in_services_domain_or_storage_is_over_400_lines() -> None:
    long = {_name(path): lines for folder in ("services", "domain", "storage")
            for path in _modules(folder)
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
