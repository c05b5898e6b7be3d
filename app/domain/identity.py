"""Resident registration numbers (RRN), the holder's name, and the PIN policy."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import TypeGuard

from app.domain.errors import InvalidInput

# ASCII digits only, whole string: \d would take any Unicode digit (which int() accepts) and $
# a trailing newline.
_RRN = re.compile(r"([0-9]{6})-?([0-9]{7})")
PIN_LENGTH = 6
_PIN = re.compile(r"[0-9]{6}")

# The seventh digit gives the century of birth (and sex); 5-8 are foreign residents.
_CENTURY_BY_DIGIT = {"9": 1800, "0": 1800, "1": 1900, "2": 1900, "5": 1900, "6": 1900,
                     "3": 2000, "4": 2000, "7": 2000, "8": 2000}


@dataclass(frozen=True)
class Rrn:
    """A validated RRN. ``digits`` is the 13-digit form; never log or store it."""

    digits: str
    birth_date: date

    def __repr__(self) -> str:  # keeps the number out of tracebacks and logs
        return "Rrn(<redacted>)"

    __str__ = __repr__


def parse_rrn(value: str, *, today: date) -> Rrn:
    """Validate an RRN: 13 digits (a dash after the birth date is allowed), a real birth date,
    a valid century digit, not born in the future. The check digit is not enforced (numbers
    assigned since October 2020 have none).

    :raises InvalidInput: with code ``rrn_invalid``.
    """
    match = _RRN.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise InvalidInput("rrn must be 13 digits, optionally with a dash after the birth date",
                           code="rrn_invalid")
    front, back = match.groups()
    century = _CENTURY_BY_DIGIT.get(back[0])
    if century is None:
        raise InvalidInput("rrn has an invalid gender/century digit", code="rrn_invalid")
    try:
        born = date(century + int(front[0:2]), int(front[2:4]), int(front[4:6]))
    except ValueError:
        raise InvalidInput("rrn does not hold a real birth date", code="rrn_invalid") from None
    if born > today:
        raise InvalidInput("rrn holds a birth date in the future", code="rrn_invalid")
    return Rrn(digits=front + back, birth_date=born)


# Characters a name must not hold, by Unicode general category: controls (Cc), format
# characters (Cf: bidi overrides and isolates, ZWSP, ZWJ/ZWNJ, BOM, ...), which make a
# certificate's CN read otherwise than it compares, surrogates (Cs), private use (Co),
# unassigned code points (Cn), and line or paragraph separators (Zl, Zp).
_REFUSED_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_person_name(value: str) -> str:
    """The holder's name as it goes into the certificate's CN: visible characters only, not
    blank. Korean, Latin and other scripts pass as they are.

    :raises InvalidInput: with code ``name_invalid``.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("name must not be blank", code="name_invalid")
    for char in value:
        if unicodedata.category(char) in _REFUSED_NAME_CATEGORIES:
            # Say which code point (U+XXXX), never echo the name itself.
            raise InvalidInput(f"name holds an invisible, control or unassigned character "
                               f"(U+{ord(char):04X})", code="name_invalid")
    return value


def birth_date_patterns(born: date) -> set[str]:
    """Digit strings a PIN must not contain: the birth date as YYMMDD, MMDDYY, DDMMYY, and MMDD."""
    yy, mm, dd = f"{born.year % 100:02d}", f"{born.month:02d}", f"{born.day:02d}"
    return {yy + mm + dd, mm + dd + yy, dd + mm + yy, mm + dd}


def pin_substrings(pin: str) -> Iterable[str]:
    """Every substring of the PIN of a length a birth-date pattern can have (4 and 6)."""
    for size in (4, 6):
        for start in range(len(pin) - size + 1):
            yield pin[start : start + size]


def is_pin_format(pin: object) -> TypeGuard[str]:
    """The format every PIN has, new or tried: exactly 6 ASCII digits."""
    return isinstance(pin, str) and _PIN.fullmatch(pin) is not None


def check_pin_format(pin: object) -> str:
    """A PIN given to open a key is checked with this first, so a malformed one costs no try
    and no KDF run.

    :raises InvalidInput: ``pin_malformed``.
    """
    if not is_pin_format(pin):
        raise InvalidInput("pin must be exactly 6 digits", code="pin_malformed")
    return pin


def check_pin(pin: object, *, is_birth_pattern: Callable[[str], bool]) -> str:
    """Apply the PIN policy to a new PIN and return it.

    :param is_birth_pattern: says whether a digit string is one of the holder's birth-date
        patterns (the patterns are kept as keyed hashes, so the caller supplies the test).
    :raises InvalidInput: with code ``pin_format`` or ``pin_weak``.
    """
    if not is_pin_format(pin):
        raise InvalidInput("pin must be exactly 6 digits", code="pin_format")
    if len(set(pin)) == 1:
        raise InvalidInput("pin must not repeat one digit", code="pin_weak")
    steps = {int(b) - int(a) for a, b in pairwise(pin)}
    if steps in ({1}, {-1}):
        raise InvalidInput("pin must not be a straight run of digits", code="pin_weak")
    if any(is_birth_pattern(part) for part in pin_substrings(pin)):
        raise InvalidInput("pin must not contain the holder's birth date", code="pin_weak")
    return pin
