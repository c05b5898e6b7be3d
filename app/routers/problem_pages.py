"""GET /problems/{code}: the page each problem ``type`` URI points to (static HTML, no script,
nothing loaded from elsewhere; served in production too, docs or not)."""

from __future__ import annotations

import json
import re
from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.domain.errors import NotFound
from app.routers.problem_catalog import example_reply, responses_for
from app.routers.problem_codes import CODES
from app.routers.problems import problem_type

router = APIRouter(tags=["operations"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{code} · Certcloud problem</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1f24; }}
h1 {{ font-size: 1.6rem; margin-bottom: .2rem; overflow-wrap: anywhere; }}
.status {{ color: #5a6270; margin-top: 0; }}
code, pre {{ font-family: ui-monospace, monospace; background: #f3f5f8; border-radius: 4px; }}
code {{ padding: .1rem .3rem; }}
pre {{ padding: .8rem; overflow-x: auto; }}
h2 {{ font-size: 1.1rem; margin-top: 1.6rem; }}
</style></head>
<body><main>
<h1 id="code"><code>{code}</code></h1>
<p class="status">HTTP {status} · {title}</p>
<h2>What it means</h2>
<p id="meaning">{meaning}</p>
<h2>What to do</h2>
<p id="action">{action}</p>
<h2>Example reply</h2>
<pre>{example}</pre>
<p><a href="/problems">All problem codes</a></p>
</main></body></html>
"""

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Certcloud problem codes</title>
<style>body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
padding: 0 1rem; }} code {{ font-family: ui-monospace, monospace; }}</style></head>
<body><main><h1>Problem codes</h1><ul>{items}</ul></main></body></html>
"""
_CACHE = {"Cache-Control": "public, max-age=3600"}


def _example(code: str) -> str:
    base = problem_type(code).removesuffix(f"/problems/{code}")  # this service's own
    return json.dumps(example_reply(code, base), indent=2, ensure_ascii=False)


def _prose(text: str) -> str:
    """Escaped, with `backticks` as <code>."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", escape(text))


@router.get("/problems", response_class=HTMLResponse, operation_id="problem_index",
            summary="Every problem code, linked to its page",
            responses={200: {"content": {"text/html": {}}}})
async def problem_index() -> HTMLResponse:
    items = "".join(f'<li><a href="/problems/{escape(code)}"><code>{escape(code)}</code></a> '
                    f"({entry.status}): {_prose(entry.meaning)}</li>"
                    for code, entry in sorted(CODES.items()))
    return HTMLResponse(_INDEX.format(items=items), headers=_CACHE)


@router.get("/problems/{code}", response_class=HTMLResponse, operation_id="problem_page",
            summary="What a problem code means and what to do about it",
            responses={200: {"content": {"text/html": {}}}, **responses_for("problem_page")})
async def problem_page(code: str) -> HTMLResponse:
    entry = CODES.get(code)
    if entry is None:
        raise NotFound("no such problem code", code="not_found")
    page = _PAGE.format(code=escape(code), status=entry.status, title=escape(entry.reply_title),
                        meaning=_prose(entry.meaning), action=_prose(entry.action),
                        example=escape(_example(code)))
    return HTMLResponse(page, headers=_CACHE)
