"""Key custody in a PKCS#11 token (an HSM, or SoftHSM2 for development and CI).

Two things live here:

* :class:`TokenSession`: one logged-in session per token, shared by the whole process. Every
  PKCS#11 call in the process runs under one lock; the async API hands calls to one dedicated
  worker thread, never the event loop. python-pkcs11 initialises the module without OS locking,
  so one session per thread crashes SoftHSM, and closing the session that logged in logs out
  every other session of the process. After a token or device error the session is replaced; if
  that fails the module is finalised and initialised again (what SoftHSM, and network HSMs after
  a fail-over, need to see the token again). Meanwhile callers get
  :class:`app.domain.errors.DependencyUnavailable` (HTTP 503) at once, and a new try is made
  after a short back-off, so the service recovers by itself when the token is back.
* :class:`Pkcs11Protector`: the server master-key layer with non-extractable AES-256 keys inside
  the token. A blob is ``nonce(12) ‖ AES-GCM ciphertext ‖ tag(16)``, made and opened by the
  token, with the owner binding as associated data; the key's label is the key id stored next to
  the blob. CKM_AES_KEY_WRAP_PAD is not used: SoftHSM 2.6 zero-pads instead of RFC 5649.

Master keys are labelled ``<prefix>-<sequence>-<created, UTC>``; the highest sequence wraps and
every key still on the token unwraps. Other processes (``certcloud keys rotate``) may add keys
while the service runs: the list is re-read every ``refresh_seconds`` and whenever a blob names a
key not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    DataInvalid,
    DataLenRange,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    FunctionFailed,
    GeneralError,
    KeyHandleInvalid,
    MultipleObjectsReturned,
    NoSuchKey,
    NoSuchToken,
    ObjectHandleInvalid,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
    UserPinNotInitialized,
)
from pkcs11.mechanisms import GCMParams

from app.domain.errors import DependencyUnavailable
from app.pki.ca import (
    CertificateAuthority,
    load_ca_certificate,
    load_chain,
    save_ca_certificate,
    self_sign_ca,
)
from app.pki.token_keys import (
    KeyNotOnToken,
    TokenPrivateKey,
    TokenTrouble,
    generate_token_key,
    load_token_key,
)
from app.settings import KeysSettings, Settings
from app.storage.keyring_protector import KeyRingFile, MasterKeyInfo

T = TypeVar("T")
log = logging.getLogger(__name__)

_NONCE_LEN, _TAG_LEN = 12, 16
_LABEL = re.compile(r"^(?P<prefix>.+)-(?P<seq>\d{4,})-(?P<created>\d{8}T\d{6}Z)$")
_UNAVAILABLE = "the key store (PKCS#11 token) is unavailable"

# Every PKCS#11 call of the process, whatever token or module, holds this lock.
_LOCK = threading.RLock()
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_GUARD = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_GUARD:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkcs11")
        return _EXECUTOR


def _unavailable(detail: str = _UNAVAILABLE) -> DependencyUnavailable:
    return DependencyUnavailable(detail, code="key_store_unavailable")


def _name(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TokenError(Exception):
    """The token cannot be used as configured. The message is one line naming the problem.

    ``retryable`` is False for a refused PIN (trying again burns the token's PIN attempts) and
    for a module that does not load.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Module:
    """A loaded PKCS#11 module. ``generation`` counts re-initialisations, which invalidate
    every session opened before."""

    _loaded: dict[str, _Module] = {}

    def __init__(self, path: str) -> None:
        self.path = path
        self.generation = 0
        self._lib: Any = None

    @classmethod
    def get(cls, path: str) -> _Module:
        module = cls._loaded.get(path)
        if module is None:
            module = cls._loaded[path] = cls(path)
        return module

    def lib(self) -> Any:
        if self._lib is None:
            if not Path(self.path).is_file():
                raise TokenError(f"the PKCS#11 module {self.path} does not exist",
                                 retryable=False)
            try:
                self._lib = pkcs11.lib(self.path)
            except PKCS11Error as exc:
                raise TokenError(f"cannot load the PKCS#11 module {self.path} ({_name(exc)})",
                                 retryable=False) from None
        return self._lib

    def reinitialize(self) -> None:
        """C_Finalize + C_Initialize: every session of the process on this module is gone."""
        lib = self.lib()
        with suppress(PKCS11Error):
            lib.finalize()
        try:
            lib.initialize()
        except PKCS11Error as exc:
            raise TokenError(f"the PKCS#11 module {self.path} does not initialise "
                             f"({_name(exc)})") from None
        finally:
            self.generation += 1


class TokenContext:
    """What one call sees: the session, and object handles found on it (valid until the session
    is replaced, or forgotten after a handle error)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._objects: dict[tuple[str, ObjectClass], Any] = {}

    def find_key(self, label: str, object_class: ObjectClass) -> Any:
        """:raises KeyNotOnToken: no such object.
        :raises TokenError: several objects carry the label."""
        found = self._objects.get((label, object_class))
        if found is None:
            try:
                found = self.session.get_key(object_class=object_class, label=label)
            except NoSuchKey:
                raise KeyNotOnToken(label) from None
            except MultipleObjectsReturned:
                raise TokenError(f"several {object_class.name.lower()} objects are labelled "
                                 f"{label!r} on the token; labels must be unique",
                                 retryable=False) from None
            self._objects[(label, object_class)] = found
        return found

    def forget(self) -> None:
        self._objects.clear()


class TokenSession:
    """One logged-in session on one token, shared by the process.

    :param module_path: the PKCS#11 module (``.so``).
    :param token_label: the token's label.
    :param pin: the user PIN.
    :param call_timeout: seconds a call may wait for the token before it fails with 503.
    :param retry_min: the first back-off after a failed reopen; it doubles up to ``retry_max``.
    """

    _shared: dict[tuple[str, str], TokenSession] = {}

    def __init__(self, module_path: str, token_label: str, pin: str, *,
                 call_timeout: float = 10.0, retry_min: float = 0.25,
                 retry_max: float = 5.0) -> None:
        self.module = _Module.get(module_path)
        self.token_label = token_label
        self._pin = pin
        self.call_timeout = call_timeout
        self._retry_min, self._retry_max = retry_min, retry_max
        self._delay = retry_min
        self._retry_at = 0.0
        self._ctx: TokenContext | None = None
        self._generation = -1
        self._fresh = False  # the session was opened for the current call
        self._reinit_next = False
        self.last_error: str | None = None

    @classmethod
    def shared(cls, module_path: str, token_label: str, pin: str, **options: Any
               ) -> TokenSession:
        """The process's session on this token (made on first use)."""
        key = (str(module_path), token_label)
        with _LOCK:
            existing = cls._shared.get(key)
            if existing is not None and existing._pin == pin:
                existing.call_timeout = options.get("call_timeout", existing.call_timeout)
                return existing
            if existing is not None:  # another PIN: log out first, so the new one is checked
                existing.close()
            session = cls._shared[key] = cls(str(module_path), token_label, pin, **options)
            return session

    # --- opening and replacing the session -------------------------------------------------

    def open(self) -> None:
        """Open the session now (start-up).

        :raises TokenError: one line naming the problem (module, token, PIN).
        """
        with _LOCK:
            self._ensure()

    def close(self) -> None:
        """Close the session (this logs the process out of the token)."""
        with _LOCK:
            self._drop()
            if self._shared.get((self.module.path, self.token_label)) is self:
                del self._shared[(self.module.path, self.token_label)]

    def _drop(self) -> None:
        if self._ctx is not None:
            with suppress(PKCS11Error):
                self._ctx.session.close()
        self._ctx = None

    def _login(self) -> TokenContext:
        lib = self.module.lib()
        label = self.token_label
        try:
            token = lib.get_token(token_label=label)
        except NoSuchToken:
            seen: list[str] = []
            with suppress(PKCS11Error):
                seen = [t.label for t in lib.get_tokens()]
            raise TokenError(f"no PKCS#11 token labelled {label!r} in {self.module.path} "
                             f"(tokens: {', '.join(repr(s) for s in seen) or 'none'})") from None
        except PKCS11Error as exc:
            raise TokenError(f"the PKCS#11 module {self.module.path} cannot list its tokens "
                             f"({_name(exc)})") from None
        try:
            session = token.open(rw=True, user_pin=self._pin)
        except UserAlreadyLoggedIn:
            session = token.open(rw=True)
        except PinIncorrect:
            raise TokenError(f"the PKCS#11 token {label!r} refused the user PIN "
                             "(CKR_PIN_INCORRECT)", retryable=False) from None
        except PinLocked:
            raise TokenError(f"the user PIN of the PKCS#11 token {label!r} is locked "
                             "(CKR_PIN_LOCKED)", retryable=False) from None
        except (PinInvalid, PinLenRange):
            raise TokenError(f"the user PIN for the PKCS#11 token {label!r} is malformed",
                             retryable=False) from None
        except UserPinNotInitialized:
            raise TokenError(f"the PKCS#11 token {label!r} has no user PIN yet",
                             retryable=False) from None
        except PKCS11Error as exc:
            raise TokenError(f"cannot open a session on the PKCS#11 token {label!r} "
                             f"({_name(exc)})") from None
        return TokenContext(session)

    def _ensure(self) -> TokenContext:
        if self._ctx is not None and self._generation == self.module.generation:
            return self._ctx
        self._drop()
        if self._reinit_next:  # a fresh session did not help last time: reset the module
            self._reinit_next = False
            self.module.reinitialize()
        try:
            ctx = self._login()
        except TokenError as exc:
            if not exc.retryable:
                raise
            # A module that lost its token (or whose sessions died) sees it again only after
            # C_Finalize/C_Initialize.
            self.module.reinitialize()
            ctx = self._login()
        self._ctx, self._generation = ctx, self.module.generation
        self._fresh = True
        return ctx

    def _ready(self) -> TokenContext:
        if self._ctx is not None and self._generation == self.module.generation:
            return self._ctx
        now = time.monotonic()
        if now < self._retry_at:
            raise _unavailable()
        try:
            ctx = self._ensure()
        except TokenError as exc:
            # A refused PIN is not retried soon: every try counts against the token's limit.
            delay = self._delay if exc.retryable else max(self._retry_max, 60.0)
            self._delay = min(self._delay * 2, self._retry_max)
            self._retry_at = now + delay
            self.last_error = str(exc)
            log.warning("PKCS#11 token unavailable", extra={"error": str(exc),
                                                            "retry_in_s": delay})
            raise _unavailable() from None
        if self.last_error is not None:
            log.info("PKCS#11 token back", extra={"token": self.token_label})
        self._delay, self._retry_at, self.last_error = self._retry_min, 0.0, None
        return ctx

    # --- calls -----------------------------------------------------------------------------

    def call(self, fn: Callable[[TokenContext], T]) -> T:
        """Run ``fn`` with the session, under the process-wide lock, in this thread.

        A stale object handle is looked up again and the call retried once; a token error
        replaces the session and retries once. Exceptions other than PKCS#11 errors (such as
        ``ValueError`` for a blob that fails authentication) pass through unchanged.

        :raises DependencyUnavailable: the token is unreachable, failing or busy.
        """
        if not _LOCK.acquire(timeout=self.call_timeout):
            raise _unavailable("the key store (PKCS#11 token) is busy")
        try:
            failure: BaseException | None = None
            for _attempt in range(2):
                self._fresh = False
                ctx = self._ready()
                try:
                    return fn(ctx)
                except (ObjectHandleInvalid, KeyHandleInvalid) as exc:
                    ctx.forget()
                    failure = exc
                except (PKCS11Error, TokenTrouble, TokenError) as exc:
                    log.warning("PKCS#11 call failed; replacing the session",
                                extra={"error": _name(exc), "token": self.token_label})
                    self._reinit_next = self._fresh
                    self._drop()
                    failure = exc
            self._drop()
            self.last_error = _name(failure) if failure else None
            raise _unavailable() from failure
        finally:
            _LOCK.release()

    async def run(self, fn: Callable[[TokenContext], T]) -> T:
        """:meth:`call` on the token's worker thread; 503 after ``call_timeout`` seconds."""
        future = asyncio.get_running_loop().run_in_executor(_executor(), self.call, fn)
        try:
            return await asyncio.wait_for(future, self.call_timeout)
        except TimeoutError:
            raise _unavailable("the key store (PKCS#11 token) did not answer in time") from None


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


# --- wiring from settings (start-up and the CLI) ---------------------------------------------


def read_pin(keys: KeysSettings) -> str:
    """The token's user PIN from ``CERTCLOUD_KEYS__PIN`` or ``CERTCLOUD_KEYS__PIN_FILE``.

    :raises TokenError: neither is set, or the file cannot be read.
    """
    if keys.pin is not None and keys.pin.get_secret_value():
        return keys.pin.get_secret_value()
    if keys.pin_file is not None:
        try:
            pin = keys.pin_file.read_text().strip("\r\n")
        except OSError as exc:
            raise TokenError(f"cannot read the token PIN file {keys.pin_file} "
                             f"({exc.strerror})", retryable=False) from None
        if pin:
            return pin
        raise TokenError(f"the token PIN file {keys.pin_file} is empty", retryable=False)
    raise TokenError("the PKCS#11 token's user PIN is not set; set CERTCLOUD_KEYS__PIN or "
                     "CERTCLOUD_KEYS__PIN_FILE", retryable=False)


def token_session(keys: KeysSettings) -> TokenSession:
    """The process's session on the configured token (not opened yet).

    :raises TokenError: the module or the PIN is not configured.
    """
    if keys.pkcs11_module is None:
        raise TokenError("CERTCLOUD_KEYS__PKCS11_MODULE is not set (the PKCS#11 module, e.g. "
                         "/usr/lib/softhsm/libsofthsm2.so)", retryable=False)
    return TokenSession.shared(str(keys.pkcs11_module), keys.token_label, read_pin(keys),
                               call_timeout=keys.call_timeout_seconds)


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


def generate_token_ca_key(settings: Settings, *, algorithm: str | None = None
                          ) -> tuple[TokenPrivateKey, dict[str, str]]:
    """A new CA key inside the token (non-extractable) and where it is (token and label).

    :raises TokenError: the token cannot be used, or a key with the label exists.
    """
    token = token_session(settings.keys)
    token.open()
    label = settings.ca.key_label
    try:
        key = generate_token_key(token, label, algorithm or settings.ca.key_algorithm)
    except ValueError as exc:
        raise TokenError(f"{exc} (token {token.token_label!r})", retryable=False) from None
    except DependencyUnavailable:
        raise TokenError(f"the PKCS#11 token {token.token_label!r} failed while the CA key was "
                         f"generated ({token.last_error})") from None
    return key, {"store": "pkcs11", "token_label": token.token_label, "key_label": label}


def init_token_ca(settings: Settings, now: datetime, *, algorithm: str | None = None
                  ) -> CertificateAuthority:
    """``certcloud ca init --pkcs11``: the CA key generated inside the token (non-extractable),
    the self-signed certificate and the key's whereabouts written to the CA directory.

    :raises TokenError: the token cannot be used, or a key with the label exists.
    :raises FileExistsError: a CA exists already.
    """
    key, reference = generate_token_ca_key(settings, algorithm=algorithm)
    certificate = self_sign_ca(key, common_name=settings.ca.common_name,
                               organization=settings.ca.organization,
                               country=settings.ca.country, now=now,
                               validity_years=settings.ca.validity_years)
    save_ca_certificate(certificate, settings.ca_dir, reference)
    return CertificateAuthority(key, certificate)


def load_token_ca(settings: Settings, reference: dict[str, str]) -> CertificateAuthority:
    """The CA certificate (and chain) from the CA directory with its key in the token.

    :raises TokenError: one line naming the problem (token, PIN, missing or wrong key).
    """
    certificate = load_ca_certificate(settings.ca_dir)
    key = load_token_ca_key(settings, reference, certificate.public_key())
    return CertificateAuthority(key, certificate, load_chain(settings.ca_dir))


def load_token_ca_key(settings: Settings, reference: dict[str, str], public_key: Any
                      ) -> TokenPrivateKey:
    """The token's CA key whose public half is ``public_key``, proved by a test signature.

    :raises TokenError: one line naming the problem (token, PIN, missing or wrong key).
    """
    token_label = reference.get("token_label", settings.keys.token_label)
    if token_label != settings.keys.token_label:
        raise TokenError(f"the CA key is on the PKCS#11 token {token_label!r}, but "
                         f"CERTCLOUD_KEYS__TOKEN_LABEL is {settings.keys.token_label!r}",
                         retryable=False)
    label = reference.get("key_label", settings.ca.key_label)
    token = token_session(settings.keys)
    token.open()
    try:
        return load_token_key(token, label, public_key)
    except KeyNotOnToken:
        raise TokenError(f"no CA key labelled {label!r} on the PKCS#11 token "
                         f"{token.token_label!r}", retryable=False) from None
    except ValueError as exc:
        raise TokenError(str(exc), retryable=False) from None
    except DependencyUnavailable:
        raise TokenError(f"the PKCS#11 token {token.token_label!r} failed while the CA key was "
                         f"checked ({token.last_error})") from None
