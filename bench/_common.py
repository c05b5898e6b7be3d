"""Helpers shared by the Certcloud benchmarks in ``bench/`` (issue.py, sign.py, …).

Benchmarks print figures; nothing here asserts. What lives here:

* figures: :func:`percentile`, :func:`fmt_ms`, :func:`render_table`;
* the target server: ``--url`` or ``--spawn`` (:func:`add_target_args`, :func:`open_target`),
  including a throw-away ``certcloud serve`` in a temp data dir and ``certcloud clients create``;
* OAuth2 client-credentials tokens (:class:`TokenSource`);
* the API calls every flow starts with (phone verification through the sandbox, issuance,
  :func:`issue_for` for the whole of it);
* distinct, valid test persons (:class:`PersonFactory`) and a weak-PIN check;
* Argon2id parameters shared by the in-process floor and the spawned server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as bench/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.bank import issue_body  # the suite's one issuance request

DEFAULT_URL = "http://127.0.0.1:8000"
CLIENT_ID_ENV = "CERTCLOUD_BENCH_CLIENT_ID"
CLIENT_SECRET_ENV = "CERTCLOUD_BENCH_CLIENT_SECRET"


class BenchError(Exception):
    """A set-up problem that makes the benchmark pointless (printed, then exit status 2)."""


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so ``finally`` blocks still stop a spawned server
    (it runs in its own session, so a signal to the benchmark alone would orphan it)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks; NaN if empty.

    With few samples the high percentiles approach the maximum (p99 of 40 values is nearly it).
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal, ``-`` when there is no figure."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def fmt_num(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) or math.isinf(value) else f"{value:.{digits}f}"


def ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "  "
) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------
# Argon2id parameters (the in-process floor and the spawned server use the same ones)


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Argon2Params:
        return cls(args.argon2_time_cost, args.argon2_memory_kib, args.argon2_parallelism)

    def server_env(self) -> dict[str, str]:
        """The settings that make a Certcloud server use these parameters."""
        return {
            "CERTCLOUD_ARGON2__TIME_COST": str(self.time_cost),
            "CERTCLOUD_ARGON2__MEMORY_KIB": str(self.memory_kib),
            "CERTCLOUD_ARGON2__PARALLELISM": str(self.parallelism),
        }

    def describe(self) -> str:
        return f"t={self.time_cost}, m={self.memory_kib} KiB, p={self.parallelism}"

    def derive(self, secret: bytes, salt: bytes | None = None) -> bytes:
        """One Argon2id derivation, as the server does for a PIN."""
        from argon2.low_level import Type, hash_secret_raw

        return hash_secret_raw(
            secret=secret,
            salt=salt if salt is not None else os.urandom(self.salt_len),
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=self.hash_len,
            type=Type.ID,
        )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def add_argon2_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Argon2id",
        "used by the in-process floor and passed to a --spawn server as CERTCLOUD_ARGON2__*; "
        "with --url they must match the server's own settings",
    )
    group.add_argument(
        "--argon2-time-cost",
        type=_positive_int,
        default=3,
        metavar="N",
        help="iterations (default: %(default)s)",
    )
    group.add_argument(
        "--argon2-memory-kib",
        type=_positive_int,
        default=65536,
        metavar="KIB",
        help="memory in KiB (default: %(default)s)",
    )
    group.add_argument(
        "--argon2-parallelism",
        type=_positive_int,
        default=4,
        metavar="N",
        help="lanes (default: %(default)s)",
    )


# --------------------------------------------------------------------------------------------
# The target server: --url, or --spawn a throw-away one


def add_target_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target server")
    group.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="base URL of a running Certcloud server (default: %(default)s)",
    )
    group.add_argument(
        "--spawn",
        action="store_true",
        help="start a fresh server (temp data dir, development environment, free "
        "port) and an OAuth2 client for it; stop it at the end",
    )
    group.add_argument(
        "--database-url",
        metavar="URL",
        help="with --spawn: CERTCLOUD_DATABASE_URL (default: SQLite in the temp data dir)",
    )
    group.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --spawn: one more environment variable for the server (repeatable)",
    )
    group.add_argument(
        "--certcloud",
        metavar="PATH",
        help="with --spawn: the console script (default: next to the running Python, else on PATH)",
    )
    group.add_argument(
        "--spawn-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="with --spawn: seconds to wait for GET /readyz (default: %(default)s)",
    )
    group.add_argument(
        "--keep-data",
        action="store_true",
        help="with --spawn: keep the temp data dir and server log",
    )
    group.add_argument(
        "--client-id",
        default=os.environ.get(CLIENT_ID_ENV),
        help=f"OAuth2 client id without --spawn (default: ${CLIENT_ID_ENV})",
    )
    group.add_argument(
        "--client-secret",
        default=os.environ.get(CLIENT_SECRET_ENV),
        help=f"OAuth2 client secret without --spawn (default: ${CLIENT_SECRET_ENV})",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="per HTTP request timeout in seconds (default: %(default)s)",
    )


def check_target_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage message for contradictory or missing target options."""
    if args.spawn:
        for item in args.server_env:
            if "=" not in item or not item.split("=", 1)[0]:
                parser.error(f"--server-env wants KEY=VALUE, got {item!r}")
    else:
        if not (args.client_id and args.client_secret):
            parser.error(
                "without --spawn, --client-id and --client-secret are required "
                f"(or ${CLIENT_ID_ENV} / ${CLIENT_SECRET_ENV})"
            )
        spawn_only = {
            "--database-url": args.database_url,
            "--server-env": args.server_env,
            "--certcloud": args.certcloud,
            "--keep-data": args.keep_data,
        }
        used = [name for name, value in spawn_only.items() if value]
        if used:
            parser.error(f"{', '.join(used)}: only with --spawn")


