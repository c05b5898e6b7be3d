"""The server master-key layer in a PKCS#11 token (:class:`Pkcs11Protector`), over the
process's :class:`app.storage.pkcs11.TokenSession`.

Master keys are non-extractable AES-256 keys inside the token. A blob is
``nonce(12) ‖ AES-GCM ciphertext ‖ tag(16)``, made and opened by the token, with the owner
binding as associated data; the key's label is the key id stored next to the blob.
CKM_AES_KEY_WRAP_PAD is not used: SoftHSM 2.6 zero-pads instead of RFC 5649.

Master keys are labelled ``<prefix>-<sequence>-<created, UTC>``; the highest sequence wraps and
every key still on the token unwraps. Other processes (``certcloud keys rotate``) may add keys
while the service runs: the list is re-read every ``refresh_seconds`` and whenever a blob names a
key not seen yet.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    DataInvalid,
    DataLenRange,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    FunctionFailed,
    GeneralError,
)
from pkcs11.mechanisms import GCMParams

from app.domain.errors import DependencyUnavailable
from app.pki.token_keys import (
    KeyNotOnToken,
    TokenTrouble,
)
from app.settings import KeysSettings
from app.storage.keyring_protector import KeyRingFile, MasterKeyInfo
from app.storage.pkcs11 import (
    TokenContext,
    TokenError,
    TokenSession,
    _unavailable,
    token_session,
)

_NONCE_LEN, _TAG_LEN = 12, 16
_LABEL = re.compile(r"^(?P<prefix>.+)-(?P<seq>\d{4,})-(?P<created>\d{8}T\d{6}Z)$")


# --- the master-key protector --------------------------------------------------------------


def _parse_label(label: str, prefix: str) -> tuple[int, datetime] | None:
    match = _LABEL.match(label)
    if match is None or match["prefix"] != prefix:
        return None
    created = datetime.strptime(match["created"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return int(match["seq"]), created


class Pkcs11Protector:
    """A :class:`app.domain.ports.KeyProtector` whose master keys stay inside a token.

    :param token: the process's session on the token.
    :param prefix: master keys are the AES keys labelled ``<prefix>-<seq>-<created>``.
    :param refresh_seconds: how often the key list is re-read for wrapping (rotation by another
        process is picked up within this time).
    :param fallback: a local key ring whose keys still unwrap (never wrap) blobs made before
        the move to the token; ``certcloud keys rewrap`` moves them onto the token.
    """

    location = "pkcs11"

    def __init__(self, token: TokenSession, prefix: str, *, refresh_seconds: float = 30.0,
                 fallback: KeyRingFile | None = None) -> None:
        self.token, self.prefix = token, prefix
        self.refresh_seconds = refresh_seconds
        self.fallback = fallback
        self._labels: list[str] = []  # newest first
        self._listed_at = float("-inf")

    # --- start-up --------------------------------------------------------------------------

    def load(self, *, create_if_missing: bool = False, now: datetime | None = None) -> None:
        """Open the token and find the master keys (blocking; start-up and CLI).

        :raises TokenError: module, token, PIN, or no master key (unless ``create_if_missing``).
        """
        self.token.open()
        try:
            labels = self.token.call(self._relist)
            if not labels and create_if_missing:
                self.token.call(lambda ctx: self._generate(ctx, now or datetime.now(UTC)))
                labels = self.token.call(self._relist)
        except DependencyUnavailable:
            raise TokenError(f"the PKCS#11 token {self.token.token_label!r} failed while its "
                             f"master keys were listed ({self.token.last_error})") from None
        if not labels:
            raise TokenError(f"no master key labelled {self.prefix + '-*'!r} on the PKCS#11 "
                             f"token {self.token.token_label!r}; create one with "
                             "`certcloud keys rotate`", retryable=False)

    # --- helpers run under the lock --------------------------------------------------------

    def _relist(self, ctx: TokenContext) -> list[str]:
        found = []
        for obj in ctx.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                            Attribute.KEY_TYPE: KeyType.AES}):
            label = obj[Attribute.LABEL]
            parsed = _parse_label(label, self.prefix)
            if parsed is not None:
                found.append((parsed[0], label))
        labels = [label for _seq, label in sorted(found, reverse=True)]
        if not labels and self._labels:
            raise TokenTrouble("every master key vanished from the token")
        self._labels, self._listed_at = labels, time.monotonic()
        return labels

    def _key(self, ctx: TokenContext, label: str) -> Any:
        try:
            return ctx.find_key(label, ObjectClass.SECRET_KEY)
        except KeyNotOnToken:
            self._relist(ctx)  # TokenTrouble if no master key is left at all
            if label not in self._labels:
                raise
            return ctx.find_key(label, ObjectClass.SECRET_KEY)

    def _current(self, ctx: TokenContext) -> tuple[str, Any]:
        if not self._labels or time.monotonic() - self._listed_at >= self.refresh_seconds:
            self._relist(ctx)
        if not self._labels:
            raise TokenTrouble("no master key on the token")
        label = self._labels[0]
        try:
            return label, self._key(ctx, label)
        except KeyNotOnToken:
            label = self._labels[0]
            return label, self._key(ctx, label)

    def _generate(self, ctx: TokenContext, now: datetime) -> str:
        self._relist(ctx)
        seqs = [parsed[0] for label in self._labels
                if (parsed := _parse_label(label, self.prefix)) is not None]
        label = f"{self.prefix}-{max(seqs, default=0) + 1:04d}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        ctx.session.generate_key(
            KeyType.AES, 256, label=label, id=label.encode(), store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                      Attribute.EXTRACTABLE: False, Attribute.WRAP: False,
                      Attribute.UNWRAP: False})
        self._relist(ctx)
        return label

    @staticmethod
    def _encrypt(key: Any, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        return nonce + bytes(key.encrypt(plaintext, mechanism=Mechanism.AES_GCM,
                                         mechanism_param=GCMParams(nonce, associated_data, 128)))

    @staticmethod
    def _decrypt(key: Any, blob: bytes, associated_data: bytes) -> bytes:
        nonce, sealed = blob[:_NONCE_LEN], blob[_NONCE_LEN:]
        params = GCMParams(nonce, associated_data, 128)
        try:
            return bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM,
                                     mechanism_param=params))
        except (EncryptedDataInvalid, EncryptedDataLenRange, DataInvalid, DataLenRange):
            raise ValueError("wrapped key failed authentication") from None
        except (GeneralError, FunctionFailed):
            # SoftHSM reports a bad tag as CKR_GENERAL_ERROR, as it would a failing device:
            # a healthy round trip with the same key says the blob was at fault.
            probe_nonce = os.urandom(_NONCE_LEN)
            probe = GCMParams(probe_nonce, b"probe", 128)
            sealed_probe = key.encrypt(b"probe", mechanism=Mechanism.AES_GCM,
                                       mechanism_param=probe)
            if bytes(key.decrypt(sealed_probe, mechanism=Mechanism.AES_GCM,
                                 mechanism_param=probe)) == b"probe":
                raise ValueError("wrapped key failed authentication") from None
            raise

    def _open(self, ctx: TokenContext, key_id: str, blob: bytes,
              associated_data: bytes) -> bytes:
        try:
            key = self._key(ctx, key_id)
        except KeyNotOnToken:
            raise ValueError(f"master key {key_id!r} is not on the token") from None
        return self._decrypt(key, blob, associated_data)

    # --- KeyProtector ----------------------------------------------------------------------

    def owns(self, key_id: str) -> bool:
        return _parse_label(key_id, self.prefix) is not None

    def current_key_id(self) -> str:
        return self._labels[0]

    async def wrap(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        def op(ctx: TokenContext) -> tuple[str, bytes]:
            label, key = self._current(ctx)
            return label, self._encrypt(key, plaintext, associated_data)

        return await self.token.run(op)

    async def unwrap(self, key_id: str, blob: bytes, associated_data: bytes) -> bytes:
        if not self.owns(key_id):
            if self.fallback is not None and self.fallback.owns(key_id):
                return await self.fallback.unwrap(key_id, blob, associated_data)
            raise ValueError(f"master key {key_id!r} is not held")
        if len(blob) < _NONCE_LEN + _TAG_LEN:
            raise ValueError("wrapped key is truncated")
        return await self.token.run(lambda ctx: self._open(ctx, key_id, blob, associated_data))

    async def rewrap_many(self, items: Sequence[tuple[str, bytes, bytes]], *, chunk: int = 32
                          ) -> list[tuple[str, bytes] | ValueError]:
        """Unwrap each ``(key id, blob, associated data)`` and wrap it again under the current
        key, ``chunk`` items per trip to the worker thread (short lock holds, few hops)."""
        results: list[tuple[str, bytes] | ValueError] = []
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            opened: list[bytes | ValueError] = []
            for key_id, blob, associated_data in part:  # a legacy local key: opened here
                if not self.owns(key_id):
                    try:
                        opened.append(await self.unwrap(key_id, blob, associated_data))
                    except ValueError as exc:
                        opened.append(exc)
                else:
                    opened.append(b"")

            def op(ctx: TokenContext, part: Sequence[tuple[str, bytes, bytes]] = part,
                   opened: list[bytes | ValueError] = opened
                   ) -> list[tuple[str, bytes] | ValueError]:
                label, key = self._current(ctx)
                out: list[tuple[str, bytes] | ValueError] = []
                for (key_id, blob, associated_data), plain in zip(part, opened, strict=True):
                    try:
                        if self.owns(key_id):
                            if len(blob) < _NONCE_LEN + _TAG_LEN:
                                raise ValueError("wrapped key is truncated")
                            plain = self._open(ctx, key_id, blob, associated_data)
                        if isinstance(plain, ValueError):
                            raise plain
                        out.append((label, self._encrypt(key, plain, associated_data)))
                    except ValueError as exc:
                        out.append(exc)
                return out

            results.extend(await self.token.run(op))
        return results

    async def check(self) -> None:
        """Readiness: a GCM round trip with the current key.

        :raises DependencyUnavailable: the token does not answer as it should.
        """
        def op(ctx: TokenContext) -> None:
            _label, key = self._current(ctx)
            if self._decrypt(key, self._encrypt(key, b"ready", b"readyz"), b"readyz") != b"ready":
                raise TokenTrouble("the master key does not round-trip")

        try:
            await self.token.run(op)
        except ValueError:
            raise _unavailable() from None

    # --- management (certcloud keys …) -----------------------------------------------------

    async def reload(self) -> None:
        """Re-read the key list now: the newest key becomes current."""
        await self.token.run(self._relist)

    async def list_keys(self) -> list[MasterKeyInfo]:
        labels = await self.token.run(self._relist)
        keys = []
        for index, label in enumerate(labels):
            parsed = _parse_label(label, self.prefix)
            keys.append(MasterKeyInfo(label, self.location, parsed[1] if parsed else None,
                                      index == 0))
        if self.fallback is not None:
            keys += [MasterKeyInfo(k.id, k.location, k.created_at, False)
                     for k in await self.fallback.list_keys()]
        return keys

    async def add_key(self, now: datetime) -> str:
        """Generate a new master key in the token (non-extractable); it wraps from now on."""
        return await self.token.run(lambda ctx: self._generate(ctx, now))

    async def retire_key(self, key_id: str) -> None:
        """Destroy a master key on the token (or drop a legacy local key). The caller checks
        that no blob uses it.

        :raises ValueError: the key is the current one or not held.
        """
        if not self.owns(key_id):
            if self.fallback is not None and self.fallback.owns(key_id):
                await self.fallback.retire_key(key_id)
                return
            raise ValueError(f"master key {key_id!r} is not held")

        def op(ctx: TokenContext) -> None:
            self._relist(ctx)
            if self._labels and self._labels[0] == key_id:
                raise ValueError("the current master key cannot be retired")
            try:
                key = ctx.find_key(key_id, ObjectClass.SECRET_KEY)
            except KeyNotOnToken:
                raise ValueError(f"master key {key_id!r} is not on the token") from None
            key.destroy()
            ctx.forget()
            self._relist(ctx)

        await self.token.run(op)


def open_protector(keys: KeysSettings, keyring_path: Path, *, create_if_missing: bool,
                   now: datetime) -> Pkcs11Protector:
    """The PKCS#11 protector, its token opened and master keys found. A local key ring left
    at ``keyring_path`` still opens (never wraps) the blobs made before the move to the token.

    :raises TokenError: one line naming the problem.
    """
    fallback = KeyRingFile(keyring_path) if keyring_path.exists() else None
    protector = Pkcs11Protector(token_session(keys), keys.master_key_prefix,
                                refresh_seconds=keys.refresh_seconds, fallback=fallback)
    protector.load(create_if_missing=create_if_missing, now=now)
    return protector
