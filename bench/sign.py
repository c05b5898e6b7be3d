"""Benchmark remote signing (raw and CMS) against the machine's floor.

One signature is what a bank front-end does for a login or a transfer:

    POST /v1/certificates/{id}/signatures {"pin", "data": base64, "format": "raw" | "cms"}

Before the levels run, one certificate is issued (through the whole API flow) for each
concurrent worker, so the workers never share a certificate (and its PIN-try counter row).
Each level then makes ``--count`` signatures per format with ``level`` workers over one
``httpx.AsyncClient``; every request's latency is recorded.

The floor is measured in this process: what one signature cannot avoid, namely one Argon2id
derivation with the server's parameters (the PIN opens the key) and one RSA-2048 PKCS#1 v1.5
signature. The service figures are set against it: p50 at concurrency 1 against the floor p50
(goal: at most 25 % above it), and throughput against ``floor throughput per core x
min(level, os.cpu_count())``. On a shared machine the load changes between the floor
and the levels, so at concurrency 1 a floor round also runs before every request ("paired
floor"): both then see the same contention, and the goal is read against that.

Examples:

    python bench/sign.py --spawn                                    # throw-away server
    python bench/sign.py --spawn --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    python bench/sign.py --url http://127.0.0.1:8000 --client-id ID --client-secret SECRET
    python bench/sign.py --floor-only

Figures only, no asserts. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

try:  # run as a script: python bench/sign.py
    import _common as common
except ImportError:  # run as a module: python -m bench.sign
    from bench import _common as common  # type: ignore[no-redef]

FORMATS = ("raw", "cms")
GOAL = 1.25  # service p50 at concurrency 1 may be at most 25 % above the floor p50


# --------------------------------------------------------------------------------------------
# The floor


@dataclass
class FloorResult:
    reps: int
    argon2: common.Argon2Params
    argon2_s: list[float] = field(default_factory=list)
    sign_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return common.percentile(self.total_s, 50)

    @property
    def per_core_rate(self) -> float:
        """Signatures/s one core could make doing nothing but the floor (1 / mean CPU time;
        Argon2id's lanes run on several threads, so wall time would flatter it)."""
        return common.ratio(1.0, common.mean(self.cpu_s))

    def limit(self, level: int, cpus: int) -> float:
        return self.per_core_rate * min(level, cpus)

    def as_json(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            return {"p50": common.percentile(values, 50), "p99": common.percentile(values, 99),
                    "mean": common.mean(values)}

        return {"reps": self.reps,
                "seconds": {"argon2id": stats(self.argon2_s),
                            "rsa2048_sign": stats(self.sign_s),
                            "total": stats(self.total_s), "cpu": stats(self.cpu_s)},
                "per_core_rate": self.per_core_rate}


class FloorRound:
    """One floor round: an Argon2id derivation with the server's parameters (the PIN opening
    the key) and one RSA-2048 PKCS#1 v1.5 signature over a SHA-256 digest."""

    def __init__(self, argon2: common.Argon2Params) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.argon2 = argon2
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.digest = os.urandom(32)

    def run(self, into: FloorResult | None) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        self.argon2.derive(b"482915")
        t1 = time.perf_counter()
        self.key.sign(self.digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        t2 = time.perf_counter()
        cpu1 = time.process_time()
        if into is not None:
            into.argon2_s.append(t1 - t0)
            into.sign_s.append(t2 - t1)
            into.total_s.append(t2 - t0)
            into.cpu_s.append(cpu1 - cpu0)


def measure_floor(reps: int, argon2: common.Argon2Params) -> FloorResult:
    """Time ``reps`` floor rounds after one warm-up."""
    rounds = FloorRound(argon2)
    result = FloorResult(reps=reps, argon2=argon2)
    rounds.run(None)
    for i in range(reps):
        rounds.run(result)
        if (i + 1) % 20 == 0 or i + 1 == reps:
            print(f"floor: {i + 1}/{reps}", file=sys.stderr)
    return result


def floor_report(floor: FloorResult, cpus: int) -> str:
    rows = []
    for label, values in (("argon2id derivation", floor.argon2_s),
                          ("rsa-2048 signature", floor.sign_s),
                          ("floor total (wall)", floor.total_s),
                          ("floor total (cpu)", floor.cpu_s)):
        rows.append([label, common.fmt_ms(common.percentile(values, 50)),
                     common.fmt_ms(common.percentile(values, 99)),
                     common.fmt_ms(common.mean(values))])
    return "\n".join([
        f"Floor, in-process ({floor.reps} reps after 1 warm-up; Argon2id "
        f"{floor.argon2.describe()})",
        common.render_table(["step", "p50 ms", "p99 ms", "mean ms"], rows),
        "",
        f"  floor p50 {common.fmt_ms(floor.p50)} ms; floor-limited throughput "
        f"{common.fmt_num(floor.per_core_rate)} sig/s per core (1 / mean CPU time), "
        f"x {cpus} CPUs = {common.fmt_num(floor.limit(cpus, cpus))} sig/s",
    ])


# --------------------------------------------------------------------------------------------
# The service


@dataclass
class LevelResult:
    format: str
    level: int
    attempted: int
    wall_s: float = 0.0
    latency_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    paired: FloorResult | None = None  # floor rounds interleaved with the requests
    server_cpu_s: float | None = None  # CPU time the spawned server used during the level

    @property
    def ok(self) -> int:
        return len(self.latency_s)

    @property
    def rate(self) -> float:
        return common.ratio(self.ok, self.wall_s) if self.ok else 0.0

    idle_cpu_rate: float = 0.0  # server CPU seconds per wall second when idle (background)

    @property
    def cpu_per_signature(self) -> float:
        """Server CPU per signature, less what its background tasks use while idle."""
        if self.server_cpu_s is None or not self.ok:
            return math.nan
        return max(self.server_cpu_s - self.idle_cpu_rate * self.wall_s, 0.0) / self.ok

    def as_json(self) -> dict[str, Any]:
        return {"format": self.format, "concurrency": self.level, "attempted": self.attempted,
                "ok": self.ok, "errors": dict(self.errors), "wall_s": self.wall_s,
                "signatures_per_s": self.rate,
                "latency_s": {"p50": common.percentile(self.latency_s, 50),
                              "p99": common.percentile(self.latency_s, 99),
                              "mean": common.mean(self.latency_s)},
                "paired_floor": None if self.paired is None else self.paired.as_json(),
                "server_cpu_s_per_signature": self.cpu_per_signature,
                "server_idle_cpu_rate": self.idle_cpu_rate}


@dataclass(frozen=True)
class Signer:
    certificate_id: str
    pin: str


async def sign_once(client: httpx.AsyncClient, tokens: common.TokenSource, signer: Signer,
                    fmt: str, payload: str) -> float:
    headers = await tokens.headers(client)  # a due token refresh is not part of the timing
    t0 = time.perf_counter()
    resp = await client.post(f"/v1/certificates/{signer.certificate_id}/signatures",
                             json={"pin": signer.pin, "data": payload, "format": fmt},
                             headers=headers)
    elapsed = time.perf_counter() - t0
    body = common.expect(resp, "signature", 200)
    if not body.get("signature"):
        raise common.ApiError("signature", resp.status_code, "no signature in the reply")
    return elapsed


async def run_level(client: httpx.AsyncClient, tokens: common.TokenSource,
                    signers: Sequence[Signer], fmt: str, level: int, count: int,
                    payload: str, paired: FloorRound | None = None,
                    server_pid: int | None = None) -> LevelResult:
    """``count`` signatures by ``level`` workers. With ``paired`` (concurrency 1 only), a floor
    round runs before each request, so on a busy machine both see the same contention."""
    result = LevelResult(format=fmt, level=level, attempted=count)
    if paired is not None and level == 1:
        result.paired = FloorResult(reps=count, argon2=paired.argon2)
    remaining = iter(range(count))  # shared by the workers; fine on one event loop

    async def worker(signer: Signer) -> None:
        for _ in remaining:
            if result.paired is not None and paired is not None:
                paired.run(result.paired)  # blocking on purpose: nothing else runs at level 1
            try:
                result.latency_s.append(await sign_once(client, tokens, signer, fmt, payload))
            except common.ApiError as exc:
                result.errors[str(exc)] += 1
            except httpx.HTTPError as exc:
                result.errors[f"transport: {type(exc).__name__}"] += 1
            except Exception as exc:  # a malformed reply; count it, keep going
                result.errors[f"unexpected: {type(exc).__name__}: {exc}"[:120]] += 1

    cpu0 = common.process_cpu_seconds(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker(signers[i]) for i in range(level)))
    result.wall_s = time.perf_counter() - started
    cpu1 = common.process_cpu_seconds(server_pid)
    if cpu0 is not None and cpu1 is not None:
        result.server_cpu_s = cpu1 - cpu0
    return result


async def idle_cpu_rate(pid: int | None, seconds: float = 5.0) -> float:
    """The server's CPU use per wall second with no requests (its background loops)."""
    cpu0 = common.process_cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.sleep(seconds if pid is not None else 0)
    cpu1 = common.process_cpu_seconds(pid)
    if cpu0 is None or cpu1 is None:
        return 0.0
    return (cpu1 - cpu0) / (time.perf_counter() - started)


async def run_service(target: common.Target, people: common.PersonFactory, levels: list[int],
                      formats: Sequence[str], count: int, warmup: int, payload_bytes: int,
                      timeout: float, paired: FloorRound | None) -> list[LevelResult]:
    tokens = common.TokenSource(target.client_id, target.client_secret)
    limits = httpx.Limits(max_connections=max(100, 2 * max(levels)),
                          max_keepalive_connections=max(20, max(levels)))
    payload = base64.b64encode(os.urandom(payload_bytes)).decode()
    async with httpx.AsyncClient(base_url=target.base_url, timeout=timeout,
                                 limits=limits) as client:
        try:  # bad credentials or a wrong URL stop the run here, with a clear message
            await tokens.fetch(client)
        except (common.ApiError, httpx.HTTPError, ValueError, KeyError) as exc:
            raise common.BenchError(
                f"no access token from {target.base_url}/oauth2/token: {type(exc).__name__}: "
                f"{exc}") from None
        signers = []
        started = time.perf_counter()
        for person in people.people(max(levels)):
            try:
                cert = await common.issue_for(client, tokens, person)
            except (common.ApiError, httpx.HTTPError) as exc:
                raise common.BenchError(f"cannot issue a certificate to sign with: {exc}") from None
            signers.append(Signer(str(cert["id"]), person.pin))
        print(f"issued {len(signers)} certificates in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        if warmup:
            for fmt in formats:
                warm = await run_level(client, tokens, signers, fmt, 1, warmup, payload)
                if not warm.ok:
                    details = "; ".join(f"{n} x {e}" for e, n in warm.errors.most_common(3))
                    raise common.BenchError(f"every warm-up {fmt} signature failed: {details}")
        idle_rate = await idle_cpu_rate(target.pid)
        if target.pid is not None:
            print(f"server CPU while idle: {idle_rate * 1000:.1f} ms per second (background "
                  "tasks; subtracted from the per-signature CPU)", file=sys.stderr)
        results = []
        for fmt in formats:
            for level in levels:
                res = await run_level(client, tokens, signers, fmt, level, count, payload,
                                      paired, target.pid)
                res.idle_cpu_rate = idle_rate
                print(f"{fmt} concurrency {level}: {res.ok}/{count} ok, errors "
                      f"{sum(res.errors.values())}, {res.wall_s:.1f} s", file=sys.stderr)
                results.append(res)
    return results


def service_report(results: list[LevelResult], floor: FloorResult | None, cpus: int) -> str:
    headers = ["format", "concurrency", "ok", "errors", "sig/s", "p50 ms", "p99 ms",
               "srv cpu ms/sig"]
    if floor is not None:
        headers += ["p50 / floor p50", "sig/s / floor sig/s"]
    rows = []
    for r in results:
        p50 = common.percentile(r.latency_s, 50)
        row = [r.format, str(r.level), str(r.ok), str(sum(r.errors.values())),
               common.fmt_num(r.rate), common.fmt_ms(p50),
               common.fmt_ms(common.percentile(r.latency_s, 99)),
               common.fmt_ms(r.cpu_per_signature)]
        if floor is not None:
            row += [common.fmt_num(common.ratio(p50, floor.p50)),
                    common.fmt_num(common.ratio(r.rate, floor.limit(r.level, cpus)))]
        rows.append(row)
    lines = ["Service (POST /v1/certificates/{id}/signatures, one certificate per worker)",
             common.render_table(headers, rows)]
    for r in results:
        for label, n in r.errors.most_common(5):
            lines.append(f"  errors, {r.format} at concurrency {r.level}: {n} x {label}")
    if floor is not None:
        lines.append("")
        lines.append(f"Goal: p50 at concurrency 1 at most {GOAL:.2f} x the floor p50")
        for fmt in sorted({r.format for r in results}):
            base = min((r for r in results if r.format == fmt), key=lambda r: r.level)
            p50 = common.percentile(base.latency_s, 50)
            bases = [("standalone floor", floor.p50)]
            if base.paired is not None:
                bases.insert(0, ("paired floor", base.paired.p50))
            for label, floor_p50 in bases:
                ratio = common.ratio(p50, floor_p50)
                verdict = "met" if ratio <= GOAL else "NOT met"
                lines.append(
                    f"  {fmt} at concurrency {base.level}: {common.fmt_ms(p50)} ms vs {label} "
                    f"{common.fmt_ms(floor_p50)} ms = {common.fmt_num(ratio)} x "
                    f"({common.fmt_num((ratio - 1) * 100, 1)} % over): {verdict}")
            cpu = common.ratio(base.cpu_per_signature, common.mean(floor.cpu_s))
            if not math.isnan(cpu):
                lines.append(
                    f"  {fmt}: server CPU per signature {common.fmt_ms(base.cpu_per_signature)} "
                    f"ms vs floor CPU per round {common.fmt_ms(common.mean(floor.cpu_s))} ms = "
                    f"{common.fmt_num(cpu)} x ({common.fmt_num((cpu - 1) * 100, 1)} % over)")
        lines.append("  paired floor = floor rounds interleaved with the concurrency-1 requests "
                     "(same contention);")
        lines.append("  server CPU (spawned server only, from /proc, less its idle background "
                     "rate) hardly depends on the machine's load.")
        lines.append("  throughput basis: floor per core x min(level, CPUs); the client and the "
                     "server share the CPUs.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _formats(text: str) -> list[str]:
    formats = [part.strip() for part in text.split(",") if part.strip()]
    if not formats or set(formats) - set(FORMATS):
        raise argparse.ArgumentTypeError(f"want raw and/or cms, got {text!r}")
    return formats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/sign.py",
        description="Signature throughput and latency (raw and CMS) set against the machine's "
                    "floor (one Argon2id derivation + one RSA-2048 signature, in-process). "
                    "Prints figures, no asserts.",
        epilog="Examples: `%(prog)s --spawn`; `%(prog)s --url http://127.0.0.1:8000 "
               "--client-id ID --client-secret SECRET`; `%(prog)s --floor-only`.")
    run = parser.add_argument_group("load")
    run.add_argument("--concurrency", type=common.parse_levels, default=[1, 2, 4, 8],
                     metavar="N[,N…]", help="concurrency levels (default: 1,2,4,8)")
    run.add_argument("--count", type=_count, default=60, metavar="N",
                     help="signatures per level and format (default: %(default)s)")
    run.add_argument("--formats", type=_formats, default=list(FORMATS), metavar="F[,F]",
                     help="raw and/or cms (default: raw,cms)")
    run.add_argument("--payload-bytes", type=_count, default=256, metavar="N",
                     help="size of the signed data (default: %(default)s)")
    run.add_argument("--warmup", type=_count, default=3, metavar="N",
                     help="unmeasured signatures per format first (default: %(default)s)")
    run.add_argument("--seed", type=int, metavar="N",
                     help="seed of the test persons (default: random, printed)")
    floor = parser.add_argument_group("floor")
    floor.add_argument("--floor-reps", type=_count, default=40, metavar="N",
                       help="floor repetitions; 0 skips the floor (default: %(default)s)")
    floor.add_argument("--no-paired", action="store_true",
                       help="do not interleave floor rounds with the concurrency-1 requests")
    floor.add_argument("--floor-only", action="store_true",
                       help="measure and print the floor only; no server needed")
    common.add_argon2_args(parser)
    common.add_target_args(parser)
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON to PATH")
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.interrupt_on_sigterm()
    if args.floor_only and args.floor_reps == 0:
        parser.error("--floor-only with --floor-reps 0 measures nothing")
    if not args.floor_only:
        if args.count == 0:
            parser.error("--count must be at least 1")
        common.check_target_args(parser, args)
    argon2 = common.Argon2Params.from_args(args)
    cpus = os.cpu_count() or 1
    people = common.PersonFactory(args.seed)
    print("\n".join([
        "Certcloud signing benchmark",
        f"  python {platform.python_version()} on {platform.machine()}, {cpus} CPUs",
        f"  argon2id {argon2.describe()}",
        *([] if args.floor_only else [
            f"  target {'spawned server' if args.spawn else args.url}; formats "
            f"{','.join(args.formats)}; concurrency {','.join(map(str, args.concurrency))}; "
            f"{args.count} signatures per level, {args.payload_bytes}-byte data; persons seed "
            f"{people.seed}"]),
        *([] if args.floor_only or args.spawn else [
            "  (--url: the Argon2id parameters above must match the server's)"]),
    ]), flush=True)

    report: dict[str, Any] = {"cpus": cpus, "argon2": {
        "time_cost": argon2.time_cost, "memory_kib": argon2.memory_kib,
        "parallelism": argon2.parallelism}}
    try:
        floor = measure_floor(args.floor_reps, argon2) if args.floor_reps else None
        if floor is not None:
            print()
            print(floor_report(floor, cpus), flush=True)
            report["floor"] = floor.as_json()
        if not args.floor_only:
            with common.open_target(args, client_name="bench-sign") as target:
                report["target"] = {"base_url": target.base_url, "spawned": target.spawned}
                paired = None if args.no_paired or not args.floor_reps else FloorRound(argon2)
                results = asyncio.run(run_service(
                    target, people, args.concurrency, args.formats, args.count, args.warmup,
                    args.payload_bytes, args.timeout, paired))
            print()
            print(service_report(results, floor, cpus))
            report["levels"] = [r.as_json() for r in results]
    except common.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(_finite(report), fh, indent=2, default=str)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
