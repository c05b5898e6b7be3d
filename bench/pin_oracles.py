"""What one PIN guess costs an attacker who holds the database and every server secret, through
each stored value a PIN-bearing request leaves, against one Argon2id derivation of the key blob.

For each value: the CPU time of one candidate test (process CPU time, so every thread of a
parallel Argon2id counts: core-seconds), and the whole 6-digit PIN space (10^6 guesses) in
core-hours. A value that does not depend on the PIN tests no guess at all ("none"): its cost is
printed only to show what it would be.

* idempotency request HMAC, raw body (main before issue 11): HMAC-SHA256 under the HKDF key
  from CERTCLOUD_CODE_HMAC_KEY over (method, path, query, body with the guess);
* idempotency fingerprint (now): the same HMAC over the canonical body without PIN fields;
* sealed idempotency reply: AES-GCM open under the reply key (the reply holds no PIN);
* CSC SAD row: SHA-256 id and HKDF key of a random SAD (no PIN in either);
* audit chain event: HMAC-SHA256 of an event whose details hold no PIN;
* the key blob: one Argon2id derivation + AES-GCM open with the blob's own parameters
  (production defaults t=3, 64 MiB, p=4 unless --time-cost/--memory-kib/--parallelism).

    python bench/pin_oracles.py
    python bench/pin_oracles.py --seconds 2 --argon2-runs 5 --json pin_oracles.json

Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pki.keys import KdfParams, WrongPin, open_with_pin, seal_with_pin
from app.services import csc
from app.services.audit import event_hash
from app.storage.idempotency import ReplyKeys

PIN_SPACE = 10**6
SIGN_PATH = b"/v1/certificates/3f0b6f8e-8d0f-4a43-9d55-2b8f6c1f0c2a/signatures"


def cpu_per_call(call: Callable[[int], object], seconds: float) -> float:
    """CPU seconds per call, over at least ``seconds`` of CPU time."""
    n, start = 0, time.process_time()
    while True:
        for _ in range(256):
            call(n)
            n += 1
        spent = time.process_time() - start
        if spent >= seconds:
            return spent / n


def argon2_per_guess(params: KdfParams, runs: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one wrong-PIN open of a blob sealed with ``params``."""
    blob = seal_with_pin(os.urandom(1200), "902714", params, b"certcloud:user-key:bench")
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(runs):
        with contextlib.suppress(WrongPin):
            open_with_pin(blob, f"{n:06d}", b"certcloud:user-key:bench")
    return (time.process_time() - cpu) / runs, (time.perf_counter() - wall) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="CPU seconds spent measuring each cheap value")
    parser.add_argument("--argon2-runs", type=int, default=3)
    parser.add_argument("--time-cost", type=int, default=3)
    parser.add_argument("--memory-kib", type=int, default=65536)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    secret = base64.urlsafe_b64encode(os.urandom(32))
    keys = ReplyKeys(secret)
    digest = base64.b64encode(hashlib.sha256(b"contract").digest()).decode()

    def body(n: int) -> bytes:
        return json.dumps({"pin": f"{n % PIN_SPACE:06d}", "digest": digest,
                           "format": "raw"}).encode()

    sealed = keys.seal("client", "key-1", b'{"signature":"' + b"A" * 96 + b'"}')
    sad = "s" * 43
    now = datetime.now(UTC)
    audit_key = os.urandom(32)
    cheap: list[tuple[str, bool, Callable[[int], object]]] = [
        ("idempotency request HMAC, raw body (main before issue 11)", True,
         lambda n: keys.request_hash((b"POST", SIGN_PATH, b"", body(n)))),
        ("idempotency fingerprint without PIN fields (now)", False,
         lambda n: keys.fingerprint("POST", SIGN_PATH.decode(), b"", body(n))),
        ("sealed idempotency reply (AES-GCM open)", False,
         lambda n: keys.open("client", "key-1", sealed)),
        ("CSC SAD row (SHA-256 id + HKDF key)", False,
         lambda n: (csc._sad_id(sad), csc._sad_cipher(sad))),
        ("audit chain event (HMAC-SHA256)", False,
         lambda n: event_hash(audit_key, "0" * 64, n, now, "client", "pin_check", "cert",
                              "failure", '{"wrong_pins":1}')),
    ]
    rows = []
    for name, tests_pin, call in cheap:
        per = cpu_per_call(call, args.seconds)
        rows.append({"value": name, "tests_a_pin": tests_pin, "cpu_s_per_guess": per,
                     "pin_space_core_hours": per * PIN_SPACE / 3600 if tests_pin else None})
    params = KdfParams(args.time_cost, args.memory_kib, args.parallelism)
    cpu, wall = argon2_per_guess(params, args.argon2_runs)
    rows.append({"value": f"key blob: Argon2id t={params.time_cost}, "
                          f"{params.memory_kib // 1024} MiB, p={params.parallelism}",
                 "tests_a_pin": True, "cpu_s_per_guess": cpu, "wall_s_per_guess": wall,
                 "pin_space_core_hours": cpu * PIN_SPACE / 3600})

    argon2 = rows[-1]["cpu_s_per_guess"]
    print(f"{'stored value':62} {'tests a PIN':>11} {'CPU/guess':>12} {'10^6 guesses':>14}"
          f" {'x Argon2id':>11}")
    for row in rows:
        per = float(row["cpu_s_per_guess"])  # type: ignore[arg-type]
        hours = row["pin_space_core_hours"]
        space = f"{hours:.4g} core-h" if isinstance(hours, float) else "none"
        ratio = "-" if not row["tests_a_pin"] else f"1/{argon2 / per:,.0f}" if per < argon2 \
            else "1"
        print(f"{row['value']:62} {'yes' if row['tests_a_pin'] else 'no':>11} "
              f"{per * 1e6:>9.2f} µs {space:>14} {ratio:>11}")
    print(f"(Argon2id wall time per guess on this machine: {wall * 1e3:.0f} ms, "
          f"{os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
