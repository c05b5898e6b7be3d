"""The problem pages (each ``type`` URI of a problem reply) render in a real browser with no
network but the app's own origin (issue 18, item 1). Tools as for test_docs_offline.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx

from app.routers.problem_codes import CODES
from tests.browser.test_docs_offline import CHROMIUM, HERE, _tools_or_skip
from tests.integration.test_serve import CERTCLOUD, env_for, free_port, wait_ready

SHOWN = ("pin_invalid", "verification_code_invalid", "rate_limited_signatures_per_certificate")


def test_problem_pages_render_in_chromium(tmp_path: Path, fresh_database_url: str) -> None:
    node = _tools_or_skip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(tmp_path / "var", fresh_database_url, CERTCLOUD_PUBLIC_BASE_URL=base)
    server = subprocess.Popen([CERTCLOUD, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        # A real reply's type is the page the browser opens.
        reply = httpx.get(f"{base}/v1/certificates/x", timeout=10)
        assert reply.json()["type"] == f"{base}/problems/token_missing"
        shots = tmp_path / "screenshots"
        shots.mkdir()
        browser = subprocess.run(
            [node, str(HERE / "problem_page.mjs"), base, str(shots), "token_missing", *SHOWN],
            capture_output=True, text=True, timeout=240, env={**os.environ, "CHROMIUM": CHROMIUM})
        assert browser.returncode == 0, browser.stderr
        results = json.loads(browser.stdout)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert results.pop("_blocked") == [] and results.pop("_errors") == []
    for code, page in results.items():
        print(f"{code}: screenshot {shots / code}.png")
        assert page["status"] == 200, code
        assert page["heading"] == code and code in page["title"]
        entry = CODES[code]
        assert page["meaning"] == entry.meaning.replace("`", "")
        assert page["action"] == entry.action.replace("`", "")
        example = json.loads(page["example"])
        assert example["code"] == code and example["type"] == f"{base}/problems/{code}"
        assert (shots / f"{code}.png").stat().st_size > 5_000
