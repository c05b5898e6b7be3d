"""Benchmark cost against size: the request paths at 10k, 100k, 1M rows per table (issue 17).

For each ``--sizes`` entry N, in a throw-away PostgreSQL database (created and dropped here):

1. a bootstrap ``certcloud serve`` (one worker, so the sandbox SMS outbox is the one the bench
   reads) migrates the schema, makes the CA and the OCSP responder, and issues a few real
   certificates through the API: the template, and one per concurrent signer;
2. the server stops and N rows per big table are seeded through ``COPY``
   (asyncpg ``copy_records_to_table``): persons (their RRN HMAC and birth-date patterns made
   with the server's own development secrets, so lookup by RRN finds them), certificates
   (~3 % revoked), pre-signed OCSP rows for a fraction of them, used verifications, and audit
   events that continue the server's hash chain (so ``certcloud audit verify`` still passes);
   then ``ANALYZE``;
3. once every size is seeded, ``--rounds`` rounds go over the sizes (the order reversed
   every other round, so the load of a shared machine drifts over all sizes alike), each
   round starting ``certcloud serve --workers 2`` on one size's database and measuring it op
   by op, with
   ``--concurrency`` requests in flight: ``ocsp_miss`` (POST /ocsp for a seeded serial with no
   stored response: row read, one signature, one store), ``ocsp_hit`` (a seeded serial whose
   pre-signed row is stored, asked once each, so it is the table and not the in-process map
   that answers), ``status`` (GET /v1/status/{serial}), ``lookup`` (POST
   /v1/certificates/lookup by RRN of a seeded person), ``revoke`` (a seeded certificate, proven
   by a verified phone verification), ``issue`` (POST /v1/certificates for a new person),
   ``sign`` (POST /v1/certificates/{id}/signatures with the PIN), and ``crl`` (one CRL
   regeneration in this process, as ``certcloud crl`` does it, against the seeded database).

Seeded certificates carry the template's DER, wrapped key and master key id verbatim, under a
serial column of their own: no request path measured here parses a stored certificate (OCSP
and status answer from the row's serial, state and dates; lookup returns the row's fields),
while signing 1M certificates with the CA key would take longer than everything else. So the
rows have the real width of a certificate row (TOAST included), and the disk figures hold;
the few certificates that are signed with or checked by PIN (``sign``) are real ones. The
pre-signed OCSP rows likewise carry one real response's DER (``ocsp_hit`` counts how many
replies came back with those exact bytes, to show they came from the table). The verified
verifications that ``issue`` and ``revoke`` consume are written straight into the table
before each of those ops (the sandbox outbox is per worker, and the SMS round trip is not what
is measured); each op's latency is that one POST.

The closing line gives each op's p99 at the largest size over its p99 at the smallest.

Examples:

    nice -n 10 python bench/scale.py --sizes 10000,100000
    nice -n 10 python bench/scale.py --sizes 10000,1000000 --json /tmp/scale.json

Figures only, no asserts. Progress to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

try:  # run as a script: python bench/scale.py
    import _common as common
except ImportError:  # run as a module: python -m bench.scale
    from bench import _common as common  # type: ignore[no-redef]

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

OPS = ("ocsp_miss", "ocsp_hit", "status", "lookup", "revoke", "issue", "sign", "crl")
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 20000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Figures


@dataclass
class OpResult:
    op: str
    samples: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""
    cpu: float = float("nan")  # seconds of server + PostgreSQL backend CPU over the op

    @property
    def cpu_per_request(self) -> float:
        return common.ratio(self.cpu, len(self.samples))

    @property
    def p50(self) -> float:
        return common.percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return common.percentile(self.samples, 99)

    @property
    def rps(self) -> float:
        return common.ratio(len(self.samples), self.wall)

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "n": len(self.samples), "p50_ms": self.p50 * 1000,
                "p99_ms": self.p99 * 1000, "rps": self.rps, "errors": self.errors,
                "cpu_ms_per_request": self.cpu_per_request * 1000,
                "note": self.note}


@dataclass
class SizeResult:
    size: int
    seed_seconds: float
    db_bytes_before: int
    db_bytes_after: int
    tables: dict[str, int]
    ops: dict[str, OpResult] = field(default_factory=dict)

    @property
    def bytes_per_million(self) -> float:
        return (self.db_bytes_after - self.db_bytes_before) / self.size * 1_000_000

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "seed_seconds": self.seed_seconds,
                "db_bytes": self.db_bytes_after, "seeded_bytes": self.db_bytes_after
                - self.db_bytes_before, "bytes_per_million_rows": self.bytes_per_million,
                "table_bytes": self.tables,
                "ops": {name: op.as_dict() for name, op in self.ops.items()}}


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def render_size(result: SizeResult) -> list[str]:
    rows = []
    for name in OPS:
        op = result.ops.get(name)
        if op is None:
            continue
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(op.errors.items())) or "-"
        rows.append([name, str(len(op.samples)), common.fmt_ms(op.p50), common.fmt_ms(op.p99),
                     common.fmt_num(op.rps, 1), common.fmt_ms(op.cpu_per_request),
                     errors + (f" ({op.note})" if op.note else "")])
    lines = [f"size {result.size:,} rows per table (seeded in {result.seed_seconds:.0f} s; "
             f"database {gib(result.db_bytes_after)}, "
             f"{gib(result.bytes_per_million)} per million rows of each table)",
             common.render_table(["op", "n", "p50 ms", "p99 ms", "req/s", "cpu ms/req", "errors"],
                                 rows),
             "  table sizes: " + ", ".join(f"{t} {gib(b)}" for t, b in result.tables.items())]
    return lines


def closing_line(results: Sequence[SizeResult], *, cpu: bool = False) -> str:
    """Each op's p99 (or, with ``cpu``, its CPU per request) at the largest size over the
    smallest size's."""
    small, large = min(results, key=lambda r: r.size), max(results, key=lambda r: r.size)
    parts = []
    for name in OPS:
        a, b = small.ops.get(name), large.ops.get(name)
        value = float("nan")
        if a and b:
            value = (common.ratio(b.cpu_per_request, a.cpu_per_request) if cpu
                     else common.ratio(b.p99, a.p99))
        parts.append(f"{name}={common.fmt_num(value)}")
    return ("cpu: " if cpu else "scale: ") + " ".join(parts)


