"""Idempotency records: the first reply to a (client, Idempotency-Key) pair, kept in the
database so a retry on any replica gets the same reply.

A request body may hold a PIN and a reply may hold a secret (a CSC SAD, an ARS display code),
so neither is kept readable. The request is remembered by an HMAC under a server key of its
*fingerprint*: the JSON body parsed, every PIN-bearing field dropped (``pin``, ``new_pin``, CSC
``PIN`` and ``OTP``: any member whose name, split at ``_`` and ``-``, holds the word ``pin`` or
``otp`` in any case, at any depth), re-encoded canonically. The PIN is never part of it: a
keyed hash of a body whose only unknown is a 6-digit PIN is a PIN oracle to whoever holds the
server secret (10^6 HMACs, seconds), far cheaper than the Argon2id of the key blob. A body
that is not a JSON object (nor empty) has no fingerprint and is not recorded at all: the routes
refuse such bodies anyway, and nothing about them is stored.

So a retry with the same key and the same request but another PIN is the same request: it gets
the first reply, whatever PIN it carries. That closes the online oracle too (issue 11, finding
5: a wrong PIN used to get 422 "reused" where the right one replayed 200). The issue asks that
such a mismatch count as a wrong PIN or void the key; with the PIN out of the fingerprint there
is no PIN-dependent outcome left to count: every guess gets the same bytes, so a guess teaches
nothing, and a replay never reaches the PIN check (no try is spent, none is owed). That is
stronger than either: counting still answers each guess (a replayed 200 for the right PIN, a
counted refusal for a wrong one) up to the lockout, and voiding still answers the first.

The reply is sealed with AES-GCM under another key derived from the same server secret, bound
to the client and the Idempotency-Key. A database dump alone yields neither."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.storage.db import Database
from app.storage.ops_tables import idempotency_keys

# A request still "in progress" after this long died with its process; a retry takes over.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Claim:
    outcome: Literal["new", "replay", "mismatch", "in_progress"]
    status_code: int | None = None
    content_type: str | None = None
    body: bytes | None = None


_NONCE = 12


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"certcloud:idempotency:" + purpose).derive(secret)


_PIN_WORDS = frozenset({"pin", "otp"})


def is_pin_field(name: str) -> bool:
    """``pin``, ``new_pin``, ``PIN``, ``OTP``, ``current-pin``…: a member that holds a PIN."""
    return bool(_PIN_WORDS & set(re.split(r"[_-]", name.lower())))


def _without_pins(value: object) -> object:
    if isinstance(value, dict):
        return {name: _without_pins(member) for name, member in value.items()
                if not is_pin_field(name)}
    if isinstance(value, list):
        return [_without_pins(member) for member in value]
    return value


def canonical_body(body: bytes) -> bytes | None:
    """The body as the fingerprint sees it: empty stays empty; a JSON object is re-encoded
    (sorted members, no spaces, ASCII) without its PIN-bearing members; anything else is
    ``None`` (not recorded). It parses as the routes do (``json.loads``: the last of duplicate
    members wins), so two bodies the routes take alike get one fingerprint."""
    if not body:
        return b""
    try:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            return None
        return json.dumps(_without_pins(parsed), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode()
    except (ValueError, RecursionError):  # not JSON (or bad UTF-8), or nested too deep
        return None


class ReplyKeys:
    """The keys of the idempotency records, derived from a server secret."""

    def __init__(self, secret: bytes) -> None:
        self._mac_key = _derive(secret, b"request")
        self._aead = AESGCM(_derive(secret, b"reply"))

    def fingerprint(self, method: str, path: str, query: bytes, body: bytes) -> str | None:
        """The stored request hash, or ``None`` for a body that is not to be recorded."""
        canonical = canonical_body(body)
        if canonical is None:
            return None
        return self.request_hash((method.encode(), path.encode(), query, canonical))

    def request_hash(self, parts: Iterable[bytes]) -> str:
        mac = hmac.new(self._mac_key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "big") + part)
        return mac.hexdigest()

    @staticmethod
    def _binding(client_id: str, key: str) -> bytes:
        return f"{len(client_id)}:{client_id}:{key}".encode()

    def seal(self, client_id: str, key: str, body: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, body, self._binding(client_id, key))

    def open(self, client_id: str, key: str, sealed: bytes) -> bytes:
        """:raises InvalidTag: not sealed under this key for this client and key."""
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:],
                                  self._binding(client_id, key))


class IdempotencyStore:
    def __init__(self, db: Database, keys: ReplyKeys) -> None:
        self.db, self.keys = db, keys

    async def claim(self, client_id: str, key: str, request_hash: str, now: datetime) -> Claim:
        dialect = sqlite if self.db.is_sqlite else postgresql
        statement = dialect.insert(idempotency_keys).values(
            client_id=client_id, key=key, request_hash=request_hash, state="in_progress",
            created_at=now).on_conflict_do_nothing().returning(idempotency_keys.c.key)
        async with self.db.transaction() as conn:
            if (await conn.execute(statement)).first() is not None:
                return Claim("new")
            row = (await conn.execute(select(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id,
                idempotency_keys.c.key == key))).one()
            if not hmac.compare_digest(row.request_hash, request_hash):
                return Claim("mismatch")
            if row.state == "done":
                try:
                    body = self.keys.open(client_id, key, row.body or b"")
                except InvalidTag:  # not sealed by this server secret: treat as another request
                    return Claim("mismatch")
                return Claim("replay", row.status_code, row.content_type, body)
            if row.created_at > now - ABANDONED_AFTER:
                return Claim("in_progress")
            taken = await conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key,
                idempotency_keys.c.state == "in_progress",
                idempotency_keys.c.created_at == row.created_at).values(created_at=now))
            return Claim("new" if taken.rowcount == 1 else "in_progress")

    async def complete(self, client_id: str, key: str, status_code: int, content_type: str,
                       body: bytes) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id,
                idempotency_keys.c.key == key).values(
                state="done", status_code=status_code, content_type=content_type,
                body=self.keys.seal(client_id, key, body)))

    async def release(self, client_id: str, key: str) -> None:
        """Forget a claim whose request failed on the server's side, so a retry runs again."""
        async with self.db.transaction() as conn:
            await conn.execute(delete(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key,
                idempotency_keys.c.state == "in_progress"))
