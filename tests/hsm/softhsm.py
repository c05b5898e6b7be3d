"""A SoftHSM2 of the test run's own: a token directory and configuration under the run's temp
directory (``SOFTHSM2_CONF``, set for the process and its children), tokens made with
``softhsm2-util --init-token``.

SoftHSM reads its configuration and lists its tokens in C_Initialize, so a token made after the
module was loaded shows up only after the module is initialised again; :meth:`SoftHsm.new_token`
does that (the service's sessions then reopen by themselves, as after any token restart).

Without softhsm2 installed the tests that need it are skipped, unless
``CERTCLOUD_REQUIRE_HSM=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

USER_PIN = "246810"
SO_PIN = "13579113"
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
SUITE_TOKEN = "certcloud-suite"


def find_module() -> str | None:
    given = os.environ.get("CERTCLOUD_TEST_PKCS11_MODULE")
    if given:
        return given
    return next((path for path in MODULE_CANDIDATES if Path(path).is_file()), None)


def require_softhsm() -> tuple[str, str]:
    """(module path, softhsm2-util path), or skip (fail under CERTCLOUD_REQUIRE_HSM=1)."""
    module, util = find_module(), shutil.which("softhsm2-util")
    if module is None or util is None:
        message = "softhsm2 is not installed (apt-get install softhsm2)"
        if os.environ.get("CERTCLOUD_REQUIRE_HSM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return module, util


class SoftHsm:
    _instance: SoftHsm | None = None

    def __init__(self, base: Path, module: str, util: str) -> None:
        self.base, self.module, self.util = base, module, util
        self.token_dir = base / "tokens"
        self.parked = base / "parked"  # outside the token directory: a token "taken away"
        self.token_dir.mkdir(parents=True, exist_ok=True)
        self.parked.mkdir(exist_ok=True)
        self.conf = base / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.token_dir}\n"
                             "objectstore.backend = file\nlog.level = ERROR\n"
                             "slots.removable = false\n")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        self.tokens: dict[str, Path] = {}

    @classmethod
    def get(cls, base: Path) -> SoftHsm:
        """The run's SoftHSM (made on first use under ``base``)."""
        if cls._instance is None:
            module, util = require_softhsm()
            cls._instance = cls(base, module, util)
        return cls._instance

    def new_token(self, label: str | None = None, *, pin: str = USER_PIN) -> str:
        """Initialise a fresh token; returns its label. The module is re-initialised so this
        process sees it."""
        label = label or f"t-{uuid.uuid4().hex[:10]}"
        before = set(self.token_dir.iterdir())
        subprocess.run([self.util, "--init-token", "--free", "--label", label, "--pin", pin,
                        "--so-pin", SO_PIN], check=True, capture_output=True, text=True,
                       env={**os.environ, "SOFTHSM2_CONF": str(self.conf)})
        (made,) = set(self.token_dir.iterdir()) - before
        self.tokens[label] = made
        self.rescan()
        return label

    def rescan(self) -> None:
        """C_Finalize + C_Initialize, if this process has loaded the module."""
        from app.storage.pkcs11 import _LOCK, _Module

        with _LOCK:  # never under a call running on another thread
            module = _Module._loaded.get(self.module)
            if module is not None and module._lib is not None:
                module.reinitialize()

    def take_away(self, label: str) -> None:
        """The token stops answering (its directory leaves the token directory)."""
        self.tokens[label].rename(self.parked / self.tokens[label].name)

    def give_back(self, label: str) -> None:
        (self.parked / self.tokens[label].name).rename(self.tokens[label])

    def keys_settings(self, label: str, **extra: Any) -> dict[str, Any]:
        return {"kind": "pkcs11", "pkcs11_module": self.module, "token_label": label,
                "pin": USER_PIN, **extra}

    def env(self, label: str) -> dict[str, str]:
        """Environment variables for a ``certcloud`` child process on this token."""
        return {"SOFTHSM2_CONF": str(self.conf), "CERTCLOUD_KEYS__KIND": "pkcs11",
                "CERTCLOUD_KEYS__PKCS11_MODULE": self.module,
                "CERTCLOUD_KEYS__TOKEN_LABEL": label, "CERTCLOUD_KEYS__PIN": USER_PIN}


# Settings overrides the suite uses under CERTCLOUD_TEST_KEYS=pkcs11 (filled by token_template).
SUITE_OVERRIDES: dict[str, Any] = {}


def token_template(base: Path, hsm_base: Path, now: datetime) -> dict[str, Any]:
    """Under CERTCLOUD_TEST_KEYS=pkcs11: a token holding the suite's master key and CA key, and
    a template data directory whose CA points at it. Returns the settings overrides."""
    from app.settings import Settings
    from app.storage.pkcs11_ca import init_token_ca
    from app.storage.pkcs11_protector import open_protector

    hsm = SoftHsm.get(hsm_base)
    label = hsm.new_token(SUITE_TOKEN)
    SUITE_OVERRIDES.update({
        "keys": hsm.keys_settings(label),
        "ca": {"key_store": "pkcs11", "common_name": "Certcloud Test CA (token)"},
    })
    settings = Settings(data_dir=base, **SUITE_OVERRIDES)
    init_token_ca(settings, now)
    open_protector(settings.keys, base / "keyring.json", create_if_missing=True, now=now)
    return SUITE_OVERRIDES
