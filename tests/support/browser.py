"""The Python side of the browser tests: tools_or_skip(); run_pages(), which runs a page
script of tests/browser (through its harness browser.mjs) and returns what it saw per page and
size, after checking each size's screenshot was written; too_wide(), the pages that scroll
sideways at phone size.

Needs Debian's chromium and the pinned playwright-core in tests/browser/node_modules
(`scripts/test` installs both); skipped without them unless CERTCLOUD_REQUIRE_BROWSER=1.
Screenshots go to $CERTCLOUD_SCREENSHOTS/<test> when set, else under the test's tmp_path; the
test prints where."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SIZES = ("desktop", "phone")


def tools_or_skip() -> str:
    """The node executable; skips (or fails, with CERTCLOUD_REQUIRE_BROWSER=1) without it,
    chromium or playwright-core."""
    node = shutil.which("node")
    missing = [what for what, ok in (
        ("node", node is not None), (CHROMIUM, Path(CHROMIUM).exists()),
        ("tests/browser/node_modules/playwright-core",
         (BROWSER_DIR / "node_modules" / "playwright-core").is_dir())) if not ok]
    if missing:
        if os.environ.get("CERTCLOUD_REQUIRE_BROWSER") == "1":
            raise AssertionError(f"browser test tools missing: {', '.join(missing)}")
        pytest.skip(f"missing {', '.join(missing)} (scripts/test installs them)")
    assert node is not None
    return node


def screenshot_dir(tmp_path: Path, name: str) -> Path:
    root = os.environ.get("CERTCLOUD_SCREENSHOTS")
    shots = Path(root) / name if root else tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {shots}")
    return shots


def run_pages(node: str, script: str, base: str, shots: Path, *args: str,
              min_bytes: int) -> dict[str, dict[str, dict[str, Any]]]:
    """``node tests/browser/<script> base shots args...``: {page: {size: findings}}. Each
    size's screenshot must be over ``min_bytes``."""
    browser = subprocess.run([node, str(BROWSER_DIR / script), base, str(shots), *args],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "CHROMIUM": CHROMIUM})
    assert browser.returncode == 0, browser.stderr
    results: dict[str, dict[str, dict[str, Any]]] = json.loads(browser.stdout)
    for name, sizes in results.items():
        assert set(sizes) == set(SIZES), (name, sizes.keys())
        for size, page in sizes.items():
            shot = Path(page["screenshot"])
            print(f"{name} ({size}): {shot}")
            assert shot.parent == shots and shot.stat().st_size > min_bytes, (name, size)
        assert sizes["phone"]["viewportWidth"] == 390, sizes["phone"]
    return results


def too_wide(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, int]:
    """The pages whose document is wider than the phone's viewport (they scroll sideways), with
    their width: ``scrollWidth <= viewport width`` must hold for a page that fits."""
    return {name: sizes["phone"]["scrollWidth"] for name, sizes in results.items()
            if sizes["phone"]["scrollWidth"] > sizes["phone"]["viewportWidth"]}
