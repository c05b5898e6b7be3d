"""The sweeper removes pending certificates that never finished, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.services.sweeper import sweep
from app.storage.repository import Repository
from app.storage.tables import certificates
from tests.conftest import Bank, Service, person


async def test_sweeper_removes_only_stale_pending_rows(service: Service, bank: Bank) -> None:
    done = (await bank.issue(person(91))).json()
    now = service.clock.now()
    async with service.container.db.transaction() as conn:
        await Repository(conn).add_pending_certificate(
            certificate_id="00000000-0000-4000-8000-000000000001",
            person_id=(await Repository(conn).get_certificate(done["id"])).person_id,
            serial="abc123", not_before=now, not_after=now + timedelta(days=1),
            key_algorithm="rsa2048", client_id=bank.client_id, replaces_id=None, now=now)
    assert (await bank.get("/v1/certificates/00000000-0000-4000-8000-000000000001")
            ).status_code == 404  # never visible
    assert (await service.http.get("/v1/status/abc123")).json()["status"] == "unknown"

    early = await sweep(service.container.uow, now + timedelta(minutes=5))
    assert early.pending_certificates == 0
    late = await sweep(service.container.uow, now + timedelta(minutes=11))
    assert late.pending_certificates == 1
    async with service.container.db.transaction(write=False) as conn:
        remaining = (await conn.execute(select(func.count()).select_from(certificates))
                     ).scalar_one()
    assert remaining == 1
    assert (await bank.get(f"/v1/certificates/{done['id']}")).status_code == 200
