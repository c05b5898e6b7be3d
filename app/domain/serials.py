"""Certificate serial numbers in their two forms: the integer X.509 (and an OCSP CertID, and a
CRL entry) carries, and the text form the database, the API, the CLI and the logs use:
lowercase hex without leading zeros. Every change of form goes through these helpers."""

from __future__ import annotations

import re

MAX_SERIAL_BITS = 20 * 8  # RFC 5280 §4.1.2.2: serials are at most 20 octets
_HEX = re.compile(r"^[0-9a-f]{1,64}$")


def serial_hex(serial: int) -> str:
    """The text form of a serial."""
    return format(serial, "x")


def serial_int(text: str) -> int:
    """The integer of a serial's text form.

    :raises ValueError: not hexadecimal.
    """
    return int(text, 16)


def is_valid_serial(serial: int) -> bool:
    """Positive and at most 20 octets: a serial a certificate can have."""
    return serial > 0 and serial.bit_length() <= MAX_SERIAL_BITS


def parse_serial(text: str) -> str | None:
    """A serial as a caller may type it (any case, an ``0x`` prefix, leading zeros) in text
    form, or None when it is not hexadecimal."""
    normalized = text.lower().removeprefix("0x").lstrip("0") or "0"
    return normalized if _HEX.match(normalized) else None
