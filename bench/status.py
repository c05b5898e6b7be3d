"""Benchmark relying-party status: OCSP from the cache beside two baselines, and the CRL.

OCSP: requests for one good serial (SHA-1 CertID, no nonce, as RFC 5019 clients send them),
answered from the cache, at 1 and 2 server workers. Three servers run on this machine in the
same run, one at a time, with the same load generator and the same request shape:

* ``certcloud serve --workers N`` (a throw-away data directory; SQLite, or ``--database-url``);
* ``openssl ocsp -port`` with an index file, signing every response live (``-multi N``);
* a minimal FastAPI app on uvicorn with uvloop and httptools returning fixed bytes (the
  Certcloud response itself): the Python HTTP ceiling (bench/_fixed_ocsp_app.py).

The load generator is ApacheBench (``ab -k``, Debian package apache2-utils). Not wrk: wrk
opens and closes a probe connection before it starts, and that wedges the OpenSSL responder.
Server CPU per request is the CPU time of the server's whole process group (every worker)
during the run, divided by the requests answered. The goals of the issue: Certcloud at least
3x the OpenSSL responder's requests per second, and at least 0.8x the fixed-bytes app's.
The machine is shared, so the targets are interleaved round by round (``--rounds``) and the
median round is reported.

CRL: time to regenerate (read the revoked rows, build, sign, store) and its size with 10,000
and 100,000 revoked, unexpired certificates, in this process against a fresh database, and
how long the event loop stalled meanwhile (a 1 ms ticker; what other requests would wait).
Large CRLs are built in a child process; ``--crl-compare-thread`` also builds them in a
thread of this process for comparison.

Examples:

    python bench/status.py                               # everything (needs ab and openssl)
    python bench/status.py --skip-crl --rounds 3 --duration 10
    python bench/status.py --crl-only --crl-sizes 10000,100000 --crl-compare-thread

Figures only, no asserts. Progress goes to stderr, the report to stdout. Not part of the test
suite, and CI needs neither ab nor this script.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

try:  # run as a script: python bench/status.py
    import _common as common
except ImportError:  # run as a module: python -m bench.status
    from bench import _common as common  # type: ignore[no-redef]

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

OCSP_REQUEST = "application/ocsp-request"
GOAL_OPENSSL = 3.0
GOAL_FIXED = 0.8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Measuring a server under ab


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in the process group (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


@dataclass
class Run:
    target: str
    workers: int
    method: str
    requests: int = 0
    failed: int = 0
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    cpu_us: float = float("nan")


def run_ab(url: str, *, requests: int, concurrency: int, body: Path | None, pgid: int,
           work: Path) -> Run:
    """One ``ab -k`` run of ``requests`` requests; returns throughput, latency percentiles and
    server CPU per request. A request count, not ``-t``: at a time limit ab drops connections
    it opened for further requests, and one such connection wedges the OpenSSL responder."""
    csv = work / f"ab-{time.monotonic_ns()}.csv"
    args = ["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests), "-e", str(csv),
            "-s", "30"]
    if body is not None:
        args += ["-p", str(body), "-T", OCSP_REQUEST]
    cpu_before = group_cpu_seconds(pgid)
    done = subprocess.run([*args, url], capture_output=True, text=True, check=False,
                          timeout=600)
    cpu = group_cpu_seconds(pgid) - cpu_before
    run = Run("", 0, "POST" if body is not None else "GET")
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(":")
        values[name.strip()] = value.strip()
    if "Complete requests" not in values:
        raise common.BenchError(f"ab failed ({done.returncode}): {done.stderr[-800:]}")
    run.requests = int(values["Complete requests"])
    run.failed = int(values.get("Failed requests", "0").split()[0]) + int(
        values.get("Non-2xx responses", "0").split()[0])
    run.rps = float(values["Requests per second"].split()[0])
    percentiles: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for line in csv.read_text().splitlines()[1:]:
            percent, _, millis = line.partition(",")
            percentiles[int(float(percent))] = float(millis)
    run.p50_ms = percentiles.get(50, float("nan"))
    run.p99_ms = percentiles.get(99, float("nan"))
    if run.requests:
        run.cpu_us = cpu / run.requests * 1e6
    return run


class Process:
    """A server started in its own process group (so the whole group is measured and stopped).
    Not its own session: `openssl ocsp -multi` calls setpgid(0, 0), which a session leader
    may not (EPERM), and then exits 1 with its reason only in syslog."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(list(args), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         process_group=0)

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)


