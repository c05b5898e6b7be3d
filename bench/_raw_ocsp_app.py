"""The raw-ASGI floor for bench/status.py: no framework at all, on the same uvicorn (uvloop,
httptools) as ``certcloud serve``; it reads the request body and answers every OCSP request
with the same bytes and the same headers as Certcloud's cache hit (``BENCH_FIXED_BODY`` names
the body file, ``BENCH_FIXED_HEADERS`` the JSON list of [name, value] header pairs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ["BENCH_FIXED_BODY"]).read_bytes()
HEADERS = [(name.encode("latin-1"), value.encode("latin-1"))
           for name, value in json.loads(os.environ.get("BENCH_FIXED_HEADERS", "[]"))]
if not any(name == b"content-type" for name, _ in HEADERS):
    HEADERS.append((b"content-type", b"application/ocsp-response"))
HEADERS = [item for item in HEADERS if item[0] != b"content-length"]
HEADERS.append((b"content-length", str(len(BODY)).encode()))
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
REPLY = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:  # read the whole body, as a real responder must
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send(START)
    await send(REPLY)