# --------------------------------------------------------------------------------------------
# Synthetic rows


_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_FIRST_BIRTH = date(1960, 1, 1)
_BIRTH_DAYS = 365 * 40
_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = "민서준지현우수영하은도윤예성진태희연경호주아"


def rrn_of(index: int) -> tuple[str, date]:
    """The ``index``-th synthetic RRN: distinct for every index below 14,600 x 100,000,
    a real birth date (1960-1999), a 1900s gender digit, and a valid legacy check digit."""
    born = _FIRST_BIRTH + timedelta(days=index % _BIRTH_DAYS)
    body = born.strftime("%y%m%d") + "12"[index % 2] + f"{index // _BIRTH_DAYS:05d}"
    total = sum(int(d) * w for d, w in zip(body, _RRN_WEIGHTS, strict=True))
    return body + str((11 - total % 11) % 10), born


def phone_of(index: int) -> str:
    return f"+8210{20000000 + index:08d}"


@dataclass
class Template:
    client_id: str
    certificate_der: bytes
    key_algorithm: str
    master_key_id: str
    wrapped_key: bytes
    responder_id: str
    ocsp_der: bytes
    issuer_name_hash: bytes
    issuer_key_hash: bytes


@dataclass
class Seeded:
    """What the measuring phase picks its work from (indexes of seeded rows)."""

    serials: list[str]
    certificate_ids: list[str]
    revoked: set[int]
    presigned: set[int]


