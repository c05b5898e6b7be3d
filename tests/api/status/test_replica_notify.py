"""How a revocation reaches another replica: PostgreSQL LISTEN/NOTIFY, and the 50 ms poll it
falls back to (SQLite; a listener connection that dropped, until it is back).

The latency test prints the figures (no timed asserts): the revoke call, and from its reply to
``revoked`` on the other replica, with the notification and with the poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.x509 import ocsp
from sqlalchemy import text

from app.services.status import StatusService
from app.storage.status_listener import CHANNEL, PgChangeListener
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.status import issue, ocsp_request, post_ocsp, revoke


def _status(service: Service) -> StatusService:
    status: StatusService = service.container.status
    return status


def _listener(service: Service) -> PgChangeListener:
    changes = _status(service)._ctx.changes
    assert isinstance(changes, PgChangeListener)
    return changes


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def _postgres_only(service: Service) -> None:
    if service.container.db.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite replicas poll")


async def _revoke_and_watch(service: Service, replica: Service, bank: Bank, n: int
                            ) -> tuple[float, float]:
    """Revoke a certificate the replica holds in memory through ``service``; returns the revoke
    call's duration and the time from its reply to ``revoked`` on the replica (ms)."""
    resource, cert = await issue(bank, n)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(replica.http, request_der)
    assert _status(replica).cached(request_der) is not None
    began = time.perf_counter()
    await revoke(bank, resource["id"])
    replied = time.perf_counter()
    while (await post_ocsp(replica.http, request_der)).certificate_status is not (
            ocsp.OCSPCertStatus.REVOKED):
        assert time.perf_counter() - replied < 60, "the replica never said revoked"
        await asyncio.sleep(0.0005)
    return (replied - began) * 1000, (time.perf_counter() - replied) * 1000


async def _applied_at(replica: Service, generation: int, began: float) -> float:
    co = _status(replica)._co
    while co.known < generation:
        await asyncio.sleep(0.0002)
    return (time.perf_counter() - began) * 1000


async def _commit_to_apply(service: Service, replica: Service,
                           notified: list[float] | None = None) -> float:
    """From a committed generation bump (no waiting for replicas) to the replica applying it,
    in ms: what the revoking request waits for, without the rest of a revocation. With
    ``notified``, also from the commit to the replica's listener getting the notification."""
    arrived: list[float] = []
    conn_ = _listener(replica)._conn if notified is not None else None
    if conn_ is not None:
        def note(*_args: Any) -> None:
            arrived.append(time.perf_counter())
        await conn_.add_listener(CHANNEL, note)
    try:
        async with service.container.uow() as uow:
            generation = await uow.status.bump_generation("probe", None, service.clock.now())
            await uow.commit()
        began = time.perf_counter()  # the commit has returned
        applied = await asyncio.wait_for(_applied_at(replica, generation, began), 30)
    finally:
        if conn_ is not None:
            await conn_.remove_listener(CHANNEL, note)
    if notified is not None and arrived:
        notified.append(max(0.0, arrived[0] - began) * 1000)
    return applied


async def test_revoke_to_replica_latency_with_notify_and_with_poll(
        service: Service, replica: Service, bank: Bank, capsys: Any) -> None:
    rounds = 7
    lines = []
    modes = ["poll"] if service.container.db.is_sqlite else ["notify", "poll"]
    for mode in modes:
        if mode == "notify":
            await _until(lambda: _listener(replica).listening and _listener(service).listening)
        else:  # the fallback: no listener, so every replica polls every 50 ms
            for each in (service, replica):
                if _status(each)._ctx.changes is not None:
                    await _listener(each).close()
        calls, after, applies, notified = [], [], [], []
        for i in range(rounds):
            call_ms, after_ms = await _revoke_and_watch(service, replica, bank,
                                                        11 + len(lines) * 10 + i)
            calls.append(call_ms)
            after.append(after_ms)
            applies.append(await _commit_to_apply(
                service, replica, notified if mode == "notify" else None))
        each = ", ".join(f"{a:.1f}" for a in applies)
        if notified:
            lines.append(f"{mode:>6}: commit->notification at the replica median "
                         f"{sorted(notified)[len(notified) // 2]:.2f} ms")
        lines.append(f"{mode:>6}: commit->replica applied median "
                     f"{sorted(applies)[rounds // 2]:.1f} ms ({each}); "
                     f"revoke call median {sorted(calls)[rounds // 2]:.0f} ms; revoke reply->"
                     f"revoked on the replica median {sorted(after)[rounds // 2]:.1f} ms")
        # By the reply, the replica had applied the change: it answered revoked at once.
    with capsys.disabled():
        print("\nrevocation -> other replica (" + ("sqlite" if service.container.db.is_sqlite
                                                     else "postgres") + "):")
        for line in lines:
            print("  " + line)


async def test_an_idle_listening_replica_does_not_poll(service: Service,
                                                       replica: Service) -> None:
    _postgres_only(service)
    status = _status(replica)
    await _until(lambda: _listener(replica).listening)
    status.settings = status.settings.model_copy(update={"lease_seconds": 300.0})
    await asyncio.sleep(0.2)  # a sync already under way ends
    syncs = 0
    real_sync = status._replicas.sync

    async def counted() -> None:
        nonlocal syncs
        syncs += 1
        await real_sync()

    status._replicas.sync = counted  # type: ignore[method-assign]
    await asyncio.sleep(1.0)  # polling would sync 20 times
    assert syncs == 0
    await _commit_to_apply(service, replica)  # a change: exactly the notified sync
    assert syncs >= 1


async def test_the_listener_reconnects_after_its_connection_is_killed(
        service: Service, replica: Service, bank: Bank) -> None:
    """pg_terminate_backend on the replica's listening connection: it polls meanwhile (a
    revocation still reaches it, its lease being far too long to help), then listens again."""
    _postgres_only(service)
    listener, status = _listener(replica), _status(replica)
    await _until(lambda: listener.listening)
    assert listener.connects == 1
    # Without the poll the replica would only sync at a quarter lease: 75 s, past the
    # revoking call's 10 s wait, so the replica would still answer good from memory.
    status.settings = status.settings.model_copy(update={"lease_seconds": 300.0})
    _status(service).settings = _status(service).settings.model_copy(
        update={"publish_timeout_seconds": 10.0})
    await _commit_to_apply(service, replica)  # it now waits a quarter of the new lease
    await asyncio.sleep(0.2)
    held, real_connect = asyncio.Event(), listener.connect

    async def held_connect(*args: Any, **kwargs: Any) -> Any:  # the database is back later
        await held.wait()
        return await real_connect(*args, **kwargs)

    listener.connect = held_connect
    pid = listener._conn.get_server_pid()
    async with service.container.db.transaction() as conn:
        killed = (await conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                                     {"pid": pid})).scalar_one()
    assert killed
    await _until(lambda: not listener.listening)

    resource, cert = await issue(bank, 31)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(replica.http, request_der)
    assert status.cached(request_der) is not None
    await revoke(bank, resource["id"])  # its reply waits for the replica: it polled
    assert status.cached(request_der) is None
    assert (await post_ocsp(replica.http, request_der)).certificate_status is (
        ocsp.OCSPCertStatus.REVOKED)
    assert not listener.listening and listener.connects == 1

    held.set()
    await _until(lambda: listener.listening and listener.connects == 2)
    await _revoke_and_watch(service, replica, bank, 32)  # and by notification again
    pid_after = listener._conn.get_server_pid()
    assert pid_after != pid
