"""Several replicas on one database: a revocation on one is what every other says by the time
the revoke call replies, although each answers from its own memory."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy import insert, update

from app.services.status import StatusService
from app.storage.status_tables import status_replicas
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.status import OCSP_REQUEST, get_path, issue, ocsp_request, post_ocsp, revoke


def _status(service: Service) -> StatusService:
    status: StatusService = service.container.status
    return status


async def test_revocation_on_one_replica_is_what_the_other_says(
        service: Service, replica: Service, bank: Bank) -> None:
    resource, cert = await issue(bank, 1)
    ca = service.container.issuer.ca.certificate
    request_der = ocsp_request(cert, ca)
    # The replica answers from memory: OCSP (POST and GET), and its CRL copy.
    assert (await post_ocsp(replica.http, request_der)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)
    assert (await replica.http.get(get_path(request_der))).status_code == 200
    assert _status(replica).cached(request_der) is not None
    old_crl = x509.load_der_x509_crl((await replica.http.get("/crl")).content)
    assert old_crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None

    await revoke(bank, resource["id"], reason="key_compromise")  # through the first replica

    assert _status(replica).cached(request_der) is None
    response = await post_ocsp(replica.http, request_der)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    got = ocsp.load_der_ocsp_response((await replica.http.get(get_path(request_der))).content)
    assert got.certificate_status is ocsp.OCSPCertStatus.REVOKED
    crl = x509.load_der_x509_crl((await replica.http.get("/crl")).content)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    status = (await replica.http.get(f"/v1/status/{resource['serial']}")).json()
    assert status["status"] == "revoked" and status["revocation_reason"] == "key_compromise"


async def _other_replicas(service: Service, wall: datetime,
                          *replicas: tuple[str, timedelta]) -> None:
    """Rows of other replicas (ids, and leases running until ``wall`` plus the delta) that have
    applied nothing yet; the n-th is on host elsewhere:n."""
    async with service.container.db.transaction() as conn:
        for n, (replica_id, lease) in enumerate(replicas, 1):
            await conn.execute(insert(status_replicas).values(
                id=replica_id, host=f"elsewhere:{n}", acked_generation=0,
                lease_until=wall + lease, started_at=wall))


async def test_the_revoke_call_waits_for_a_replica_that_lags(
        service: Service, bank: Bank) -> None:
    """A live replica that has not yet applied the change holds the reply back until it has."""
    resource, _cert = await issue(bank, 1)
    wall = datetime.now(UTC)
    await _other_replicas(service, wall, ("slow-replica", timedelta(seconds=30)),
                          ("dead-replica", timedelta(seconds=-30)))  # dead: its lease ran out

    async def catch_up_later() -> None:
        await asyncio.sleep(0.6)
        async with service.container.db.transaction() as conn:
            await conn.execute(update(status_replicas)
                               .where(status_replicas.c.id == "slow-replica")
                               .values(acked_generation=10**9))

    helper = asyncio.create_task(catch_up_later())
    started = time.perf_counter()
    await revoke(bank, resource["id"])
    took = time.perf_counter() - started
    await helper
    assert took >= 0.6


async def test_a_replica_that_never_confirms_delays_the_reply_boundedly(
        service: Service, bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    status = _status(service)
    monkeypatch.setattr(status, "settings",
                        status.settings.model_copy(update={"publish_timeout_seconds": 0.5}))
    resource, cert = await issue(bank, 1)
    wall = datetime.now(UTC)
    await _other_replicas(service, wall, ("stuck-replica", timedelta(seconds=60)))
    started = time.perf_counter()
    revoked = await revoke(bank, resource["id"])
    assert 0.5 <= time.perf_counter() - started < 5
    assert revoked["status"] == "revoked"
    # The revocation itself is in force here regardless.
    response = await post_ocsp(service.http,
                               ocsp_request(cert, service.container.issuer.ca.certificate))
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED


async def test_memory_is_not_used_once_the_lease_runs_out(service: Service,
                                                          bank: Bank) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(service.http, request_der)
    status = _status(service)
    assert status.lease_valid() and status.cached(request_der) is not None
    for task in status._tasks:  # a replica cut off from the database stops renewing
        task.cancel()
    status._co.last_renew -= status.settings.lease_seconds  # ...and its lease ends
    status._co.coherent_until = time.monotonic() - 0.001
    assert not status.lease_valid()
    assert status.cached(request_der) is None
    reply = await service.http.post("/ocsp", content=request_der, headers=OCSP_REQUEST)
    assert ocsp.load_der_ocsp_response(reply.content).certificate_status is (
        ocsp.OCSPCertStatus.GOOD)  # from the database instead
    assert status.memory_size == 1 and status.cached(request_der) is None  # not re-filled
    await status.sync()  # back in touch: a fresh lease
    assert status.lease_valid()


async def test_replicas_register_and_leave(service: Service, replica: Service) -> None:
    from sqlalchemy import select

    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(status_replicas))).all()
    assert {row.id for row in rows} == {_status(service).replica_id, _status(replica).replica_id}
    await _status(replica).close()
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(status_replicas))).all()
    assert {row.id for row in rows} == {_status(service).replica_id}


async def test_a_replica_far_behind_drops_its_whole_memory(service: Service, bank: Bank
                                                          ) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(service.http, request_der)
    status = _status(service)
    assert status.memory_size == 1
    async with service.container.db.transaction() as conn:
        from app.storage.status_repository import StatusRepository

        await StatusRepository(conn).prune_changes(service.clock.now() + timedelta(days=1))
    status._co.known -= 1  # as if the change log had been pruned past what it applied
    await status.sync()
    assert status.memory_size == 0
