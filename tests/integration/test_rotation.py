"""Master-key rotation over a few thousand stored blobs, with the local key ring and with a
SoftHSM2 token: rewrap in batches, a crash in the middle and the resume, a PIN change racing the
rewrap, and the rules for retiring a key. Runs on SQLite and (CERTCLOUD_TEST_DB=postgres) on
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from app.bootstrap import wrapped_blobs
from app.domain.errors import Conflict, DependencyUnavailable, NotFound
from app.pki.keys import KdfParams, WrongPin, open_with_pin, seal_with_pin
from app.services.custody import key_binding
from app.services.rotation import KeyRotation, ManagedKeyProtector, RewrapReport
from app.storage.db import Database, make_engine
from app.storage.keyring_protector import KeyRingFile
from app.storage.local_keyring import LocalKeyRing
from app.storage.pkcs11 import TokenSession
from app.storage.pkcs11_protector import Pkcs11Protector
from app.storage.tables import certificates, clients, persons
from tests.conftest import START, truncate_all

CHEAP = KdfParams(1, 64, 1)
PIN = "902714"
N = 3000
BATCH = 250


@dataclass
class Env:
    kind: str
    db: Database
    protector: ManagedKeyProtector
    rotation: KeyRotation
    hsm: Any = None
    token_label: str = ""
    token: TokenSession | None = None

    def stale_protector(self) -> Any:
        """A protector as a running service that has not yet seen the newest key has it."""
        if self.kind == "local":
            assert isinstance(self.protector, KeyRingFile)
            return LocalKeyRing.load(self.protector.path)
        assert self.token is not None
        stale = Pkcs11Protector(self.token, "certcloud-master", refresh_seconds=3600)
        stale.load()
        return stale


@pytest.fixture(params=["local", pytest.param("pkcs11", marks=pytest.mark.hsm)])
async def env(request: pytest.FixtureRequest, tmp_path: Path, database_url: str
              ) -> AsyncIterator[Env]:
    await truncate_all(database_url)
    db = Database(make_engine(database_url))
    hsm, label, token = None, "", None
    protector: Any
    if request.param == "local":
        LocalKeyRing.create(tmp_path / "keyring.json", START)
        protector = KeyRingFile(tmp_path / "keyring.json")
    else:
        from tests.hsm.softhsm import USER_PIN

        hsm = request.getfixturevalue("softhsm")
        label = hsm.new_token()
        token = TokenSession.shared(hsm.module, label, USER_PIN)
        protector = Pkcs11Protector(token, "certcloud-master")
        protector.load(create_if_missing=True, now=START)
    rotation = KeyRotation(wrapped_blobs(db), protector, retire_grace=timedelta(0))
    yield Env(request.param, db, protector, rotation, hsm, label, token)
    if token is not None:
        token.close()
    await db.dispose()


async def seed(env: Env, count: int) -> dict[str, bytes]:
    """``count`` certificate rows, each with a real two-layer blob; returns id -> inner layer."""
    inner: dict[str, bytes] = {}
    rows = []
    for n in range(count):
        certificate_id = str(uuid.uuid4())
        binding = key_binding(certificate_id)
        sealed = seal_with_pin(os.urandom(48), PIN, CHEAP, binding)
        master_key_id, blob = await env.protector.wrap(sealed, binding)
        inner[certificate_id] = sealed
        rows.append({"id": certificate_id, "person_id": "person-1", "serial": f"{n:x}",
                     "state": "revoked", "not_before": START, "not_after": START,
                     "key_algorithm": "p256", "issued_by_client": "bank", "wrong_pins": 0,
                     "master_key_id": master_key_id, "wrapped_key": blob,
                     "created_at": START, "updated_at": START})
    async with env.db.transaction() as conn:
        if (await conn.execute(select(clients.c.id))).first() is None:
            await conn.execute(insert(clients).values(
                id="bank", name="bank", secret_hash="x", scopes="", disabled=False,
                created_at=START))
            await conn.execute(insert(persons).values(
                id="person-1", rrn_hmac="h", name="n", phone="+821000000000", email="e@x",
                birth_patterns="{}", created_at=START, updated_at=START))
        for start in range(0, len(rows), 500):
            await conn.execute(insert(certificates), rows[start:start + 500])
    return inner


async def stored(env: Env) -> dict[str, tuple[str, bytes]]:
    async with env.db.transaction(write=False) as conn:
        result = await conn.execute(select(certificates.c.id, certificates.c.master_key_id,
                                           certificates.c.wrapped_key))
        return {row.id: (row.master_key_id, bytes(row.wrapped_key)) for row in result}


async def assert_all_open(env: Env, inner: dict[str, bytes]) -> None:
    """Every blob opens under the key its row names and holds the unchanged inner layer."""
    rows = await stored(env)
    assert rows.keys() == inner.keys()
    for certificate_id, (master_key_id, blob) in rows.items():
        opened = await env.protector.unwrap(master_key_id, blob, key_binding(certificate_id))
        assert opened == inner[certificate_id]


class Crash(Exception):
    pass


async def test_rewrap_crash_in_the_middle_then_resume(env: Env) -> None:
    inner = await seed(env, N)
    first = env.protector.current_key_id()
    status = await env.rotation.status()
    assert status.totals == {first: N} and status.pending == 0

    second = await env.rotation.rotate(START + timedelta(days=30))
    assert env.protector.current_key_id() == second != first
    status = await env.rotation.status()
    assert status.current == second and status.pending == N
    assert await env.rotation.count_pending() == N

    def crash_after_four(batches: int) -> None:
        if batches == 4:
            raise Crash("the operator's machine died")

    progress: list[int] = []
    with pytest.raises(Crash):
        await env.rotation.rewrap(batch_size=BATCH, progress=progress.append,
                                  after_batch=crash_after_four)
    assert progress == [BATCH] * 4
    status = await env.rotation.status()
    assert status.totals == {first: N - 4 * BATCH, second: 4 * BATCH}
    await assert_all_open(env, inner)  # nothing half-written: old and new rows both open

    report = await env.rotation.rewrap(batch_size=BATCH)  # resume: run it again
    assert (report.moved, report.skipped, report.failed) == (N - 4 * BATCH, 0, [])
    assert report.target == second
    status = await env.rotation.status()
    assert status.totals == {second: N} and status.pending == 0
    await assert_all_open(env, inner)
    again = await env.rotation.rewrap(batch_size=BATCH)
    assert (again.moved, again.batches) == (0, 0)

    await env.rotation.retire(first, START + timedelta(days=31))
    assert [key.id for key in (await env.rotation.status()).keys] == [second]
    # The PIN layer came through untouched: the holder's PIN still opens a sample.
    rows = await stored(env)
    for certificate_id in list(inner)[:5]:
        master_key_id, blob = rows[certificate_id]
        sealed = await env.protector.unwrap(master_key_id, blob, key_binding(certificate_id))
        open_with_pin(sealed, PIN, key_binding(certificate_id))
        with pytest.raises(WrongPin):
            open_with_pin(sealed, "000001", key_binding(certificate_id))


async def test_a_pin_change_during_rewrap_is_never_overwritten(env: Env) -> None:
    inner = await seed(env, 20)
    first = env.protector.current_key_id()
    stale = env.stale_protector()  # a service that has not yet seen the new key
    second = await env.rotation.rotate(START + timedelta(days=1))
    victim = sorted(inner)[3]
    binding = key_binding(victim)

    class Racing(KeyRotation):
        """Between reading the batch and writing it, the holder changes the PIN."""

        async def _rewrap_rows(self, store: Any, rows: Any) -> Any:
            result = await super()._rewrap_rows(store, rows)
            if any(row[0] == victim for row in rows):
                resealed = seal_with_pin(os.urandom(48), "417093", CHEAP, binding)
                key_id, blob = await stale.wrap(resealed, binding)
                assert key_id == first  # same key id as the blob that was read
                inner[victim] = resealed
                async with env.db.transaction() as conn:
                    await conn.execute(update(certificates)
                                       .where(certificates.c.id == victim)
                                       .values(master_key_id=key_id, wrapped_key=blob))
            return result

    racing = Racing(wrapped_blobs(env.db), env.protector, retire_grace=timedelta(0))
    report = await racing.rewrap(batch_size=8)
    assert (report.moved, report.skipped) == (19, 1)
    rows = await stored(env)
    assert rows[victim][0] == first
    sealed = await env.protector.unwrap(*rows[victim], binding)
    assert open_with_pin(sealed, "417093", binding)  # the PIN change won
    await assert_all_open(env, inner)
    # The next run moves it; the old key is then free.
    with pytest.raises(Conflict) as busy:
        await env.rotation.retire(first, START + timedelta(days=2))
    assert busy.value.code == "key_in_use"
    assert (await env.rotation.rewrap()).moved == 1
    assert (await env.rotation.status()).totals == {second: 20}
    await env.rotation.retire(first, START + timedelta(days=2))


async def test_retire_rules(env: Env) -> None:
    await seed(env, 3)
    first = env.protector.current_key_id()
    with pytest.raises(Conflict) as current:
        await env.rotation.retire(first, START)
    assert current.value.code == "key_current"
    with pytest.raises(NotFound):
        await env.rotation.retire("no-such-key", START)
    second = await env.rotation.rotate(START + timedelta(days=1))
    await env.rotation.rewrap()
    graceful = KeyRotation(wrapped_blobs(env.db), env.protector,
                           retire_grace=timedelta(minutes=1))
    created = next(k.created_at for k in (await graceful.status()).keys if k.id == second)
    assert created is not None
    with pytest.raises(Conflict) as grace:
        await graceful.retire(first, created + timedelta(seconds=30))
    assert grace.value.code == "key_grace"
    await graceful.retire(first, created + timedelta(minutes=2))


async def test_blobs_that_do_not_open_are_reported_and_left(env: Env) -> None:
    inner = await seed(env, 6)
    first = env.protector.current_key_id()
    broken, orphan = sorted(inner)[:2]
    async with env.db.transaction() as conn:
        await conn.execute(update(certificates).where(certificates.c.id == broken)
                           .values(wrapped_key=os.urandom(80)))
        await conn.execute(update(certificates).where(certificates.c.id == orphan)
                           .values(master_key_id="local-19990101-deadbeef"))
    second = await env.rotation.rotate(START + timedelta(days=1))
    report: RewrapReport = await env.rotation.rewrap(batch_size=4)
    assert report.moved == 4
    assert sorted(report.failed) == sorted(f"certificates.wrapped_key:{i}"
                                           for i in (broken, orphan))
    status = await env.rotation.status()
    assert status.totals == {second: 4, first: 1, "local-19990101-deadbeef": 1}
    assert status.missing == ["local-19990101-deadbeef"]
    with pytest.raises(Conflict):
        await env.rotation.retire(first, START + timedelta(days=2))


@pytest.mark.parametrize("env", [pytest.param("pkcs11", marks=pytest.mark.hsm)],
                         indirect=True)
async def test_token_failing_mid_rewrap_then_resume(env: Env) -> None:
    assert env.token is not None
    env.token._retry_min, env.token._retry_max = 0.05, 0.1
    inner = await seed(env, 1000)
    second = await env.rotation.rotate(START + timedelta(days=1))

    def token_goes_away(batches: int) -> None:
        if batches == 2:
            env.hsm.take_away(env.token_label)

    try:
        with pytest.raises(DependencyUnavailable):
            await env.rotation.rewrap(batch_size=200, after_batch=token_goes_away)
    finally:
        env.hsm.give_back(env.token_label)
    deadline = time.monotonic() + 10
    while True:  # the token is back: the protector recovers by itself
        try:
            await env.protector.reload()
            break
        except DependencyUnavailable:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    status = await env.rotation.status()
    assert status.totals[second] == 400
    report = await env.rotation.rewrap(batch_size=200)
    assert report.moved == 600
    assert (await env.rotation.status()).totals == {second: 1000}
    await assert_all_open(env, inner)
