"""Issue 11, finding 6: the audit chain has a key of its own, and signed checkpoints.

The attacker holds the database and CERTCLOUD_CODE_HMAC_KEY (from which the chain key used to
be derived). They delete every ``pin_check`` and ``lock`` event and compute the chain again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.services import audit, audit_checkpoint
from app.services.secrets import LEGACY_AUDIT_KEY_ID, AuditKeys, ChainKey, LocalChainKey
from app.storage.audit_log import AuditLog
from app.storage.ops_tables import audit_events, audit_head
from tests.conftest import Bank, Service, person


def _keys(service: Service) -> AuditKeys:
    return service.container.auth.secrets.audit_key


async def _verify(service: Service) -> audit.ChainReport:
    async with service.container.db.transaction(write=False) as conn:
        return await audit.verify_chain(AuditLog(conn), _keys(service))


def _code_derived_key(service: Service) -> bytes:
    """What the attacker computes from CERTCLOUD_CODE_HMAC_KEY (the old chain key)."""
    code_key = service.container.auth.secrets.code_hmac_key
    return hmac.new(code_key, b"audit-chain", hashlib.sha256).digest()


async def _pin_failures_and_lock(bank: Bank) -> None:
    cert = (await bank.issue(person(61))).json()
    for _ in range(5):
        await bank.post(f"/v1/certificates/{cert['id']}/pin",
                        {"pin": "000000", "new_pin": "417093"})
    await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                    {"verification_id": await bank.verified(person(61)["phone"], "revoke")})


async def _rechain(conn: AsyncConnection, key: bytes | ChainKey, *, as_legacy: bool) -> None:
    """The attacker's rewrite: every row hashed again under ``key`` in the old format (or in
    the new one, keeping each row's key id), and the head moved to the new last row."""
    if isinstance(key, bytes):
        key = LocalChainKey("attacker", key)
    rows = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
    previous = audit.GENESIS
    for seq, row in enumerate(rows, start=1):
        key_id = LEGACY_AUDIT_KEY_ID if as_legacy else row.key_id
        message = audit.event_message(key_id, previous, seq, row.occurred_at, row.client_id,
                                      row.action, row.certificate_id, row.result, row.details)
        digest = (await key.macs([message]))[0]
        await conn.execute(update(audit_events).where(audit_events.c.seq == row.seq).values(
            seq=seq, prev_hash=previous, hash=digest, key_id=key_id))
        previous = digest
    await conn.execute(update(audit_head).where(audit_head.c.id == 1)
                       .values(seq=len(rows), hash=previous))


async def _delete_pin_events(conn: AsyncConnection) -> None:
    await conn.execute(delete(audit_events).where(audit_events.c.action.in_(["pin_check",
                                                                              "lock"])))


@pytest.mark.parametrize("as_legacy", [True, False], ids=["as-legacy-rows", "keeping-key-ids"])
async def test_rechaining_with_the_code_key_is_detected(service: Service, bank: Bank,
                                                        as_legacy: bool) -> None:
    await _pin_failures_and_lock(bank)
    assert (await _verify(service)).intact
    async with service.container.db.transaction() as conn:
        await _delete_pin_events(conn)
        await _rechain(conn, _code_derived_key(service), as_legacy=as_legacy)
        left = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert "pin_check" not in left and "lock" not in left
    report = await _verify(service)
    assert not report.intact, "a chain re-made with the code key alone passed as intact"
    if as_legacy:
        assert any("no row under the chain's own key seals" in p for p in report.problems)
    else:
        assert any("was edited" in p for p in report.problems)


