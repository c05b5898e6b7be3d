"""Request fields that carry bytes as standard base64."""

from __future__ import annotations

import base64
import binascii

from app.domain.errors import InvalidInput


def base64_field(value: str, field: str) -> bytes:
    """The bytes of a base64 field; a 422 ``base64_invalid`` naming ``field`` otherwise."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field} is not valid base64", code="base64_invalid") from None


def optional_base64_field(value: str | None, field: str) -> bytes | None:
    return None if value is None else base64_field(value, field)
