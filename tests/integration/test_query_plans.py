"""Every query the request paths make is an index lookup, not a scan of a big table (issue 17).

On PostgreSQL only: a database seeded with 20,000 rows in each big table (persons,
certificates, verifications, pre-signed OCSP responses, audit events, notices, idempotency
records, SADs) and ANALYZEd, the real request paths driven in process (verification and its
confirm, issue, get, status, OCSP for a stored and an unstored serial, lookup by RRN, raw
signature, PIN change, unlock, reissue, revoke by PIN and by verification, CSC list, info,
authorize and signHash), every SQL statement they send captured from the engine
(``before_cursor_execute``), then ``EXPLAIN``ed with its own parameters. A Seq Scan on a big
table fails the test, naming the statement and its plan.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import event

from tests.support.app import BACKEND, Service
from tests.support.bank import Bank
from tests.support.people import person

pytestmark = pytest.mark.skipif(BACKEND != "postgres",
                                reason="query plans are PostgreSQL's (CERTCLOUD_TEST_DB=postgres)")

ROWS = 20_000
BIG_TABLES = frozenset({
    "persons", "certificates", "verifications", "ocsp_responses", "audit_events", "notices",
    "idempotency_keys", "csc_sads", "rate_counters", "status_changes"})
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}
_SKIP = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET|SHOW|SELECT\s+pg_|"
                   r"SELECT\s+1\b|select\s+pg_|select\s+current_|SELECT\s+version)", re.I)


async def _seed(url: str, client_id: str, now: datetime) -> None:
    """ROWS synthetic, well-formed rows per big table, written by the database itself."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.execute("""
                INSERT INTO persons (id, rrn_hmac, name, phone, email, birth_patterns,
                                     created_at, updated_at)
                SELECT md5('p' || g)::uuid::text, md5('r' || g) || md5('R' || g),
                       'seeded', '+8210' || (30000000 + g)::text, 'p' || g || '@example.com',
                       '{"v": 2, "salt": "00", "h": []}', $1::timestamptz - g * interval '1 minute',
                       $1::timestamptz - g * interval '1 minute'
                FROM generate_series(1, $2) g""", now, ROWS)
            await conn.execute("""
                INSERT INTO certificates (id, person_id, serial, state, not_before, not_after,
                    certificate_der, key_algorithm, issued_by_client, revocation_reason,
                    revoked_at, wrong_pins, pin_checks_in_flight, master_key_id, wrapped_key,
                    created_at, updated_at)
                SELECT md5('c' || g)::uuid::text, md5('p' || g)::uuid::text,
                       '4' || md5('s' || g),
                       CASE WHEN g % 33 = 0 THEN 'revoked' ELSE 'active' END,
                       $1::timestamptz - g * interval '1 hour',
                       $1::timestamptz - g * interval '1 hour' + interval '1095 days',
                       decode(repeat('30', 600), 'hex'), 'rsa2048', $3,
                       CASE WHEN g % 33 = 0 THEN 1 END,
                       CASE WHEN g % 33 = 0 THEN $1::timestamptz - g * interval '1 minute' END,
                       0, 0,
                       'seeded-key', decode(repeat('ab', 600), 'hex'),
                       $1::timestamptz - g * interval '1 hour',
                       $1::timestamptz - g * interval '1 hour'
                FROM generate_series(1, $2) g""", now, ROWS, client_id)
            await conn.execute("""
                INSERT INTO ocsp_responses (serial, hash_algorithm, cert_status, response_der,
                                            this_update, next_update, responder_id)
                SELECT '4' || md5('s' || g), 'sha1', 'good', decode('3003', 'hex'),
                       $1::timestamptz - interval '1 hour', $1::timestamptz + interval '23 hours',
                       'seeded'
                FROM generate_series(1, $2) g WHERE g % 2 = 0""", now, ROWS)
            await conn.execute("""
                INSERT INTO verifications (id, client_id, phone, channel, purpose, code_hash,
                    status, wrong_codes, created_at, expires_at, verified_at, used_at)
                SELECT md5('v' || g)::uuid::text, $3, '+8210' || (30000000 + g)::text, 'sms',
                       'issue', md5('h' || g) || md5('H' || g), 'used', 0,
                       $1::timestamptz - g * interval '1 minute',
                       $1::timestamptz - g * interval '1 minute' + interval '5 minutes',
                       $1::timestamptz - g * interval '1 minute',
                       $1::timestamptz - g * interval '1 minute'
                FROM generate_series(1, $2) g""", now, ROWS, client_id)
            head = await conn.fetchval("SELECT seq FROM audit_head WHERE id = 1")
            await conn.execute("""
                INSERT INTO audit_events (seq, occurred_at, client_id, action, certificate_id,
                    result, details, prev_hash, hash, key_id)
                SELECT g, $1::timestamptz - interval '1 day', $3, 'lookup',
                       md5('c' || g)::uuid::text, 'ok', '{}', md5('a' || g) || md5('A' || g),
                       md5('b' || g) || md5('B' || g),
                       'seeded'
                FROM generate_series($4 + 1, $4 + $2) g""", now, ROWS, client_id, head)
            # The head keeps its own hash: new rows chain on after the seeded ones.
            await conn.execute("UPDATE audit_head SET seq = seq + $1 WHERE id = 1", ROWS)
            await conn.execute("""
                INSERT INTO notices (id, phone, kind, client_id, text, created_at, attempts,
                                     sent_at)
                SELECT md5('n' || g)::uuid::text, '+8210' || (30000000 + g)::text, 'issue',
                       $3, 'seeded', $1::timestamptz - interval '1 day', 1,
                       $1::timestamptz - interval '1 day'
                FROM generate_series(1, $2) g""", now, ROWS, client_id)
            await conn.execute("""
                INSERT INTO idempotency_keys (client_id, key, request_hash, state,
                                              status_code, created_at)
                SELECT $3, 'seeded-' || g, md5('i' || g) || md5('I' || g), 'done', 200,
                       $1::timestamptz - interval '1 hour'
                FROM generate_series(1, $2) g""", now, ROWS, client_id)
            await conn.execute("""
                INSERT INTO csc_sads (id, credential_id, client_id, hash_algorithm, hashes,
                                      created_at, expires_at, used_at)
                SELECT md5('d' || g) || md5('D' || g), md5('c' || g)::uuid::text, $3, 'sha256',
                       '[]', $1::timestamptz - interval '1 hour',
                       $1::timestamptz - interval '55 minutes',
                       $1::timestamptz - interval '58 minutes'
                FROM generate_series(1, $2) g""", now, ROWS, client_id)
            generation = await conn.fetchval("SELECT generation FROM status_state WHERE id = 1")
            await conn.execute("""
                INSERT INTO status_changes (generation, kind, detail, created_at)
                SELECT g, 'serial', '4' || md5('s' || (g - $3)), $1::timestamptz - interval '1 hour'
                FROM generate_series($3 + 1, $3 + $2) g""", now, ROWS, generation)
            await conn.execute("UPDATE status_state SET generation = generation + $1 WHERE id = 1",
                               ROWS)
            await conn.execute("""
                INSERT INTO rate_counters (bucket, window_start, count)
                SELECT 'seeded:' || g, $2::bigint - g % 3600, 1
                FROM generate_series(1, $1) g""", ROWS, int(now.timestamp()))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


class Capture:
    """The statements an engine sends while ``on`` (text, first parameters seen)."""

    def __init__(self) -> None:
        self.on = False
        self.statements: dict[str, Any] = {}

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
                 _context: Any, _executemany: bool) -> None:
        if self.on and not _SKIP.match(statement):
            self.statements.setdefault(statement, parameters)


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    node_type, relation = plan.get("Node Type", ""), plan.get("Relation Name")
    if relation:
        yield node_type, relation
    for child in plan.get("Plans", ()):
        yield from _scans(child)


def _ocsp_for(serial: int, issuer_name_hash: bytes, issuer_key_hash: bytes) -> bytes:
    return (ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(issuer_name_hash, issuer_key_hash, serial, hashes.SHA1())
            .build().public_bytes(serialization.Encoding.DER))


async def _drive(service: Service, bank: Bank) -> None:
    """The request paths, each once, on the seeded database (asserting they work)."""
    http = service.http
    holder = person(7)
    issued = await bank.issue(holder, pin="902714")
    assert issued.status_code == 201, issued.text
    cert = issued.json()
    assert (await bank.get(f"/v1/certificates/{cert['id']}")).status_code == 200
    assert (await http.get(f"/v1/status/{cert['serial']}")).json()["status"] == "good"
    seeded_serial = "4" + hashlib.md5(b"s1").hexdigest()
    assert (await http.get(f"/v1/status/{seeded_serial}")).json()["status"] == "good"

    real = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
    ca = x509.load_der_x509_certificate((await http.get("/ca/certificate")).content)
    request = ocsp.OCSPRequestBuilder().add_certificate(real, ca, hashes.SHA1()).build()
    for serial in (real.serial_number, int(seeded_serial, 16),  # stored or signed now
                   int("4" + hashlib.md5(b"s2").hexdigest(), 16),  # a stored row
                   int("4" + hashlib.md5(b"s3").hexdigest(), 16)):  # none stored: a miss
        reply = await http.post("/ocsp", content=_ocsp_for(
            serial, request.issuer_name_hash, request.issuer_key_hash), headers=OCSP_REQUEST)
        assert reply.status_code == 200

    for rrn in (holder["rrn"], "850505-2000000"):
        assert (await bank.post("/v1/certificates/lookup", {"rrn": rrn})).status_code == 200
    data = base64.b64encode(b"scale").decode()
    signed = await bank.post(f"/v1/certificates/{cert['id']}/signatures",
                             {"pin": "902714", "data": data, "format": "raw"})
    assert signed.status_code == 200, signed.text
    wrong = await bank.post(f"/v1/certificates/{cert['id']}/signatures",
                            {"pin": "517293", "data": data, "format": "raw"})
    assert wrong.status_code == 403, wrong.text

    listed = await bank.post("/csc/v1/credentials/list", {"userID": holder["rrn"]})
    assert listed.status_code == 200, listed.text
    info = await bank.post("/csc/v1/credentials/info", {"credentialID": cert["id"]})
    assert info.status_code == 200, info.text
    digest = base64.b64encode(hashlib.sha256(b"scale").digest()).decode()
    authorized = await bank.post("/csc/v1/credentials/authorize", {
        "credentialID": cert["id"], "numSignatures": 1, "hash": [digest], "PIN": "902714"})
    assert authorized.status_code == 200, authorized.text
    sign_hash = await bank.post("/csc/v1/signatures/signHash", {
        "credentialID": cert["id"], "SAD": authorized.json()["SAD"], "hash": [digest],
        "signAlgo": "1.2.840.113549.1.1.11"})
    assert sign_hash.status_code == 200, sign_hash.text

    changed = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                              {"pin": "902714", "new_pin": "417093"})
    assert changed.status_code == 200, changed.text
    unlock_id = await bank.verified(holder["phone"], "unlock")
    unlocked = await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                               {"verification_id": unlock_id})
    assert unlocked.status_code == 200, unlocked.text
    service.clock.advance(timedelta(minutes=5))
    reissue_id = await bank.verified(holder["phone"], "reissue")
    reissued = await bank.post(f"/v1/certificates/{cert['id']}/reissue",
                               {"verification_id": reissue_id, "pin": "583920"})
    assert reissued.status_code == 201, reissued.text
    revoked = await bank.post(f"/v1/certificates/{reissued.json()['id']}/revoke",
                              {"pin": "583920", "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text

    seeded_id = str(_uuid_of("c1"))
    proof = await bank.verified("+821030000001", "revoke")
    revoked = await bank.post(f"/v1/certificates/{seeded_id}/revoke",
                              {"verification_id": proof, "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text
    idempotent = await bank.post("/v1/verifications", {"phone": "+821099990000",
                                                       "channel": "sms", "purpose": "issue"},
                                 headers={"Idempotency-Key": "plans-1"})
    assert idempotent.status_code == 201, idempotent.text


def _uuid_of(text: str) -> str:
    import uuid

    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


async def test_request_path_queries_use_indexes(service: Service, bank: Bank) -> None:
    url = service.settings.resolved_database_url
    await _seed(url, bank.client_id, service.clock.now())
    capture = Capture()
    engine = service.container.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    capture.on = True
    try:
        await _drive(service, bank)
    finally:
        capture.on = False
        event.remove(engine, "before_cursor_execute", capture)
    assert len(capture.statements) > 30, sorted(capture.statements)

    assert not await _seq_scans(url, capture.statements)


async def test_periodic_job_queries_use_indexes(service: Service, bank: Bank) -> None:
    """The sweeper, the status maintenance round (responder, CRL, OCSP re-signing and
    pre-signing, pruning), a CRL regeneration and the notice redelivery, on the same seeded
    database: none of them scans a big table."""
    from app.services import sweeper

    url = service.settings.resolved_database_url
    now = service.clock.now()
    await _seed(url, bank.client_id, now)
    container = service.container
    capture = Capture()
    engine = container.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    capture.on = True
    try:
        await sweeper.sweep(container.uow, now)
        await container.status.maintain()
        await container.status.regenerate_crl()
        await container.notices.redeliver_due()
    finally:
        capture.on = False
        event.remove(engine, "before_cursor_execute", capture)
    assert len(capture.statements) > 10, sorted(capture.statements)
    assert not await _seq_scans(url, capture.statements)


async def _seq_scans(url: str, statements: dict[str, Any]) -> list[str]:
    """EXPLAIN each statement with its parameters; the Seq Scans on big tables, described
    (printed, so a failure shows them all)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    problems = []
    try:
        for statement, parameters in statements.items():
            args = tuple(parameters) if parameters else ()
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}",
                                                  *args))[0]["Plan"]
            scanned = sorted({rel for node, rel in _scans(plan)
                              if node == "Seq Scan" and rel in BIG_TABLES})
            if scanned:
                problems.append(f"Seq Scan on {', '.join(scanned)}:\n  {statement}\n"
                                f"  {json.dumps(plan)[:1500]}")
    finally:
        await conn.close()
    print("\n\n".join(problems))
    return problems