def wait_for_ocsp(url: str, body: bytes, proc: subprocess.Popen[bytes], log_path: Path,
                  timeout: float = 60.0) -> bytes:
    """POST a real request until a response comes (a bare connect would wedge OpenSSL)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise common.BenchError(f"{url}: server exited ({proc.returncode}); log:\n"
                                    f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            reply = httpx.post(url, content=body, headers={"Content-Type": OCSP_REQUEST},
                               timeout=5)
            if reply.status_code == 200:
                return reply.content
            last = f"HTTP {reply.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise common.BenchError(f"{url} not answering OCSP after {timeout:.0f} s ({last})")


def check_good(der: bytes, serial: int, who: str) -> None:
    from cryptography.x509 import ocsp

    response = ocsp.load_der_ocsp_response(der)
    if (response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL
            or response.certificate_status is not ocsp.OCSPCertStatus.GOOD
            or response.serial_number != serial):
        raise common.BenchError(f"{who} did not answer good for serial {serial:x}")


# --------------------------------------------------------------------------------------------
# The three targets


@dataclass
class Fixture:
    """The request and files every target needs."""

    work: Path
    exe: str
    env: dict[str, str]
    request: Path  # Certcloud's request (DER)
    serial: int
    response: Path  # Certcloud's response (the fixed app serves these bytes)
    openssl_dir: Path
    openssl_request: Path
    openssl_serial: int


def certcloud_server(fx: Fixture, workers: int) -> tuple[Process, str]:
    return spawn_certcloud(fx.work, fx.exe, fx.env, workers)


def spawn_certcloud(work: Path, exe: str, env: dict[str, str], workers: int
                    ) -> tuple[Process, str]:
    port = common.free_port()
    env = {**env, "CERTCLOUD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    proc = Process("certcloud", [exe, "serve", "--port", str(port), "--workers", str(workers)],
                   env=env, log_path=work / f"certcloud-{workers}-{port}.log")
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(url: str, process: Process, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.proc.poll() is not None:
            raise common.BenchError("certcloud serve exited; log:\n"
                                    + process.log_path.read_text(errors="replace")[-2000:])
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise common.BenchError(f"{url}/readyz not ready after {timeout:.0f} s")
        time.sleep(0.3)


def fixed_server(fx: Fixture, workers: int) -> tuple[Process, str]:
    port = common.free_port()
    env = {**os.environ, "BENCH_FIXED_BODY": str(fx.response)}
    proc = Process("fixed", [sys.executable, "-m", "uvicorn", "_fixed_ocsp_app:app",
                             "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port",
                             str(port), "--workers", str(workers), "--loop", "uvloop",
                             "--http", "httptools", "--no-access-log", "--log-level",
                             "warning"], env=env, log_path=fx.work / f"fixed-{workers}.log")
    return proc, f"http://127.0.0.1:{port}"


def openssl_server(fx: Fixture, workers: int) -> tuple[Process, str]:
    port = common.free_port()
    d = fx.openssl_dir
    args = ["openssl", "ocsp", "-index", str(d / "index.txt"), "-port", str(port),
            "-rsigner", str(d / "responder.pem"), "-rkey", str(d / "responder.key"),
            "-CA", str(d / "ca.pem"), "-nmin", "1440", "-ignore_err"]
    # Always the daemon mode (-multi), one child per worker: a child that exits is restarted
    # by the parent. A lone `openssl ocsp -port` now and then exits (status 1, no message)
    # when restarted right after an ab run.
    args += ["-multi", str(workers)]
    proc = Process("openssl", args, log_path=fx.work / f"openssl-{workers}.log")
    return proc, f"http://127.0.0.1:{port}"


def make_openssl_pki(directory: Path) -> tuple[Path, int]:
    """A CA like Certcloud's (RSA-3072), a delegated responder (RSA-2048, the same profile) and
    one good end-entity certificate in an OpenSSL index file; returns the request and serial."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from app.pki import ocsp_responder
    from app.pki.ca import Profile, create_ca, issue_end_entity, subject_for
    from app.pki.keys import generate_user_key

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = create_ca(common_name="Bench OpenSSL CA", organization="Bench", country="KR",
                   now=now - timedelta(days=1), validity_years=2)
    leaf_key = generate_user_key("rsa2048")
    serial = x509.random_serial_number()
    leaf = issue_end_entity(ca, Profile("2.25.1", "http://127.0.0.1"),
                            public_key=leaf_key.public_key(), subject=subject_for("bench", "b"),
                            serial=serial, not_before=now, not_after=now + timedelta(days=365))
    key = ocsp_responder.generate_responder_key("rsa2048")
    responder = ocsp_responder.issue_responder_certificate(
        ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(),
        serial=x509.random_serial_number(), not_before=ocsp_responder.backdated(now),
        not_after=now + timedelta(days=7))
    (directory / "ca.pem").write_bytes(ca.certificate_pem)
    (directory / "responder.pem").write_bytes(responder.public_bytes(serialization.Encoding.PEM))
    (directory / "responder.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "index.txt").write_text(
        f"V\t{leaf.not_valid_after_utc:%y%m%d%H%M%S}Z\t\t{serial:X}\tunknown\t/CN=bench\n")
    request = directory / "request.der"
    request.write_bytes(ocsp.OCSPRequestBuilder().add_certificate(
        leaf, ca.certificate, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER))
    return request, serial