async def seed(dsn: str, size: int, template: Template, secrets_: Any, *,
               revoked_fraction: float, presigned_fraction: float, rng: random.Random
               ) -> Seeded:
    import asyncpg

    from app.domain.certificates import VALIDITY
    from app.domain.identity import birth_date_patterns
    from app.services.audit import event_message

    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    serials: list[str] = []
    ids: list[str] = []
    revoked: set[int] = set()
    presigned: set[int] = set()
    try:
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
        seq, prev_hash = int(head["seq"]), str(head["hash"])
        key = secrets_.audit_key.current
        used_serials: set[str] = set()
        for start in range(0, size, BATCH):
            stop = min(size, start + BATCH)
            persons, certs, responses, verifs, events = [], [], [], [], []
            for i in range(start, stop):
                rrn, born = rrn_of(i)
                person_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                created = now - timedelta(days=2 + rng.randrange(1000), seconds=rng.randrange(
                    86400))
                name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN)
                persons.append((person_id, secrets_.rrn_hmac(rrn), name, phone_of(i),
                                f"p{i}@example.com",
                                secrets_.birth_patterns_record(birth_date_patterns(born)),
                                created, created))
                while True:
                    serial = format(rng.getrandbits(159) | (1 << 158), "x")
                    if serial not in used_serials:
                        used_serials.add(serial)
                        break
                cert_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                serials.append(serial)
                ids.append(cert_id)
                is_revoked = rng.random() < revoked_fraction
                revoked_at = created + timedelta(days=1) if is_revoked else None
                if is_revoked:
                    revoked.add(i)
                certs.append((cert_id, person_id, serial, "revoked" if is_revoked else "active",
                              created, created + VALIDITY, template.certificate_der,
                              template.key_algorithm, template.client_id,
                              4 if is_revoked else None, revoked_at, 0, 0,
                              template.master_key_id, template.wrapped_key, created,
                              revoked_at or created))
                if rng.random() < presigned_fraction:
                    presigned.add(i)
                    responses.append((serial, "sha1", "revoked" if is_revoked else "good",
                                      template.ocsp_der, now - timedelta(hours=1),
                                      now + timedelta(hours=23), template.responder_id))
                verifs.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                               template.client_id, phone_of(i), "sms", "issue",
                               rng.getrandbits(256).to_bytes(32, "big").hex(), "used", 0,
                               created, created + timedelta(minutes=5),
                               created + timedelta(minutes=1), created + timedelta(minutes=2)))
            # Audit events: one per row, continuing the chain under its current key.
            pending = []
            for i in range(start, stop):
                seq += 1
                details = json.dumps({"count": 1, "found": True, "subject_hmac":
                                      persons[i - start][1], "via": "v1"},
                                     sort_keys=True, separators=(",", ":"))
                pending.append((seq, now - timedelta(seconds=size - i), template.client_id,
                                "lookup", None, "ok", details))
            for s, t, c, a, cid, r, d in pending:
                mac = (await key.macs([event_message(key.key_id, prev_hash, s, t, c, a, cid,
                                                     r, d)]))[0]
                events.append((s, t, c, a, cid, r, d, prev_hash, mac, key.key_id))
                prev_hash = mac
            async with conn.transaction():
                await conn.copy_records_to_table("persons", records=persons, columns=[
                    "id", "rrn_hmac", "name", "phone", "email", "birth_patterns", "created_at",
                    "updated_at"])
                await conn.copy_records_to_table("certificates", records=certs, columns=[
                    "id", "person_id", "serial", "state", "not_before", "not_after",
                    "certificate_der", "key_algorithm", "issued_by_client", "revocation_reason",
                    "revoked_at", "wrong_pins", "pin_checks_in_flight", "master_key_id",
                    "wrapped_key", "created_at", "updated_at"])
                if responses:
                    await conn.copy_records_to_table("ocsp_responses", records=responses,
                                                     columns=[
                        "serial", "hash_algorithm", "cert_status", "response_der",
                        "this_update", "next_update", "responder_id"])
                await conn.copy_records_to_table("verifications", records=verifs, columns=[
                    "id", "client_id", "phone", "channel", "purpose", "code_hash", "status",
                    "wrong_codes", "created_at", "expires_at", "verified_at", "used_at"])
                await conn.copy_records_to_table("audit_events", records=events, columns=[
                    "seq", "occurred_at", "client_id", "action", "certificate_id", "result",
                    "details", "prev_hash", "hash", "key_id"])
                await conn.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                                   seq, prev_hash)
            if (stop // BATCH) % 5 == 0 or stop == size:
                log(f"  seeded {stop:,} / {size:,}")
        log("  ANALYZE")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return Seeded(serials, ids, revoked, presigned)


async def add_verified(dsn: str, client_id: str, phones: Sequence[str], purpose: str
                       ) -> list[str]:
    """Verified phone verifications, as a confirm leaves them (their ids)."""
    import asyncpg

    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in phones]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("verifications", records=[
            (vid, client_id, phone, "sms", purpose, os.urandom(32).hex(), "verified", 0, now,
             now + timedelta(minutes=5), now) for vid, phone in zip(ids, phones, strict=True)],
            columns=["id", "client_id", "phone", "channel", "purpose", "code_hash", "status",
                     "wrong_codes", "created_at", "expires_at", "verified_at"])
    finally:
        await conn.close()
    return ids


