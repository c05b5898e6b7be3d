"""The PKCS#11 master-key layer against SoftHSM2: round trips, key handling, failure and
recovery, and the two locks of a user key (sole control)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from app.domain.errors import DependencyUnavailable
from app.pki.keys import KdfParams, WrongPin, generate_user_key, open_with_pin, private_key_to_der
from app.pki.token_keys import generate_token_key
from app.services.custody import KeyCustody, key_binding
from app.storage.pkcs11 import TokenSession
from app.storage.pkcs11_protector import Pkcs11Protector
from tests.conftest import START

pytestmark = pytest.mark.hsm
PREFIX = "certcloud-master"
CHEAP = KdfParams(1, 64, 1)


def protector_on(token: TokenSession, **options: Any) -> Pkcs11Protector:
    protector = Pkcs11Protector(token, PREFIX, **options)
    protector.load(create_if_missing=True, now=START)
    return protector


async def test_wrap_unwrap_round_trips(token: TokenSession) -> None:
    protector = protector_on(token)
    key_id = protector.current_key_id()
    assert key_id == f"{PREFIX}-0001-20261125T090000Z"
    for size in (0, 1, 16, 1300, 5000):
        plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
        made_with, blob = await protector.wrap(plaintext, b"certcloud:user-key:abc")
        assert made_with == key_id
        assert len(blob) == 12 + size + 16
        assert size < 16 or plaintext not in blob
        assert await protector.unwrap(key_id, blob, b"certcloud:user-key:abc") == plaintext
    # Two wraps of the same data differ (fresh nonce).
    assert (await protector.wrap(b"x", b"a"))[1] != (await protector.wrap(b"x", b"a"))[1]


async def test_blobs_that_fail_authentication_are_value_errors(token: TokenSession) -> None:
    protector = protector_on(token)
    key_id, blob = await protector.wrap(b"inner layer", b"certcloud:user-key:one")
    with pytest.raises(ValueError, match="authentication"):
        await protector.unwrap(key_id, blob, b"certcloud:user-key:two")  # another row
    tampered = bytearray(blob)
    tampered[20] ^= 1
    with pytest.raises(ValueError, match="authentication"):
        await protector.unwrap(key_id, bytes(tampered), b"certcloud:user-key:one")
    with pytest.raises(ValueError, match="truncated"):
        await protector.unwrap(key_id, blob[:20], b"certcloud:user-key:one")
    with pytest.raises(ValueError, match="not held"):
        await protector.unwrap("local-20260101-abcd", blob, b"certcloud:user-key:one")
    with pytest.raises(ValueError, match="not on the token"):
        await protector.unwrap(f"{PREFIX}-0042-20261125T090000Z", blob,
                               b"certcloud:user-key:one")
    # The session is still healthy after the failures (they were the blob's, not the token's).
    assert await protector.unwrap(key_id, blob, b"certcloud:user-key:one") == b"inner layer"
    assert token.last_error is None


async def test_master_keys_never_leave_the_token(token: TokenSession) -> None:
    protector = protector_on(token)
    label = protector.current_key_id()

    def attributes(ctx: Any) -> dict[str, Any]:
        key = ctx.session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        values = {name: key[attr] for name, attr in (
            ("extractable", Attribute.EXTRACTABLE), ("sensitive", Attribute.SENSITIVE),
            ("token", Attribute.TOKEN), ("private", Attribute.PRIVATE),
            ("never_extractable", Attribute.NEVER_EXTRACTABLE), ("wrap", Attribute.WRAP))}
        try:
            key[Attribute.VALUE]
        except AttributeSensitive:
            values["value"] = "refused"
        return values

    assert token.call(attributes) == {"extractable": False, "sensitive": True, "token": True,
                                      "private": True, "never_extractable": True,
                                      "wrap": False, "value": "refused"}


async def test_rotation_new_key_wraps_old_still_opens(token: TokenSession) -> None:
    protector = protector_on(token)
    first = protector.current_key_id()
    old_id, old_blob = await protector.wrap(b"old", b"ad")
    second = await protector.add_key(START + timedelta(days=1))
    assert second == f"{PREFIX}-0002-20261126T090000Z"
    assert protector.current_key_id() == second
    new_id, new_blob = await protector.wrap(b"new", b"ad")
    assert (old_id, new_id) == (first, second)
    assert await protector.unwrap(old_id, old_blob, b"ad") == b"old"
    assert await protector.unwrap(new_id, new_blob, b"ad") == b"new"
    keys = await protector.list_keys()
    assert [(k.id, k.current) for k in keys] == [(second, True), (first, False)]
    with pytest.raises(ValueError, match="current"):
        await protector.retire_key(second)
    await protector.retire_key(first)
    with pytest.raises(ValueError, match="not on the token"):
        await protector.unwrap(old_id, old_blob, b"ad")


async def test_a_key_added_elsewhere_is_picked_up(softhsm: Any, token: TokenSession) -> None:
    """Another process rotates: the service opens blobs under the new key at once and wraps
    with it after ``refresh_seconds``."""
    service = protector_on(token, refresh_seconds=0.2)
    first = service.current_key_id()
    other = Pkcs11Protector(token, PREFIX)  # stands for `certcloud keys rotate`
    other.load()
    second = await other.add_key(START + timedelta(hours=1))
    _, blob = await other.wrap(b"made elsewhere", b"ad")
    assert await service.unwrap(second, blob, b"ad") == b"made elsewhere"
    service._listed_at = time.monotonic() - 1  # the refresh interval has passed
    assert (await service.wrap(b"x", b"ad"))[0] == second != first


async def test_concurrent_calls_share_one_session(token: TokenSession) -> None:
    """Many coroutines and a signing thread at once: one lock, no crash, every result right."""
    protector = protector_on(token)
    signer = generate_token_key(token, "signer", "rsa3072")
    errors: list[BaseException] = []

    def sign_in_thread() -> None:
        try:
            for _ in range(20):
                signature = signer.sign(b"tbs", padding.PKCS1v15(), hashes.SHA256())
                signer.public_key().verify(signature, b"tbs", padding.PKCS1v15(),
                                           hashes.SHA256())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()

    async def round_trip(n: int) -> bool:
        data = n.to_bytes(4, "big") * 300
        key_id, blob = await protector.wrap(data, str(n).encode())
        return await protector.unwrap(key_id, blob, str(n).encode()) == data

    results = await asyncio.gather(*(round_trip(n) for n in range(300)))
    for thread in threads:
        thread.join()
    assert all(results) and not errors


async def test_session_lost_underneath_is_replaced_transparently(
        softhsm: Any, token: TokenSession) -> None:
    """C_Finalize/C_Initialize (a token or module restart) invalidates every session and
    handle: the next call opens a new session and logs in again without the caller noticing."""
    protector = protector_on(token)
    key_id, blob = await protector.wrap(b"survives", b"ad")
    softhsm.rescan()
    assert await protector.unwrap(key_id, blob, b"ad") == b"survives"
    softhsm.rescan()
    assert (await protector.wrap(b"again", b"ad"))[0] == key_id


async def test_a_failing_token_is_503_then_recovers(softhsm: Any, token: TokenSession,
                                                    token_label: str) -> None:
    protector = protector_on(token)
    key_id, blob = await protector.wrap(b"inner", b"ad")
    softhsm.take_away(token_label)
    try:
        for call in (lambda: protector.unwrap(key_id, blob, b"ad"),
                     lambda: protector.wrap(b"new", b"ad"), protector.check):
            with pytest.raises(DependencyUnavailable) as caught:
                await call()
            assert caught.value.code == "key_store_unavailable"
    finally:
        softhsm.give_back(token_label)
    deadline = time.monotonic() + 10
    while True:
        try:
            await protector.check()
            break
        except DependencyUnavailable:
            assert time.monotonic() < deadline, "the protector did not recover"
            await asyncio.sleep(0.05)
    assert await protector.unwrap(key_id, blob, b"ad") == b"inner"
    assert token.last_error is None


async def test_sole_control_master_key_and_database_do_not_open_a_key(
        token: TokenSession) -> None:
    """The operator's worst case: the master key (here: the token itself, logged in) and a
    full copy of the database row. The outer layer opens; the inner layer, sealed under a key
    derived from the holder's PIN with Argon2id, does not open without the PIN."""
    protector = protector_on(token)
    custody = KeyCustody(protector, CHEAP)
    user_key = generate_user_key("p256")
    master_key_id, blob = await custody.seal(user_key, "902714", "cert-1")  # the DB row

    inner = await protector.unwrap(master_key_id, blob, key_binding("cert-1"))  # outer opens
    der = private_key_to_der(user_key)
    assert der not in inner and der[-32:] not in inner  # still sealed
    for guess in ("000000", "123456", "902715", "111111"):
        with pytest.raises(WrongPin):
            open_with_pin(inner, guess, key_binding("cert-1"))
    # Moving the blob to another row does not help either (the row id is bound in).
    with pytest.raises(ValueError):
        await protector.unwrap(master_key_id, blob, key_binding("cert-2"))
    # With the PIN (the holder), both layers open.
    opened = await custody.open("cert-1", master_key_id, blob, "902714")
    assert private_key_to_der(opened) == der
