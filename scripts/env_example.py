"""Writes deploy/.env.example from app/settings.py: every setting of the ``Settings`` model and
its nested models, by its environment name. Production's own values are set; every other
setting is commented out at its default. Run: ``python scripts/env_example.py``."""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402

TARGET = ROOT / "deploy" / ".env.example"
SECRET = "at least 32 random bytes, e.g. `openssl rand -base64 48`"
# What a production deployment sets (the rest keeps its default). Empty secrets are refused
# at start, so a copied example never runs with a made-up key.
PRODUCTION: dict[str, tuple[str, str]] = {
    "CERTCLOUD_ENVIRONMENT": ("production", "refuses the sandbox verifier and weak secrets"),
    "CERTCLOUD_DATA_DIR": ("/var/lib/certcloud", "the CA, the key ring; 0700, its own user"),
    "CERTCLOUD_DATABASE_URL": ("postgresql+asyncpg://certcloud:change-me@127.0.0.1:5432/"
                               "certcloud", "compose.yaml sets its own"),
    "CERTCLOUD_PUBLIC_BASE_URL": ("https://certcloud.example.com",
                                  "the URL in certificates (AIA, CRL DP)"),
    "CERTCLOUD_RRN_HMAC_KEY": ("", SECRET),
    "CERTCLOUD_CODE_HMAC_KEY": ("", SECRET),
    "CERTCLOUD_TOKEN_SIGNING_KEYS": ("", "kid:secret[,kid:secret…]; the first signs"),
    "CERTCLOUD_AUDIT_HMAC_KEY": ("", SECRET + " (not with KEYS__KIND=pkcs11)"),
    "CERTCLOUD_PIN_PATTERN_KEY": ("", SECRET),
    "CERTCLOUD_VERIFIER__KIND": ("provider", "SMS via NAVER Cloud SENS, ARS via Twilio"),
    "CERTCLOUD_VERIFIER__SENS__SERVICE_ID": ("", ""),
    "CERTCLOUD_VERIFIER__SENS__ACCESS_KEY": ("", ""),
    "CERTCLOUD_VERIFIER__SENS__SECRET_KEY": ("", ""),
    "CERTCLOUD_VERIFIER__SENS__SENDER": ("", ""),
    "CERTCLOUD_VERIFIER__TWILIO__ACCOUNT_SID": ("", ""),
    "CERTCLOUD_VERIFIER__TWILIO__AUTH_TOKEN": ("", ""),
    "CERTCLOUD_VERIFIER__TWILIO__CALLER_ID": ("", ""),
    "CERTCLOUD_LIMITS__REDIS_URL": ("redis://127.0.0.1:6379/0", "compose.yaml sets its own"),
}


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation,
                                                                     BaseModel) else None


def _shown(value: Any) -> str:
    if value is None or isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings(model: type[BaseModel] = Settings, prefix: str = "CERTCLOUD_"
             ) -> Iterator[tuple[str, Any, Any, str]]:
    """(environment name, default, annotation, name prefix) of every leaf setting."""
    for name, field in model.model_fields.items():
        nested = _model(field.annotation)
        if nested is not None:
            yield from settings(nested, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", field.default, field.annotation, prefix


def render() -> str:
    lines = ["# Every Certcloud setting (generated from app/settings.py by",
             "# scripts/env_example.py; a test checks that none is missing).",
             "# Copy to deploy/certcloud.env (compose.yaml) or /etc/certcloud/certcloud.env",
             "# (deploy/certcloud.service), then fill in every empty secret.",
             "# Nested settings use a double underscore: CERTCLOUD_LIMITS__REDIS_URL."]
    section = ""
    for env, default, annotation, prefix in settings():
        if prefix != section:
            section = prefix
            lines += ["", f"# --- {prefix}*" if prefix != "CERTCLOUD_" else "# --- general"]
        choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal \
            else ()
        if choices:
            lines.append(f"# one of: {', '.join(map(str, choices))}")
        if env in PRODUCTION:
            value, note = PRODUCTION[env]
            if note:
                lines.append(f"# {note}")
            lines.append(f"{env}={value}")
        else:
            lines.append(f"# {env}={_shown(default)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")