async def sizes_of(dsn: str) -> tuple[int, dict[str, int]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        total = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        rows = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
            "ORDER BY bytes DESC LIMIT 6")
        return total, {str(r["relname"]): int(r["bytes"]) for r in rows}
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# The database and the servers


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def throwaway_database(name: str, keep: bool) -> Iterator[str]:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        if keep:
            log(f"database kept: {name}")
        else:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def server(env: dict[str, str], port: int, data_dir: Path, workers: int, tag: str
           ) -> Iterator[common.SpawnedServer]:
    exe = common.find_certcloud()
    srv = common.SpawnedServer(exe, env, "127.0.0.1", port, data_dir / f"server-{tag}.log",
                               ["--workers", str(workers)])
    srv.start()
    try:
        srv.wait_ready(180.0)
        yield srv
    finally:
        srv.stop()


def ocsp_request(template: Template, serial: str) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        template.issuer_name_hash, template.issuer_key_hash, int(serial, 16), hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


async def bootstrap(base_url: str, client_id: str, secret: str, dsn: str, signers: int,
                    people: common.PersonFactory) -> tuple[Template, list[tuple[str, str]]]:
    """Real certificates through the API: the template and one per signer (id, PIN)."""
    import asyncpg
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    tokens = common.TokenSource(client_id, secret)
    issued: list[tuple[str, str, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        for _ in range(signers + 1):
            person = people.person()
            body = await common.issue_for(client, tokens, person)
            issued.append((str(body["id"]), str(body["serial"]), person.pin))
        ca_der = (await client.get("/ca/certificate")).content
        ca = x509.load_der_x509_certificate(ca_der)
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT certificate_der, key_algorithm, master_key_id, wrapped_key "
                "FROM certificates WHERE id = $1", issued[0][0])
            responder_id = await conn.fetchval(
                "SELECT id FROM ocsp_responders ORDER BY not_after DESC LIMIT 1")
        finally:
            await conn.close()
        cert = x509.load_der_x509_certificate(bytes(row["certificate_der"]))
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, ca, hashes.SHA1()).build()
        reply = await client.post("/ocsp", content=request.public_bytes(
            serialization.Encoding.DER), headers={"Content-Type": "application/ocsp-request"})
        reply.raise_for_status()
    template = Template(
        client_id=client_id, certificate_der=bytes(row["certificate_der"]),
        key_algorithm=str(row["key_algorithm"]), master_key_id=str(row["master_key_id"]),
        wrapped_key=bytes(row["wrapped_key"]), responder_id=str(responder_id),
        ocsp_der=reply.content, issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash)
    return template, [(cid, pin) for cid, _serial, pin in issued[1:]]


