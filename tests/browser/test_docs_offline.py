"""/docs (Swagger UI) and /redoc (ReDoc) render in a real browser with no network but the app's
own origin, as on a bank's network without internet access (issue 11 finding 15, issue 18), at
desktop and at phone size. Tools: tests/support/browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.app import fresh_database
from tests.support.browser import SIZES, run_pages, screenshot_dir, too_wide, tools_or_skip
from tests.support.processes import serving

# ReDoc's footer always asks for its vendor's logo; the page's Content-Security-Policy refuses
# it inside the browser (no request is made) and ReDoc then hides the image.
REFUSED_BY_THE_PAGE_POLICY = {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


@pytest.fixture(scope="module")
async def docs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[int, Any]]:
    """The number of operations in /openapi.json, and both pages at both sizes."""
    node = tools_or_skip()
    work = tmp_path_factory.mktemp("docs")
    shots = screenshot_dir(work, "docs")
    async with fresh_database(work) as url:
        with serving(work / "var", url) as base:
            document = httpx.get(f"{base}/openapi.json", timeout=10).json()
            operations = sum(len(item) for item in document["paths"].values())
            results = run_pages(node, "docs_offline.mjs", base, shots, min_bytes=10_000)
    yield operations, results


def test_docs_render_offline_in_chromium(docs: tuple[int, Any]) -> None:
    operations, results = docs
    assert set(results) == {"swagger", "redoc"}
    for name, sizes in results.items():
        for size in SIZES:
            page = sizes[size]
            print(f"{name} ({size}): {page.get('rendered')} operations rendered")
            assert page["blocked"] == [], (name, size, page["blocked"])  # nothing tried to leave
            refused = {failure["url"] for failure in page["failed"] if failure["error"] == "csp"}
            assert refused <= REFUSED_BY_THE_PAGE_POLICY, (name, size, page["failed"])
            assert len(refused) == len(page["failed"]), (name, size, page["failed"])
            errors = [error for error in page["pageErrors"] + page["consoleErrors"]
                      if not any(url in error for url in REFUSED_BY_THE_PAGE_POLICY)]
            assert errors == [], (name, size, errors)
            assert page.get("rendered") == operations, (name, size, page.get("rendered"))


def test_docs_fit_a_phone(docs: tuple[int, Any]) -> None:
    assert too_wide(docs[1]) == {}
