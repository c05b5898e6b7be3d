"""Benchmark key custody: the local key ring against a PKCS#11 token (SoftHSM2).

Three figures, for each key store:

* **unwraps/s** - opening the outer (master-key) layer of a user-key blob the size the service
  stores (an RSA-2048 key sealed under the PIN layer, about 1.3 KB), through the same async
  ``KeyProtector.unwrap`` the service calls; sequential, and with 16 coroutines at once (the
  token serialises them behind one lock, so this shows the cost of the hand-off).
* **certificate signatures/s** - ``issue_end_entity`` (the service's CertificateBuilder path)
  with the CA key as a file key and as a token key, RSA-3072 and P-384.
* **rewrap throughput** - ``KeyRotation.rewrap`` moving ``--blobs`` stored blobs onto a new
  master key, database included (SQLite in a temporary file, or ``--database-url``).

The token is a fresh SoftHSM2 token in a temporary directory (its own ``SOFTHSM2_CONF``), so the
benchmark touches nothing else. It needs ``softhsm2-util`` and the module; ``--skip-hsm`` runs
the local figures only.

    python bench/custody.py
    python bench/custody.py --seconds 5 --blobs 20000 --json custody.json
    python bench/custody.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench

Figures only, no asserts. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/local/lib/softhsm/libsofthsm2.so", "/opt/homebrew/lib/softhsm/libsofthsm2.so")
PIN = "246810"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def rate(op: Callable[[], Awaitable[Any]], seconds: float, concurrency: int = 1) -> float:
    """Operations per second of ``op`` run back to back by ``concurrency`` coroutines."""
    await op()  # warm up
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await op()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def sync_rate(op: Callable[[], Any], seconds: float) -> float:
    op()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        op()
        done += 1
    return done / (time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# The stores


class Token:
    """A fresh SoftHSM2 token in a temporary directory."""

    def __init__(self, base: Path, module: str | None) -> None:
        self.module = module or next((m for m in MODULES if Path(m).is_file()), None)
        util = shutil.which("softhsm2-util")
        if self.module is None or util is None:
            raise SystemExit("softhsm2 is not installed (apt-get install softhsm2), or pass "
                             "--module; --skip-hsm runs the local figures only")
        (base / "tokens").mkdir(parents=True)
        conf = base / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {base / 'tokens'}\n"
                        "objectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded
        self.label = "certcloud-bench"
        subprocess.run([util, "--init-token", "--free", "--label", self.label, "--pin", PIN,
                        "--so-pin", "13579113"], check=True, capture_output=True)

    def session(self) -> Any:
        from app.storage.pkcs11 import TokenSession

        session = TokenSession.shared(self.module, self.label, PIN)
        session.open()
        return session


def local_store(base: Path) -> Any:
    from app.storage.keyring_protector import KeyRingFile
    from app.storage.local_keyring import LocalKeyRing

    LocalKeyRing.create(base / "keyring.json", NOW)
    return KeyRingFile(base / "keyring.json")


def token_store(token: Token) -> Any:
    from app.storage.pkcs11_protector import Pkcs11Protector

    protector = Pkcs11Protector(token.session(), "certcloud-master")
    protector.load(create_if_missing=True, now=NOW)
    return protector


# --------------------------------------------------------------------------------------------
# Measurements


def sample_inner() -> bytes:
    """What the outer layer wraps: an RSA-2048 PKCS#8 key sealed under a PIN (~1.3 KB)."""
    from app.pki.keys import KdfParams, generate_user_key, private_key_to_der, seal_with_pin

    der = private_key_to_der(generate_user_key("rsa2048"))
    return seal_with_pin(der, "902714", KdfParams(1, 64, 1), b"certcloud:user-key:bench")


async def measure_unwrap(protector: Any, seconds: float) -> dict[str, float]:
    inner = sample_inner()
    ad = b"certcloud:user-key:bench"
    key_id, blob = await protector.wrap(inner, ad)

    async def unwrap() -> None:
        await protector.unwrap(key_id, blob, ad)

    async def wrap() -> None:
        await protector.wrap(inner, ad)

    return {"blob_bytes": len(blob),
            "unwraps_per_s": await rate(unwrap, seconds),
            "unwraps_per_s_16_concurrent": await rate(unwrap, seconds, concurrency=16),
            "wraps_per_s": await rate(wrap, seconds)}


def measure_signing(key: Any, seconds: float) -> float:
    from app.pki.ca import (
        CertificateAuthority,
        Profile,
        issue_end_entity,
        self_sign_ca,
        subject_for,
    )
    from app.pki.keys import generate_user_key

    certificate = self_sign_ca(key, common_name="Bench CA", organization="Certcloud",
                               country="KR", now=NOW, validity_years=20)
    ca = CertificateAuthority(key, certificate)
    profile = Profile("2.25.1", "http://certcloud.bench")
    public_key = generate_user_key("rsa2048").public_key()
    serial = iter(range(1, 10**9))

    def sign() -> None:
        issue_end_entity(ca, profile, public_key=public_key, subject=subject_for("벤치", "p-1"),
                         serial=next(serial), not_before=NOW,
                         not_after=NOW + timedelta(days=1095))

    return sync_rate(sign, seconds)