# --------------------------------------------------------------------------------------------
# Measuring


def _ticks(pid: int) -> tuple[int, int] | None:
    """(process group, user + system ticks) of a process, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[2]), int(fields[11]) + int(fields[12])


class CpuProbe:
    """CPU of the server's process group (every worker) and of the PostgreSQL backends
    connected to the database: what a request costs, far steadier than latency on a shared
    machine, and including the database's side (where a table's size would show)."""

    def __init__(self, pgid: int, dsn: str) -> None:
        self.pgid, self.dsn = pgid, dsn

    async def snapshot(self) -> dict[int, int]:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            backends = [int(r["pid"]) for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")]
        finally:
            await conn.close()
        out: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                got = _ticks(int(entry))
                if got is not None and got[0] == self.pgid:
                    out[int(entry)] = got[1]
        for pid in backends:
            got = _ticks(pid)
            if got is not None:
                out[pid] = got[1]
        return out

    @staticmethod
    def seconds(before: dict[int, int], after: dict[int, int]) -> float:
        ticks = sum(max(0, t - before.get(pid, 0)) for pid, t in after.items())
        return ticks / os.sysconf("SC_CLK_TCK")


async def run_op(name: str, jobs: Sequence[Callable[[httpx.AsyncClient], Awaitable[str | None]]],
                 base_url: str, concurrency: int, probe: CpuProbe | None = None) -> OpResult:
    """Run the jobs ``concurrency`` at a time; each returns None or an error label."""
    result = OpResult(name)
    before = await probe.snapshot() if probe is not None else {}
    queue = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0, limits=limits) as client:

        async def worker() -> None:
            for job in queue:
                t0 = time.perf_counter()
                try:
                    error = await job(client)
                except (httpx.HTTPError, common.ApiError) as exc:
                    error = str(exc)[:60] or type(exc).__name__
                elapsed = time.perf_counter() - t0
                if error is None:
                    result.samples.append(elapsed)
                else:
                    result.errors[error] = result.errors.get(error, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - started
    if probe is not None:
        result.cpu = CpuProbe.seconds(before, await probe.snapshot())
    return result


def status_of(resp: httpx.Response, *ok: int) -> str | None:
    if resp.status_code in ok:
        return None
    return f"HTTP {resp.status_code} {common.problem_code(resp)}"


@dataclass
class Prepared:
    """One seeded size: its database, data dir, client, template and the work still unused."""

    size: int
    dsn: str
    env: dict[str, str]
    data_dir: Path
    port: int
    tokens: common.TokenSource
    template: Template
    signers: list[tuple[str, str]]
    seeded: Seeded
    people: common.PersonFactory
    result: SizeResult
    pools: dict[str, list[int]] = field(default_factory=dict)
    pgid: int = 0  # the running server's process group

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self, pool: str, n: int) -> list[int]:
        taken, self.pools[pool] = self.pools[pool][:n], self.pools[pool][n:]
        return taken


def make_pools(seeded: Seeded, rng: random.Random) -> dict[str, list[int]]:
    """Seeded rows for the ops that must not see a row twice: OCSP misses (active, nothing
    stored), OCSP hits (a stored row, asked once), revocations (active, never asked)."""
    size = len(seeded.serials)
    active = [i for i in range(size) if i not in seeded.revoked]
    rng.shuffle(active)
    cold = [i for i in active if i not in seeded.presigned]
    presigned = [i for i in range(size) if i in seeded.presigned]
    rng.shuffle(presigned)
    half = len(cold) // 2
    return {"miss": cold[:half], "victims": cold[half:], "hit": presigned}


async def measure(args: argparse.Namespace, prep: Prepared, rng: random.Random
                  ) -> dict[str, OpResult]:
    """One round of every op against the running server of ``prep``."""
    n_read, n_write = args.reads, args.writes
    base_url, dsn, template, tokens = prep.base_url, prep.dsn, prep.template, prep.tokens
    seeded, signers, people, env = prep.seeded, prep.signers, prep.people, prep.env
    size = len(seeded.serials)
    results: dict[str, OpResult] = {}
    ocsp_headers = {"Content-Type": "application/ocsp-request"}
    probe = CpuProbe(prep.pgid, dsn) if prep.pgid else None

    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        await tokens.headers(client)

    def ocsp_job(serial: str, expect_stored: bool
                 ) -> Callable[[httpx.AsyncClient], Awaitable[str | None]]:
        body = ocsp_request(template, serial)

        async def job(client: httpx.AsyncClient) -> str | None:
            resp = await client.post("/ocsp", content=body, headers=ocsp_headers)
            if resp.status_code != 200:
                return status_of(resp, 200)
            if expect_stored and resp.content != template.ocsp_der:
                return "not from the table"
            return None
        return job

    miss = prep.take("miss", n_read)
    log(f"  ocsp_miss x{len(miss)}")
    results["ocsp_miss"] = await run_op(
        "ocsp_miss", [ocsp_job(seeded.serials[i], False) for i in miss], base_url,
        args.concurrency, probe)
    hits = prep.take("hit", n_read)
    log(f"  ocsp_hit x{len(hits)}")
    results["ocsp_hit"] = await run_op(
        "ocsp_hit", [ocsp_job(seeded.serials[i], True) for i in hits], base_url,
        args.concurrency, probe)

    def status_job(serial: str) -> Callable[[httpx.AsyncClient], Awaitable[str | None]]:
        async def job(client: httpx.AsyncClient) -> str | None:
            resp = await client.get(f"/v1/status/{serial}")
            if resp.status_code == 200 and resp.json().get("status") == "unknown":
                return "unknown serial"
            return status_of(resp, 200)
        return job

    picks = [rng.randrange(size) for _ in range(n_read)]
    log(f"  status x{len(picks)}")
    results["status"] = await run_op("status", [status_job(seeded.serials[i]) for i in picks],
                                     base_url, args.concurrency, probe)

    def lookup_job(index: int) -> Callable[[httpx.AsyncClient], Awaitable[str | None]]:
        rrn = rrn_of(index)[0]

        async def job(client: httpx.AsyncClient) -> str | None:
            headers = await tokens.headers(client)
            resp = await client.post("/v1/certificates/lookup", json={"rrn": rrn},
                                     headers=headers)
            if resp.status_code == 200 and not resp.json().get("data"):
                return "person not found"
            return status_of(resp, 200)
        return job

    picks = [rng.randrange(size) for _ in range(n_read)]
    log(f"  lookup x{len(picks)}")
    results["lookup"] = await run_op("lookup", [lookup_job(i) for i in picks], base_url,
                                     args.concurrency, probe)

    # revoke: seeded active certificates (not the ones asked above), a verification each.
    victims = prep.take("victims", n_write)
    vids = await add_verified(dsn, template.client_id, [phone_of(i) for i in victims], "revoke")

    def revoke_job(cert_id: str, vid: str) -> Callable[[httpx.AsyncClient], Awaitable[str | None]]:
        async def job(client: httpx.AsyncClient) -> str | None:
            headers = await tokens.headers(client)
            resp = await client.post(f"/v1/certificates/{cert_id}/revoke",
                                     json={"verification_id": vid, "reason": "key_compromise"},
                                     headers=headers)
            return status_of(resp, 200)
        return job

    log(f"  revoke x{len(victims)}")
    results["revoke"] = await run_op(
        "revoke", [revoke_job(seeded.certificate_ids[i], v) for i, v in
                   zip(victims, vids, strict=True)], base_url, args.concurrency, probe)

    newcomers = people.people(n_write)
    vids = await add_verified(dsn, template.client_id, [p.phone for p in newcomers], "issue")

    def issue_job(person: common.Person, vid: str
                  ) -> Callable[[httpx.AsyncClient], Awaitable[str | None]]:
        async def job(client: httpx.AsyncClient) -> str | None:
            await common.issue_certificate(client, tokens, vid, person)
            return None
        return job

    log(f"  issue x{len(newcomers)}")
    results["issue"] = await run_op(
        "issue", [issue_job(p, v) for p, v in zip(newcomers, vids, strict=True)], base_url,
        args.concurrency, probe)

    payload = "c2NhbGUgYmVuY2htYXJr"
    sign_queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for signer in signers:
        sign_queue.put_nowait(signer)

    async def sign_job(client: httpx.AsyncClient) -> str | None:
        cert_id, pin = await sign_queue.get()  # one certificate per request in flight
        try:
            headers = await tokens.headers(client)
            resp = await client.post(f"/v1/certificates/{cert_id}/signatures",
                                     json={"pin": pin, "data": payload, "format": "raw"},
                                     headers=headers)
            return status_of(resp, 200)
        finally:
            sign_queue.put_nowait((cert_id, pin))

    log(f"  sign x{n_write}")
    results["sign"] = await run_op("sign", [sign_job] * n_write, base_url, args.concurrency, probe)

    log(f"  crl x{args.crl_runs}")
    results["crl"] = await crl_runs(env, args.crl_runs)
    return results


def merge(into: dict[str, OpResult], new: dict[str, OpResult]) -> None:
    for name, op in new.items():
        have = into.setdefault(name, OpResult(name))
        have.samples += op.samples
        have.wall += op.wall
        have.cpu = op.cpu if math.isnan(have.cpu) else have.cpu + op.cpu
        for key, count in op.errors.items():
            have.errors[key] = have.errors.get(key, 0) + count
        have.note = op.note or have.note


async def crl_runs(env: dict[str, str], runs: int) -> OpResult:
    """CRL regenerations in this process, the way ``certcloud crl`` makes them."""
    from app import cli

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    result = OpResult("crl")
    try:
        async def action(status: Any) -> None:
            await status.regenerate_crl()  # warm: the child process that builds big CRLs
            started = time.perf_counter()
            for _ in range(runs):
                t0 = time.perf_counter()
                await status.regenerate_crl()
                result.samples.append(time.perf_counter() - t0)
            result.wall = time.perf_counter() - started
            copy = await status.current_crl()
            result.note = f"{copy.meta.entries:,} entries, {len(copy.der):,} bytes"

        await cli._with_status(action)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return result


# --------------------------------------------------------------------------------------------
# One size


def prepare(args: argparse.Namespace, size: int, rng: random.Random,
            stack: contextlib.ExitStack) -> Prepared:
    """A seeded database and data dir for ``size`` (both removed when ``stack`` closes)."""
    from app.services.secrets import load_secrets
    from app.settings import Settings

    name = f"certcloud_scale_{os.getpid()}_{size}"
    data_dir = Path(tempfile.mkdtemp(prefix="certcloud-scale-"))
    stack.callback(lambda: log(f"data dir kept: {data_dir}") if args.keep
                   else shutil.rmtree(data_dir, ignore_errors=True))
    dsn = stack.enter_context(throwaway_database(name, args.keep))
    port = common.free_port()
    base_url = f"http://127.0.0.1:{port}"
    people = common.PersonFactory(rng.getrandbits(32))
    env = common.spawn_env(
        data_dir=str(data_dir), base_url=base_url, argon2=common.Argon2Params.from_args(args),
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://"),
        extra=["CERTCLOUD_LIMITS__LOOKUPS_PER_CLIENT_PER_MINUTE=1000000"])
    log(f"size {size:,}: bootstrap server on {base_url} (database {name})")
    with server(env, port, data_dir, 1, "bootstrap"):
        client_id, secret = common.create_client(common.find_certcloud(), env, "scale")
        template, signers = asyncio.run(bootstrap(
            base_url, client_id, secret, dsn, args.concurrency, people))
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        secrets_ = load_secrets(Settings())  # the server's development secrets
    finally:
        os.environ.clear()
        os.environ.update(saved)
    before, _ = asyncio.run(sizes_of(dsn))
    log(f"size {size:,}: seeding")
    t0 = time.perf_counter()
    seeded = asyncio.run(seed(dsn, size, template, secrets_,
                              revoked_fraction=args.revoked_fraction,
                              presigned_fraction=args.presigned_fraction, rng=rng))
    seed_seconds = time.perf_counter() - t0
    after, tables = asyncio.run(sizes_of(dsn))
    log(f"size {size:,}: seeded in {seed_seconds:.0f} s, {gib(after - before)}")
    return Prepared(size, dsn, env, data_dir, port, common.TokenSource(client_id, secret),
                    template, signers, seeded, people,
                    SizeResult(size, seed_seconds, before, after, tables),
                    make_pools(seeded, rng))


def run_rounds(args: argparse.Namespace, preps: Sequence[Prepared], rng: random.Random
               ) -> None:
    """Every size once per round, the order reversed every other round, so the machine's
    load drifts over all sizes alike; each size's samples are pooled over the rounds."""
    for round_no in range(args.rounds):
        order = list(preps) if round_no % 2 == 0 else list(reversed(preps))
        for prep in order:
            log(f"round {round_no + 1}/{args.rounds}, size {prep.size:,}")
            with server(prep.env, prep.port, prep.data_dir, args.workers, f"r{round_no}") as srv:
                prep.pgid = srv.proc.pid if srv.proc is not None else 0
                merge(prep.result.ops, asyncio.run(measure(args, prep, rng)))


