"""The CRL through the app: served from the stored copy, regenerated when revocations change it
and before nextUpdate, numbers that only go up, expired entries dropped."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import delete

from app.main import create_app
from app.pki import crl as crl_pki
from app.services.status import StatusService
from app.storage.status_tables import crls
from tests.support.app import Service, count_calls
from tests.support.bank import Bank
from tests.support.status import issue, ocsp_request, post_ocsp, revoke
from tests.support.tools import pkilint


def _status(service: Service) -> StatusService:
    status: StatusService = service.container.status
    return status


async def _get_crl(service: Service) -> x509.CertificateRevocationList:
    reply = await service.http.get("/crl")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(reply.content)
    assert crl.is_signature_valid(service.container.issuer.ca.certificate.public_key())  # type: ignore[arg-type]
    return crl


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


async def test_served_with_etag_and_matching_distribution_point(
        service: Service, bank: Bank, tmp_path: Path) -> None:
    _resource, cert = await issue(bank, 1)
    reply = await service.http.get("/crl")
    assert reply.status_code == 200
    crl = x509.load_der_x509_crl(reply.content)
    assert len(crl) == 0
    assert parsedate_to_datetime(reply.headers["last-modified"]) == crl.last_update_utc
    assert parsedate_to_datetime(reply.headers["expires"]) == crl.next_update_utc
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    assert "no-cache" in reply.headers["cache-control"]
    etag = reply.headers["etag"]
    not_modified = await service.http.get("/crl", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""

    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert cdp[0].full_name == idp.full_name == [
        x509.UniformResourceIdentifier("http://certcloud.test/crl")]
    path = tmp_path / "crl.der"
    path.write_bytes(reply.content)
    pkilint("crl", path)


async def test_a_revocation_is_on_the_crl_when_the_revoke_call_replies(
        service: Service, bank: Bank) -> None:
    before = await _get_crl(service)
    revoked, revoked_cert = await issue(bank, 1)
    _kept, kept_cert = await issue(bank, 2)
    service.clock.advance(timedelta(seconds=7, microseconds=654321))
    answer = await revoke(bank, revoked["id"], reason="key_compromise")
    crl = await _get_crl(service)
    assert _number(crl) > _number(before)
    entry = crl.get_revoked_certificate_by_serial_number(revoked_cert.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == datetime.fromisoformat(
        answer["revoked_at"].replace("Z", "+00:00")).replace(microsecond=0)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise)
    assert crl.get_revoked_certificate_by_serial_number(kept_cert.serial_number) is None


async def test_serving_never_builds(service: Service, bank: Bank,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    builds = count_calls(monkeypatch, crl_pki, "build_crl")
    first = await service.http.get("/crl")
    for _ in range(20):
        assert (await service.http.get("/crl")).content == first.content
    _status(service)._crl = None  # a replica that has not loaded it yet reads the stored copy
    assert (await service.http.get("/crl")).content == first.content
    assert builds == []
    resource, _cert = await issue(bank, 1)
    await revoke(bank, resource["id"])
    assert len(builds) == 1  # the revocation rebuilt it, once


async def test_crl_numbers_only_go_up_across_restarts_and_replicas(
        service: Service, bank: Bank) -> None:
    first = _number(await _get_crl(service))
    other = create_app(service.settings, clock=service.clock)  # a second replica, same DB
    async with other.router.lifespan_context(other):
        replica: StatusService = other.state.container.status
        built = await asyncio.gather(_status(service).regenerate_crl(), replica.regenerate_crl(),
                                     _status(service).regenerate_crl(),
                                     replica.regenerate_crl())
        numbers = [meta.number for meta in built]
        assert len(set(numbers)) == 4 and min(numbers) > first
        await _status(service).sync()  # what the sync loop does within 50 ms
        await replica.sync()
        assert _number(await _get_crl(service)) == max(numbers)
        assert (await replica.current_crl()).meta.number == max(numbers)
    restarted = create_app(service.settings, clock=service.clock)  # a restart
    async with restarted.router.lifespan_context(restarted):
        again = await restarted.state.container.status.regenerate_crl()
        assert again.number > max(numbers)


async def test_expired_entries_leave_after_one_crl_past_expiry(service: Service,
                                                               bank: Bank) -> None:
    resource, cert = await issue(bank, 1)
    await revoke(bank, resource["id"], reason="superseded")
    status = _status(service)
    assert (await _get_crl(service)).get_revoked_certificate_by_serial_number(
        cert.serial_number) is not None
    service.clock.set(cert.not_valid_after_utc + timedelta(days=1))
    await status.regenerate_crl()  # the first CRL issued after expiry still carries it
    assert (await _get_crl(service)).get_revoked_certificate_by_serial_number(
        cert.serial_number) is not None
    service.clock.advance(timedelta(hours=1))
    await status.regenerate_crl()
    crl = await _get_crl(service)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None
    assert len(crl) == 0


async def test_reissued_before_next_update(service: Service) -> None:
    status = _status(service)
    first = await _get_crl(service)
    assert not await status.crl_due()
    service.clock.advance(timedelta(hours=23))  # re-issued once a day by default
    await status.maintain()
    assert _number(await _get_crl(service)) == _number(first)
    service.clock.advance(timedelta(hours=1, minutes=1))
    assert await status.crl_due()
    await status.maintain()
    second = await _get_crl(service)
    assert _number(second) > _number(first)
    assert second.last_update_utc == service.clock.now().replace(microsecond=0)


async def test_a_crl_behind_a_revocation_is_due(service: Service, bank: Bank,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A revoking request whose publishing failed leaves the CRL behind; the loop catches up."""
    resource, cert = await issue(bank, 1)
    status = _status(service)

    async def failing(_generation: int) -> None:
        raise RuntimeError("CA key unavailable")

    monkeypatch.setattr(status, "ensure_crl", failing)
    await revoke(bank, resource["id"])  # the revocation itself stands
    assert (await _get_crl(service)).get_revoked_certificate_by_serial_number(
        cert.serial_number) is None
    assert await status.crl_due()
    await status.maintain()
    assert (await _get_crl(service)).get_revoked_certificate_by_serial_number(
        cert.serial_number) is not None