async def measure_rewrap(protector: Any, database_url: str | None, base: Path, blobs: int,
                         batch_size: int) -> dict[str, float]:
    from sqlalchemy import insert, text

    from app.bootstrap import wrapped_blobs
    from app.services.custody import key_binding
    from app.services.rotation import KeyRotation
    from app.storage import migrate
    from app.storage.db import Database, make_engine
    from app.storage.tables import certificates, clients, persons

    url = database_url or f"sqlite+aiosqlite:///{base / f'rewrap-{uuid.uuid4().hex[:6]}.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(make_engine(url))
    inner = sample_inner()
    try:
        async with db.transaction() as conn:
            if url.startswith("postgresql"):  # DELETE would check the unindexed replaces_id
                await conn.execute(text("TRUNCATE certificates, persons, clients CASCADE"))
            else:
                for table in ("certificates", "persons", "clients"):
                    await conn.execute(text(f"DELETE FROM {table}"))
            await conn.execute(insert(clients).values(id="c", name="c", secret_hash="x",
                                                      scopes="", disabled=False,
                                                      created_at=NOW))
            await conn.execute(insert(persons).values(
                id="p", rrn_hmac="h", name="n", phone="+821000000000", email="e@x",
                birth_patterns="{}", created_at=NOW, updated_at=NOW))
        log(f"  seeding {blobs} blobs")
        rows = []
        for n in range(blobs):
            row_id = str(uuid.uuid4())
            key_id, blob = await protector.wrap(inner, key_binding(row_id))
            rows.append({"id": row_id, "person_id": "p", "serial": f"{n:x}", "state": "revoked",
                         "not_before": NOW, "not_after": NOW, "key_algorithm": "rsa2048",
                         "issued_by_client": "c", "wrong_pins": 0, "master_key_id": key_id,
                         "wrapped_key": blob, "created_at": NOW, "updated_at": NOW})
            if len(rows) == 1000 or n == blobs - 1:
                async with db.transaction() as conn:
                    await conn.execute(insert(certificates), rows)
                rows = []
        rotation = KeyRotation(wrapped_blobs(db), protector)
        await rotation.rotate(NOW + timedelta(days=1))
        log(f"  rewrapping {blobs} blobs, batches of {batch_size}")
        started = time.perf_counter()
        report = await rotation.rewrap(batch_size=batch_size)
        took = time.perf_counter() - started
        return {"blobs": report.moved, "seconds": took, "blobs_per_s": report.moved / took,
                "database": url.split(":", 1)[0]}
    finally:
        await db.dispose()


# --------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from app.pki.token_keys import generate_token_key

    base = Path(tempfile.mkdtemp(prefix="certcloud-custody-"))
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "seconds_per_figure": args.seconds}
    try:
        token = None if args.skip_hsm else Token(base / "hsm", args.module)
        stores = {"local": local_store(base)}
        if token is not None:
            stores["softhsm2"] = token_store(token)
        for name, protector in stores.items():
            log(f"{name}: unwrap / wrap")
            report.setdefault(name, {})["custody"] = await measure_unwrap(protector, args.seconds)
        log("local: certificate signatures (file keys)")
        report["local"]["signatures_per_s"] = {
            "rsa3072": measure_signing(rsa.generate_private_key(65537, 3072), args.seconds),
            "p384": measure_signing(ec.generate_private_key(ec.SECP384R1()), args.seconds)}
        if token is not None:
            log("softhsm2: certificate signatures (token keys)")
            session = token.session()
            report["softhsm2"]["signatures_per_s"] = {
                algorithm: await asyncio.to_thread(
                    measure_signing, generate_token_key(session, f"bench-{algorithm}", algorithm),
                    args.seconds) for algorithm in ("rsa3072", "p384")}
        for name, protector in stores.items():
            log(f"{name}: rewrap")
            report[name]["rewrap"] = await measure_rewrap(protector, args.database_url, base,
                                                          args.blobs, args.batch_size)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return report


def render(report: dict[str, Any]) -> str:
    stores = [name for name in ("local", "softhsm2") if name in report]
    lines = [f"certcloud custody benchmark - {report['machine']['platform']}, "
             f"{report['machine']['cpus']} CPUs, python {report['machine']['python']}", ""]
    header = f"{'':<44}" + "".join(f"{name:>14}" for name in stores)
    lines.append(header)

    def row(label: str, get: Callable[[dict[str, Any]], float], fmt: str = "{:>14,.0f}") -> None:
        lines.append(f"{label:<44}" + "".join(fmt.format(get(report[name])) for name in stores))

    row("unwraps/s (1 at a time)", lambda r: r["custody"]["unwraps_per_s"])
    row("unwraps/s (16 concurrent)", lambda r: r["custody"]["unwraps_per_s_16_concurrent"])
    row("wraps/s", lambda r: r["custody"]["wraps_per_s"])
    row("certificate signatures/s, RSA-3072 CA", lambda r: r["signatures_per_s"]["rsa3072"])
    row("certificate signatures/s, P-384 CA", lambda r: r["signatures_per_s"]["p384"])
    row("rewrap blobs/s (db: " + report[stores[0]]["rewrap"]["database"] + ")",
        lambda r: r["rewrap"]["blobs_per_s"])
    row("rewrap blobs", lambda r: r["rewrap"]["blobs"])
    lines.append(f"\n(blob size {report[stores[0]]['custody']['blob_bytes']} bytes; "
                 f"{report['seconds_per_figure']:g} s per figure)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure (default 3)")
    parser.add_argument("--blobs", type=int, default=5000, help="blobs to rewrap (default 5000)")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--database-url", help="rewrap against this database (its certificates, "
                        "persons and clients tables are emptied, with CASCADE on PostgreSQL!) "
                        "instead of a temporary SQLite")
    parser.add_argument("--module", help="the SoftHSM2 module (default: the usual places)")
    parser.add_argument("--skip-hsm", action="store_true", help="local key ring only")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = asyncio.run(run(args))
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
