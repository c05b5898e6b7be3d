"""Benchmark certificate issuance through the full API flow, against the machine's floor.

One issuance is what a bank front-end does:

    POST /v1/verifications {"phone", "channel": "sms", "purpose": "issue"}
    GET  /sandbox/messages?phone=…             (the newest SMS code)
    POST /v1/verifications/{id}/confirm {"code"}
    POST /v1/certificates {...}                 <- timed alone as the "issuance latency"

and the whole flow is timed as well. Each concurrency level runs ``--count`` issuances, every one
for a distinct person (own phone, RRN and a strong PIN), over one ``httpx.AsyncClient``.

The floor is measured in this process: what one issuance cannot avoid, namely an RSA-2048 key
generation, one Argon2id derivation (the server's parameters) and one RSA-3072 certificate
signature. The service figures are then set against it: latency ratio at concurrency 1, and
throughput against ``floor throughput per core x min(level, os.cpu_count())``.

Examples:

    python bench/issue.py --spawn                                   # throw-away server
    python bench/issue.py --url http://127.0.0.1:8000 --client-id ID --client-secret SECRET
    python bench/issue.py --floor-only --floor-reps 30              # no server at all

Figures only, no asserts. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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

try:  # run as a script: python bench/issue.py
    import _common as common
except ImportError:  # run as a module: python -m bench.issue
    from bench import _common as common  # type: ignore[no-redef]


# --------------------------------------------------------------------------------------------
# The floor


@dataclass
class FloorResult:
    reps: int
    argon2: common.Argon2Params
    keygen_s: list[float] = field(default_factory=list)
    argon2_s: list[float] = field(default_factory=list)
    sign_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    basis: str = "cpu"

    @property
    def p50(self) -> float:
        return common.percentile(self.total_s, 50)

    @property
    def cpu_rate(self) -> float:
        """Issuances/s one core could do doing nothing but the floor: 1 / mean CPU time a round.

        Argon2id with parallelism > 1 runs its lanes on several threads, so a lone round's wall
        time understates what it costs a core; the CPU time counts every thread.
        """
        return common.ratio(1.0, common.mean(self.cpu_s))

    @property
    def wall_rate(self) -> float:
        """Issuances/s of back-to-back rounds on one thread: 1 / mean wall time a round."""
        return common.ratio(1.0, common.mean(self.total_s))

    @property
    def per_core_rate(self) -> float:
        """The floor throughput per core the comparison uses (``--floor-basis``)."""
        return self.cpu_rate if self.basis == "cpu" else self.wall_rate

    def limit(self, level: int, cpus: int) -> float:
        """The floor-limited throughput at a concurrency level."""
        return self.per_core_rate * min(level, cpus)

    def as_json(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            return {
                "p50": common.percentile(values, 50),
                "p99": common.percentile(values, 99),
                "mean": common.mean(values),
            }

        return {
            "reps": self.reps,
            "argon2": {
                "time_cost": self.argon2.time_cost,
                "memory_kib": self.argon2.memory_kib,
                "parallelism": self.argon2.parallelism,
            },
            "seconds": {
                "rsa2048_keygen": stats(self.keygen_s),
                "argon2id": stats(self.argon2_s),
                "rsa3072_cert_sign": stats(self.sign_s),
                "total": stats(self.total_s),
                "cpu": stats(self.cpu_s),
            },
            "cpu_rate": self.cpu_rate,
            "wall_rate": self.wall_rate,
            "basis": self.basis,
            "per_core_rate": self.per_core_rate,
        }


def measure_floor(reps: int, argon2: common.Argon2Params, basis: str = "cpu") -> FloorResult:
    """Time ``reps`` rounds of keygen + Argon2id + certificate signature, after one warm-up."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Certcloud bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Certcloud bench CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    result = FloorResult(reps=reps, argon2=argon2, basis=basis)

    def one_round(record: bool) -> None:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        t1 = time.perf_counter()
        argon2.derive(b"482915")
        t2 = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "홍길동"),
                    ]
                )
            )
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        t3 = time.perf_counter()
        cpu1 = time.process_time()
        if record:
            result.keygen_s.append(t1 - t0)
            result.argon2_s.append(t2 - t1)
            result.sign_s.append(t3 - t2)
            result.total_s.append(t3 - t0)
            result.cpu_s.append(cpu1 - cpu0)

    one_round(record=False)
    for i in range(reps):
        one_round(record=True)
        if (i + 1) % 10 == 0 or i + 1 == reps:
            print(f"floor: {i + 1}/{reps}", file=sys.stderr)
    return result


