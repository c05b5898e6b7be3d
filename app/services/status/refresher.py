"""Keeping the stored OCSP responses ahead of the queries: re-sign those near ``nextUpdate``,
pre-sign one for every certificate issued lately, drop those of certificates gone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.records import CertificateState
from app.domain.repositories import StatusRecords
from app.services.status.context import StatusContext
from app.services.status.responder import Responder, ResponderKeys
from app.services.status.signer import OcspSigner

# Pre-signing looks at certificates issued this recently (the refresher runs every minute or
# so, so this covers a long stop of it); older ones were pre-signed then, or are answered and
# stored on their first query.
PRESIGN_WINDOW = timedelta(days=1)


@dataclass
class RefreshReport:
    resigned: int = 0
    presigned: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"resigned": self.resigned, "presigned": self.presigned, "dropped": self.dropped}


async def _lock_states(repo: StatusRecords, serials: Sequence[str]
                       ) -> dict[str, CertificateState]:
    """The certificates' current states, their rows locked against revocation until the
    transaction ends."""
    return await repo.certificate_states(sorted(set(serials)), for_share=True)


class OcspRefresher:
    def __init__(self, ctx: StatusContext, keys: ResponderKeys, signer: OcspSigner) -> None:
        self._ctx, self._keys, self._signer = ctx, keys, signer

    async def refresh(self, limit: int = 500) -> RefreshReport:
        """Re-sign stored responses due within ``ocsp_refresh_before_seconds`` and, with
        ``presign``, sign one (SHA-1 CertID, RFC 5019) for every issued certificate still
        without one. Up to ``limit`` of each."""
        ctx, signer = self._ctx, self._signer
        report = RefreshReport()
        await self._keys.ensure()
        responder = self._keys.usable()
        if responder is None:
            return report
        now = ctx.clock.now()
        due_before = now + timedelta(seconds=ctx.settings.ocsp_refresh_before_seconds)
        async with ctx.uow(write=False) as uow:
            repo = uow.status
            due = await repo.responses_due(due_before, limit)
            states = await repo.certificate_states(sorted({row.serial for row in due}))
        work: list[tuple[Any, CertificateState | None, bytes, datetime, datetime]] = []
        for row in due:
            state = states.get(row.serial)
            if state is None or state.not_after < now - timedelta(
                    seconds=ctx.settings.ocsp_next_update_seconds):
                work.append((row, None, b"", now, now))  # gone or long expired: drop
                continue
            der, this_update, next_update = signer.sign(
                responder, [signer.answer_for(signer.cert_id(row.hash_algorithm, row.serial),
                                              state)], now)
            work.append((row, state, der, this_update, next_update))
            await asyncio.sleep(0)
        if work:
            async with ctx.uow() as uow:
                repo = uow.status
                locked = await _lock_states(repo, [item[0].serial for item in work])
                for row, state, der, this_update, next_update in work:
                    if state is None:
                        await repo.delete_responses(row.serial)
                        report.dropped += 1
                    elif locked.get(row.serial) == state and await repo.replace_response(
                            serial=row.serial, hash_algorithm=row.hash_algorithm,
                            old_this_update=row.this_update,
                            cert_status=signer.answer_for(
                                signer.cert_id(row.hash_algorithm, row.serial),
                                state).status.value,
                            der=der, this_update=this_update, next_update=next_update,
                            responder_id=responder.id):
                        report.resigned += 1
                await uow.commit()
        if ctx.settings.presign:
            report.presigned = await self._presign(responder, now, limit)
        return report

    async def _presign(self, responder: Responder, now: datetime, limit: int) -> int:
        ctx, signer = self._ctx, self._signer
        async with ctx.uow(write=False) as uow:
            missing = await uow.status.unanswered_certificates(
                "sha1", issued_after=now - PRESIGN_WINDOW, now=now, limit=limit)
        signed = []
        for state in missing:
            answer = signer.answer_for(signer.cert_id("sha1", state.serial), state)
            signed.append((state, answer.status.value, *signer.sign(responder, [answer], now)))
            await asyncio.sleep(0)
        count = 0
        if signed:
            async with ctx.uow() as uow:
                repo = uow.status
                locked = await _lock_states(repo, [item[0].serial for item in signed])
                for state, cert_status, der, this_update, next_update in signed:
                    if locked.get(state.serial) != state:
                        continue  # revoked meanwhile; the revocation stored its own
                    await repo.put_response(
                        serial=state.serial, hash_algorithm="sha1", cert_status=cert_status,
                        der=der, this_update=this_update, next_update=next_update,
                        responder_id=responder.id)
                    count += 1
                await uow.commit()
        return count
