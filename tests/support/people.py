"""Test persons and the PIN every test certificate is issued under."""

from __future__ import annotations

PIN = "902714"


def person(n: int = 1, *, cohort: str = "1990") -> dict[str, str]:
    """A distinct valid person, different for each ``n``. The default cohort is born
    1990-01-0n; ``cohort="1985"`` (the resilience suites' residents) is born in March 1985
    with other phones and names, so the two never meet on one database."""
    if cohort == "1985":
        return {"name": f"김민준{n}", "rrn": f"8503{n % 28 + 1:02d}-1{n:06d}",
                "phone": f"+8210{7777_0000 + n:08d}", "email": f"resident{n}@example.com"}
    assert cohort == "1990", cohort
    return {"name": f"홍길동{n}", "rrn": f"90010{n % 10}-1{n:06d}",
            "phone": f"+8210{5555_0000 + n:08d}", "email": f"person{n}@example.com"}


def resident(n: int) -> dict[str, str]:
    """A person of the 1985 cohort (see :func:`person`)."""
    return person(n, cohort="1985")


def digits_as(ascii_digits: str, zero: int) -> str:
    """The same number in another script's digits (0xFF10 fullwidth, 0x0660 Arabic-Indic,
    0x0966 Devanagari): str.isdigit() and int() take them, an ASCII-only rule must not."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in ascii_digits)