async def test_large_crls_are_built_in_a_child_process(service: Service, bank: Bank,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    status = _status(service)
    monkeypatch.setattr(status, "settings",
                        status.settings.model_copy(update={"crl_subprocess_min_entries": 2}))
    in_process: list[int] = []
    monkeypatch.setattr(crl_pki, "build_crl", lambda *a, **k: in_process.append(1))
    serials = []
    for n, reason in ((1, "key_compromise"), (2, None), (3, "superseded")):
        resource, cert = await issue(bank, n)
        serials.append(cert.serial_number)
        await revoke(bank, resource["id"], reason=reason)
    crl = await _get_crl(service)
    assert {entry.serial_number for entry in crl} == set(serials)
    assert in_process == [1]  # only the first revocation (one entry) was built here
    path = tmp_path / "child.der"
    path.write_bytes(await _crl_bytes(service))
    pkilint("crl", path)


async def _crl_bytes(service: Service) -> bytes:
    return (await service.http.get("/crl")).content


async def test_building_does_not_block_the_event_loop(service: Service, bank: Bank,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(service.http, request_der)  # cached
    real = crl_pki.build_crl

    def slow(*args: Any, **kwargs: Any) -> bytes:
        time.sleep(1.0)  # a big CRL
        return real(*args, **kwargs)

    monkeypatch.setattr(crl_pki, "build_crl", slow)
    build = asyncio.create_task(_status(service).regenerate_crl())
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    for _ in range(10):
        await post_ocsp(service.http, request_der)
        assert (await service.http.get("/crl")).status_code == 200
    assert time.perf_counter() - started < 0.5
    assert not build.done()
    await build


async def test_no_crl_yet_is_503(service: Service) -> None:
    async with service.container.db.transaction() as conn:
        await conn.execute(delete(crls))
    _status(service)._crl = None
    reply = await service.http.get("/crl")
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "crl_unavailable"
