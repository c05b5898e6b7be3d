"""Signing one OCSP response: the CertIDs of this CA, what a certificate's state says, and the
validity window (never past the responder's own end)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from app.domain.certificates import StoredState
from app.domain.records import CertificateState
from app.domain.serials import serial_int
from app.pki import crl as crl_pki
from app.pki import ocsp as ocsp_pki
from app.pki.ocsp import CertId, CertStatus, SingleAnswer
from app.services.status.context import StatusContext
from app.services.status.responder import Responder


class OcspSigner:
    def __init__(self, ctx: StatusContext, issuer: ocsp_pki.IssuerHashes) -> None:
        self._ctx, self.issuer = ctx, issuer

    def cert_id(self, shape: str, serial: str) -> CertId:
        """This CA's CertID of ``serial`` in a stored shape (see :func:`.ocsp.shape_key`)."""
        hash_name, params = ocsp_pki.parse_shape_key(shape)
        name_hash, key_hash = self.issuer.by_hash[hash_name]
        return CertId(hash_name, name_hash, key_hash, serial_int(serial), params=params)

    @staticmethod
    def answer_for(cert_id: CertId, state: CertificateState | None) -> SingleAnswer:
        if state is None:
            return SingleAnswer(cert_id, CertStatus.UNKNOWN)
        if state.state is StoredState.REVOKED:
            assert state.revoked_at is not None
            return SingleAnswer(cert_id, CertStatus.REVOKED, state.revoked_at,
                                crl_pki.reason_flag(state.revocation_reason))
        return SingleAnswer(cert_id, CertStatus.GOOD)

    def sign(self, responder: Responder, answers: Sequence[SingleAnswer], now: datetime,
             nonce: bytes | None = None) -> tuple[bytes, datetime, datetime]:
        """The DER response, its thisUpdate and its nextUpdate."""
        next_update = now + timedelta(seconds=self._ctx.settings.ocsp_next_update_seconds)
        this_update, next_update = now, min(next_update, responder.not_after)
        der = ocsp_pki.sign_response(responder.identity, answers, this_update=this_update,
                                     next_update=next_update, produced_at=now, nonce=nonce)
        return der, this_update, next_update
