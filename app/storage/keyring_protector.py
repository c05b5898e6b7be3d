"""The local key ring file as a running service needs it: re-read when the file changes.

:class:`app.storage.local_keyring.LocalKeyRing` holds the keys of one reading of the file. A service
runs for weeks, while ``certcloud keys rotate`` adds a key to the file and ``certcloud keys
rewrap`` moves blobs to it from another process. So the service checks the file (one ``stat``)
before each wrap, and re-reads it when a blob names a key it has not seen yet: new blobs use the
new key at once and blobs already moved still open, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from app.domain.records import MasterKeyInfo
from app.storage.local_keyring import LocalKeyRing

log = logging.getLogger(__name__)


class KeyRingFile:
    """A :class:`app.domain.ports.KeyProtector` over the key ring file at ``path``.

    :raises FileNotFoundError: no key ring at ``path``.
    """

    location = "local"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._ring = self._read()

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _read(self) -> LocalKeyRing:
        stamp = self._stat()
        ring = LocalKeyRing.load(self.path)
        self._stamp, self._ring = stamp, ring
        return ring

    def refresh(self) -> None:
        """Re-read the file if it changed. A file that went missing or does not parse keeps
        the keys already loaded (logged): a half-edited file never takes keys away."""
        try:
            if self._stat() != self._stamp:
                self._read()
        except (OSError, ValueError, KeyError) as exc:
            log.warning("key ring file not re-read; keeping the loaded keys",
                        extra={"path": str(self.path), "error": type(exc).__name__})

    # --- KeyProtector ------------------------------------------------------------------------

    def current_key_id(self) -> str:
        return self._ring.current_key_id()

    def owns(self, key_id: str) -> bool:
        return key_id in self._ring.key_ids()

    async def wrap(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        self.refresh()
        return await self._ring.wrap(plaintext, associated_data)

    async def unwrap(self, key_id: str, blob: bytes, associated_data: bytes) -> bytes:
        if not self.owns(key_id):
            self.refresh()  # a key added by `certcloud keys rotate` since the last read
        return await self._ring.unwrap(key_id, blob, associated_data)

    async def check(self) -> None:
        """Readiness: the loaded keys are in memory, so the ring is always usable."""
        self.refresh()

    # --- management (certcloud keys …) -------------------------------------------------------

    async def reload(self) -> None:
        """Re-read the file now if it changed: its first key becomes current."""
        self.refresh()

    async def list_keys(self) -> list[MasterKeyInfo]:
        self.refresh()
        created: dict[str, datetime | None] = {}
        try:
            for entry in json.loads(self.path.read_text())["keys"]:
                stamp = entry.get("created_at")
                created[entry["id"]] = datetime.fromisoformat(stamp) if stamp else None
        except (OSError, ValueError, KeyError):
            pass
        current = self.current_key_id()
        return [MasterKeyInfo(key_id, self.location, created.get(key_id), key_id == current)
                for key_id in self._ring.key_ids()]

    async def add_key(self, now: datetime) -> str:
        """A new key, first in the file: it wraps from now on."""
        key_id = LocalKeyRing.add_key(self.path, now)
        self._read()
        return key_id

    async def retire_key(self, key_id: str) -> None:
        """Remove a key from the file (atomic replace). The caller checks that no blob uses it.

        :raises ValueError: the key is the current one or not in the ring.
        """
        document = json.loads(self.path.read_text())
        entries = document["keys"]
        if not entries or entries[0]["id"] == key_id:
            raise ValueError("the current master key cannot be retired")
        kept = [entry for entry in entries if entry["id"] != key_id]
        if len(kept) == len(entries):
            raise ValueError(f"master key {key_id!r} is not in the key ring")
        document["keys"] = kept
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
        tmp.replace(self.path)
        self._read()
