"""Benchmark the keyed hashes of issue 11 (findings 6 and 7): in process and in a token.

Figures:

* **audit chain HMACs/s** - one row's HMAC at a time (as ``audit.append`` makes them), and in
  batches of 1000 (as ``verify_chain`` makes them), with the key in process and in SoftHSM2.
* **RRN lookup HMACs/s** - ``ServerSecrets.rrn_lookup_hmac``, key in process and in the token.
* **the attacker's searches** - the time one core needs, with the key, to find a birth date
  from the stored patterns (every date 1900-2026, ~46,000 HMACs) and then the RRN (the ~4 million
  back halves for a known birth date), which is what the PIN pattern key and the token's RRN
  key take away.

    python bench/keyed_hashes.py [--seconds 2] [--skip-hsm] [--module PATH]

Figures only, no asserts. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.custody import Token

KEY = b"k" * 43


async def rate(op: Callable[[], Awaitable[int]], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += await op()
    return done / (time.perf_counter() - start)


async def chain_figures(key: Any, seconds: float) -> dict[str, float]:
    message = b'["env-0123",' + b"x" * 200 + b"]"

    async def one() -> int:
        await key.macs([message])
        return 1

    async def batch() -> int:
        await key.macs([message] * 1000)
        return 1000

    return {"append_hmacs_per_s": await rate(one, seconds),
            "verify_hmacs_per_s": await rate(batch, seconds)}


async def lookup_rate(secrets_: Any, seconds: float) -> float:
    async def one() -> int:
        await secrets_.rrn_lookup_hmac("9001011234567")
        return 1

    return await rate(one, seconds)


def attacker_seconds() -> dict[str, float]:
    start = time.perf_counter()
    for n in range(46_000):  # every birth date, YYMMDD, against one person's salt
        hmac.new(KEY, f"pin-pattern:v2:0011223344556677:{n:06d}".encode(),
                 hashlib.sha256).digest()
    dates = time.perf_counter() - start
    start = time.perf_counter()
    for n in range(200_000):  # a sample of the ~4e6 back halves, scaled below
        hmac.new(KEY, f"rrn:900101{n:07d}".encode(), hashlib.sha256).digest()
    rrn = (time.perf_counter() - start) * 4e6 / 200_000
    return {"birth_date_search_s": dates, "rrn_search_s": rrn}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.services.secrets import LocalChainKey, ServerSecrets
    from app.storage.token_hmac import generate_hmac_key, import_hmac_key

    report: dict[str, Any] = {"attacker (one core, key in hand)": attacker_seconds()}
    local = ServerSecrets(rrn_hmac_key=KEY, code_hmac_key=KEY, token_keys=())
    report["in process"] = {**await chain_figures(LocalChainKey("env", KEY), args.seconds),
                            "lookup_hmacs_per_s": await lookup_rate(local, args.seconds)}
    if not args.skip_hsm:
        with tempfile.TemporaryDirectory() as tmp:
            session = Token(Path(tmp), args.module).session()
            chain = generate_hmac_key(session, "bench-audit")
            in_token = ServerSecrets(rrn_hmac_key=b"", code_hmac_key=KEY, token_keys=(),
                                     token_rrn_key=import_hmac_key(session, "bench-rrn", KEY))
            report["softhsm2"] = {**await chain_figures(chain, args.seconds),
                                  "lookup_hmacs_per_s": await lookup_rate(in_token,
                                                                          args.seconds)}
            session.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--skip-hsm", action="store_true")
    parser.add_argument("--module", default=None)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    for where, figures in report.items():
        print(where)
        for name, value in figures.items():
            print(f"  {name:<24} {value:>14,.2f}")


if __name__ == "__main__":
    main()
