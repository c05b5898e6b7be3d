"""Recording a revocation inside the revoking transaction.

The certificate row is locked by that transaction, so no concurrent fill can write a stale
``good`` back; the pre-signed responses are replaced by signed ``revoked`` ones, and the status
*generation* is bumped so that every replica drops the serial from memory.
"""

from __future__ import annotations

from app.domain.certificates import StoredState
from app.domain.ports import UnitOfWork
from app.pki.ocsp import CertStatus
from app.services.status.context import StatusContext
from app.services.status.responder import ResponderKeys
from app.services.status.signer import OcspSigner


class RevocationLedger:
    def __init__(self, ctx: StatusContext, keys: ResponderKeys, signer: OcspSigner) -> None:
        self._ctx, self._keys, self._signer = ctx, keys, signer

    async def record(self, uow: UnitOfWork, certificate_id: str) -> int | None:
        """Count the change and replace the pre-signed responses of the certificate with
        signed ``revoked`` ones (or drop them, without a responder)."""
        repo = uow.status
        state = await repo.certificate_state_by_id(certificate_id)
        if state is None:
            return None
        now = self._ctx.clock.now()
        generation = await repo.bump_generation("serial", state.serial, now)
        algorithms = set(await repo.response_algorithms(state.serial)) | {"sha1"}
        await repo.delete_responses(state.serial)
        responder = self._keys.usable()
        if responder is not None and state.state is StoredState.REVOKED:
            for hash_name in sorted(algorithms):
                cert_id = self._signer.cert_id(hash_name, state.serial)
                der, this_update, next_update = self._signer.sign(
                    responder, [self._signer.answer_for(cert_id, state)], now)
                await repo.put_response(
                    serial=state.serial, hash_algorithm=hash_name,
                    cert_status=CertStatus.REVOKED.value, der=der, this_update=this_update,
                    next_update=next_update, responder_id=responder.id)
        return generation
