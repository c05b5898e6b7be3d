"""Faults: a server killed with SIGKILL mid-issuance, the database stopped (and frozen) under
load, and the phone provider timing out. Each ends with nothing half-visible and the service
working again by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.bootstrap import unit_of_work
from app.main import create_app
from app.services import audit
from app.services.secrets import load_secrets
from app.services.sweeper import sweep
from app.settings import Settings
from app.storage.audit_log import AuditLog
from app.storage.db import Database, make_engine
from app.storage.tables import certificates
from tests.conftest import BACKEND, FixedClock, make_bank, person
from tests.resilience.conftest import Cluster, close_cluster, open_cluster, report
from tests.resilience.pgcluster import PgCluster, postgres_bin
from tests.resilience.servers import (
    Inspector,
    RemoteBank,
    Server,
    issue_body,
    prepare,
    resident,
    server_env,
    settings_for,
)

# --- (a) SIGKILL in the middle of issuances ---------------------------------------------------


async def _complete_and_single(bank: RemoteBank, people: list[dict[str, str]]
                               ) -> tuple[int, int]:
    """Every certificate the API shows is complete; at most one active per person.

    :returns: (certificates visible, active ones)
    """
    visible = active = 0
    for who in people:
        found = await bank.post(0, "/v1/certificates/lookup", {"rrn": who["rrn"]})
        assert found.status_code == 200, found.text
        data = found.json()["data"]
        for certificate in data:
            assert certificate["certificate_pem"].startswith("-----BEGIN CERTIFICATE")
            assert certificate["serial"] and certificate["not_after"]
            single = await bank.get(0, f"/v1/certificates/{certificate['id']}")
            assert single.status_code == 200 and single.json() == certificate
        live = [c for c in data if c["status"] == "active"]
        assert len(live) <= 1
        visible, active = visible + len(data), active + len(live)
    return visible, active


async def _stored_rows_complete(inspector: Inspector) -> None:
    incomplete = await inspector.scalar(
        select(func.count()).select_from(certificates).where(
            certificates.c.state != "pending",
            (certificates.c.certificate_der.is_(None)) | (certificates.c.wrapped_key.is_(None))
            | (certificates.c.master_key_id.is_(None))))
    assert incomplete == 0
    assert await inspector.max_active_per_person() <= 1


async def test_sigkill_mid_issuance_leaves_nothing_half_visible(
        server_template: Path, tmp_path: Path) -> None:
    cluster = await open_cluster(tmp_path, server_template, 1)
    try:
        await _sigkill_scenario(cluster)
    finally:
        await close_cluster(cluster)


async def _sigkill_scenario(cluster: Cluster) -> None:
    server, inspector = cluster.servers[0], cluster.inspector
    bank = await cluster.bank("crash-bank")
    people = [resident(50 + n) for n in range(4)]
    per_person = 4
    proofs = await asyncio.gather(*[bank.verified_many(p["phone"], per_person) for p in people])

    async def kill_when_pending() -> tuple[int, float]:
        """SIGKILL once some issuances are complete and another is between its two
        transactions (a pending row exists); at the latest when 6 of them are complete."""
        deadline = time.monotonic() + 30
        pending = 0
        while time.monotonic() < deadline:
            pending = await inspector.count_certificates(state="pending")
            done = await inspector.count_certificates() - pending
            if (pending and done >= 2) or done >= 6:
                break
            await asyncio.sleep(0.005)
        await asyncio.to_thread(server.kill)
        return pending, time.monotonic()

    killer = asyncio.create_task(kill_when_pending())
    replies = await asyncio.gather(*[
        bank.post(0, "/v1/certificates", issue_body(who, proof))
        for who, batch in zip(people, proofs, strict=True) for proof in batch],
        return_exceptions=True)
    pending_at_kill, _ = await killer
    done = [r for r in replies if isinstance(r, httpx.Response)]
    cut = [r for r in replies if isinstance(r, BaseException)]
    assert all(isinstance(e, httpx.TransportError) for e in cut), cut
    assert all(r.status_code in (201, 409) for r in done), [r.text for r in done]
    assert cut, "the kill came after every issuance had finished"
    confirmed = {r.json()["id"] for r in done if r.status_code == 201}

    # Restart: every certificate it shows is whole; what was confirmed before the kill is there.
    await asyncio.to_thread(server.start)
    await asyncio.to_thread(server.wait_ready)
    visible, active = await _complete_and_single(bank, people)
    for certificate_id in confirmed:
        assert (await bank.get(0, f"/v1/certificates/{certificate_id}")).status_code == 200
    await _stored_rows_complete(inspector)
    left_pending = await inspector.count_certificates(state="pending")
    stored = await inspector.count_certificates()
    assert stored == visible + left_pending  # whatever is not visible is pending
    for row in await inspector.rows(select(certificates.c.id, certificates.c.serial)
                                    .where(certificates.c.state == "pending")):
        assert (await bank.get(0, f"/v1/certificates/{row.id}")).status_code == 404
        status = (await bank.at(0).get(f"/v1/status/{row.serial}")).json()
        assert status["status"] == "unknown"

    # The restarted service works: one more issuance supersedes as usual.
    again = await bank.issue(0, people[0])
    assert again.status_code == 201, again.text
    visible_after, _ = await _complete_and_single(bank, people[:1])

    # The sweeper: nothing before the ten minutes are up, every leftover after them.
    db = Database(make_engine(cluster.database_url))
    try:
        now = datetime.now(UTC)
        early = await sweep(unit_of_work(db, None), now + timedelta(minutes=5))
        late = await sweep(unit_of_work(db, None), now + timedelta(minutes=11))
    finally:
        await db.dispose()
    assert early.pending_certificates == 0
    assert late.pending_certificates == left_pending
    assert await inspector.count_certificates(state="pending") == 0
    assert (await _complete_and_single(bank, people))[0] == visible + 1

    chain = await _verify_chain(cluster.data_dir, cluster.database_url)
    assert chain.intact, chain.problems
    assert bank.seen.server_errors == 0, bank.seen.errors
    report("faults.sigkill", issuances_fired=len(replies), answered_before_kill=len(done),
           created_before_kill=len(confirmed), cut_by_kill=len(cut),
           pending_seen_at_kill=pending_at_kill, visible_after_restart=visible,
           active_after_restart=active, pending_left=left_pending,
           swept_at_5_min=early.pending_certificates, swept_at_11_min=late.pending_certificates,
           audit_events_checked=chain.checked, audit_intact=True,
           server_errors=bank.seen.server_errors)
    del visible_after


async def _verify_chain(data_dir: Path, database_url: str) -> audit.ChainReport:
    """What `certcloud audit verify` does (tests/resilience/test_replicas.py runs the command
    itself), without starting a process."""
    db = Database(make_engine(database_url))
    try:
        async with db.transaction(write=False) as conn:
            return await audit.verify_chain(
                AuditLog(conn), load_secrets(settings_for(data_dir, database_url)).audit_key)
    finally:
        await db.dispose()


# --- (b) the database stopped, and frozen, under load ------------------------------------------

DB_TIMEOUT = 2.0
# Slack over the configured timeout: SQLAlchemy closes a pooled connection that timed out
# gracefully, for up to 2 s (a fixed timeout of its own), plus scheduling on a busy two-core
# machine. (Before app/storage/db.py bounded getting a connection, a frozen database held
# /readyz for 14 s at a 2 s timeout: the pre-ping waited out the statement timeout.)
MARGIN = 4.0


@dataclass
class Rig:
    pg: PgCluster
    server: Server
    bank: RemoteBank
    inspector: Inspector
    env: dict[str, str]
    data_dir: Path
    certificate: dict[str, Any]
    people: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def rig(server_template: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Rig]:
    """A `certcloud serve` on a PostgreSQL cluster of its own."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    base = tmp_path_factory.mktemp("outage")
    pg = PgCluster(bindir)
    server: Server | None = None
    bank: RemoteBank | None = None
    inspector = Inspector(pg.url)
    try:
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        data_dir = base / "var"
        shutil.copytree(server_template, data_dir)
        env = server_env(data_dir, pg.url,
                         CERTCLOUD_DATABASE_TIMEOUT_SECONDS=str(DB_TIMEOUT))
        await asyncio.to_thread(prepare, data_dir, pg.url)
        server = Server("outage-server", env, base / "server.log")
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(server.wait_ready)
        bank = await RemoteBank.connect([server], data_dir, pg.url, "outage-bank")
        who = resident(70)
        issued = await bank.issue(0, who)
        assert issued.status_code == 201, issued.text
        yield Rig(pg, server, bank, inspector, env, data_dir, issued.json(), [who])
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        if bank is not None:
            await bank.aclose()
        await inspector.aclose()
        await asyncio.to_thread(pg.destroy)


