"""The operator's certificate listing: filters over the issued (non-pending) certificates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.certificates import MAX_WRONG_PINS, Certificate, RevocationReason, StoredState
from app.storage.repository import _certificate, _lineage, _with_lineage_count
from app.storage.tables import certificates


@dataclass(frozen=True)
class CertificateFilter:
    client_id: str | None = None
    status: str | None = None  # active | suspended | revoked | expired | locked
    issued_from: datetime | None = None
    issued_to: datetime | None = None


async def list_certificates(conn: AsyncConnection, where: CertificateFilter,
                            now: datetime) -> list[Certificate]:
    """Oldest first; ``issued_*`` bound ``not_before`` (the issuing time), ``issued_to``
    exclusive."""
    query = _with_lineage_count().where(certificates.c.state != StoredState.PENDING.value)
    if where.client_id is not None:
        query = query.where(certificates.c.issued_by_client == where.client_id)
    if where.issued_from is not None:
        query = query.where(certificates.c.not_before >= where.issued_from)
    if where.issued_to is not None:
        query = query.where(certificates.c.not_before < where.issued_to)
    revoked = certificates.c.state == StoredState.REVOKED.value
    held = and_(revoked, certificates.c.revocation_reason == int(RevocationReason.CERTIFICATE_HOLD))
    if where.status == "revoked":
        query = query.where(revoked, ~held)
    elif where.status == "suspended":
        query = query.where(held)
    elif where.status == "active":
        query = query.where(~revoked, certificates.c.not_after > now)
    elif where.status == "expired":
        query = query.where(~revoked, certificates.c.not_after <= now)
    elif where.status == "locked":
        query = query.where(_lineage.c.wrong_pins >= MAX_WRONG_PINS)
    query = query.order_by(certificates.c.not_before, certificates.c.serial)
    return [_certificate(row) for row in (await conn.execute(query)).all()]


async def find_certificate(conn: AsyncConnection, id_or_serial: str) -> Certificate | None:
    """By id, else by serial (lowercase hex, as the API prints it)."""
    from app.storage.repository import Repository

    repo = Repository(conn)
    return (await repo.get_certificate(id_or_serial)
            or await repo.get_certificate_by_serial(id_or_serial.lower()))
