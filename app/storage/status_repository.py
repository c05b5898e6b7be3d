"""Queries of the status tables, one transaction's worth at a time (see status_tables.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, cast, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.certificates import VALIDITY, StoredState
from app.domain.records import CertificateState, Change, CrlMeta
from app.storage.status_tables import (
    STATE_ROW_ID,
    crls,
    ocsp_responders,
    ocsp_responses,
    status_changes,
    status_replicas,
    status_state,
)
from app.storage.tables import certificates

_STATE_COLUMNS = (certificates.c.serial, certificates.c.state, certificates.c.not_after,
                  certificates.c.revoked_at, certificates.c.revocation_reason)
_CRL_META = (crls.c.number, crls.c.generation, crls.c.this_update, crls.c.next_update,
             crls.c.entries, crls.c.sha256)


def _state(row: Any) -> CertificateState:
    return CertificateState(row.serial, StoredState(row.state), row.not_after, row.revoked_at,
                            row.revocation_reason)


def _crl_meta(row: Any) -> CrlMeta:
    return CrlMeta(row.number, row.generation, row.this_update, row.next_update, row.entries,
                   row.sha256)


class StatusRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    # --- the generation and its change log ------------------------------------------------

    async def ensure_state(self) -> None:
        """The single state row; re-created (cRLNumber past every stored CRL) if it is gone."""
        if (await self.conn.execute(select(status_state.c.id))).first() is not None:
            return
        top_crl = (await self.conn.execute(select(func.max(crls.c.number)))).scalar()
        top_change = (await self.conn.execute(
            select(func.max(status_changes.c.generation)))).scalar()
        await self._insert_ignore(status_state, {
            "id": STATE_ROW_ID, "generation": top_change or 0, "crl_number": top_crl or 0})

    async def bump_generation(self, kind: str, detail: str | None, now: datetime) -> int:
        """Count one change and log it; the row lock is held until the transaction ends, so
        generations follow commit order."""
        generation = (await self.conn.execute(
            update(status_state).where(status_state.c.id == STATE_ROW_ID)
            .values(generation=status_state.c.generation + 1)
            .returning(status_state.c.generation))).scalar_one()
        await self.conn.execute(insert(status_changes).values(
            generation=generation, kind=kind, detail=detail, created_at=now))
        return int(generation)

    async def lock_state(self) -> None:
        """Serialise with every other writer of the state row until this transaction ends."""
        await self.conn.execute(update(status_state).where(status_state.c.id == STATE_ROW_ID)
                                .values(generation=status_state.c.generation))

    async def current_generation(self) -> int:
        value = (await self.conn.execute(select(status_state.c.generation).where(
            status_state.c.id == STATE_ROW_ID))).scalar()
        return int(value or 0)

    async def changes_since(self, generation: int, limit: int) -> list[Change]:
        rows = (await self.conn.execute(
            select(status_changes.c.generation, status_changes.c.kind, status_changes.c.detail)
            .where(status_changes.c.generation > generation)
            .order_by(status_changes.c.generation).limit(limit))).all()
        return [Change(int(r.generation), r.kind, r.detail) for r in rows]

    async def latest_change(self, kind: str) -> int:
        value = (await self.conn.execute(select(func.max(status_changes.c.generation))
                                         .where(status_changes.c.kind == kind))).scalar()
        return int(value or 0)

    async def prune_changes(self, before: datetime) -> int:
        result = await self.conn.execute(
            delete(status_changes).where(status_changes.c.created_at < before))
        return int(result.rowcount or 0)

    async def allocate_crl_number(self) -> tuple[int, int]:
        """The next cRLNumber and the generation committed when it was taken."""
        row = (await self.conn.execute(
            update(status_state).where(status_state.c.id == STATE_ROW_ID)
            .values(crl_number=status_state.c.crl_number + 1)
            .returning(status_state.c.crl_number, status_state.c.generation))).one()
        return int(row.crl_number), int(row.generation)

    # --- replicas ---------------------------------------------------------------------------

    async def renew_replica(self, replica_id: str, *, host: str, acked_generation: int,
                            lease_until: datetime, now: datetime) -> None:
        values = {"acked_generation": acked_generation, "lease_until": lease_until}
        result = await self.conn.execute(
            update(status_replicas).where(status_replicas.c.id == replica_id).values(**values))
        if result.rowcount == 0:
            await self.conn.execute(insert(status_replicas).values(
                id=replica_id, host=host, started_at=now, **values))

    async def drop_replica(self, replica_id: str) -> None:
        await self.conn.execute(delete(status_replicas).where(status_replicas.c.id == replica_id))

    async def lagging_replicas(self, generation: int, alive_after: datetime,
                               exclude: str | None) -> list[str]:
        """Replicas whose lease still runs at ``alive_after`` and which have not applied
        ``generation`` yet."""
        query = select(status_replicas.c.id).where(
            status_replicas.c.lease_until > alive_after,
            status_replicas.c.acked_generation < generation)
        if exclude is not None:
            query = query.where(status_replicas.c.id != exclude)
        return [row.id for row in (await self.conn.execute(query)).all()]

    async def prune_replicas(self, expired_before: datetime) -> None:
        await self.conn.execute(delete(status_replicas).where(
            status_replicas.c.lease_until < expired_before))

    # --- certificates, read only ------------------------------------------------------------

    async def certificate_state(self, serial: str, *, for_share: bool = False
                                ) -> CertificateState | None:
        """The issued certificate with this serial (pending rows are not issued yet). With
        ``for_share`` its row stays locked against revocation until the transaction ends."""
        query = select(*_STATE_COLUMNS).where(
            certificates.c.serial == serial, certificates.c.state != StoredState.PENDING.value)
        if for_share:
            query = query.with_for_update(read=True)
        row = (await self.conn.execute(query)).first()
        return None if row is None else _state(row)

    async def certificate_states(self, serials: Sequence[str], *, for_share: bool = False
                                 ) -> dict[str, CertificateState]:
        """Issued certificates by serial; ``for_share`` locks their rows in serial order."""
        query = select(*_STATE_COLUMNS).where(
            certificates.c.serial.in_(list(serials)),
            certificates.c.state != StoredState.PENDING.value).order_by(certificates.c.serial)
        if for_share:
            query = query.with_for_update(read=True)
        rows = (await self.conn.execute(query)).all()
        return {row.serial: _state(row) for row in rows}

    async def certificate_state_by_id(self, certificate_id: str) -> CertificateState | None:
        row = (await self.conn.execute(select(*_STATE_COLUMNS).where(
            certificates.c.id == certificate_id))).first()
        return None if row is None else _state(row)

    async def revoked_entries(self, expired_after: datetime, batch: int = 1000
                              ) -> AsyncIterator[Sequence[Any]]:
        """Revoked certificates that expire after ``expired_after``, in batches of rows
        (serial, revoked_epoch: whole POSIX seconds, revocation_reason), streamed so a big
        CRL never sits in one result set. The database turns the time into seconds: parsing
        100,000 timestamps in Python would cost more than the rest of the read."""
        if self.dialect == "sqlite":
            epoch: Any = cast(func.strftime("%s", certificates.c.revoked_at), BigInteger)
        else:
            epoch = cast(func.floor(func.extract("epoch", certificates.c.revoked_at)),
                         BigInteger)
        result = await self.conn.stream(
            select(certificates.c.serial, epoch.label("revoked_epoch"),
                   certificates.c.revocation_reason)
            .where(certificates.c.state == StoredState.REVOKED.value,
                   certificates.c.not_after > expired_after))
        async for rows in result.partitions(batch):
            yield rows

    async def unanswered_certificates(self, hash_algorithm: str, *, issued_after: datetime,
                                      now: datetime, limit: int) -> list[CertificateState]:
        """Active certificates issued after ``issued_after`` with no pre-signed response for
        ``hash_algorithm``. Certificates are valid for a fixed period, so "issued after" is a
        range on (state, not_after), which the certificates table has an index for."""
        missing = ~select(ocsp_responses.c.serial).where(
            ocsp_responses.c.serial == certificates.c.serial,
            ocsp_responses.c.hash_algorithm == hash_algorithm).exists()
        rows = (await self.conn.execute(
            select(*_STATE_COLUMNS).where(
                certificates.c.state == StoredState.ACTIVE.value,
                certificates.c.not_after > max(issued_after + VALIDITY, now), missing)
            .limit(limit))).all()
        return [_state(row) for row in rows]

    # --- pre-signed OCSP responses ----------------------------------------------------------

    async def get_response(self, serial: str, hash_algorithm: str) -> Row[Any] | None:
        return (await self.conn.execute(select(ocsp_responses).where(
            ocsp_responses.c.serial == serial,
            ocsp_responses.c.hash_algorithm == hash_algorithm))).first()

    async def response_algorithms(self, serial: str) -> list[str]:
        rows = (await self.conn.execute(select(ocsp_responses.c.hash_algorithm).where(
            ocsp_responses.c.serial == serial))).all()
        return [row.hash_algorithm for row in rows]

    async def put_response(self, *, serial: str, hash_algorithm: str, cert_status: str,
                           der: bytes, this_update: datetime, next_update: datetime,
                           responder_id: str) -> None:
        values = {"serial": serial, "hash_algorithm": hash_algorithm,
                  "cert_status": cert_status, "response_der": der, "this_update": this_update,
                  "next_update": next_update, "responder_id": responder_id}
        module: Any = postgresql if self.dialect == "postgresql" else sqlite
        statement = module.insert(ocsp_responses).values(**values)
        await self.conn.execute(statement.on_conflict_do_update(
            index_elements=[ocsp_responses.c.serial, ocsp_responses.c.hash_algorithm],
            set_={k: statement.excluded[k] for k in values
                  if k not in ("serial", "hash_algorithm")}))

    async def replace_response(self, *, serial: str, hash_algorithm: str, old_this_update:
                               datetime, cert_status: str, der: bytes, this_update: datetime,
                               next_update: datetime, responder_id: str) -> bool:
        """Swap in a re-signed response unless someone replaced it meanwhile."""
        result = await self.conn.execute(
            update(ocsp_responses).where(
                ocsp_responses.c.serial == serial,
                ocsp_responses.c.hash_algorithm == hash_algorithm,
                ocsp_responses.c.this_update == old_this_update)
            .values(cert_status=cert_status, response_der=der, this_update=this_update,
                    next_update=next_update, responder_id=responder_id))
        return result.rowcount == 1

    async def delete_responses(self, serial: str) -> None:
        await self.conn.execute(delete(ocsp_responses).where(ocsp_responses.c.serial == serial))

    async def responses_due(self, before: datetime, limit: int) -> Sequence[Any]:
        return (await self.conn.execute(
            select(ocsp_responses.c.serial, ocsp_responses.c.hash_algorithm,
                   ocsp_responses.c.this_update, ocsp_responses.c.next_update)
            .where(ocsp_responses.c.next_update < before)
            .order_by(ocsp_responses.c.next_update).limit(limit))).all()

    async def count_responses(self) -> int:
        return int((await self.conn.execute(
            select(func.count()).select_from(ocsp_responses))).scalar_one())

    # --- responders ---------------------------------------------------------------------------

    async def newest_responder(self) -> Row[Any] | None:
        return (await self.conn.execute(
            select(ocsp_responders).order_by(ocsp_responders.c.not_after.desc(),
                                             ocsp_responders.c.id).limit(1))).first()

    async def add_responder(self, *, responder_id: str, serial: str, key_algorithm: str,
                            certificate_der: bytes, master_key_id: str, wrapped_key: bytes,
                            not_before: datetime, not_after: datetime, now: datetime) -> None:
        await self.conn.execute(insert(ocsp_responders).values(
            id=responder_id, serial=serial, key_algorithm=key_algorithm,
            certificate_der=certificate_der, master_key_id=master_key_id,
            wrapped_key=wrapped_key, not_before=not_before, not_after=not_after,
            created_at=now))

    async def prune_responders(self, expired_before: datetime) -> None:
        await self.conn.execute(delete(ocsp_responders).where(
            ocsp_responders.c.not_after < expired_before))

    # --- CRLs ---------------------------------------------------------------------------------

    async def latest_crl_meta(self) -> CrlMeta | None:
        row = (await self.conn.execute(
            select(*_CRL_META).order_by(crls.c.number.desc()).limit(1))).first()
        return None if row is None else _crl_meta(row)

    async def latest_crl(self) -> tuple[CrlMeta, bytes] | None:
        row = (await self.conn.execute(
            select(*_CRL_META, crls.c.crl_der).order_by(crls.c.number.desc()).limit(1))).first()
        return None if row is None else (_crl_meta(row), bytes(row.crl_der))

    async def store_crl(self, meta: CrlMeta, der: bytes, now: datetime, keep: int) -> bool:
        """Store a CRL unless one with a higher number is stored already; keep the newest
        ``keep``. Call after :meth:`lock_state`, so two stores never interleave."""
        top = (await self.conn.execute(select(func.max(crls.c.number)))).scalar()
        if top is not None and top >= meta.number:
            return False
        await self.conn.execute(insert(crls).values(
            number=meta.number, generation=meta.generation, this_update=meta.this_update,
            next_update=meta.next_update, entries=meta.entries, sha256=meta.sha256,
            crl_der=der, created_at=now))
        await self.conn.execute(delete(crls).where(crls.c.number <= meta.number - keep))
        return True

    # --- helpers ------------------------------------------------------------------------------

    async def _insert_ignore(self, table: Any, values: dict[str, Any]) -> None:
        module: Any = postgresql if self.dialect == "postgresql" else sqlite
        await self.conn.execute(module.insert(table).values(**values).on_conflict_do_nothing())
