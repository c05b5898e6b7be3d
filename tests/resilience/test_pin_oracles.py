"""Issue 11, findings 1 and 5, mounted against a real ``certcloud serve``.

Finding 1 (offline): PIN-bearing requests are made, with and without Idempotency-Key, right
and wrong PINs (issue, signatures, CSC authorize + signHash, PIN change, revoke by PIN). Then
the attacker takes every row of every table, the database files, the server log, and every
server secret (``secrets.json`` and the key ring), opens whatever those secrets open (sealed
idempotency replies, SAD-sealed signatures), and recomputes each derivation the code uses (and
a few generic ones) over the otherwise-known request, once with the true PIN and once with a
wrong one. A derivation whose true-PIN value is found in what the attacker holds and differs
from the wrong-PIN value tests a guess for the price of an HMAC: that fails the test, as does
the PIN in clear or in a common encoding. Only the Argon2id key blob may depend on the PIN.

Finding 5 (online): with the same client and a known Idempotency-Key, a past body is sent
again with 20 PIN guesses (the real PIN among them): every reply must be the first reply,
byte for byte, and no try may be counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import inspect, select, text

from app.services import csc
from app.services.secrets import LocalChainKey, load_secrets
from app.storage.idempotency import ReplyKeys
from app.storage.ops_tables import audit_events, idempotency_keys
from tests.resilience.conftest import Cluster, report, running_cluster
from tests.support.bank import Bank
from tests.support.people import resident
from tests.support.processes import settings_for

PIN, NEW_PIN = "583016", "740295"
WRONG_PINS = ["480213", "617350", "905172", "264039"]
GUESSES = [f"{(n * 7919 + 104729) % 1_000_000:06d}" for n in range(19)]
DIGEST = base64.b64encode(hashlib.sha256(b"loan contract").digest()).decode()
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
PIN_FIELDS = ("pin", "new_pin", "PIN", "OTP")  # the API contract's PIN-bearing members


@pytest.fixture(scope="module")
async def cluster(server_template: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Cluster]:
    """One server at DEBUG, so that whatever it might log is in the attacker's hands."""
    async with running_cluster(tmp_path_factory.mktemp("pin-oracles"), server_template, 1,
                               CERTCLOUD_LOG_LEVEL="DEBUG") as opened:
        yield opened


def found_encoded(secret: str, haystack: bytes) -> bool:
    """The secret as a token of its own, or base64- or hex-encoded (as in test_leaks)."""
    raw = re.escape(secret.encode())
    if re.search(rb"(?<![0-9A-Za-z.])" + raw + rb"(?![0-9A-Za-z])", haystack):
        return True
    return any(form in haystack for form in (base64.b64encode(secret.encode()),
                                             secret.encode().hex().encode()))


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def pin_paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for name, member in value.items()
                for p in ([(*at, name)] if name in PIN_FIELDS else pin_paths(member, (*at, name)))]
    if isinstance(value, list):
        return [p for n, member in enumerate(value) for p in pin_paths(member, (*at, n))]
    return []


def replaced(body: Any, path: tuple[Any, ...], new: str) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copy


@dataclass
class Sent:
    """A PIN-bearing request as the attacker knows it: all of it but the PIN values."""

    path: str
    body: dict[str, Any]
    key: str | None

    def variants(self) -> list[tuple[str, bytes, bytes]]:
        """(field, raw body with the true PINs, raw body with that field's PIN wrong)."""
        true = encode(self.body)
        out = []
        for path in pin_paths(self.body):
            wrong = next(w for w in WRONG_PINS + GUESSES if w != _get(self.body, path))
            out.append(("/".join(map(str, path)), true, encode(replaced(self.body, path, wrong))))
        return out


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        body = body[part]
    return body