@dataclass
class Load:
    """Bank traffic in the background: issuances, reads and verifications."""

    rig: Rig
    outcomes: list[tuple[int, float]] = field(default_factory=list)  # (status or 0, seconds)
    failures: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def _timed(self, call: Awaitable[httpx.Response]) -> httpx.Response | None:
        started = time.monotonic()
        try:
            reply = await call
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            self.outcomes.append((0, time.monotonic() - started))
            return None
        self.outcomes.append((reply.status_code, time.monotonic() - started))
        return reply

    async def worker(self, n: int) -> None:
        bank, round_ = self.rig.bank, 0
        while not self.stopping.is_set():
            round_ += 1
            who = resident(100 + n * 50 + round_ % 5)
            if who not in self.rig.people:
                self.rig.people.append(who)
            started = await self._timed(bank.post(0, "/v1/verifications", {
                "phone": who["phone"], "channel": "sms", "purpose": "issue"}))
            await self._timed(bank.get(0, f"/v1/certificates/{self.rig.certificate['id']}"))
            if started is None or started.status_code != 201:
                await asyncio.sleep(0.05)
                continue
            messages = await bank.at(0).get("/sandbox/messages", params={"phone": who["phone"]})
            code = messages.json()[0]["code"]
            vid = started.json()["id"]
            confirmed = await self._timed(bank.post(
                0, f"/v1/verifications/{vid}/confirm", {"code": code}))
            if confirmed is None or confirmed.status_code != 200:
                continue
            issued = await self._timed(bank.post(0, "/v1/certificates", issue_body(who, vid)))
            if issued is not None and issued.status_code == 201:
                self.created.add(issued.json()["id"])

    def count(self, status: int) -> int:
        return sum(1 for s, _ in self.outcomes if s == status)


