"""Parallel verification confirms against a real ``certcloud serve``.

* Pool exhaustion (issue 11, finding 3): a confirm used to read the rate limits on a second
  pooled connection while holding its write transaction, so enough parallel confirms took
  every connection and waited for one more: ``/readyz`` hung and the confirms answered 503.
* Wrong codes racing (finding 10): a try is taken by a conditional update before the code is
  compared, so concurrent confirms of one verification never compare more than five wrong
  codes, and once five were wrong the right one is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.domain.verification import MAX_WRONG_CODES
from tests.resilience.conftest import Cluster, report, running_cluster
from tests.support.bank import Bank
from tests.support.problems import assert_problem

PARALLEL_CONFIRMS = 40  # twice PostgreSQL's pool (10 + 10 overflow), past SQLite's (5 + 10)
RACING_CODES = 12


@pytest.fixture(scope="module")
async def server(server_template: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path_factory.mktemp("confirms"), server_template, 1) as cluster:
        yield cluster


def _phone(n: int) -> str:
    return f"+8210{6666_0000 + n:08d}"


async def _started(bank: Bank, phone: str) -> tuple[str, str]:
    """A pending SMS verification and its code."""
    started = await bank.post("/v1/verifications", {"phone": phone, "channel": "sms",
                                                       "purpose": "issue"})
    assert started.status_code == 201, started.text
    return str(started.json()["id"]), await bank.sms_code(phone)


def _wrong(code: str, n: int) -> str:
    return f"{(int(code) + n) % 10**6:06d}"


async def test_parallel_confirms_leave_the_pool_to_readiness(server: Cluster) -> None:
    bank = await server.bank("parallel-confirms")
    started = [await _started(bank, _phone(n)) for n in range(PARALLEL_CONFIRMS)]
    done = asyncio.Event()
    readiness: list[int] = []
    slowest = 0.0

    async def probe(http: httpx.AsyncClient) -> None:
        nonlocal slowest
        while not done.is_set():
            began = time.monotonic()
            try:
                readiness.append((await http.get("/readyz")).status_code)
            except httpx.TimeoutException:
                readiness.append(0)  # no answer at all
            slowest = max(slowest, time.monotonic() - began)
            await asyncio.sleep(0.05)

    async def confirms() -> list[httpx.Response]:
        try:
            return list(await asyncio.gather(*[
                bank.post(f"/v1/verifications/{vid}/confirm",
                          {"code": code if n % 2 else _wrong(code, 1)})
                for n, (vid, code) in enumerate(started)]))
        finally:
            done.set()

    async with httpx.AsyncClient(base_url=server.servers[0].url, timeout=20) as http:
        replies, _ = await asyncio.gather(confirms(), probe(http))
    statuses = Counter(r.status_code for r in replies)
    report("confirms.parallel", tried=PARALLEL_CONFIRMS, statuses=dict(statuses),
           readyz=dict(Counter(readiness)), slowest_readyz_seconds=round(slowest, 3))
    assert statuses == {200: PARALLEL_CONFIRMS // 2, 422: PARALLEL_CONFIRMS // 2}, \
        [r.text for r in replies if r.status_code >= 500][:3]
    assert readiness and set(readiness) == {200}, Counter(readiness)
    assert not server.servers[0].unexpected_errors()


async def test_concurrent_wrong_codes_never_pass_the_limit(server: Cluster) -> None:
    bank = await server.bank("racing-codes")
    verification_id, code = await _started(bank, _phone(100))
    guesses = [_wrong(code, n) for n in range(1, RACING_CODES)] + [code]  # the right one last
    replies = await asyncio.gather(*[
        bank.post(f"/v1/verifications/{verification_id}/confirm", {"code": guess})
        for guess in guesses])
    outcomes = Counter((r.status_code, r.json().get("code")) for r in replies)
    report("confirms.racing_codes", tried=RACING_CODES,
           outcomes={f"{s} {c}": n for (s, c), n in outcomes.items()})
    evaluated_wrong = outcomes[(422, "verification_code_invalid")]
    assert evaluated_wrong <= MAX_WRONG_CODES, outcomes
    assert set(outcomes) <= {(422, "verification_code_invalid"), (200, None),
                             (409, "verification_failed"), (409, "verification_verified")}
    state = (await bank.get(f"/v1/verifications/{verification_id}")).json()["status"]
    if replies[-1].status_code == 200:  # the right code came in before the fifth wrong one
        assert state == "verified" and evaluated_wrong < MAX_WRONG_CODES, outcomes
    else:
        assert state == "failed" and evaluated_wrong == MAX_WRONG_CODES, outcomes


async def test_after_five_wrong_codes_the_right_one_is_refused(server: Cluster) -> None:
    bank = await server.bank("five-wrong")
    verification_id, code = await _started(bank, _phone(200))
    path = f"/v1/verifications/{verification_id}/confirm"
    wrong = await asyncio.gather(*[bank.post(path, {"code": _wrong(code, n)})
                                   for n in range(1, MAX_WRONG_CODES + 1)])
    assert sorted(r.json()["remaining_attempts"] for r in wrong) == list(range(MAX_WRONG_CODES))
    right = await bank.post(path, {"code": code})
    assert_problem(right, 409, "verification_failed")
