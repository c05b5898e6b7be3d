"""Key custody in a PKCS#11 token (an HSM, or SoftHSM2 for development and CI): the session.

:class:`TokenSession`: one logged-in session per token, shared by the whole process. Every
PKCS#11 call in the process runs under one lock; the async API hands calls to one dedicated
worker thread, never the event loop. python-pkcs11 initialises the module without OS locking,
so one session per thread crashes SoftHSM, and closing the session that logged in logs out
every other session of the process. After a token or device error the session is replaced; if
that fails the module is finalised and initialised again (what SoftHSM, and network HSMs after
a fail-over, need to see the token again). Meanwhile callers get
:class:`app.domain.errors.DependencyUnavailable` (HTTP 503) at once, and a new try is made
after a short back-off, so the service recovers by itself when the token is back.

The master-key protector is :mod:`app.storage.pkcs11_protector`; the CA key in the token
:mod:`app.storage.pkcs11_ca`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import ObjectClass
from pkcs11.exceptions import (
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

from app.domain.errors import DependencyUnavailable
from app.pki.token_keys import (
    KeyNotOnToken,
    TokenTrouble,
)
from app.settings import KeysSettings

T = TypeVar("T")
log = logging.getLogger(__name__)

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