@dataclass
class Target:
    base_url: str
    client_id: str
    client_secret: str
    spawned: bool
    data_dir: str | None = None
    log_path: str | None = None
    pid: int | None = None  # the spawned server process (for its CPU time)


def find_certcloud(explicit: str | None = None) -> str:
    """The ``certcloud`` script: ``explicit``, else next to ``sys.executable``, else on PATH."""
    if explicit:
        return explicit
    bindir = Path(sys.executable).parent
    for name in ("certcloud", "certcloud.exe"):
        candidate = bindir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("certcloud")
    if found:
        return found
    raise BenchError(
        f"console script `certcloud` not found next to {sys.executable} nor on PATH "
        "(run `pip install -e .` or pass --certcloud PATH)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn_env(
    *,
    data_dir: str,
    base_url: str,
    argon2: Argon2Params,
    database_url: str | None = None,
    extra: Sequence[str] = (),
) -> dict[str, str]:
    """The environment of a spawned server and its CLI calls.

    Every inherited ``CERTCLOUD_*`` variable is dropped first, so a shell that points at a real
    database or a production key ring cannot leak into the throw-away server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCLOUD_")}
    env.update(
        CERTCLOUD_ENVIRONMENT="development",
        CERTCLOUD_DATA_DIR=data_dir,
        CERTCLOUD_PUBLIC_BASE_URL=base_url,
        # A benchmark is one client hammering a few people: lift the abuse limits.
        CERTCLOUD_LIMITS__VERIFICATIONS_PER_CLIENT_PER_MINUTE="1000000",
        CERTCLOUD_LIMITS__VERIFICATIONS_PER_PHONE_PER_10_MINUTES="1000000",
        CERTCLOUD_LIMITS__SIGNATURES_PER_CERTIFICATE_PER_MINUTE="1000000",
        **argon2.server_env(),
    )
    if database_url:
        env["CERTCLOUD_DATABASE_URL"] = database_url
    for item in extra:
        key, value = item.split("=", 1)
        env[key] = value
    return env


class SpawnedServer:
    """``certcloud serve`` as a child process in its own session, output to a log file."""

    def __init__(self, exe: str, env: dict[str, str], host: str, port: int, log_path: Path,
                 extra_args: Sequence[str] = ()):
        self.exe = exe
        self.env = env
        self.host = host
        self.port = port
        self.log_path = log_path
        self.extra_args = list(extra_args)  # e.g. ["--workers", "2"]
        self.base_url = f"http://{host}:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            try:
                self.proc = subprocess.Popen(
                    [self.exe, "serve", "--host", self.host, "--port", str(self.port),
                     *self.extra_args],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BenchError(f"cannot run {self.exe}: {exc}") from None

    def wait_ready(self, timeout: float) -> float:
        """Poll GET /readyz until 200; return the seconds it took."""
        assert self.proc is not None
        started = time.perf_counter()
        deadline = started + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"`certcloud serve` exited with status {self.proc.returncode} before it "
                        f"was ready; log tail:\n{self.log_tail()}"
                    )
                try:
                    resp = client.get("/readyz")
                    if resp.status_code == 200:
                        return time.perf_counter() - started
                    last = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                if time.perf_counter() > deadline:
                    raise BenchError(
                        f"GET {self.base_url}/readyz not 200 after {timeout:.0f} s ({last}); "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.2)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(self.proc.pid, sig)  # its own session: the server and its children
            else:
                self.proc.send_signal(sig)

    def stop(self, grace: float = 15.0) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGTERM, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        steps: list[tuple[int, float]] = [(signal.SIGINT, grace), (signal.SIGTERM, 5.0)]
        for sig, wait in steps:
            self._signal(sig)
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
        self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def parse_json_object(stdout: str) -> dict[str, Any]:
    """The JSON object a CLI printed, tolerating log lines around it."""
    with contextlib.suppress(ValueError):
        value = json.loads(stdout)
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for index, char in enumerate(stdout):
        if char != "{":
            continue
        try:
            value, _ = decoder.raw_decode(stdout, index)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object in the output")


def create_client(exe: str, env: dict[str, str], name: str) -> tuple[str, str]:
    """``certcloud clients create NAME`` → (client_id, client_secret)."""
    proc = subprocess.run(
        [exe, "clients", "create", name],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"`certcloud clients create {name}` failed with status {proc.returncode}:\n"
            f"{(proc.stderr or proc.stdout)[-2000:]}"
        )
    try:
        data = parse_json_object(proc.stdout)
        return str(data["client_id"]), str(data["client_secret"])
    except (ValueError, KeyError) as exc:
        raise BenchError(
            f"`certcloud clients create {name}` printed no client JSON ({exc}):\n"
            f"{proc.stdout[-2000:]}"
        ) from None


@contextlib.contextmanager
def open_target(args: argparse.Namespace, *, client_name: str = "bench") -> Iterator[Target]:
    """The server to benchmark: ``--url`` as given, or a spawned one stopped on exit."""
    if not args.spawn:
        yield Target(args.url.rstrip("/"), args.client_id, args.client_secret, spawned=False)
        return

    exe = find_certcloud(args.certcloud)
    data_dir = tempfile.mkdtemp(prefix="certcloud-bench-")
    host = "127.0.0.1"
    port = free_port(host)
    base_url = f"http://{host}:{port}"
    env = spawn_env(
        data_dir=data_dir,
        base_url=base_url,
        argon2=Argon2Params.from_args(args),
        database_url=args.database_url,
        extra=args.server_env,
    )
    log_path = Path(data_dir) / "server.log"
    server = SpawnedServer(exe, env, host, port, log_path)
    failed = True
    try:
        print(f"spawning: {exe} serve --port {port} (data dir {data_dir})", file=sys.stderr)
        server.start()
        took = server.wait_ready(args.spawn_timeout)
        print(f"spawned server ready after {took:.1f} s", file=sys.stderr)
        client_id, client_secret = create_client(exe, env, client_name)
        yield Target(
            base_url,
            client_id,
            client_secret,
            spawned=True,
            data_dir=data_dir,
            log_path=str(log_path),
            pid=server.proc.pid if server.proc is not None else None,
        )
        failed = False
    finally:
        server.stop()
        if args.keep_data or failed:
            print(f"server data dir and log kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process and all its threads (Linux ``/proc``), else None.

    CPU time hardly depends on what else the machine runs, so on a shared box it compares a
    server with an in-process floor better than wall time does.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------------------------
# OAuth2 and the API calls flows share


class ApiError(Exception):
    """An unexpected reply at one step of a flow; ``str()`` is a short, groupable label."""

    def __init__(self, stage: str, status: int, code: str):
        super().__init__(f"{stage}: HTTP {status} {code}".rstrip())
        self.stage = stage
        self.status = status
        self.code = code


def problem_code(resp: httpx.Response) -> str:
    """The machine word of an error reply (problem+json ``code``, OAuth2 ``error``, …)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:60].strip()
    if isinstance(body, dict):
        for key in ("code", "error", "title"):
            if body.get(key):
                return str(body[key])
    return ""


