"""The problem pages (each ``type`` URI of a problem reply) render in a real browser with no
network but the app's own origin (issue 18, item 1), at desktop and at phone size. Tools:
tests/support/browser.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.routers.problem_codes import CODES
from tests.support.app import fresh_database
from tests.support.browser import SIZES, run_pages, screenshot_dir, too_wide, tools_or_skip
from tests.support.processes import serving

SHOWN = ("pin_invalid", "verification_code_invalid", "rate_limited_signatures_per_certificate")


@pytest.fixture(scope="module")
async def problems(tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The server's base URL and its problem pages at both sizes."""
    node = tools_or_skip()
    work = tmp_path_factory.mktemp("problems")
    shots = screenshot_dir(work, "problems")
    async with fresh_database(work) as url:
        with serving(work / "var", url) as base:
            # A real reply's type is the page the browser opens.
            reply = httpx.get(f"{base}/v1/certificates/x", timeout=10)
            assert reply.json()["type"] == f"{base}/problems/token_missing"
            results = run_pages(node, "problem_page.mjs", base, shots, "token_missing", *SHOWN,
                                min_bytes=5_000)
    yield base, results


def test_problem_pages_render_in_chromium(problems: tuple[str, dict[str, Any]]) -> None:
    base, results = problems
    assert set(results) == {"token_missing", *SHOWN}
    for code, sizes in results.items():
        for size in SIZES:
            page = sizes[size]
            assert page["blocked"] == [] and page["pageErrors"] == [], (code, size, page)
            assert page["status"] == 200, (code, size)
            assert page["heading"] == code and code in page["title"]
            entry = CODES[code]
            assert page["meaning"] == entry.meaning.replace("`", "")
            assert page["action"] == entry.action.replace("`", "")
            example = json.loads(page["example"])
            assert example["code"] == code and example["type"] == f"{base}/problems/{code}"


def test_problem_pages_fit_a_phone(problems: tuple[str, dict[str, Any]]) -> None:
    assert too_wide(problems[1]) == {}
