"""Two locks on a user key: the master key (key ring) outside, the PIN (Argon2id) inside."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.pki.keys import (
    KdfParams,
    WrongPin,
    generate_user_key,
    open_with_pin,
    private_key_to_der,
    seal_with_pin,
)
from app.services.custody import KeyCustody, key_binding
from app.storage.local_keyring import LocalKeyRing

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CHEAP = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


def test_pin_layer_round_trip_and_wrong_pin() -> None:
    blob = seal_with_pin(b"key material", "902714", CHEAP, b"cert-1")
    assert b"key material" not in blob and b"902714" not in blob
    assert open_with_pin(blob, "902714", b"cert-1") == b"key material"
    with pytest.raises(WrongPin):
        open_with_pin(blob, "902715", b"cert-1")
    with pytest.raises(WrongPin):  # bound to its certificate
        open_with_pin(blob, "902714", b"cert-2")


def test_pin_layer_keeps_its_parameters() -> None:
    strong = KdfParams(time_cost=2, memory_kib=2048, parallelism=2)
    blob = seal_with_pin(b"k", "902714", strong, b"")
    assert open_with_pin(blob, "902714", b"") == b"k"  # no settings needed to open
    tampered = bytearray(blob)
    tampered[7] ^= 1  # the time cost in the header is authenticated
    with pytest.raises((WrongPin, ValueError)):
        open_with_pin(bytes(tampered), "902714", b"")


def test_pin_layer_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        open_with_pin(b"short", "902714", b"")
    with pytest.raises(ValueError):
        open_with_pin(b"XXXX" + bytes(60), "902714", b"")


async def test_key_ring_rotation_first_wraps_all_unwrap(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyRing.create(path, NOW)
    ring = LocalKeyRing.load(path)
    old_id, old_blob = await ring.wrap(b"secret", b"ad")
    new_key = LocalKeyRing.add_key(path, NOW)
    rotated = LocalKeyRing.load(path)
    assert rotated.current_key_id() == new_key != old_id
    new_id, _ = await rotated.wrap(b"secret", b"ad")
    assert new_id == new_key
    assert await rotated.unwrap(old_id, old_blob, b"ad") == b"secret"
    with pytest.raises(ValueError):
        await rotated.unwrap(old_id, old_blob, b"other record")
    with pytest.raises(ValueError):
        await rotated.unwrap("missing", old_blob, b"ad")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_key_ring_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyRing.create(path, NOW)
    with pytest.raises(FileExistsError):
        LocalKeyRing.create(path, NOW)


async def test_sealed_key_needs_both_locks(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyRing.create(path, NOW)
    ring = LocalKeyRing.load(path)
    custody = KeyCustody(ring, CHEAP)
    key = generate_user_key("rsa2048")
    key_id, blob = await custody.seal(key, "902714", "cert-1")
    assert private_key_to_der(key) not in blob
    opened = await custody.open("cert-1", key_id, blob, "902714")
    assert private_key_to_der(opened) == private_key_to_der(key)
    # The master key alone opens only the outer layer: the inner one still wants the PIN.
    inner = await ring.unwrap(key_id, blob, key_binding("cert-1"))
    assert private_key_to_der(key) not in inner
    with pytest.raises(WrongPin):
        await custody.open("cert-1", key_id, blob, "000000")
