"""/docs (Swagger UI) and /redoc (ReDoc) render in a real browser with no network but the app's
own origin, as on a bank's network without internet access (issue 11 finding 15, issue 18).

Needs Debian's chromium and the pinned playwright-core in tests/browser/node_modules
(`scripts/test` installs both); skipped without them unless CERTCLOUD_REQUIRE_BROWSER=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process
from tests.integration.test_serve import CERTCLOUD, env_for, free_port, wait_ready

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# ReDoc's footer always asks for its vendor's logo; the page's Content-Security-Policy refuses
# it inside the browser (no request is made) and ReDoc then hides the image.
REFUSED_BY_THE_PAGE_POLICY = {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


def _tools_or_skip() -> str:
    node = shutil.which("node")
    missing = [what for what, ok in (
        ("node", node is not None), (CHROMIUM, Path(CHROMIUM).exists()),
        ("tests/browser/node_modules/playwright-core",
         (HERE / "node_modules" / "playwright-core").is_dir())) if not ok]
    if missing:
        if os.environ.get("CERTCLOUD_REQUIRE_BROWSER") == "1":
            raise AssertionError(f"browser test tools missing: {', '.join(missing)}")
        pytest.skip(f"missing {', '.join(missing)} (scripts/test installs them)")
    assert node is not None
    return node


def test_docs_render_offline_in_chromium(tmp_path: Path, fresh_database_url: str) -> None:
    node = _tools_or_skip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(tmp_path / "var", fresh_database_url, CERTCLOUD_PUBLIC_BASE_URL=base)
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        document = httpx.get(f"{base}/openapi.json", timeout=10).json()
        operations = sum(len(item) for item in document["paths"].values())
        shots = tmp_path / "screenshots"
        shots.mkdir()
        browser = subprocess.run([node, str(HERE / "docs_offline.mjs"), base, str(shots)],
                                 capture_output=True, text=True, timeout=240,
                                 env={**os.environ, "CHROMIUM": CHROMIUM})
        assert browser.returncode == 0, browser.stderr
        results = json.loads(browser.stdout)
    finally:
        stop_process(server)
    for name in ("swagger", "redoc"):
        page = results[name]
        print(f"{name}: {page['rendered']} operations rendered, screenshot {shots / name}.png")
        assert page["blocked"] == [], (name, page["blocked"])  # nothing tried to leave
        refused = {failure["url"] for failure in page["failed"] if failure["error"] == "csp"}
        assert refused <= REFUSED_BY_THE_PAGE_POLICY, (name, page["failed"])
        assert len(refused) == len(page["failed"]), (name, page["failed"])
        errors = [error for error in page["errors"]
                  if not any(url in error for url in REFUSED_BY_THE_PAGE_POLICY)]
        assert errors == [], (name, page["errors"])
        assert page["rendered"] == operations, (name, page["rendered"], operations)
        assert (shots / f"{name}.png").stat().st_size > 10_000
