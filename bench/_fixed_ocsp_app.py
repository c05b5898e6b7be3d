"""The Python HTTP ceiling for bench/status.py: FastAPI on uvicorn (uvloop, httptools) that
answers every OCSP request with the same fixed bytes (``BENCH_FIXED_BODY`` names the file)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

BODY = Path(os.environ["BENCH_FIXED_BODY"]).read_bytes()

app = FastAPI()


@app.post("/ocsp")
async def ocsp_post(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/ocsp-response")


@app.get("/ocsp/{encoded:path}")
async def ocsp_get(request: Request) -> Response:
    return Response(BODY, media_type="application/ocsp-response")
