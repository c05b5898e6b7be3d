"""What the JSON access line costs per request: in-process (ASGI, no network), GET /healthz
with the line on and off, the lines formatted by the production JSON formatter into
/dev/null. Prints the median and p90 per request; asserts nothing.

    python bench/access_log.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.logs import JsonFormatter
from app.main import create_app
from app.observability import RequestIdFilter
from app.settings import Argon2Settings, Settings


async def per_request_us(settings: Settings, requests: int) -> list[float]:
    app = create_app(settings)
    timings: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for _ in range(50):  # warm up
                await http.get("/healthz")
            for _ in range(requests):
                started = time.perf_counter()
                await http.get("/healthz")
                timings.append((time.perf_counter() - started) * 1e6)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    sink.setFormatter(JsonFormatter())
    sink.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(sink)
    with tempfile.TemporaryDirectory() as data_dir:
        base = Settings(data_dir=Path(data_dir),
                        argon2=Argon2Settings(time_cost=1, memory_kib=1024, parallelism=1))
        results: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            for enabled in (False, True):
                settings = base.model_copy(update={"access_log": enabled})
                results[enabled] += await per_request_us(settings, args.requests)
    print(f"GET /healthz in-process, {args.rounds} x {args.requests} requests each")
    print(f"{'access line':<12} {'median µs':>10} {'p90 µs':>10}")
    for enabled in (False, True):
        values = sorted(results[enabled])
        p90 = values[int(len(values) * 0.9)]
        print(f"{'on' if enabled else 'off':<12} {statistics.median(values):>10.1f} {p90:>10.1f}")
    off, on = (statistics.median(results[flag]) for flag in (False, True))
    print(f"the line costs about {on - off:.1f} µs per request ({(on - off) / off:.0%})")


if __name__ == "__main__":
    asyncio.run(main())