@dataclass
class Attacker:
    """What a holder of the data directory and the server secrets can compute."""

    secrets: dict[str, bytes]
    reply_keys: ReplyKeys
    derivations: dict[str, Callable[[Sent, bytes], bytes]] = field(default_factory=dict)

    @classmethod
    def of(cls, cluster: Cluster) -> Attacker:
        loaded = load_secrets(settings_for(cluster.data_dir, cluster.database_url))
        named = {"code_hmac_key": loaded.code_hmac_key, "rrn_hmac_key": loaded.rrn_hmac_key}
        for name in ("audit_hmac_key", "pin_pattern_key"):  # the keys of their own
            value = getattr(loaded, name)
            if value:
                named[name] = value
        legacy = loaded.audit_key.legacy
        if isinstance(legacy, LocalChainKey):
            named["legacy audit key"] = legacy.secret
        stored = json.loads((cluster.data_dir / "secrets.json").read_text())
        for name, value in stored.items():  # whatever else the server keeps there
            if isinstance(value, str):
                named[f"secrets.json {name}"] = value.encode()
        for token_key in loaded.token_keys:
            named[f"token key {token_key.kid}"] = token_key.secret
        ring = json.loads((cluster.data_dir / "keyring.json").read_text())
        for entry in ring["keys"]:
            named[f"master key {entry['id']}"] = base64.b64decode(entry["key"])
        for purpose in (b"request", b"reply"):  # the idempotency keys, as the code derives them
            named[f"idempotency {purpose.decode()} key"] = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"certcloud:idempotency:" + purpose).derive(loaded.code_hmac_key)
        attacker = cls(named, ReplyKeys(loaded.code_hmac_key))
        attacker._add_derivations()
        return attacker

    def _add_derivations(self) -> None:
        keys = self.reply_keys
        d = self.derivations
        d["idempotency HMAC of the raw request (main before issue 11)"] = \
            lambda sent, raw: keys.request_hash((b"POST", sent.path.encode(), b"", raw)).encode()
        fingerprint = getattr(keys, "fingerprint", None)
        if fingerprint is not None:  # the code's own fingerprint
            d["idempotency fingerprint"] = \
                lambda sent, raw: (fingerprint("POST", sent.path, b"", raw) or "").encode()
        d["SHA-256 of the body"] = lambda sent, raw: hashlib.sha256(raw).hexdigest().encode()
        for name, key in self.secrets.items():
            d[f"HMAC-SHA256 of the body under {name}"] = \
                lambda sent, raw, key=key: _hmac(key, raw)
            d[f"HMAC-SHA256 of the PINs under {name}"] = \
                lambda sent, raw, key=key: _hmac(key, _pins_of(raw))

    def oracles(self, sent: list[Sent], haystack: bytes) -> list[str]:
        """Every (request, PIN field, derivation) whose true-PIN value is held by the attacker
        and tells the true PIN from a wrong one."""
        found = []
        for request in sent:
            for where, true, wrong in request.variants():
                for name, derive in self.derivations.items():
                    value = derive(request, true)
                    if not value or value == derive(request, wrong):
                        continue
                    if value in haystack or bytes.fromhex(value.decode()) in haystack:
                        found.append(f"{name} tests {where} of {request.path}")
        return sorted(set(found))


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).hexdigest().encode()


def _pins_of(raw: bytes) -> bytes:
    body = json.loads(raw)
    return "".join(str(_get(body, path)) for path in pin_paths(body)).encode()