def floor_report(floor: FloorResult, cpus: int) -> str:
    rows = []
    for label, values in (
        ("rsa-2048 keygen", floor.keygen_s),
        ("argon2id derivation", floor.argon2_s),
        ("rsa-3072 cert signature", floor.sign_s),
        ("floor total (wall)", floor.total_s),
        ("floor total (cpu)", floor.cpu_s),
    ):
        rows.append(
            [
                label,
                common.fmt_ms(common.percentile(values, 50)),
                common.fmt_ms(common.percentile(values, 99)),
                common.fmt_ms(common.mean(values)),
                common.fmt_ms(min(values) if values else math.nan),
                common.fmt_ms(max(values) if values else math.nan),
            ]
        )
    lines = [
        f"Floor, in-process ({floor.reps} reps after 1 warm-up; Argon2id "
        f"{floor.argon2.describe()})",
        common.render_table(["step", "p50 ms", "p99 ms", "mean ms", "min ms", "max ms"], rows),
        "",
        f"  floor p50 {common.fmt_ms(floor.p50)} ms, "
        f"p99 {common.fmt_ms(common.percentile(floor.total_s, 99))} ms",
        f"  floor-limited throughput per core: {common.fmt_num(floor.per_core_rate)} iss/s "
        f"({floor.basis} basis; --floor-basis)",
        f"    cpu:  1 / mean CPU time a round  = {common.fmt_num(floor.cpu_rate)} iss/s",
        f"    wall: 1 / mean wall time a round = {common.fmt_num(floor.wall_rate)} iss/s",
        f"  x {cpus} CPUs (os.cpu_count) = floor-limited ceiling "
        f"{common.fmt_num(floor.limit(cpus, cpus))} iss/s",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The service


@dataclass
class LevelResult:
    level: int
    attempted: int
    wall_s: float = 0.0
    cert_s: list[float] = field(default_factory=list)
    flow_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return len(self.cert_s)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return common.ratio(self.ok, self.wall_s) if self.ok else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "concurrency": self.level,
            "attempted": self.attempted,
            "ok": self.ok,
            "errors": dict(self.errors),
            "wall_s": self.wall_s,
            "issuances_per_s": self.rate,
            "certificate_post_s": {
                "p50": common.percentile(self.cert_s, 50),
                "p99": common.percentile(self.cert_s, 99),
                "mean": common.mean(self.cert_s),
            },
            "flow_s": {
                "p50": common.percentile(self.flow_s, 50),
                "p99": common.percentile(self.flow_s, 99),
                "mean": common.mean(self.flow_s),
            },
        }


async def issue_once(
    client: httpx.AsyncClient, tokens: common.TokenSource, person: common.Person
) -> tuple[float, float]:
    """One issuance through the whole flow → (certificate POST seconds, flow seconds)."""
    await tokens.headers(client)  # a due token refresh is not part of the flow
    t0 = time.perf_counter()
    verification_id = await common.verified_phone(client, tokens, person.phone, "issue")
    t1 = time.perf_counter()
    cert = await common.issue_certificate(client, tokens, verification_id, person)
    t2 = time.perf_counter()
    if cert.get("status") != "active":
        raise common.ApiError("certificate", 201, f"status {cert.get('status')!r}")
    return t2 - t1, t2 - t0