def parse_sizes(text: str) -> list[int]:
    sizes = common.parse_levels(text)
    if len(sizes) < 1:
        raise argparse.ArgumentTypeError("want at least one size")
    return sorted(sizes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10000, 100000, 1000000],
                        help="rows per table, comma-separated (default: 10000,100000,1000000)")
    parser.add_argument("--reads", type=int, default=200, metavar="N",
                        help="requests per round and read op (OCSP, status, lookup; "
                        "default %(default)s)")
    parser.add_argument("--writes", type=int, default=15, metavar="N",
                        help="requests per round and write op (revoke, issue, sign; "
                        "default %(default)s)")
    parser.add_argument("--crl-runs", type=int, default=3, metavar="N",
                        help="CRL regenerations per round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="rounds over all sizes (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N")
    parser.add_argument("--workers", type=int, default=2, metavar="N")
    parser.add_argument("--revoked-fraction", type=float, default=0.03)
    parser.add_argument("--presigned-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=17, help="random seed of the rows")
    parser.add_argument("--keep", action="store_true", help="keep the databases and data dirs")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    common.add_argon2_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.interrupt_on_sigterm()
    rng = random.Random(args.seed)
    try:
        with contextlib.ExitStack() as stack:
            preps = [prepare(args, size, rng, stack) for size in args.sizes]
            run_rounds(args, preps, rng)
    except common.BenchError as exc:
        log(f"scale: {exc}")
        return 2
    results = [prep.result for prep in preps]
    for result in results:
        print("\n".join(render_size(result)) + "\n", flush=True)
    total_rows = sum(r.size for r in results)
    per_million = sum(r.db_bytes_after - r.db_bytes_before for r in results) / total_rows * 1e6
    print(f"disk: {gib(per_million)} per million rows of each seeded table "
          f"(persons, certificates, verifications, audit events; OCSP rows for "
          f"{args.presigned_fraction:.0%}), indexes and TOAST included")
    print(closing_line(results, cpu=True) + "  (server + database CPU per request)")
    print(closing_line(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sizes": [r.as_dict() for r in results], "closing": closing_line(results),
            "cpu_ratios": closing_line(results, cpu=True),
            "bytes_per_million_rows": per_million,
            "settings": {k: v for k, v in vars(args).items() if k != "json"}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