class Recorder:
    """Sends the requests as raw JSON (so the attacker knows the exact bytes)."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank
        self.sent: list[Sent] = []

    async def post(self, path: str, body: dict[str, Any], key: str | None = None
                   ) -> httpx.Response:
        headers = {**self.bank.headers, "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        reply = await self.bank.at(0).post(path, content=encode(body), headers=headers)
        self.bank.seen.note(reply)
        if pin_paths(body):
            self.sent.append(Sent(path, body, key))
        return reply


async def _flows(cluster: Cluster, record: Recorder) -> list[str]:
    """The PIN-bearing requests; returns the SADs handed out (to open their rows)."""
    bank, holder = record.bank, resident(301)
    proof = await bank.verified(holder["phone"])
    issued = await record.post("/v1/certificates", {
        "verification_id": proof, "person": holder, "terms_accepted": True,
        "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
        "pin": PIN}, key="oracle-issue")
    assert issued.status_code == 201, issued.text
    cert = issued.json()["id"]
    sign = f"/v1/certificates/{cert}/signatures"
    for n, pin in enumerate((PIN, WRONG_PINS[0])):
        for key in (f"oracle-sign-{n}", None):
            reply = await record.post(sign, {"pin": pin, "digest": DIGEST, "format": "raw"}, key)
            assert reply.status_code == (200 if pin == PIN else 403), reply.text
    authorize = "/csc/v1/credentials/authorize"
    sads = []
    for n, pin in enumerate((PIN, WRONG_PINS[1], PIN)):
        reply = await record.post(authorize, {"credentialID": cert, "numSignatures": 1,
                                              "hash": [DIGEST], "PIN": pin}, f"oracle-csc-{n}")
        assert reply.status_code == (200 if pin == PIN else 400), reply.text
        if pin == PIN:
            sads.append(reply.json()["SAD"])
    signed = await bank.post("/csc/v1/signatures/signHash", {
        "credentialID": cert, "SAD": sads[0], "hash": [DIGEST], "signAlgo": ECDSA_SHA256})
    assert signed.status_code == 200, signed.text  # sads[1] stays unused, its row sealed
    change = f"/v1/certificates/{cert}/pin"
    wrong = await record.post(change, {"pin": WRONG_PINS[2], "new_pin": NEW_PIN}, "oracle-pin-0")
    assert wrong.status_code == 403, wrong.text
    changed = await record.post(change, {"pin": PIN, "new_pin": NEW_PIN}, "oracle-pin-1")
    assert changed.status_code == 200, changed.text
    revoke = f"/v1/certificates/{cert}/revoke"
    refused = await record.post(revoke, {"pin": WRONG_PINS[3], "reason": "key_compromise"})
    assert refused.status_code == 403, refused.text
    revoked = await record.post(revoke, {"pin": NEW_PIN, "reason": "key_compromise"},
                                "oracle-revoke")
    assert revoked.status_code == 200, revoked.text
    return sads


async def _database(cluster: Cluster) -> tuple[bytes, dict[str, list[Any]]]:
    """The database files (SQLite) and every row of every table the database really has."""
    dump = bytearray()
    url = cluster.database_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for part in (path, Path(f"{path}-wal")):
            if part.exists():
                dump += part.read_bytes()
    tables: dict[str, list[Any]] = {}
    async with cluster.inspector.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in names:
            tables[name] = list((await conn.execute(text(f'SELECT * FROM "{name}"'))).all())
            for row in tables[name]:
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
                    dump += b"\x00"
    return bytes(dump), tables


async def _opened(cluster: Cluster, attacker: Attacker, sads: list[str]) -> bytes:
    """What the secrets open: every sealed idempotency reply, and the SAD-sealed signatures
    (the SADs are in the opened authorize replies)."""
    opened = bytearray()
    for row in await cluster.inspector.rows(select(idempotency_keys)):
        if row.body:
            opened += attacker.reply_keys.open(row.client_id, row.key, row.body) + b"\x00"
    async with cluster.inspector.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM csc_sads"))).all()
    for row in rows:
        for sad in sads:
            if row.sealed and row.id == csc._sad_id(sad):  # the code's own SAD derivations
                nonce, body = row.sealed[:12], row.sealed[12:]
                opened += csc._sad_cipher(sad).decrypt(
                    nonce, body, csc._binding(row.id, row.credential_id, row.client_id))
    return bytes(opened)


async def test_no_stored_or_logged_value_tests_a_pin_cheaper_than_argon2id(
        cluster: Cluster) -> None:
    bank = await cluster.bank("oracle-bank")
    record = Recorder(bank)
    sads = await _flows(cluster, record)
    attacker = Attacker.of(cluster)
    database, tables = await _database(cluster)
    opened = await _opened(cluster, attacker, sads)
    logs = cluster.servers[0].log_text().encode()
    assert b'"level": "debug"' in logs and opened and sads

    # The harness reproduces every stored request hash from the true request: it knows the
    # derivation the code uses, so a PIN-dependent one cannot escape it.
    stored = {row.key: row.request_hash for row in tables["idempotency_keys"]}
    keyed = [s for s in record.sent if s.key is not None]
    assert {s.key for s in keyed} <= set(stored)
    for sent in keyed:
        true = encode(sent.body)
        assert stored[sent.key] in {derive(sent, true).decode()
                                    for name, derive in attacker.derivations.items()
                                    if name.startswith("idempotency")}, sent.path

    haystack = database + b"\x00" + opened + b"\x00" + logs
    oracles = attacker.oracles(record.sent, haystack)
    pins = [PIN, NEW_PIN, *WRONG_PINS]
    clear = [f"PIN {pin} in the {where}" for pin in pins
             for where, held in (("database", database), ("opened replies and SADs", opened),
                                 ("server log", logs)) if found_encoded(pin, held)]
    pin_events = [row for row in tables["audit_events"] if row.action == "pin_check"]
    report("pin_oracles.offline", requests=len(record.sent), keyed=len(keyed),
           derivations=len(attacker.derivations), secrets=len(attacker.secrets),
           tables=len(tables), database_bytes=len(database), opened_bytes=len(opened),
           log_bytes=len(logs), pin_checks_audited=len(pin_events),
           oracles=oracles, clear=clear)
    assert not oracles, oracles
    assert not clear, clear
    assert bank.seen.server_errors == 0, bank.seen.errors


async def _tries(bank: Bank, cert: str) -> int:
    return int((await bank.get(f"/v1/certificates/{cert}")).json()["remaining_pin_attempts"])


async def test_replayed_keys_answer_every_pin_guess_alike(cluster: Cluster) -> None:
    bank = await cluster.bank("oracle-online-bank")
    holder = resident(302)
    issued = await bank.issue(holder, pin=PIN)
    assert issued.status_code == 201, issued.text
    cert = issued.json()["id"]
    guesses = [*GUESSES[:7], PIN, *GUESSES[7:]]
    assert len(guesses) == 20 and len(set(guesses)) == 20
    cases = [
        (f"/v1/certificates/{cert}/signatures", lambda pin: {"pin": pin, "digest": DIGEST,
                                                             "format": "raw"}),
        ("/csc/v1/credentials/authorize", lambda pin: {"credentialID": cert,
                                                       "numSignatures": 1, "hash": [DIGEST],
                                                       "PIN": pin})]
    answered = 0
    for path, body in cases:
        wrong_status = 400 if path.startswith("/csc/") else 403
        for n, first_pin in enumerate((PIN, WRONG_PINS[0])):
            key = {"Idempotency-Key": f"online-{path.rsplit('/', 1)[-1]}-{n}"}
            first = await bank.post(path, body(first_pin), key)
            assert first.status_code == (200 if first_pin == PIN else wrong_status), first.text
            tries = await _tries(bank, cert)
            events = len(await cluster.inspector.rows(
                select(audit_events.c.seq).where(audit_events.c.action == "pin_check")))
            replies = [await bank.post(path, body(guess), key) for guess in guesses]
            answered += len(replies)
            for guess, reply in zip(guesses, replies, strict=True):
                assert reply.status_code == first.status_code, (path, guess, reply.text)
                assert reply.content == first.content, (path, guess)
                assert reply.headers.get("idempotent-replayed") == "true", (path, guess)
            assert len({(r.status_code, r.content) for r in replies}) == 1
            # No guess reached the PIN check: none counted, none audited.
            assert await _tries(bank, cert) == tries
            assert len(await cluster.inspector.rows(
                select(audit_events.c.seq).where(audit_events.c.action == "pin_check"))) == events
        # The right PIN on a fresh key still works, and a wrong one is still counted.
        fresh = await bank.post(path, body(PIN), {"Idempotency-Key": f"fresh-{path}"})
        assert fresh.status_code == 200, fresh.text
    assert await _tries(bank, cert) == 5
    counted = await bank.post(cases[0][0], cases[0][1](WRONG_PINS[1]))
    assert counted.status_code == 403 and await _tries(bank, cert) == 4
    report("pin_oracles.online", guesses_per_key=len(guesses), keys=4, answered=answered,
           distinct_replies_per_key=1)
    assert bank.seen.server_errors == 0, bank.seen.errors