async def _probe(rig: Rig, only: tuple[str, ...] = ()
                 ) -> list[tuple[str, httpx.Response, float]]:
    """One call of each kind (or of the kinds named), each timed."""
    bank, cert = rig.bank, rig.certificate
    calls: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = [
        ("readyz", lambda: bank.at(0).get("/readyz")),
        ("get", lambda: bank.get(0, f"/v1/certificates/{cert['id']}")),
        ("lookup", lambda: bank.post(0, "/v1/certificates/lookup",
                                     {"rrn": rig.people[0]["rrn"]})),
        ("verification", lambda: bank.post(0, "/v1/verifications", {
            "phone": rig.people[0]["phone"], "channel": "sms", "purpose": "issue"})),
        ("issue", lambda: bank.post(0, "/v1/certificates", issue_body(
            rig.people[0], "00000000-0000-4000-8000-000000000000"))),
        ("revoke", lambda: bank.post(0, f"/v1/certificates/{cert['id']}/revoke",
                                     {"pin": "480213"})),
        ("status", lambda: bank.at(0).get(f"/v1/status/{cert['serial']}")),
        ("idempotent", lambda: bank.post(0, "/v1/verifications", {
            "phone": rig.people[0]["phone"], "channel": "sms"},
            {"Idempotency-Key": f"outage-{time.monotonic_ns()}"})),
    ]
    results = []
    for name, call in calls:
        if only and name not in only:
            continue
        started = time.monotonic()
        reply = await call()
        results.append((name, reply, time.monotonic() - started))
    return results


