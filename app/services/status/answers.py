"""Answering an OCSP request: memory, else the stored response, else a fresh signature.

The shape is a responder in front of stacked sources: first the checks that refuse a request
(it does not parse, names another issuer, or no responder can sign), then

1. :class:`~.cache.OcspMemory`, the in-process map (the HTTP edge asks it first, directly);
2. the ``ocsp_responses`` table: one pre-signed response per (serial, CertID shape: its hash
   and whether the parameters are NULL or absent, so that each response echoes the CertID as
   clients send it), shared by every replica and re-signed by the refresher before
   ``nextUpdate``;
3. on a miss in both, the certificate row, one signature, and a store into layer 2.

A nonce, several CertIDs or a CertID of another shape skip layer 2: one live signature over
the current states.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cryptography.x509.ocsp import OCSPResponseStatus

from app.domain.errors import DependencyUnavailable
from app.domain.records import CertificateState
from app.domain.serials import is_valid_serial, serial_hex
from app.pki import ocsp as ocsp_pki
from app.pki.ocsp import CertId, CertStatus, OCSPRefusal, SingleAnswer
from app.services.status.cache import OcspMemory
from app.services.status.context import StatusContext
from app.services.status.replies import OcspReply
from app.services.status.responder import MIN_REMAINING, Responder, ResponderKeys
from app.services.status.signer import OcspSigner

log = logging.getLogger(__name__)

# A reply, the serials it speaks of (what invalidates it), how long memory may keep it (s).
Answer = tuple[OcspReply, tuple[str, ...], float]


def _serial_hex(serial: int) -> str | None:
    """A CertID serial as stored (lowercase hex), or None for one no certificate can have."""
    return serial_hex(serial) if is_valid_serial(serial) else None


class OcspAnswers:
    def __init__(self, ctx: StatusContext, memory: OcspMemory, keys: ResponderKeys,
                 signer: OcspSigner) -> None:
        self._ctx, self._memory, self._keys, self._signer = ctx, memory, keys, signer
        self._refusals: dict[OCSPResponseStatus, OcspReply] = {
            status: OcspReply(ocsp_pki.unsuccessful_response(status), status.name.lower())
            for status in OCSPResponseStatus if status is not OCSPResponseStatus.SUCCESSFUL}

    async def answer(self, der: bytes) -> OcspReply:
        """The OCSP reply for a DER request: never raises for bad input or an outage (those
        are malformedRequest, unauthorized and tryLater responses)."""
        try:
            request = ocsp_pki.parse_request(der)
        except OCSPRefusal as refusal:
            return self._refusals[refusal.status]
        if not all(self._signer.issuer.matches(cert_id) for cert_id in request.cert_ids):
            return self._refusals[OCSPResponseStatus.UNAUTHORIZED]
        responder = self._keys.usable()
        if responder is None:
            return self._refusals[OCSPResponseStatus.TRY_LATER]
        co = self._ctx.coherence
        epoch = co.epoch
        try:
            if (request.nonce is None and len(request.cert_ids) == 1
                    and request.cert_ids[0].shape is not None):
                reply, serials, fresh_for = await self.single(request.cert_ids[0], responder)
            else:
                reply, serials, fresh_for = await self._live(request, responder)
        except DependencyUnavailable:
            return self._refusals[OCSPResponseStatus.TRY_LATER]
        except Exception:  # an OCSP client gets an OCSP answer, never an HTTP 500
            log.exception("OCSP request failed")
            return self._refusals[OCSPResponseStatus.INTERNAL_ERROR]
        if fresh_for > 0 and epoch == co.epoch:
            self._memory.remember(der, reply, serials, fresh_for)
        return reply

    async def single(self, cert_id: CertId, responder: Responder) -> Answer:
        """One CertID of a stored shape, no nonce: the stored response for that shape, or sign
        one and store it."""
        serial, shape = _serial_hex(cert_id.serial), cert_id.shape
        assert shape is not None
        now = self._ctx.clock.now()
        if serial is None:
            return self._unknown(cert_id, responder, now)
        return (await self._stored(serial, shape, now)
                or await self._sign_and_store(cert_id, shape, serial, responder, now))

    async def _stored(self, serial: str, shape: str, now: datetime) -> Answer | None:
        """Layer 2: the pre-signed response, while it has ``MIN_REMAINING`` left."""
        async with self._ctx.uow(write=False) as uow:
            row = await uow.status.get_response(serial, shape)
        if row is None or row.next_update - now <= MIN_REMAINING:
            return None
        reply, fresh_for = self._reply(bytes(row.response_der), row.cert_status,
                                       row.this_update, row.next_update, now)
        return reply, (serial,), fresh_for

    async def _sign_and_store(self, cert_id: CertId, shape: str, serial: str,
                              responder: Responder, now: datetime) -> Answer:
        """Layer 3: sign the certificate's current state and store it for every replica; if
        the state changes before the store (a revocation holds the row), sign again."""
        uow_factory = self._ctx.uow
        for _attempt in range(3):
            async with uow_factory(write=False) as uow:
                state = await uow.status.certificate_state(serial)
            if state is None:
                return self._unknown(cert_id, responder, now)
            answer = self._signer.answer_for(cert_id, state)
            der, this_update, next_update = self._signer.sign(responder, [answer], now)
            async with uow_factory() as uow:
                repo = uow.status
                if await repo.certificate_state(serial, for_share=True) != state:
                    continue  # revoked meanwhile: sign again from the new state
                await repo.put_response(
                    serial=serial, hash_algorithm=shape,
                    cert_status=answer.status.value, der=der, this_update=this_update,
                    next_update=next_update, responder_id=responder.id)
                await uow.commit()
            reply, fresh_for = self._reply(der, answer.status.value, this_update, next_update,
                                           now)
            return reply, (serial,), fresh_for
        raise DependencyUnavailable("certificate state kept changing", code="status_busy")

    def _unknown(self, cert_id: CertId, responder: Responder, now: datetime) -> Answer:
        """Never cached: the serial may belong to a certificate being issued right now."""
        der, this_update, next_update = self._signer.sign(
            responder, [SingleAnswer(cert_id, CertStatus.UNKNOWN)], now)
        reply, _ = self._reply(der, CertStatus.UNKNOWN.value, this_update, next_update, now)
        return reply, (), 0.0

    async def _live(self, request: ocsp_pki.Request, responder: Responder) -> Answer:
        """A nonce, several CertIDs or an unusual shape: one fresh signature over current
        states."""
        serials = [_serial_hex(cert_id.serial) for cert_id in request.cert_ids]
        known = [serial for serial in serials if serial is not None]
        states: dict[str, CertificateState] = {}
        if known:
            async with self._ctx.uow(write=False) as uow:
                states = await uow.status.certificate_states(known)
        now = self._ctx.clock.now()
        answers = [self._signer.answer_for(cert_id, states.get(serial) if serial else None)
                   for cert_id, serial in zip(request.cert_ids, serials, strict=True)]
        der, this_update, next_update = self._signer.sign(responder, answers, now,
                                                          request.nonce)
        label = answers[0].status.value if len(answers) == 1 else "several"
        if request.nonce is not None:
            return OcspReply(der, label), (), 0.0
        reply, fresh_for = self._reply(der, label, this_update, next_update, now)
        if any(answer.status is CertStatus.UNKNOWN for answer in answers):
            fresh_for = 0.0
        return reply, tuple(sorted(set(known))), fresh_for

    def _reply(self, der: bytes, label: str, this_update: datetime, next_update: datetime,
               now: datetime) -> tuple[OcspReply, float]:
        """The reply with its HTTP cache lifetime, and how long memory may keep it (s)."""
        settings = self._ctx.settings
        remaining = (next_update - now).total_seconds()
        max_age = int(max(0, min(settings.ocsp_http_max_age_seconds, remaining)))
        refresh_at = next_update - timedelta(seconds=settings.ocsp_refresh_before_seconds)
        fresh_for = (refresh_at - now).total_seconds()
        if fresh_for <= 0:  # the refresher is behind: keep it briefly, look again soon
            fresh_for = min(60.0, remaining - MIN_REMAINING.total_seconds())
        return OcspReply(der, label, this_update, next_update, max_age), fresh_for