def expect(resp: httpx.Response, stage: str, *statuses: int) -> Any:
    """The JSON body of ``resp`` if its status is one of ``statuses``, else :class:`ApiError`."""
    if resp.status_code not in statuses:
        raise ApiError(stage, resp.status_code, problem_code(resp))
    return resp.json()


class TokenSource:
    """A client-credentials access token, fetched on first use and again before it expires."""

    def __init__(
        self, client_id: str, client_secret: str, scope: str | None = None, *, margin: float = 60.0
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def fetch(self, client: httpx.AsyncClient) -> str:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        resp = await client.post(
            "/oauth2/token", data=data, auth=(self.client_id, self.client_secret)
        )
        body = expect(resp, "token", 200)
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + float(body.get("expires_in") or 300)
        return self._token

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        if self._token is None or time.monotonic() > self._expires - self.margin:
            async with self._lock:
                if self._token is None or time.monotonic() > self._expires - self.margin:
                    await self.fetch(client)
        return {"Authorization": f"Bearer {self._token}"}


async def start_verification(
    client: httpx.AsyncClient, tokens: TokenSource, phone: str, purpose: str, channel: str = "sms"
) -> str:
    """POST /v1/verifications → the verification id."""
    resp = await client.post(
        "/v1/verifications",
        json={"phone": phone, "channel": channel, "purpose": purpose},
        headers=await tokens.headers(client),
    )
    return str(expect(resp, "verification", 201)["id"])


async def sandbox_code(client: httpx.AsyncClient, phone: str, *, wait: float = 5.0) -> str:
    """The code of the newest sandbox SMS to ``phone``, polling briefly if none is there yet.

    Meant for a phone that received no earlier SMS (every benchmark person has its own phone).
    """
    deadline = time.perf_counter() + wait
    while True:
        resp = await client.get("/sandbox/messages", params={"phone": phone})
        body = expect(resp, "sandbox", 200)
        messages = body.get("data", []) if isinstance(body, dict) else body
        for message in messages:
            if message.get("code") and message.get("phone", phone) == phone:
                return str(message["code"])
        if time.perf_counter() > deadline:
            raise ApiError("sandbox", resp.status_code, "no message")
        await asyncio.sleep(0.05)


async def confirm_verification(
    client: httpx.AsyncClient, tokens: TokenSource, verification_id: str, code: str
) -> None:
    resp = await client.post(
        f"/v1/verifications/{verification_id}/confirm",
        json={"code": code},
        headers=await tokens.headers(client),
    )
    body = expect(resp, "confirm", 200)
    if body.get("status") != "verified":
        raise ApiError("confirm", resp.status_code, f"status {body.get('status')!r}")


async def verified_phone(
    client: httpx.AsyncClient, tokens: TokenSource, phone: str, purpose: str
) -> str:
    """A confirmed SMS verification for ``phone`` and ``purpose``: its id."""
    verification_id = await start_verification(client, tokens, phone, purpose)
    code = await sandbox_code(client, phone)
    await confirm_verification(client, tokens, verification_id, code)
    return verification_id


async def issue_certificate(
    client: httpx.AsyncClient, tokens: TokenSource, verification_id: str, person: Person
) -> dict[str, Any]:
    """POST /v1/certificates → the Certificate resource."""
    resp = await client.post(
        "/v1/certificates",
        json=issue_body(person.as_json(), verification_id, person.pin),
        headers=await tokens.headers(client),
    )
    body: dict[str, Any] = expect(resp, "certificate", 201)
    return body


async def issue_for(
    client: httpx.AsyncClient, tokens: TokenSource, person: Person
) -> dict[str, Any]:
    """The whole issuance flow for ``person`` (verification, sandbox code, confirm, issue)."""
    verification_id = await verified_phone(client, tokens, person.phone, "issue")
    return await issue_certificate(client, tokens, verification_id, person)


def parse_levels(text: str) -> list[int]:
    """``--concurrency 1,4,8`` → [1, 4, 8] (an argparse type)."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want comma-separated integers, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"want levels of at least 1, got {text!r}")
    return levels


# --------------------------------------------------------------------------------------------
# Test persons

_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = "민서준지현우수영하은도윤예성진태희연경호주아"
_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_BIRTH_FIRST = date(1970, 1, 1)
_BIRTH_LAST = date(2004, 12, 31)


def is_weak_pin(pin: str, birth: date | None = None) -> bool:
    """True for a PIN a sensible service may refuse. Deliberately stricter than the stated rule
    (one digit repeated, straight runs, the birth date), so benchmark PINs never hit a check:

    * not exactly 6 ASCII digits, or fewer than 4 distinct digits (111111, 121212, 112233);
    * any 3 equal digits in a row, or any 3-digit ascending/descending run, 9→0 wrap included
      (so 123456, 654321, 345678, 890123 and everything containing such a run);
    * contains the birth date as YYMMDD, MMDD, DDMM or the year YYYY.
    """
    if len(pin) != 6 or not (pin.isascii() and pin.isdigit()):
        return True
    if len(set(pin)) < 4:
        return True
    digits = [int(c) for c in pin]
    for a, b, c in zip(digits, digits[1:], digits[2:], strict=False):
        step1, step2 = (b - a) % 10, (c - b) % 10
        if step1 == step2 and step1 in (0, 1, 9):
            return True
    if birth is not None:
        parts = (
            birth.strftime("%y%m%d"),
            birth.strftime("%m%d"),
            birth.strftime("%d%m"),
            f"{birth.year:04d}",
        )
        if any(part in pin for part in parts):
            return True
    return False


@dataclass(frozen=True)
class Person:
    name: str
    rrn: str
    phone: str
    email: str
    birth: date
    pin: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "rrn": self.rrn, "phone": self.phone, "email": self.email}


class PersonFactory:
    """Distinct, valid persons: unique phone and RRN within the factory, a strong PIN each.

    * RRN: YYMMDD of a real birth date in 1970-2004, gender digit 1/2 (1900s) or 3/4 (2000s),
      5 random digits and a correct legacy check digit (valid whether or not it is checked).
    * Phone: ``+8210`` and 8 digits, the first 2-9 as on real 010 numbers.
    * The random source is seeded (``seed``) for reproducible runs; the default seed is random,
      so runs against a long-lived server do not reuse earlier phones.
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed if seed is not None else secrets.randbits(32)
        self.rng = random.Random(self.seed)
        self._phones: set[str] = set()
        self._rrns: set[str] = set()
        self._serial = 0

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def _birth(self) -> date:
        return _BIRTH_FIRST + timedelta(
            days=self.rng.randrange((_BIRTH_LAST - _BIRTH_FIRST).days + 1)
        )

    def rrn(self, birth: date) -> str:
        while True:
            gender = self.rng.choice("12" if birth.year < 2000 else "34")
            body = birth.strftime("%y%m%d") + gender + self._digits(5)
            total = sum(int(d) * w for d, w in zip(body, _RRN_WEIGHTS, strict=True))
            rrn = body + str((11 - total % 11) % 10)
            if rrn not in self._rrns:
                self._rrns.add(rrn)
                return rrn

    def phone(self) -> str:
        while True:
            phone = "+8210" + self.rng.choice("23456789") + self._digits(7)
            if phone not in self._phones:
                self._phones.add(phone)
                return phone

    def pin(self, birth: date) -> str:
        while True:
            pin = self._digits(6)
            if not is_weak_pin(pin, birth):
                return pin

    def person(self) -> Person:
        self._serial += 1
        birth = self._birth()
        name = self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN) + self.rng.choice(_GIVEN)
        email = f"bench-{self.seed:08x}-{self._serial}@example.com"
        return Person(
            name=name,
            rrn=self.rrn(birth),
            phone=self.phone(),
            email=email,
            birth=birth,
            pin=self.pin(birth),
        )

    def people(self, n: int) -> list[Person]:
        return [self.person() for _ in range(n)]