async def test_rows_under_the_legacy_key_still_verify_and_are_sealed(service: Service) -> None:
    """A chain written before the upgrade (old format, code-derived key): it verifies, the
    service seals it at start, and it cannot be re-chained behind the seal."""
    keys, legacy = _keys(service), _code_derived_key(service)
    now = service.clock.now()
    db = service.container.db
    async with db.transaction() as conn:  # as the old code wrote them
        await conn.execute(delete(audit_events))
        await conn.execute(update(audit_head).values(seq=0, hash=audit.GENESIS))
        for n in range(3):
            await audit.append(AuditLog(conn), legacy, now=now + timedelta(seconds=n),
                               action="issue", certificate_id=f"c{n}")
        old = (await conn.execute(select(audit_events.c.key_id))).scalars().all()
    assert old == [LEGACY_AUDIT_KEY_ID] * 3
    unsealed = await _verify(service)
    assert any("no row under the chain's own key seals" in p for p in unsealed.problems)

    async with db.transaction() as conn:  # what build_container does at start
        assert await audit.seal_legacy_rows(AuditLog(conn), keys, now)
        assert not await audit.seal_legacy_rows(AuditLog(conn), keys, now)  # once is enough
    async with db.transaction() as conn:
        await audit.append(AuditLog(conn), keys, now=now, action="sign", certificate_id="c0")
    report = await _verify(service)
    assert report.intact and report.checked == 5, report.problems

    async with db.transaction() as conn:  # rewrite the legacy prefix: the seal no longer fits
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 2))
        rows = (await conn.execute(select(audit_events).where(audit_events.c.seq == 3))).one()
        previous = (await conn.execute(select(audit_events.c.hash)
                                       .where(audit_events.c.seq == 1))).scalar_one()
        digest = audit.event_hash(legacy, previous, 2, rows.occurred_at, rows.client_id,
                                  rows.action, rows.certificate_id, rows.result, rows.details)
        await conn.execute(update(audit_events).where(audit_events.c.seq == 3)
                           .values(seq=2, prev_hash=previous, hash=digest))
    report = await _verify(service)
    assert not report.intact


async def test_the_chain_key_is_not_derived_from_the_code_key(service: Service) -> None:
    keys = _keys(service)
    assert keys.current.key_id != LEGACY_AUDIT_KEY_ID
    attacker = LocalChainKey(keys.current.key_id, _code_derived_key(service))
    assert await attacker.macs([b"x"]) != await keys.current.macs([b"x"])


def _checkpoint(service: Service, seq: int, head_hash: str) -> dict[str, Any]:
    return audit_checkpoint.sign_checkpoint(service.container.issuer.ca, seq, head_hash,
                                            service.clock.now())


async def test_a_rewrite_with_every_secret_is_caught_by_a_checkpoint(service: Service,
                                                                     bank: Bank) -> None:
    """Even the chain's own key does not help against a checkpoint kept elsewhere."""
    await _pin_failures_and_lock(bank)
    async with service.container.db.transaction(write=False) as conn:
        seq, head_hash = await audit_checkpoint.head(AuditLog(conn))
    kept = json.loads(json.dumps(_checkpoint(service, seq, head_hash)))  # as a file holds it
    assert set(kept) >= {"seq", "hash", "time", "signature", "signer"}
    certificate = service.container.issuer.ca.certificate
    assert audit_checkpoint.check_signature(kept, certificate) == (seq, head_hash)
    async with service.container.db.transaction(write=False) as conn:
        assert await audit_checkpoint.chain_problems(AuditLog(conn), seq, head_hash) == []

    async with service.container.db.transaction() as conn:
        await _delete_pin_events(conn)
        await _rechain(conn, _keys(service).current, as_legacy=False)
    assert (await _verify(service)).intact  # the chain alone cannot tell
    async with service.container.db.transaction(write=False) as conn:
        problems = await audit_checkpoint.chain_problems(
            AuditLog(conn), *audit_checkpoint.check_signature(kept, certificate))
    assert problems and ("rewritten" in problems[0] or "cut" in problems[0])


async def test_a_checkpoint_with_a_bad_signature_is_refused(service: Service,
                                                            bank: Bank) -> None:
    await bank.issue(person(62))
    async with service.container.db.transaction(write=False) as conn:
        seq, head_hash = await audit_checkpoint.head(AuditLog(conn))
    good = _checkpoint(service, seq, head_hash)
    certificate = service.container.issuer.ca.certificate
    forged = {**good, "hash": "0" * 64}  # a rewritten head, the old signature
    with pytest.raises(audit_checkpoint.CheckpointError, match="does not verify"):
        audit_checkpoint.check_signature(forged, certificate)
    flipped = bytearray(base64.b64decode(good["signature"]))
    flipped[-1] ^= 1
    with pytest.raises(audit_checkpoint.CheckpointError, match="does not verify"):
        audit_checkpoint.check_signature(
            {**good, "signature": base64.b64encode(bytes(flipped)).decode()}, certificate)
    with pytest.raises(audit_checkpoint.CheckpointError, match="another CA"):
        audit_checkpoint.check_signature({**good, "signer": "ab" * 32}, certificate)
    with pytest.raises(audit_checkpoint.CheckpointError, match="not a certcloud"):
        audit_checkpoint.check_signature({"seq": 1}, certificate)
    with pytest.raises(audit_checkpoint.CheckpointError, match="malformed"):
        audit_checkpoint.check_signature({**good, "seq": "1"}, certificate)
