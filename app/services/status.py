"""Relying-party status: the OCSP responder, the CRL, and publishing revocations to both.

Three layers answer an OCSP request without a nonce:

1. an in-process map from the request's DER to the finished reply: a hit is a dict lookup and
   two clock comparisons, no parsing, no database, no signature;
2. the ``ocsp_responses`` table: one pre-signed response per (serial, CertID hash), shared by
   every replica and re-signed by a refresher before ``nextUpdate``;
3. on a miss in both, the certificate row, one signature, and a store into layer 2.

A revocation replaces the layer-2 rows in its own transaction (the certificate row is locked, so
no concurrent fill can write a stale ``good`` back) and bumps the status *generation*. Every
replica polls the generation, drops exactly the changed serials from layer 1 and acknowledges
the generation in ``status_replicas``, which also holds its lease. A replica serves layer 1 only
while its lease is current; the revoking request waits, before it replies, until a CRL covering
the revocation is stored and every replica with a live lease has acknowledged it (a replica that
cannot reach the database loses its lease and stops serving from memory). So the reply to a
revoke call means every replica says ``revoked`` on OCSP, CRL and JSON status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import multiprocessing
import os
import random
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.ocsp import OCSPResponseStatus
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import SystemClock
from app.domain.certificates import StoredState
from app.domain.errors import DependencyUnavailable
from app.domain.ports import Clock, KeyProtector
from app.pki import crl as crl_pki
from app.pki import ocsp as ocsp_pki
from app.pki.ca import CertificateAuthority
from app.pki.ocsp import CertId, CertStatus, OCSPRefusal, ResponderIdentity, SingleAnswer
from app.security_headers import SECURITY_HEADERS
from app.services.rotation import BlobStore, register_blob_store
from app.settings import StatusSettings
from app.storage.db import Database
from app.storage.status_repository import CertificateState, Change, CrlMeta, StatusRepository
from app.storage.status_tables import ocsp_responders

log = logging.getLogger(__name__)

# A stored response is served only while it has this much validity left; else it is re-signed.
MIN_REMAINING = timedelta(minutes=5)
CHANGES_BATCH = 1000  # more changes than this at once: drop the whole in-process cache
KEEP_CRLS = 3
CHANGE_LOG_RETENTION = timedelta(days=1)
LEASE_MARGIN = 0.25  # of the lease: a replica stops using memory this much before it ends
CLOCK_SKEW = timedelta(seconds=2)  # allowance between replicas' wall clocks
# Pre-signing looks at certificates issued this recently (the refresher runs every minute or
# so, so this covers a long stop of it); older ones were pre-signed then, or are answered and
# stored on their first query.
PRESIGN_WINDOW = timedelta(days=1)


class RevocationRecorder(Protocol):
    """What the certificate use cases call when they revoke or issue.

    ``record`` runs inside the revoking transaction with its connection; ``publish`` runs
    after the commit and before the reply; ``presign`` after an issuance has committed.
    """

    async def record(self, conn: AsyncConnection, certificate_id: str) -> int | None: ...

    async def publish(self, generation: int | None) -> None: ...

    async def presign(self, serial: str) -> None: ...


class _NoRecorder:
    async def record(self, conn: AsyncConnection, certificate_id: str) -> int | None:
        return None

    async def publish(self, generation: int | None) -> None:
        return None

    async def presign(self, serial: str) -> None:
        return None


NO_RECORDER: RevocationRecorder = _NoRecorder()


@dataclass(frozen=True)
class OcspReply:
    """An OCSP response, what it says (``label``: good, revoked, unknown, several, or the
    error status), and the extra HTTP headers of a GET reply (RFC 5019 §6.2). The raw ASGI
    header lists are made once, so serving a cached reply builds nothing."""

    der: bytes
    label: str
    headers: dict[str, str]
    etag: str | None = None
    post_raw: list[tuple[bytes, bytes]] = field(init=False, repr=False, compare=False)
    get_raw: list[tuple[bytes, bytes]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = [(b"content-type", b"application/ocsp-response"),
                (b"content-length", str(len(self.der)).encode()), *SECURITY_HEADERS]
        object.__setattr__(self, "post_raw", base)
        object.__setattr__(self, "get_raw", base + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.items()])


@dataclass(slots=True)
class _Entry:
    reply: OcspReply
    stale_at: datetime  # on the service clock: from then on, look in the database again
    serials: tuple[str, ...]


@dataclass(frozen=True)
class CrlCopy:
    """The stored CRL as served."""

    meta: CrlMeta
    der: bytes
    etag: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Responder:
    id: str
    identity: ResponderIdentity

    @property
    def not_after(self) -> datetime:
        return self.identity.not_after


@dataclass
class RefreshReport:
    resigned: int = 0
    presigned: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"resigned": self.resigned, "presigned": self.presigned, "dropped": self.dropped}


@dataclass
class _Coherence:
    """This replica's view of the status generation and its lease."""

    replica_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    known: int = -1  # generation whose changes are applied to memory; -1: none yet
    acked: int = -1
    epoch: int = 0  # bumped on every memory invalidation; guards fills racing one
    coherent_until: float = 0.0  # monotonic; memory is trusted before it
    last_renew: float = -1e9


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _etag(der: bytes) -> str:
    return '"' + hashlib.sha256(der).hexdigest()[:40] + '"'