def _assert_fast_503s(results: list[tuple[str, httpx.Response, float]]) -> float:
    slowest = 0.0
    for name, reply, elapsed in results:
        assert reply.status_code == 503, (name, reply.status_code, reply.text)
        assert reply.headers["content-type"] == "application/problem+json", name
        body = reply.json()
        assert body["status"] == 503 and body["code"] and body["request_id"], body
        assert "Traceback" not in reply.text and "asyncpg" not in reply.text
        assert elapsed < DB_TIMEOUT + MARGIN, (name, elapsed)
        slowest = max(slowest, elapsed)
    return slowest


async def _wait_recovered(rig: Rig, limit: float = 45.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(httpx.HTTPError):
            if (await rig.bank.at(0).get("/readyz")).status_code == 200:
                return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"the service did not recover by itself:\n{rig.server.log_tail()}")


async def _nothing_half_written(rig: Rig, load: Load) -> tuple[int, int]:
    await _stored_rows_complete(rig.inspector)
    for certificate_id in load.created:  # every 201 the banks got is there, whole
        got = await rig.bank.get(0, f"/v1/certificates/{certificate_id}")
        assert got.status_code == 200 and got.json()["certificate_pem"]
    visible, _active = await _complete_and_single(rig.bank, rig.people)
    pending = await rig.inspector.count_certificates(state="pending")
    return visible, pending


async def _issue_after_recovery(rig: Rig) -> None:
    who = resident(99)
    issued = await rig.bank.issue(0, who)
    assert issued.status_code == 201, issued.text
    rig.people.append(who)


@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres", reason="runs once, in the CERTCLOUD_TEST_DB=postgres "
                    "pass (it starts a PostgreSQL cluster of its own)")
async def test_database_stopped_under_load(rig: Rig) -> None:
    load = Load(rig)
    workers = [asyncio.create_task(load.worker(n)) for n in range(2)]
    try:
        await asyncio.sleep(2.0)
        before = len(load.outcomes)
        await asyncio.to_thread(rig.pg.stop, "immediate")
        await asyncio.sleep(0.3)
        probes = await _probe(rig)
        slowest = _assert_fast_503s(probes)
        await asyncio.sleep(2.0)  # the load goes on against the dead database
        during = len(load.outcomes) - before
        await asyncio.to_thread(rig.pg.start)
        recovered_in = await _wait_recovered(rig)
        await asyncio.sleep(1.0)
    finally:
        load.stopping.set()
        await asyncio.gather(*workers, return_exceptions=True)
    await _issue_after_recovery(rig)

    assert not load.failures, load.failures[:5]
    assert all(s < 500 or s == 503 for s, _ in load.outcomes), load.outcomes
    assert max(t for _, t in load.outcomes) < DB_TIMEOUT + MARGIN
    assert rig.bank.seen.errors == [] or all(" 503 " in e for e in rig.bank.seen.errors)
    visible, pending = await _nothing_half_written(rig, load)
    chain = await _verify_chain(rig.data_dir, rig.pg.url)
    assert chain.intact, chain.problems
    assert rig.server.unexpected_errors() == [], rig.server.log_tail()
    report("faults.database_stopped", load_calls=len(load.outcomes), calls_during_outage=during,
           load_503=load.count(503), load_5xx_other=sum(
               1 for s, _ in load.outcomes if s >= 500 and s != 503),
           created_under_load=len(load.created), probe_calls=len(probes), probe_slowest_s=round(
               slowest, 2), timeout_s=DB_TIMEOUT, recovered_in_s=round(recovered_in, 2),
           visible_certificates=visible, pending_left=pending, audit_intact=True)


@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres", reason="runs once, in the CERTCLOUD_TEST_DB=postgres "
                    "pass (it starts a PostgreSQL cluster of its own)")