async def run_level(
    base_url: str,
    tokens: common.TokenSource,
    people: Sequence[common.Person],
    level: int,
    timeout: float,
) -> LevelResult:
    """Issue for every person in ``people`` with ``level`` concurrent workers."""
    result = LevelResult(level=level, attempted=len(people))
    limits = httpx.Limits(
        max_connections=max(100, 2 * level), max_keepalive_connections=max(20, level)
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        await tokens.headers(client)
        queue = iter(people)  # shared by the workers; fine on one event loop

        async def worker() -> None:
            for person in queue:
                try:
                    cert_s, flow_s = await issue_once(client, tokens, person)
                except common.ApiError as exc:
                    result.errors[str(exc)] += 1
                except httpx.HTTPError as exc:
                    result.errors[f"transport: {type(exc).__name__}"] += 1
                except Exception as exc:  # a malformed reply; count it, keep going
                    result.errors[f"unexpected: {type(exc).__name__}: {exc}"[:120]] += 1
                else:
                    result.cert_s.append(cert_s)
                    result.flow_s.append(flow_s)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(level)))
        result.wall_s = time.perf_counter() - started
    return result


async def run_service(
    target: common.Target,
    people: common.PersonFactory,
    levels: list[int],
    count: int,
    warmup: int,
    timeout: float,
) -> list[LevelResult]:
    tokens = common.TokenSource(target.client_id, target.client_secret)
    async with httpx.AsyncClient(base_url=target.base_url, timeout=timeout) as client:
        try:  # bad credentials or a wrong URL stop the run here, with a clear message
            await tokens.fetch(client)
        except (common.ApiError, httpx.HTTPError, ValueError, KeyError) as exc:
            raise common.BenchError(
                f"no access token from {target.base_url}/oauth2/token: {type(exc).__name__}: {exc}"
            ) from None
    if warmup:
        warm = await run_level(target.base_url, tokens, people.people(warmup), 1, timeout)
        print(f"warm-up: {warm.ok}/{warmup} ok in {warm.wall_s:.1f} s", file=sys.stderr)
        if not warm.ok:
            details = "; ".join(f"{n} x {e}" for e, n in warm.errors.most_common(3))
            raise common.BenchError(f"every warm-up issuance failed: {details}")
    results = []
    for level in levels:
        res = await run_level(target.base_url, tokens, people.people(count), level, timeout)
        print(
            f"concurrency {level}: {res.ok}/{count} ok, errors {res.error_count}, "
            f"{res.wall_s:.1f} s",
            file=sys.stderr,
        )
        results.append(res)
    return results


def service_report(results: list[LevelResult]) -> str:
    rows = [
        [
            str(r.level),
            str(r.ok),
            str(r.error_count),
            f"{r.wall_s:.1f}",
            common.fmt_num(r.rate),
            common.fmt_ms(common.percentile(r.cert_s, 50)),
            common.fmt_ms(common.percentile(r.cert_s, 99)),
            common.fmt_ms(common.percentile(r.flow_s, 50)),
            common.fmt_ms(common.percentile(r.flow_s, 99)),
        ]
        for r in results
    ]
    lines = [
        "Service (issue = POST /v1/certificates alone; flow = verification + sandbox code + "
        "confirm + issue)",
        common.render_table(
            [
                "concurrency",
                "ok",
                "errors",
                "wall s",
                "iss/s",
                "issue p50 ms",
                "issue p99 ms",
                "flow p50 ms",
                "flow p99 ms",
            ],
            rows,
        ),
    ]
    for r in results:
        for label, n in r.errors.most_common(5):
            lines.append(f"  errors at concurrency {r.level}: {n} x {label}")
        if len(r.errors) > 5:
            lines.append(f"  errors at concurrency {r.level}: … {len(r.errors) - 5} more kinds")
    return "\n".join(lines)