def _serial_hex(serial: int) -> str | None:
    """A CertID serial as stored (lowercase hex), or None for one no certificate can have."""
    if serial <= 0 or serial.bit_length() > ocsp_pki.MAX_SERIAL_BITS:
        return None
    return format(serial, "x")


def _responder_ad(responder_id: str) -> bytes:
    return f"certcloud:ocsp-responder:{responder_id}".encode()


# Master-key rotation (`certcloud keys rewrap/status/retire`) covers the responder keys too.
register_blob_store(BlobStore("ocsp_responders.wrapped_key", ocsp_responders, "id",
                              "master_key_id", "wrapped_key", _responder_ad))


class StatusService:
    """OCSP, CRL and revocation publishing for one process (a replica).

    :param distribution_point: the CRL URL certificates carry; the CRL's issuingDistributionPoint.
    :param wall_clock: real time for leases between replicas (the business ``clock`` may be a
        test's fixed clock); the system clock by default.
    """

    def __init__(self, db: Database, ca: CertificateAuthority, protector: KeyProtector,
                 settings: StatusSettings, *, distribution_point: str, clock: Clock,
                 wall_clock: Clock | None = None) -> None:
        self.db, self.ca, self.protector = db, ca, protector
        self.settings, self.clock = settings, clock
        self.wall_clock = wall_clock or SystemClock()
        self.distribution_point = distribution_point
        self.issuer = ocsp_pki.IssuerHashes.of(ca.certificate)
        self._refusals: dict[OCSPResponseStatus, OcspReply] = {
            status: OcspReply(ocsp_pki.unsuccessful_response(status), status.name.lower(),
                              {"Cache-Control": "no-store"})
            for status in OCSPResponseStatus if status is not OCSPResponseStatus.SUCCESSFUL}
        self._memory: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_serial: dict[str, set[bytes]] = {}
        self._co = _Coherence()
        self._responder: _Responder | None = None
        self._responder_lock = asyncio.Lock()
        self._crl: CrlCopy | None = None
        self._crl_floor = 0  # the highest cRLNumber known to be stored; older copies are dropped
        self._crl_lock = asyncio.Lock()
        self._crl_task: asyncio.Task[CrlMeta] | None = None
        self._sync_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.last_crl_timings: dict[str, float] = {}  # read, build, store (seconds)
        self._replica = False
        self._host = f"{socket.gethostname()}:{os.getpid()}"[:255]

    # --- life cycle -------------------------------------------------------------------------

    async def start(self, *, replica: bool = True) -> None:
        """Make sure the state row, a responder and a CRL exist; as a ``replica`` (a serving
        process), take a lease and start the background loops."""
        async with self.db.transaction() as conn:
            await StatusRepository(conn).ensure_state()
        await self.ensure_responder()
        async with self.db.transaction(write=False) as conn:
            stored = await StatusRepository(conn).latest_crl_meta()
        if stored is None:
            await self.regenerate_crl()
        if replica:
            self._replica = True
            await self.sync()
            self._tasks = [asyncio.create_task(self._sync_loop(), name="status-sync"),
                           asyncio.create_task(self._maintenance_loop(),
                                               name="status-maintenance")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._crl_task is not None and not self._crl_task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._crl_task), 30)
        if self._replica:
            self._replica = False
            with contextlib.suppress(Exception):
                async with self.db.transaction() as conn:
                    await StatusRepository(conn).drop_replica(self._co.replica_id)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # --- OCSP: the hot path -----------------------------------------------------------------

    def cached(self, der: bytes) -> OcspReply | None:
        """The reply for a request seen before, if it is still fresh and this replica's lease
        runs; no parsing, no I/O."""
        entry = self._memory.get(der)
        if (entry is None or time.monotonic() >= self._co.coherent_until
                or self.clock.now() >= entry.stale_at):
            return None
        self._memory.move_to_end(der)
        return entry.reply

    async def answer(self, der: bytes) -> OcspReply:
        """The OCSP reply for a DER request: never raises for bad input or an outage (those
        are malformedRequest, unauthorized and tryLater responses)."""
        try:
            request = ocsp_pki.parse_request(der)
        except OCSPRefusal as refusal:
            return self._refusals[refusal.status]
        if not all(self.issuer.matches(cert_id) for cert_id in request.cert_ids):
            return self._refusals[OCSPResponseStatus.UNAUTHORIZED]
        responder = self._usable_responder()
        if responder is None:
            return self._refusals[OCSPResponseStatus.TRY_LATER]
        epoch = self._co.epoch
        try:
            if request.nonce is None and len(request.cert_ids) == 1:
                reply, serials, fresh_for = await self._single(request.cert_ids[0], responder)
            else:
                reply, serials, fresh_for = await self._live(request, responder)
        except DependencyUnavailable:
            return self._refusals[OCSPResponseStatus.TRY_LATER]
        except Exception:  # an OCSP client gets an OCSP answer, never an HTTP 500
            log.exception("OCSP request failed")
            return self._refusals[OCSPResponseStatus.INTERNAL_ERROR]
        if fresh_for > 0 and epoch == self._co.epoch:
            self._remember(der, reply, serials, fresh_for)
        return reply

    def _remember(self, der: bytes, reply: OcspReply, serials: tuple[str, ...],
                  fresh_for: float) -> None:
        limit = self.settings.memory_cache_entries
        if limit <= 0 or time.monotonic() >= self._co.coherent_until:
            return
        self._forget_key(der)
        self._memory[der] = _Entry(reply, self.clock.now() + timedelta(seconds=fresh_for),
                                   serials)
        for serial in serials:
            self._by_serial.setdefault(serial, set()).add(der)
        while len(self._memory) > limit:
            oldest = next(iter(self._memory))
            self._forget_key(oldest)

    def _forget_key(self, der: bytes) -> None:
        entry = self._memory.pop(der, None)
        if entry is None:
            return
        for serial in entry.serials:
            keys = self._by_serial.get(serial)
            if keys is not None:
                keys.discard(der)
                if not keys:
                    del self._by_serial[serial]

    def _forget_serial(self, serial: str) -> None:
        for der in list(self._by_serial.get(serial, ())):
            self._forget_key(der)

    def _forget_all(self) -> None:
        self._memory.clear()
        self._by_serial.clear()

    # --- OCSP: answers from the database or a signature ------------------------------------

    def _usable_responder(self) -> _Responder | None:
        responder = self._responder
        if responder is None or responder.not_after - self.clock.now() <= MIN_REMAINING:
            return None
        return responder

    def _cert_id(self, hash_name: str, serial: str) -> CertId:
        name_hash, key_hash = self.issuer.by_hash[hash_name]
        return CertId(hash_name, name_hash, key_hash, int(serial, 16))

    def _validity(self, responder: _Responder, now: datetime) -> tuple[datetime, datetime]:
        next_update = now + timedelta(seconds=self.settings.ocsp_next_update_seconds)
        return now, min(next_update, responder.not_after)

    @staticmethod
    def _answer_for(cert_id: CertId, state: CertificateState | None) -> SingleAnswer:
        if state is None:
            return SingleAnswer(cert_id, CertStatus.UNKNOWN)
        if state.state is StoredState.REVOKED:
            assert state.revoked_at is not None
            return SingleAnswer(cert_id, CertStatus.REVOKED, state.revoked_at,
                                crl_pki.reason_flag(state.revocation_reason))
        return SingleAnswer(cert_id, CertStatus.GOOD)

    def _sign(self, responder: _Responder, answers: Sequence[SingleAnswer], now: datetime,
              nonce: bytes | None = None) -> tuple[bytes, datetime, datetime]:
        this_update, next_update = self._validity(responder, now)
        der = ocsp_pki.sign_response(responder.identity, answers, this_update=this_update,
                                     next_update=next_update, produced_at=now, nonce=nonce)
        return der, this_update, next_update

    def _reply(self, der: bytes, label: str, this_update: datetime, next_update: datetime,
               now: datetime) -> tuple[OcspReply, float]:
        """The reply with its RFC 5019 headers, and how long memory may keep it (seconds)."""
        remaining = (next_update - now).total_seconds()
        max_age = int(max(0, min(self.settings.ocsp_http_max_age_seconds, remaining)))
        etag = _etag(der)
        headers = {
            "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
            "Last-Modified": http_date(this_update), "Expires": http_date(next_update),
            "ETag": etag,
        }
        refresh_at = next_update - timedelta(seconds=self.settings.ocsp_refresh_before_seconds)
        fresh_for = (refresh_at - now).total_seconds()
        if fresh_for <= 0:  # the refresher is behind: keep it briefly, look again soon
            fresh_for = min(60.0, remaining - MIN_REMAINING.total_seconds())
        return OcspReply(der, label, headers, etag), fresh_for

    async def _single(self, cert_id: CertId, responder: _Responder
                      ) -> tuple[OcspReply, tuple[str, ...], float]:
        """One CertID, no nonce: the stored response, or sign one and store it."""
        serial = _serial_hex(cert_id.serial)
        now = self.clock.now()
        if serial is None:
            return self._unknown(cert_id, responder, now)
        async with self.db.transaction(write=False) as conn:
            row = await StatusRepository(conn).get_response(serial, cert_id.hash_name)
        if row is not None and row.next_update - now > MIN_REMAINING:
            reply, fresh_for = self._reply(bytes(row.response_der), row.cert_status,
                                           row.this_update, row.next_update, now)
            return reply, (serial,), fresh_for
        for _attempt in range(3):
            async with self.db.transaction(write=False) as conn:
                state = await StatusRepository(conn).certificate_state(serial)
            if state is None:
                return self._unknown(cert_id, responder, now)
            answer = self._answer_for(cert_id, state)
            der, this_update, next_update = self._sign(responder, [answer], now)
            async with self.db.transaction() as conn:
                repo = StatusRepository(conn)
                if await repo.certificate_state(serial, for_share=True) != state:
                    continue  # revoked meanwhile: sign again from the new state
                await repo.put_response(
                    serial=serial, hash_algorithm=cert_id.hash_name,
                    cert_status=answer.status.value, der=der, this_update=this_update,
                    next_update=next_update, responder_id=responder.id)
            reply, fresh_for = self._reply(der, answer.status.value, this_update, next_update,
                                           now)
            return reply, (serial,), fresh_for
        raise DependencyUnavailable("certificate state kept changing", code="status_busy")

    def _unknown(self, cert_id: CertId, responder: _Responder, now: datetime
                 ) -> tuple[OcspReply, tuple[str, ...], float]:
        """Never cached: the serial may belong to a certificate being issued right now."""
        der, this_update, next_update = self._sign(
            responder, [SingleAnswer(cert_id, CertStatus.UNKNOWN)], now)
        reply, _ = self._reply(der, CertStatus.UNKNOWN.value, this_update, next_update, now)
        return reply, (), 0.0

    async def _live(self, request: ocsp_pki.Request, responder: _Responder
                    ) -> tuple[OcspReply, tuple[str, ...], float]:
        """A nonce or several CertIDs: one fresh signature over current states."""
        serials = [_serial_hex(cert_id.serial) for cert_id in request.cert_ids]
        known = [serial for serial in serials if serial is not None]
        states: dict[str, CertificateState] = {}
        if known:
            async with self.db.transaction(write=False) as conn:
                states = await StatusRepository(conn).certificate_states(known)
        now = self.clock.now()
        answers = [self._answer_for(cert_id, states.get(serial) if serial else None)
                   for cert_id, serial in zip(request.cert_ids, serials, strict=True)]
        der, this_update, next_update = self._sign(responder, answers, now, request.nonce)
        label = answers[0].status.value if len(answers) == 1 else "several"
        if request.nonce is not None:
            return OcspReply(der, label, {"Cache-Control": "no-store"}), (), 0.0
        reply, fresh_for = self._reply(der, label, this_update, next_update, now)
        if any(answer.status is CertStatus.UNKNOWN for answer in answers):
            fresh_for = 0.0
        return reply, tuple(sorted(set(known))), fresh_for

    # --- revocation: record in the transaction, publish before the reply -------------------

    async def record(self, conn: AsyncConnection, certificate_id: str) -> int | None:
        """In the revoking transaction: count the change and replace the pre-signed responses
        of the certificate with signed ``revoked`` ones (or drop them, without a responder)."""
        repo = StatusRepository(conn)
        state = await repo.certificate_state_by_id(certificate_id)
        if state is None:
            return None
        now = self.clock.now()
        generation = await repo.bump_generation("serial", state.serial, now)
        algorithms = set(await repo.response_algorithms(state.serial)) | {"sha1"}
        await repo.delete_responses(state.serial)
        responder = self._usable_responder()
        if responder is not None and state.state is StoredState.REVOKED:
            for hash_name in sorted(algorithms):
                cert_id = self._cert_id(hash_name, state.serial)
                der, this_update, next_update = self._sign(
                    responder, [self._answer_for(cert_id, state)], now)
                await repo.put_response(
                    serial=state.serial, hash_algorithm=hash_name,
                    cert_status=CertStatus.REVOKED.value, der=der, this_update=this_update,
                    next_update=next_update, responder_id=responder.id)
        return generation

    async def presign(self, serial: str) -> None:
        """Sign and store the good answer of a certificate just issued, so that even its first
        query costs no signature. Best effort: the issuance has committed, and the refresher
        pre-signs whatever this missed."""
        responder = self._usable_responder()
        if not self.settings.presign or responder is None:
            return
        try:
            await self._single(self._cert_id("sha1", serial), responder)
        except Exception as exc:
            log.warning("pre-signing left to the refresher",
                        extra={"serial": serial, "cause": type(exc).__name__})

    async def publish(self, generation: int | None) -> None:
        """After the revoking commit: drop the serial here, have a CRL that covers it stored,
        and wait until every live replica has applied both. Bounded by
        ``publish_timeout_seconds``; a failure is logged, the background loops catch up."""
        if generation is None:
            return
        deadline = time.monotonic() + self.settings.publish_timeout_seconds
        try:
            await self.sync()
            await asyncio.wait_for(self.ensure_crl(generation),
                                   max(0.1, deadline - time.monotonic()))
            async with self.db.transaction(write=False) as conn:
                target = await StatusRepository(conn).current_generation()
            await self.sync()
            await self.await_replicas(target, deadline)
        except Exception:
            log.exception("revocation not yet published everywhere; the status loops retry",
                          extra={"generation": generation})

    async def await_all_replicas(self) -> bool:
        """Wait (up to ``publish_timeout_seconds``) until every live replica has applied every
        change made so far; for operator commands that run outside the serving processes."""
        async with self.db.transaction(write=False) as conn:
            generation = await StatusRepository(conn).current_generation()
        return await self.await_replicas(
            generation, time.monotonic() + self.settings.publish_timeout_seconds)

    async def await_replicas(self, generation: int, deadline: float) -> bool:
        """Wait until every other replica with a live lease has applied ``generation``."""
        while True:
            async with self.db.transaction(write=False) as conn:
                lagging = await StatusRepository(conn).lagging_replicas(
                    generation, self.wall_clock.now() - CLOCK_SKEW,
                    self._co.replica_id if self._replica else None)
            if not lagging:
                return True
            if time.monotonic() >= deadline:
                log.warning("replicas did not confirm a status change in time",
                            extra={"generation": generation, "replicas": lagging})
                return False
            await asyncio.sleep(0.01)

    # --- coherence between replicas ----------------------------------------------------------

    async def sync(self) -> None:
        """Apply new status changes to memory, then acknowledge them and renew the lease."""
        if not self._replica:
            return
        async with self._sync_lock:
            started = time.monotonic()
            async with self.db.transaction(write=False) as conn:
                repo = StatusRepository(conn)
                current = await repo.current_generation()
                changes = (await repo.changes_since(self._co.known, CHANGES_BATCH)
                           if current > self._co.known else [])
            if current > self._co.known:
                self._apply(current, changes)
            lease = self.settings.lease_seconds
            if self._co.acked < self._co.known or started - self._co.last_renew >= lease / 3:
                async with self.db.transaction() as conn:
                    await StatusRepository(conn).renew_replica(
                        self._co.replica_id, host=self._host, acked_generation=self._co.known,
                        lease_until=self.wall_clock.now() + timedelta(seconds=lease),
                        now=self.wall_clock.now())
                self._co.acked = self._co.known
                self._co.last_renew = started
                self._co.coherent_until = started + lease * (1 - LEASE_MARGIN)

    def _apply(self, current: int, changes: Sequence[Change]) -> None:
        known = self._co.known
        contiguous = (known >= 0 and changes and changes[0].generation == known + 1
                      and len(changes) < CHANGES_BATCH)
        self._co.epoch += 1
        if not contiguous:
            self._forget_all()
            self._crl = None
            self._co.known = max(current, changes[-1].generation if changes else current)
            return
        for change in changes:
            if change.kind == "serial" and change.detail:
                self._forget_serial(change.detail)
            elif change.kind == "crl" and change.detail and change.detail.isdigit():
                self._crl_floor = max(self._crl_floor, int(change.detail))
                copy = self._crl
                if copy is not None and copy.meta.number < self._crl_floor:
                    self._crl = None
        self._co.known = max(current, changes[-1].generation)

    async def _sync_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.sync_interval_seconds)
            try:
                await self.sync()
            except Exception:  # the lease runs out; memory is then bypassed
                if not failing:  # once per outage, not 20 times a second
                    log.warning("status sync failing; memory is bypassed once the lease ends",
                                exc_info=True)
                failing = True
            else:
                if failing:
                    log.info("status sync recovered")
                failing = False

    # --- responder ---------------------------------------------------------------------------

    async def ensure_responder(self) -> None:
        """Load the newest responder, or issue a new one when it is within
        ``responder_renew_before_seconds`` of its end (one replica does; the others load it)."""
        renew_before = timedelta(seconds=self.settings.responder_renew_before_seconds)
        async with self._responder_lock:
            now = self.clock.now()
            current = self._responder
            if current is not None and current.not_after - now > renew_before:
                return
            async with self.db.transaction(write=False) as conn:
                row = await StatusRepository(conn).newest_responder()
            if row is not None and (current is None or row.id != current.id):
                self._responder = await self._load_responder(row)
                if row.not_after - now > renew_before:
                    return
            self._responder = await self._issue_responder(now, renew_before)

    async def _load_responder(self, row: Row[Any]) -> _Responder:
        pkcs8 = await self.protector.unwrap(row.master_key_id, bytes(row.wrapped_key),
                                            _responder_ad(row.id))
        key = serialization.load_der_private_key(pkcs8, None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the responder key must be RSA or EC")
        certificate = x509.load_der_x509_certificate(bytes(row.certificate_der))
        return _Responder(row.id, ResponderIdentity(key, certificate))

    async def _issue_responder(self, now: datetime, renew_before: timedelta) -> _Responder:
        algorithm = self.settings.responder_key_algorithm
        key = await asyncio.to_thread(ocsp_pki.generate_responder_key, algorithm)
        responder_id = str(uuid.uuid4())
        serial = x509.random_serial_number()
        not_after = now + timedelta(seconds=self.settings.responder_validity_seconds)
        certificate = await asyncio.to_thread(
            ocsp_pki.issue_responder_certificate, ca_key=self.ca.key,
            ca_certificate=self.ca.certificate, public_key=key.public_key(), serial=serial,
            not_before=ocsp_pki.backdated(now), not_after=not_after)
        pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        master_key_id, wrapped = await self.protector.wrap(pkcs8, _responder_ad(responder_id))
        async with self.db.transaction() as conn:
            repo = StatusRepository(conn)
            await repo.lock_state()
            newest = await repo.newest_responder()
            if newest is not None and newest.not_after - now > renew_before:
                winner = newest  # another replica rolled over first
            else:
                await repo.add_responder(
                    responder_id=responder_id, serial=format(serial, "x"),
                    key_algorithm=algorithm,
                    certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                    master_key_id=master_key_id, wrapped_key=wrapped,
                    not_before=ocsp_pki.backdated(now), not_after=not_after, now=now)
                winner = None
        if winner is not None:
            return await self._load_responder(winner)
        log.info("issued an OCSP responder certificate",
                 extra={"responder_id": responder_id, "not_after": not_after.isoformat()})
        return _Responder(responder_id, ResponderIdentity(key, certificate))

    @property
    def responder_certificate(self) -> x509.Certificate | None:
        return None if self._responder is None else self._responder.identity.certificate

    # --- OCSP refresher ------------------------------------------------------------------------

    async def refresh_ocsp(self, limit: int = 500) -> RefreshReport:
        """Re-sign stored responses due within ``ocsp_refresh_before_seconds`` and, with
        ``presign``, sign one (SHA-1 CertID, RFC 5019) for every issued certificate still
        without one. Up to ``limit`` of each."""
        report = RefreshReport()
        await self.ensure_responder()
        responder = self._usable_responder()
        if responder is None:
            return report
        now = self.clock.now()
        due_before = now + timedelta(seconds=self.settings.ocsp_refresh_before_seconds)
        async with self.db.transaction(write=False) as conn:
            repo = StatusRepository(conn)
            due = await repo.responses_due(due_before, limit)
            states = await repo.certificate_states(sorted({row.serial for row in due}))
        work: list[tuple[Any, CertificateState | None, bytes, datetime, datetime]] = []
        for row in due:
            state = states.get(row.serial)
            if state is None or state.not_after < now - timedelta(
                    seconds=self.settings.ocsp_next_update_seconds):
                work.append((row, None, b"", now, now))  # gone or long expired: drop
                continue
            der, this_update, next_update = self._sign(
                responder, [self._answer_for(self._cert_id(row.hash_algorithm, row.serial),
                                             state)], now)
            work.append((row, state, der, this_update, next_update))
            await asyncio.sleep(0)
        if work:
            async with self.db.transaction() as conn:
                repo = StatusRepository(conn)
                locked = await self._lock_states(repo, [item[0].serial for item in work])
                for row, state, der, this_update, next_update in work:
                    if state is None:
                        await repo.delete_responses(row.serial)
                        report.dropped += 1
                    elif locked.get(row.serial) == state and await repo.replace_response(
                            serial=row.serial, hash_algorithm=row.hash_algorithm,
                            old_this_update=row.this_update,
                            cert_status=self._answer_for(
                                self._cert_id(row.hash_algorithm, row.serial),
                                state).status.value,
                            der=der, this_update=this_update, next_update=next_update,
                            responder_id=responder.id):
                        report.resigned += 1
        if self.settings.presign:
            report.presigned = await self._presign(responder, now, limit)
        return report

    async def _presign(self, responder: _Responder, now: datetime, limit: int) -> int:
        async with self.db.transaction(write=False) as conn:
            missing = await StatusRepository(conn).unanswered_certificates(
                "sha1", issued_after=now - PRESIGN_WINDOW, now=now, limit=limit)
        signed = []
        for state in missing:
            answer = self._answer_for(self._cert_id("sha1", state.serial), state)
            signed.append((state, answer.status.value, *self._sign(responder, [answer], now)))
            await asyncio.sleep(0)
        count = 0
        if signed:
            async with self.db.transaction() as conn:
                repo = StatusRepository(conn)
                locked = await self._lock_states(repo, [item[0].serial for item in signed])
                for state, cert_status, der, this_update, next_update in signed:
                    if locked.get(state.serial) != state:
                        continue  # revoked meanwhile; the revocation stored its own
                    await repo.put_response(
                        serial=state.serial, hash_algorithm="sha1", cert_status=cert_status,
                        der=der, this_update=this_update, next_update=next_update,
                        responder_id=responder.id)
                    count += 1
        return count

    @staticmethod
    async def _lock_states(repo: StatusRepository, serials: Sequence[str]
                           ) -> dict[str, CertificateState]:
        """The certificates' current states, their rows locked against revocation until the
        transaction ends."""
        return await repo.certificate_states(sorted(set(serials)), for_share=True)

    # --- CRL -------------------------------------------------------------------------------------

    async def current_crl(self) -> CrlCopy:
        """The newest stored CRL; never builds one.

        :raises DependencyUnavailable: no CRL has been stored yet, or the database is down.
        """
        copy = self._crl
        if copy is not None and time.monotonic() < self._co.coherent_until:
            return copy
        async with self._crl_lock:
            copy = self._crl
            if copy is not None and time.monotonic() < self._co.coherent_until:
                return copy
            epoch = self._co.epoch
            async with self.db.transaction(write=False) as conn:
                found = await StatusRepository(conn).latest_crl()
            if found is None:
                raise DependencyUnavailable("no CRL has been published yet",
                                            code="crl_unavailable")
            copy = self._crl_copy(*found)
            self._keep_crl(copy, epoch)
            return copy

    def _keep_crl(self, copy: CrlCopy, epoch: int | None = None) -> None:
        """Serve ``copy`` from memory unless a newer CRL is known, or (for a copy read from
        the database) a change was applied while it was read."""
        if not self._replica or copy.meta.number < self._crl_floor:
            return
        if epoch is not None and epoch != self._co.epoch:
            return
        self._crl_floor = copy.meta.number
        self._crl = copy

    @property
    def served_crl_this_update(self) -> datetime | None:
        """thisUpdate of the CRL this replica serves from memory (for the CRL-age metric)."""
        return self._crl.meta.this_update if self._crl is not None else None

    def _crl_copy(self, meta: CrlMeta, der: bytes) -> CrlCopy:
        etag = f'"{meta.sha256[:40]}"'
        return CrlCopy(meta, der, etag, {
            "ETag": etag, "Last-Modified": http_date(meta.this_update),
            "Expires": http_date(meta.next_update), "Cache-Control": "public, no-cache"})

    async def ensure_crl(self, generation: int) -> None:
        """Return once a stored CRL covers ``generation`` (building at most one at a time in
        this process; callers that arrive during a build share the next one)."""
        for _round in range(10):
            async with self.db.transaction(write=False) as conn:
                meta = await StatusRepository(conn).latest_crl_meta()
            if meta is not None and meta.generation >= generation:
                return
            await self.regenerate_crl(coalesce=True)
        raise RuntimeError("no CRL covering the change was stored")

    async def regenerate_crl(self, *, coalesce: bool = False) -> CrlMeta:
        """Build, sign and store a new CRL. With ``coalesce``, join a build already running in
        this process instead of starting another."""
        task = self._crl_task
        if task is None or task.done() or not coalesce:
            if task is not None and not task.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            task = self._crl_task = asyncio.create_task(self._build_and_store_crl())
        return await asyncio.shield(task)

    async def _build_and_store_crl(self) -> CrlMeta:
        started = time.perf_counter()
        async with self.db.transaction() as conn:
            number, generation = await StatusRepository(conn).allocate_crl_number()
        now = self.clock.now()
        packed = bytearray()
        async with self.db.transaction(write=False) as conn:
            repo = StatusRepository(conn)
            previous = await repo.latest_crl_meta()
            # RFC 5280 §3.3: an entry leaves the CRL once a CRL issued after the certificate
            # expired has carried it; that is, when it expired before the last CRL was issued.
            cutoff = min(previous.this_update, now) if previous is not None else now
            async for rows in repo.revoked_entries(cutoff):  # small batches: the loop breathes
                for serial, revoked_epoch, reason in rows:
                    packed += crl_pki.pack_entry(serial, int(revoked_epoch), reason)
        count = len(packed) // crl_pki.ENTRY_SIZE
        next_update = now + timedelta(seconds=self.settings.crl_next_update_seconds)
        params = crl_pki.CrlParams(self.ca.certificate_der, number, now, next_update,
                                   self.distribution_point)
        read = time.perf_counter()
        der, digest = await self._build_crl(params, bytes(packed), count)
        built = time.perf_counter()
        meta = CrlMeta(number, generation, now, next_update, count, digest)
        async with self.db.transaction() as conn:
            repo = StatusRepository(conn)
            await repo.lock_state()
            stored = await repo.store_crl(meta, der, now, KEEP_CRLS)
            if stored:
                await repo.bump_generation("crl", str(number), now)
        done = time.perf_counter()
        self.last_crl_timings = {"read": read - started, "build": built - read,
                                 "store": done - built}
        log.info("CRL built", extra={"crl_number": number, "entries": count,
                                     "bytes": len(der), "stored": stored,
                                     **{f"{k}_seconds": round(v, 3)
                                        for k, v in self.last_crl_timings.items()}})
        if stored:  # the newest when it was stored; a newer one since raised the floor
            self._keep_crl(self._crl_copy(meta, der))
        return meta

    async def _build_crl(self, params: crl_pki.CrlParams, packed: bytes, count: int
                         ) -> tuple[bytes, str]:
        """The DER and its SHA-256. Small CRLs in a thread; large ones in a child process, so
        neither the event loop nor the GIL is held for the whole build."""
        if count < self.settings.crl_subprocess_min_entries:
            der = await asyncio.to_thread(crl_pki.build_crl, self.ca.key, params, packed)
        else:
            kind = crl_pki.key_kind(self.ca.key)
            loop = asyncio.get_running_loop()
            tbs = await loop.run_in_executor(self._process_pool(), crl_pki.build_tbs, kind,
                                             params, packed)
            der = await asyncio.to_thread(crl_pki.sign_tbs, self.ca.key, tbs)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(der).hexdigest())
        return der, digest

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def crl_due(self) -> bool:
        """A CRL is due when none is stored, it nears ``nextUpdate``, or a revocation is newer
        than it (a revoking request that failed to publish)."""
        now = self.clock.now()
        async with self.db.transaction(write=False) as conn:
            repo = StatusRepository(conn)
            meta = await repo.latest_crl_meta()
            latest_revocation = await repo.latest_change("serial")
        if meta is None:
            return True
        refresh_before = timedelta(seconds=self.settings.crl_refresh_before_seconds)
        return meta.next_update - now < refresh_before or meta.generation < latest_revocation

    # --- maintenance ---------------------------------------------------------------------------

    async def maintain(self) -> RefreshReport:
        """One round of the background work: responder rollover, CRL before ``nextUpdate``,
        OCSP re-signing and pre-signing, and pruning."""
        await self.ensure_responder()
        if await self.crl_due():
            await self.regenerate_crl(coalesce=True)
        report = await self.refresh_ocsp()
        now, wall = self.clock.now(), self.wall_clock.now()
        async with self.db.transaction() as conn:
            repo = StatusRepository(conn)
            await repo.prune_changes(now - CHANGE_LOG_RETENTION)
            await repo.prune_replicas(wall - timedelta(hours=1))
            await repo.prune_responders(now - timedelta(days=1))
        return report

    async def _maintenance_loop(self) -> None:
        interval = self.settings.refresh_interval_seconds
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))  # jitter between replicas
            try:
                report = await self.maintain()
                if report.resigned or report.presigned:
                    log.info("OCSP responses refreshed", extra=report.as_dict())
            except Exception:
                log.warning("status maintenance failed", exc_info=True)

    # --- introspection for tests and operators --------------------------------------------------

    @property
    def memory_size(self) -> int:
        return len(self._memory)

    @property
    def replica_id(self) -> str:
        return self._co.replica_id

    def lease_valid(self) -> bool:
        return time.monotonic() < self._co.coherent_until

