"""Benchmark a legitimate signature under a flood of token requests (issue 11, finding 2).

An anonymous caller can send ``POST /oauth2/token`` with made-up credentials as fast as it
likes. This measures what that does to a bank's signature:

1. issue one certificate (the whole API flow) and warm up;
2. quiet: ``--count`` signatures one after another;
3. loaded: the same while ``--flood`` token requests with unknown client ids and secrets
   are kept in flight throughout, from a separate process (so the flood's own client work
   does not delay the measuring event loop);
4. print both (median, p95), the ratios, what the flood got back, and whether the loaded
   median stays within ``--goal`` x the quiet one (the issue asks for 3x).

The PIN layer uses production-like Argon2id (t=3, 64 MiB, p=4 by default). The flood comes
from 127.0.0.1 like the bank, so the server's per-address token limit meets it; add
``--server-env CERTCLOUD_LIMITS__TOKEN_ATTEMPTS_PER_ADDRESS_PER_MINUTE=1000000000`` to see the
cost of the secret checks alone.

Examples:

    python bench/token_flood.py --spawn
    python bench/token_flood.py --spawn --database-url postgresql+asyncpg://postgres@127.0.0.1/b
    PYTHONPATH=/work/main python bench/token_flood.py --spawn   # another checkout's server

Figures only, no asserts. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx

try:  # run as a script: python bench/token_flood.py
    import _common as common
except ImportError:  # run as a module: python -m bench.token_flood
    from bench import _common as common  # type: ignore[no-redef]

GOAL = 3.0  # the loaded median may be at most this many times the quiet one


# --------------------------------------------------------------------------------------------
# The flood (a child process)


async def _flood(base_url: str, concurrency: int, stop: EventType, timeout: float
                 ) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency + 10,
                          max_keepalive_connections=concurrency + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while not stop.is_set():
                client_id = f"cc_{secrets.token_hex(10)}"
                try:
                    reply = await client.post(
                        "/oauth2/token", data={"grant_type": "client_credentials"},
                        auth=(client_id, secrets.token_urlsafe(32)))
                    statuses[str(reply.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[f"transport: {type(exc).__name__}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"seconds": time.perf_counter() - started, "statuses": dict(statuses)}


def flood_process(base_url: str, concurrency: int, stop: EventType, timeout: float,
                  results: Any) -> None:
    results.put(asyncio.run(_flood(base_url, concurrency, stop, timeout)))


# --------------------------------------------------------------------------------------------
# The signatures


async def sign_once(client: httpx.AsyncClient, tokens: common.TokenSource, certificate_id: str,
                    pin: str, payload: str) -> float:
    headers = await tokens.headers(client)  # a due token refresh is not part of the timing
    started = time.perf_counter()
    reply = await client.post(f"/v1/certificates/{certificate_id}/signatures",
                              json={"pin": pin, "data": payload, "format": "raw"},
                              headers=headers)
    elapsed = time.perf_counter() - started
    common.expect(reply, "signature", 200)
    return elapsed


async def signatures(client: httpx.AsyncClient, tokens: common.TokenSource,
                     certificate_id: str, pin: str, count: int, label: str) -> list[float]:
    payload = base64.b64encode(os.urandom(64)).decode()
    latencies = []
    for n in range(count):
        latencies.append(await sign_once(client, tokens, certificate_id, pin, payload))
        print(f"{label}: {n + 1}/{count} ({latencies[-1] * 1000:.0f} ms)", file=sys.stderr)
    return latencies


async def measure(target: common.Target, args: argparse.Namespace) -> dict[str, Any]:
    tokens = common.TokenSource(target.client_id, target.client_secret)
    person = common.PersonFactory(args.seed).person()
    async with httpx.AsyncClient(base_url=target.base_url, timeout=args.timeout) as client:
        try:
            await tokens.fetch(client)
            cert = await common.issue_for(client, tokens, person)
        except (common.ApiError, httpx.HTTPError) as exc:
            raise common.BenchError(f"cannot set up a certificate to sign with: {exc}") from None
        certificate_id = str(cert["id"])
        await signatures(client, tokens, certificate_id, person.pin, args.warmup, "warm-up")
        quiet = await signatures(client, tokens, certificate_id, person.pin, args.count,
                                 "quiet")

        context = multiprocessing.get_context("spawn")
        stop, results = context.Event(), context.Queue()
        flood = context.Process(target=flood_process, daemon=True,
                                args=(target.base_url, args.flood, stop, args.timeout, results))
        flood.start()
        try:
            await asyncio.sleep(args.settle)  # the flood is in full swing before measuring
            loaded = await signatures(client, tokens, certificate_id, person.pin, args.count,
                                      "loaded")
        finally:
            stop.set()
            flood_report = await asyncio.to_thread(results.get, True, args.timeout + 30)
            flood.join(timeout=10)
    return {"quiet_s": quiet, "loaded_s": loaded, "flood": flood_report}


# --------------------------------------------------------------------------------------------
# The report


def report(figures: dict[str, Any], goal: float) -> str:
    quiet, loaded = figures["quiet_s"], figures["loaded_s"]
    rows = []
    for label, q in (("median", 50), ("p95", 95)):
        quiet_q, loaded_q = common.percentile(quiet, q), common.percentile(loaded, q)
        rows.append([label, common.fmt_ms(quiet_q), common.fmt_ms(loaded_q),
                     common.fmt_num(common.ratio(loaded_q, quiet_q))])
    flood = figures["flood"]
    total = sum(flood["statuses"].values())
    seconds = flood["seconds"]
    statuses = ", ".join(f"{status}: {count}"
                         for status, count in sorted(flood["statuses"].items()))
    ratio = common.ratio(common.percentile(loaded, 50), common.percentile(quiet, 50))
    verdict = "yes" if ratio <= goal else "NO"
    return "\n".join([
        f"Signature latency, quiet and under the token flood ({len(quiet)} + {len(loaded)} "
        "signatures, one at a time)",
        common.render_table(["", "quiet ms", "loaded ms", "loaded / quiet"], rows),
        "",
        f"  flood: {total} token requests in {seconds:.1f} s "
        f"({common.fmt_num(common.ratio(total, seconds), 0)}/s); replies {statuses}",
        f"  loaded median within {goal:g}x of quiet: {verdict} ({common.fmt_num(ratio)}x)",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_target_args(parser)
    common.add_argon2_args(parser)
    parser.add_argument("--flood", type=int, default=60, metavar="N",
                        help="token requests kept in flight (default: %(default)s)")
    parser.add_argument("--count", type=int, default=15, metavar="N",
                        help="signatures quiet and again loaded (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, metavar="N",
                        help="signatures before measuring (default: %(default)s)")
    parser.add_argument("--settle", type=float, default=2.0, metavar="S",
                        help="seconds of flood before the loaded signatures (default: "
                             "%(default)s)")
    parser.add_argument("--goal", type=float, default=GOAL, metavar="X",
                        help="loaded / quiet median to report against (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="persons seed (default: random)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1 or args.flood < 1:
        parser.error("--count and --flood must be at least 1")
    common.check_target_args(parser, args)
    common.interrupt_on_sigterm()
    argon2 = common.Argon2Params.from_args(args)
    print("\n".join([
        "Certcloud token-flood benchmark",
        f"  python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; argon2id {argon2.describe()}",
        f"  target {'spawned server' if args.spawn else args.url}; flood {args.flood} "
        f"concurrent token requests with unknown credentials",
    ]), flush=True)
    try:
        with common.open_target(args, client_name="bench-token-flood") as target:
            figures = asyncio.run(measure(target, args))
    except (common.BenchError, common.ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(report(figures, args.goal))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"argon2": argon2.describe(), "flood": args.flood, **figures}, handle,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
