"""The local key ring: the server master key layer as AES-256-GCM keys in a file.

The first key wraps; every key unwraps, so keys rotate without rewrapping at once (Lemur's
key-ring idea). The file is the secret: keep it apart from database backups.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.storage.files import create_new

_NONCE_LEN = 12


@dataclass(frozen=True)
class MasterKey:
    id: str
    key: bytes

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id!r})"


class LocalKeyRing:
    """A :class:`app.domain.ports.KeyProtector` over keys loaded from a JSON file."""

    def __init__(self, keys: list[MasterKey]) -> None:
        if not keys:
            raise ValueError("the key ring holds no key")
        self._keys = keys
        self._by_id = {key.id: key for key in keys}

    @classmethod
    def load(cls, path: Path) -> LocalKeyRing:
        """:raises FileNotFoundError: no key ring at ``path``."""
        document = json.loads(path.read_text())
        return cls([MasterKey(entry["id"], base64.b64decode(entry["key"]))
                    for entry in document["keys"]])

    @staticmethod
    def create(path: Path, now: datetime) -> None:
        """Write a new key ring with one key; refuses to overwrite one."""
        create_new(path, json.dumps({"keys": [_new_entry(now)]}, indent=2))

    @staticmethod
    def add_key(path: Path, now: datetime) -> str:
        """Put a new key first (it wraps from now on) and keep the others for unwrapping."""
        document = json.loads(path.read_text())
        entry = _new_entry(now)
        document["keys"].insert(0, entry)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
        tmp.replace(path)
        return str(entry["id"])

    def current_key_id(self) -> str:
        return self._keys[0].id

    def key_ids(self) -> list[str]:
        return [key.id for key in self._keys]

    async def wrap(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        key = self._keys[0]
        nonce = os.urandom(_NONCE_LEN)
        return key.id, nonce + AESGCM(key.key).encrypt(nonce, plaintext, associated_data)

    async def unwrap(self, key_id: str, blob: bytes, associated_data: bytes) -> bytes:
        key = self._by_id.get(key_id)
        if key is None:
            raise ValueError(f"master key {key_id!r} is not in the key ring")
        try:
            return AESGCM(key.key).decrypt(blob[:_NONCE_LEN], blob[_NONCE_LEN:], associated_data)
        except InvalidTag:
            raise ValueError("wrapped key failed authentication") from None

    async def check(self) -> None:
        """Readiness: a local key ring is always reachable once loaded."""


def _new_entry(now: datetime) -> dict[str, str]:
    return {"id": f"local-{now:%Y%m%d}-{secrets.token_hex(4)}",
            "key": base64.b64encode(AESGCM.generate_key(bit_length=256)).decode(),
            "created_at": now.isoformat()}