async def test_database_frozen_answers_503_within_the_timeout(rig: Rig) -> None:
    """SIGSTOP on every database process: connections neither fail nor answer. The service
    must still answer fast, not hang on the frozen sockets."""
    frozen = await asyncio.to_thread(rig.pg.freeze)
    try:
        # Each waits out the timeout: four kinds are enough (a read, a write, readiness and a
        # request with an Idempotency-Key, whose claim is the first thing to hit the database).
        results = await _probe(rig, ("readyz", "get", "issue", "idempotent"))
    finally:
        await asyncio.to_thread(rig.pg.thaw, frozen)
    slowest = _assert_fast_503s(results)
    recovered_in = await _wait_recovered(rig)
    await _issue_after_recovery(rig)
    report("faults.database_frozen", probe_calls=len(results),
           probe_seconds={name: round(t, 2) for name, _, t in results},
           probe_slowest_s=round(slowest, 2), timeout_s=DB_TIMEOUT,
           recovered_in_s=round(recovered_in, 2))


# --- (c) the phone provider timing out -------------------------------------------------------


class SlowSens:
    """A local HTTP server standing in for NAVER SENS: it answers like SENS, or, while
    ``hang`` is set, reads the request and never answers."""

    def __init__(self) -> None:
        self.hang = True
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length)
            if self.hang:
                await asyncio.sleep(3600)
                return
            self.bodies.append(body)
            reply = (b'{"requestId":"r-1","requestTime":"now","statusCode":"202",'
                     b'"statusName":"success"}')
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(reply)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


PROVIDER_TIMEOUT = 0.5


async def test_provider_timing_out_is_503_and_retryable(settings: Settings,
                                                        clock: FixedClock) -> None:
    """The provider verifier as configured (CERTCLOUD_VERIFIER__KIND=provider) against a SENS
    that accepts the connection and never answers: the configured timeout holds."""
    sens = SlowSens()
    base_url = await sens.start()
    configured = settings.model_copy(update={"verifier": settings.verifier.model_copy(update={
        "kind": "provider", "timeout_seconds": PROVIDER_TIMEOUT,
        "sens": settings.verifier.sens.model_copy(update={
            "service_id": "ncp:sms:kr:1:cc", "sender": "0212345678", "base_url": base_url}),
    })})
    app = create_app(configured, clock=clock)
    timings: list[float] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test",
                                         timeout=30) as http:
                bank = await make_bank(http, app.state.container)
                who = person(71)
                body = {"phone": who["phone"], "channel": "sms", "purpose": "issue"}
                for attempt in range(3):
                    started = time.monotonic()
                    reply = await bank.post("/v1/verifications", body,
                                            headers={"Idempotency-Key": f"slow-{attempt}"})
                    timings.append(time.monotonic() - started)
                    assert reply.status_code == 503, reply.text
                    assert reply.headers["content-type"] == "application/problem+json"
                    assert reply.json()["code"] == "verifier_unavailable"
                    assert timings[-1] < PROVIDER_TIMEOUT + MARGIN
                # The same key again after the outage runs again (a 5xx is never stored).
                sens.hang = False
                retried = await bank.post("/v1/verifications", body,
                                          headers={"Idempotency-Key": "slow-0"})
                assert retried.status_code == 201, retried.text
                assert len(sens.bodies) == 1
                text = str(json.loads(sens.bodies[0])["content"])
                code = next(word for word in text.split() if word.isdigit())
                confirmed = await bank.post(
                    f"/v1/verifications/{retried.json()['id']}/confirm", {"code": code})
                assert confirmed.status_code == 200, confirmed.text
                issued = await bank.issue(who, verification_id=retried.json()["id"])
                assert issued.status_code == 201, issued.text
    finally:
        await sens.close()
    report("faults.provider_timeout", attempts_while_hanging=len(timings), all_503=True,
           slowest_s=round(max(timings), 2), timeout_s=PROVIDER_TIMEOUT,
           recovered_verification=True, issued_after=True)
