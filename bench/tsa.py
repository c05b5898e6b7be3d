"""Benchmark the time-stamping authority's token assembly against its floor, in process.

A time-stamp is one TSA signature plus the TSTInfo, signed attributes and SignedData around it
(app/pki/tsp.py). The floor is the bare signature over a SHA-256 digest with the same key; the
figure beside it is a whole token (``build_token``) and a whole TimeStampResp from the DER
request (``parse_request`` + ``build_token`` + ``granted``), for an RSA-2048 and a P-256 TSA key.

    python bench/tsa.py [--count 300]

Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from asn1crypto import tsp as asn1_tsp

from app.pki import tsp
from app.pki.ca import create_ca
from app.pki.signing import Mechanism, sign_digest


def _per_call(fn: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    now = datetime.now(UTC)
    ca = create_ca(common_name="Bench CA", organization="Bench", country="KR", now=now,
                   validity_years=1)
    policy = "2.25.1.1"
    request_der = asn1_tsp.TimeStampReq({
        "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                             "hashed_message": os.urandom(32)},
        "nonce": 12345, "cert_req": True}).dump()
    print(f"{'key':8} {'what':28} {'p50 ms':>8} {'mean ms':>8} {'per s':>8}")
    for algorithm in ("rsa2048", "p256"):
        key = tsp.generate_tsa_key(algorithm)
        cert = tsp.issue_tsa_certificate(
            ca_key=ca.key, ca_certificate=ca.certificate, public_key=key.public_key(),
            serial=1, not_before=now, not_after=now + timedelta(days=30), policy_oid=policy,
            crl_url="http://x/crl", ca_issuers_url="http://x/ca")
        identity = tsp.TsaIdentity(key, cert)
        request = tsp.parse_request(request_der, policy)
        digest = os.urandom(32)

        def token(identity: tsp.TsaIdentity = identity,
                  request: tsp.TimeStampRequest = request) -> bytes:
            return tsp.build_token(identity, request, serial=tsp.new_serial(), gen_time=now,
                                   policy_oid=policy, accuracy_seconds=1)

        def reply(token: Callable[[], bytes] = token) -> bytes:
            tsp.parse_request(request_der, policy)
            return tsp.granted(token())

        rows = [("floor: one signature", lambda key=key, digest=digest: sign_digest(
                    key, digest, Mechanism("sha256"))),
                ("build_token", token), ("TimeStampResp from request", reply)]
        for what, fn in rows:
            times = _per_call(fn, args.count)
            p50, mean = statistics.median(times), statistics.fmean(times)
            print(f"{algorithm:8} {what:28} {p50 * 1e3:8.3f} {mean * 1e3:8.3f} "
                  f"{1 / mean:8.0f}")


if __name__ == "__main__":
    main()