async def issue_one(base_url: str, client_id: str, secret: str) -> tuple[bytes, bytes]:
    """One certificate through the API flow; returns (its DER, the CA certificate DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tokens = common.TokenSource(client_id, secret)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        person = common.PersonFactory().person()
        verification = await common.verified_phone(client, tokens, person.phone, "issue")
        issued = await common.issue_certificate(client, tokens, verification, person)
        ca = (await client.get("/ca/certificate")).content
    leaf = x509.load_pem_x509_certificate(str(issued["certificate_pem"]).encode())
    return leaf.public_bytes(serialization.Encoding.DER), ca


def prepare(args: argparse.Namespace, work: Path) -> Fixture:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    exe = common.find_certcloud(args.certcloud)
    env = common.spawn_env(data_dir=str(work / "var"), base_url="http://127.0.0.1",
                           argon2=common.Argon2Params(1, 1024, 1),
                           database_url=args.database_url,
                           extra=["CERTCLOUD_LOG_LEVEL=WARNING", *args.server_env])
    log("preparing: a Certcloud data directory, a client and one certificate")
    request = work / "certcloud-request.der"
    response = work / "certcloud-response.der"
    server, url = spawn_certcloud(work, exe, env, 1)
    try:
        wait_ready(url, server)
        client_id, secret = common.create_client(exe, env, "bench-status")
        leaf_der, ca_der = asyncio.run(issue_one(url, client_id, secret))
        leaf = x509.load_der_x509_certificate(leaf_der)
        ca = x509.load_der_x509_certificate(ca_der)
        request.write_bytes(ocsp.OCSPRequestBuilder().add_certificate(
            leaf, ca, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER))
        response.write_bytes(wait_for_ocsp(f"{url}/ocsp", request.read_bytes(), server.proc,
                                           server.log_path))
        check_good(response.read_bytes(), leaf.serial_number, "certcloud")
    finally:
        server.stop()
    openssl_request, openssl_serial = make_openssl_pki(work / "openssl")
    return Fixture(work, exe, env, request, leaf.serial_number, response, work / "openssl",
                   openssl_request, openssl_serial)


class Servers:
    """The three servers at one worker count; the OpenSSL responder is restarted for every
    run (the end of an ab run can leave a connection that never sends a request, and that
    wedges the OpenSSL responder for good)."""

    makers = {"certcloud": certcloud_server, "fixed-bytes": fixed_server,
              "openssl": openssl_server}

    def __init__(self, args: argparse.Namespace, fx: Fixture, workers: int) -> None:
        self.args, self.fx, self.workers = args, fx, workers
        self.running: dict[str, tuple[Process, str]] = {}

    def start(self, name: str) -> None:
        process, url = self.makers[name](self.fx, self.workers)
        self.running[name] = (process, url)
        body = self.fx.openssl_request if name == "openssl" else self.fx.request
        reply = wait_for_ocsp(url + ("/" if name == "openssl" else "/ocsp"), body.read_bytes(),
                              process.proc, process.log_path)
        check_good(reply, self.fx.openssl_serial if name == "openssl" else self.fx.serial,
                   name)

    def stop(self) -> None:
        for process, _url in self.running.values():
            process.stop()
        self.running.clear()

    def measure(self, name: str, method: str, requests: int) -> Run:
        if name == "openssl":
            self.running.pop(name)[0].stop()
            self.start(name)
        process, url = self.running[name]
        fx = self.fx
        if name == "openssl":
            target_url, body = url + "/", fx.openssl_request
        elif method == "GET":
            encoded = urllib.parse.quote(base64.b64encode(fx.request.read_bytes()).decode(),
                                         safe="")
            target_url, body = f"{url}/ocsp/{encoded}", None
        else:
            target_url, body = url + "/ocsp", fx.request
        run = run_ab(target_url, requests=requests, concurrency=self.args.concurrency,
                     body=body, pgid=process.pgid, work=fx.work)
        run.target, run.workers, run.method = name, self.workers, method
        return run


def bench_ocsp(args: argparse.Namespace, fx: Fixture) -> list[Run]:
    runs: list[Run] = []
    for workers in args.workers:
        servers = Servers(args, fx, workers)
        try:
            for name in Servers.makers:
                servers.start(name)
            targets = [("certcloud", "POST")]
            if "get" in args.methods:
                targets.append(("certcloud", "GET"))
            targets += [("fixed-bytes", "POST"), ("openssl", "POST")]
            log(f"workers={workers}: warming up, and sizing runs to about {args.duration:g} s")
            sizes: dict[tuple[str, str], int] = {}
            for name, method in targets:
                count = args.concurrency * 4
                while True:  # grow the warm-up until it lasts long enough to size a run
                    began = time.perf_counter()
                    warm = servers.measure(name, method, count)
                    if time.perf_counter() - began >= args.warmup or count > 10**6:
                        break
                    count *= 4
                sizes[(name, method)] = max(args.concurrency * 10, int(warm.rps * args.duration))
            per_target: dict[tuple[str, str], list[Run]] = {}
            for round_ in range(args.rounds):
                for name, method in targets:
                    log(f"workers={workers} round {round_ + 1}/{args.rounds}: {name} {method}")
                    run = servers.measure(name, method, sizes[(name, method)])
                    per_target.setdefault((name, method), []).append(run)
            for rounds in per_target.values():
                runs.append(sorted(rounds, key=lambda r: r.rps)[len(rounds) // 2])
        finally:
            servers.stop()
    return runs


def report_ocsp(args: argparse.Namespace, runs: list[Run]) -> list[str]:
    lines = [f"OCSP, one good serial from the cache: ab -k -c {args.concurrency}, runs of about "
             f"{args.duration:g} s, median of {args.rounds} round(s)", ""]
    rows = [[r.target, str(r.workers), r.method, f"{r.rps:,.0f}", common.fmt_num(r.p50_ms, 2),
             common.fmt_num(r.p99_ms, 2), common.fmt_num(r.cpu_us, 0), str(r.failed)]
            for r in runs]
    lines.append(common.render_table(
        ["target", "workers", "method", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "failed"],
        rows))
    lines.append("")
    by = {(r.target, r.workers, r.method): r for r in runs}
    for workers in args.workers:
        ours = by.get(("certcloud", workers, "POST"))
        openssl = by.get(("openssl", workers, "POST"))
        fixed = by.get(("fixed-bytes", workers, "POST"))
        if ours is None or openssl is None or fixed is None:
            continue
        vs_openssl = common.ratio(ours.rps, openssl.rps)
        vs_fixed = common.ratio(ours.rps, fixed.rps)
        lines.append(
            f"  workers={workers}: certcloud/openssl = {common.fmt_num(vs_openssl)}x "
            f"(goal >= {GOAL_OPENSSL:g}: {'met' if vs_openssl >= GOAL_OPENSSL else 'MISSED'}), "
            f"certcloud/fixed-bytes = {common.fmt_num(vs_fixed)}x "
            f"(goal >= {GOAL_FIXED:g}: {'met' if vs_fixed >= GOAL_FIXED else 'MISSED'}); "
            f"CPU/req {common.fmt_num(ours.cpu_us, 0)} vs {common.fmt_num(openssl.cpu_us, 0)} "
            f"(openssl) and {common.fmt_num(fixed.cpu_us, 0)} µs (fixed-bytes)")
    return lines


# --------------------------------------------------------------------------------------------
# CRL


@dataclass
class CrlRun:
    entries: int
    path: str
    seconds: float
    size: int
    stall_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


async def _fill(db: Any, count: int, start: int, now: datetime) -> None:
    """``count`` revoked, unexpired certificate rows (random serials and reasons)."""
    from sqlalchemy import insert

    from app.storage.tables import certificates

    reasons = [0, 1, 3, 4, 4, 4, 5, 9]
    for offset in range(0, count, 5000):
        rows = []
        for index in range(start + offset, start + min(offset + 5000, count)):
            revoked_at = now - timedelta(seconds=random.randrange(86400 * 365))
            rows.append({
                "id": f"bench-{index:09d}", "person_id": "bench-person",
                "serial": format(random.getrandbits(159) | (1 << 158), "x"), "state": "revoked",
                "not_before": revoked_at - timedelta(days=30),
                "not_after": now + timedelta(days=random.randrange(1, 1000)),
                "certificate_der": None, "key_algorithm": "rsa2048",
                "issued_by_client": "bench-client", "replaces_id": None,
                "revocation_reason": random.choice(reasons), "revoked_at": revoked_at,
                "wrong_pins": 0, "created_at": now, "updated_at": now})
        async with db.transaction() as conn:
            await conn.execute(insert(certificates), rows)


async def _timed_regeneration(status: Any) -> tuple[float, float]:
    """Seconds to regenerate, and the longest event-loop stall meanwhile (ms)."""
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await status.regenerate_crl()
    seconds = time.perf_counter() - started
    done.set()
    await task
    return seconds, max(stalls, default=0.0) * 1000


async def bench_crl(args: argparse.Namespace, work: Path) -> list[CrlRun]:
    from sqlalchemy import insert

    from app.clock import SystemClock
    from app.pki.ca import create_ca
    from app.services.status import StatusService
    from app.settings import StatusSettings
    from app.storage import migrate
    from app.storage.db import Database, make_engine
    from app.storage.local_keyring import LocalKeyRing
    from app.storage.tables import clients, persons

    url = args.crl_database_url or f"sqlite+aiosqlite:///{work / 'crl.db'}"
    log(f"CRL: database {url.split('@')[-1]}")
    await asyncio.to_thread(migrate.upgrade, url)
    now = datetime.now(UTC)
    LocalKeyRing.create(work / "crl-keyring.json", now)
    protector = LocalKeyRing.load(work / "crl-keyring.json")
    ca = await asyncio.to_thread(create_ca, common_name="Bench CRL CA", organization="Bench",
                                 country="KR", now=now - timedelta(days=1), validity_years=5)
    db = Database(make_engine(url))
    settings = StatusSettings()
    status = StatusService(db, ca, protector, settings, clock=SystemClock(),
                           distribution_point="http://127.0.0.1/crl")
    results: list[CrlRun] = []
    try:
        async with db.transaction() as conn:
            await conn.execute(insert(clients).values(
                id="bench-client", name="bench", secret_hash="-", scopes="", disabled=False,
                created_at=now))
            await conn.execute(insert(persons).values(
                id="bench-person", rrn_hmac="bench", name="bench", phone="+821000000000",
                email="bench@example.com", birth_patterns="{}", created_at=now,
                updated_at=now))
        await status.start(replica=False)
        have = 0
        for size in args.crl_sizes:
            log(f"CRL: {size:,} revoked certificates")
            await _fill(db, size - have, have, now)
            have = size
            paths = [("child process", settings.crl_subprocess_min_entries)]
            if args.crl_compare_thread:
                paths.append(("thread", 10**12))
            for _path, threshold in paths:
                status.settings = settings.model_copy(
                    update={"crl_subprocess_min_entries": threshold})
                await status.regenerate_crl()  # warm (the child process starts once)
                seconds, stall = await _timed_regeneration(status)
                copy = await status.current_crl()
                if copy.meta.entries != size:
                    raise common.BenchError(f"CRL has {copy.meta.entries} entries, not {size}")
                label = "child process" if size >= threshold else "thread"
                results.append(CrlRun(size, label, seconds, len(copy.der), stall,
                                      dict(status.last_crl_timings)))
    finally:
        await status.close()
        await db.dispose()
    return results


def report_crl(results: list[CrlRun]) -> list[str]:
    rows = [[f"{r.entries:,}", r.path, common.fmt_num(r.seconds, 2),
             common.fmt_num(r.extra.get("read", float("nan")), 2),
             common.fmt_num(r.extra.get("build", float("nan")), 2),
             common.fmt_num(r.extra.get("store", float("nan")), 2),
             common.fmt_num(r.size / 1e6, 2), common.fmt_num(r.stall_ms, 1)] for r in results]
    return ["CRL regeneration, revoked unexpired certificates (read the rows, build and sign, "
            "store)", "",
            common.render_table(["entries", "built in", "seconds", "read", "build", "store",
                                 "MB", "max loop stall ms"], rows)]


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=common.parse_levels, default=[1, 2],
                        help="server worker counts (default: 1,2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument("--concurrency", type=int, default=16, help="ab -c (default 16)")
    parser.add_argument("--methods", default="post,get",
                        help="post and/or get for Certcloud (the baselines take POST)")
    parser.add_argument("--database-url", help="CERTCLOUD_DATABASE_URL of the spawned server")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--certcloud", help="the certcloud console script")
    parser.add_argument("--skip-crl", action="store_true")
    parser.add_argument("--crl-only", action="store_true")
    parser.add_argument("--crl-sizes", type=common.parse_levels, default=[10_000, 100_000])
    parser.add_argument("--crl-database-url",
                        help="an empty database for the CRL part (default: SQLite, temporary)")
    parser.add_argument("--crl-compare-thread", action="store_true",
                        help="also build large CRLs in a thread, for the loop stall")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.methods = {m.strip().lower() for m in args.methods.split(",") if m.strip()}
    return args


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="certcloud-bench-status-"))
    try:
        yield path
    finally:
        if keep:
            log(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.interrupt_on_sigterm()
    lines = [f"bench/status.py on {platform.node()}: {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start", ""]
    figures: dict[str, Any] = {}
    try:
        with workdir(args.keep) as work:
            if not args.crl_only:
                for tool in ("ab", "openssl"):
                    if shutil.which(tool) is None:
                        raise common.BenchError(f"`{tool}` is not installed (apt-get install "
                                                f"{'apache2-utils' if tool == 'ab' else tool})")
                fixture = prepare(args, work)
                runs = bench_ocsp(args, fixture)
                lines += [*report_ocsp(args, runs), ""]
                figures["ocsp"] = [vars(run) for run in runs]
            if not args.skip_crl:
                crl_runs = asyncio.run(bench_crl(args, work))
                lines += [*report_crl(crl_runs), ""]
                figures["crl"] = [vars(run) for run in crl_runs]
    except common.BenchError as exc:
        print(f"bench/status.py: {exc}", file=sys.stderr)
        return 2
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