def comparison_report(results: list[LevelResult], floor: FloorResult, cpus: int) -> str:
    base = min(results, key=lambda r: r.level)
    cert_p50 = common.percentile(base.cert_s, 50)
    flow_p50 = common.percentile(base.flow_s, 50)
    note = "" if base.level == 1 else f" (no level 1 run; lowest level {base.level} used)"
    lines = [
        f"Service vs floor{note}",
        f"  latency at concurrency {base.level}: issue p50 / floor p50 = "
        f"{common.fmt_ms(cert_p50)} / {common.fmt_ms(floor.p50)} ms = "
        f"{common.fmt_num(common.ratio(cert_p50, floor.p50))}x; flow p50 / floor p50 = "
        f"{common.fmt_num(common.ratio(flow_p50, floor.p50))}x",
    ]
    rows = [
        [
            str(r.level),
            common.fmt_num(r.rate),
            f"{common.fmt_num(floor.per_core_rate)} x {min(r.level, cpus)}",
            common.fmt_num(floor.limit(r.level, cpus)),
            common.fmt_num(common.ratio(r.rate, floor.limit(r.level, cpus))),
        ]
        for r in results
    ]
    lines.append(
        common.render_table(
            ["concurrency", "iss/s", "per core x min(level, cpus)", "floor iss/s", "ratio"], rows
        )
    )
    lines.append(
        "  ratio = service iss/s / floor iss/s; 1.00 = at the floor. A local client shares the "
        "CPUs;"
    )
    lines.append(
        "  with Argon2id parallelism > 1 and level < CPUs, the cpu basis lets ratio exceed 1."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want comma-separated integers, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"want levels of at least 1, got {text!r}")
    return levels


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/issue.py",
        description="Certificate issuance throughput and latency through the full API flow, "
        "set against the machine's floor (RSA-2048 keygen + Argon2id + RSA-3072 "
        "certificate signature, measured in-process). Prints figures, no asserts.",
        epilog="Examples: `%(prog)s --spawn`; `%(prog)s --url http://127.0.0.1:8000 --client-id "
        "ID --client-secret SECRET`; `%(prog)s --floor-only`.",
    )
    run = parser.add_argument_group("load")
    run.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 4, 8],
        metavar="N[,N…]",
        help="concurrency levels, comma-separated (default: 1,4,8)",
    )
    run.add_argument(
        "--count",
        type=_count,
        default=40,
        metavar="N",
        help="issuances per level (default: %(default)s)",
    )
    run.add_argument(
        "--warmup",
        type=_count,
        default=2,
        metavar="N",
        help="unmeasured issuances before the first level (default: %(default)s)",
    )
    run.add_argument(
        "--seed", type=int, metavar="N", help="seed of the test persons (default: random, printed)"
    )
    floor = parser.add_argument_group("floor")
    floor.add_argument(
        "--floor-reps",
        type=_count,
        default=30,
        metavar="N",
        help="floor repetitions; 0 skips the floor (default: %(default)s)",
    )
    floor.add_argument(
        "--floor-basis",
        choices=["cpu", "wall"],
        default="cpu",
        help="floor throughput per core: 1 / mean CPU time a round (counts Argon2id's threads; "
        "default) or 1 / mean wall time a round",
    )
    floor.add_argument(
        "--floor-only",
        action="store_true",
        help="measure and print the floor only; no server needed",
    )
    common.add_argon2_args(parser)
    common.add_target_args(parser)
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON to PATH")
    return parser


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, so the JSON file is strict JSON."""
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

    header = [
        "Certcloud issuance benchmark",
        f"  python {platform.python_version()} on {platform.machine()}, {cpus} CPUs (os.cpu_count)",
        f"  argon2id {argon2.describe()}",
    ]
    if not args.floor_only:
        target_desc = "spawned server" if args.spawn else args.url
        header += [
            f"  target {target_desc}; concurrency {','.join(map(str, args.concurrency))}, "
            f"{args.count} issuances per level, {args.warmup} warm-up; persons seed {people.seed}",
        ]
        if not args.spawn:
            header.append("  (--url: the Argon2id parameters above must match the server's)")
    print("\n".join(header), flush=True)

    report: dict[str, Any] = {
        "cpus": cpus,
        "argon2": {
            "time_cost": argon2.time_cost,
            "memory_kib": argon2.memory_kib,
            "parallelism": argon2.parallelism,
        },
    }
    try:
        floor = (
            measure_floor(args.floor_reps, argon2, args.floor_basis) if args.floor_reps else None
        )
        if floor is not None:
            print()
            print(floor_report(floor, cpus), flush=True)
            report["floor"] = floor.as_json()
        if not args.floor_only:
            with common.open_target(args) as target:
                report["target"] = {"base_url": target.base_url, "spawned": target.spawned}
                results = asyncio.run(
                    run_service(
                        target, people, args.concurrency, args.count, args.warmup, args.timeout
                    )
                )
            print()
            print(service_report(results))
            report["levels"] = [r.as_json() for r in results]
            if floor is not None:
                print()
                print(comparison_report(results, floor, cpus))
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
