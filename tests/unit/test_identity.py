"""RRN validation and the PIN policy (app.domain.identity), bad cases first."""

from __future__ import annotations

from datetime import date

import pytest

from app.domain.errors import InvalidInput
from app.domain.identity import (
    Rrn,
    birth_date_patterns,
    check_person_name,
    check_pin,
    check_pin_format,
    parse_rrn,
)
from tests.support.people import PIN, digits_as

TODAY = date(2026, 11, 25)


def _rrn_error(value: object, today: date = TODAY) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_rrn(value, today=today)  # type: ignore[arg-type]
    assert caught.value.code == "rrn_invalid"
    return caught.value


# --- RRN: shape --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["900101-1234567", "9001011234567"])
def test_rrn_with_or_without_dash_gives_the_same_digits(value: str) -> None:
    rrn = parse_rrn(value, today=TODAY)
    assert rrn.digits == "9001011234567"
    assert rrn.birth_date == date(1990, 1, 1)


def test_rrn_surrounding_whitespace_is_ignored() -> None:
    assert parse_rrn(" 900101-1234567 ", today=TODAY).digits == "9001011234567"


@pytest.mark.parametrize("value", [
    "", "900101-123456", "900101123456", "900101-12345678", "90010112345678",
    "900101--1234567", "900101 1234567", "90010-11234567", "9001011-234567", "900101_1234567",
    "90O101-1234567", "+900101-1234567", "900101-1234567\n0", "abcdefghijklm",
])
def test_rrn_wrong_shape_is_refused(value: str) -> None:
    _rrn_error(value)


@pytest.mark.parametrize("value", [
    digits_as("900101", 0xFF10) + "-1234567",  # fullwidth digits
    "900101-1" + digits_as("234567", 0xFF10),
    digits_as("900101", 0x0660) + "-1234567",  # Arabic-Indic digits
    digits_as("900101", 0x0966) + "1234567",  # Devanagari digits
])
def test_rrn_non_ascii_digits_are_refused(value: str) -> None:
    # int() accepts these, and they would hash to a different lookup key than the ASCII form.
    _rrn_error(value)


@pytest.mark.parametrize("value", [None, 9001011234567, b"9001011234567", ["900101-1234567"]])
def test_rrn_non_string_is_refused(value: object) -> None:
    _rrn_error(value)


def test_rrn_repr_never_shows_the_number() -> None:
    rrn = parse_rrn("900101-1234567", today=TODAY)
    assert "1234567" not in repr(rrn) and "900101" not in str(rrn)
    assert isinstance(rrn, Rrn)


# --- RRN: birth date and century digit ----------------------------------------------------


@pytest.mark.parametrize(("value", "born"), [
    ("800101-9000000", date(1880, 1, 1)),  # 9, 0: born in the 1800s
    ("800101-0000000", date(1880, 1, 1)),
    ("991231-1000000", date(1999, 12, 31)),  # 1, 2: 1900s
    ("991231-2000000", date(1999, 12, 31)),
    ("851010-5000000", date(1985, 10, 10)),  # 5, 6: foreign residents, 1900s
    ("851010-6000000", date(1985, 10, 10)),
    ("010203-3000000", date(2001, 2, 3)),  # 3, 4: 2000s
    ("010203-4000000", date(2001, 2, 3)),
    ("150607-7000000", date(2015, 6, 7)),  # 7, 8: foreign residents, 2000s
    ("150607-8000000", date(2015, 6, 7)),
])
def test_rrn_century_digit_sets_the_century(value: str, born: date) -> None:
    assert parse_rrn(value, today=TODAY).birth_date == born


def test_rrn_every_seventh_digit_names_a_century() -> None:
    # 0-9 are all assigned (9/0 1800s, 1/2/5/6 1900s, 3/4/7/8 2000s); a letter there is a
    # shape error.
    centuries = {parse_rrn(f"900101-{digit}000000", today=date(2099, 1, 1)).birth_date.year
                 for digit in "0123456789"}
    assert centuries == {1890, 1990, 2090}
    _rrn_error("900101-X000000")


@pytest.mark.parametrize("value", [
    "901301-1234567",  # month 13
    "900001-1234567",  # month 0
    "900132-1234567",  # day 32
    "900100-1234567",  # day 0
    "900431-1234567",  # April has 30 days
    "000000-3234567",
])
def test_rrn_impossible_birth_date_is_refused(value: str) -> None:
    _rrn_error(value)


@pytest.mark.parametrize(("value", "valid"), [
    ("960229-1234567", True),  # 1996 is a leap year
    ("970229-1234567", False),
    ("000229-3234567", True),  # 2000 is a leap year (divisible by 400)
    ("000229-1234567", False),  # 1900 is not (divisible by 100 only)
    ("000229-9234567", False),  # 1800 is not either
    ("200229-4234567", True),  # 2020
    ("210229-3234567", False),
    ("840229-5234567", True),
])
def test_rrn_february_29_follows_the_leap_year_of_the_century(value: str, valid: bool) -> None:
    if valid:
        assert parse_rrn(value, today=TODAY).birth_date.day == 29
    else:
        _rrn_error(value)


def test_rrn_birth_date_in_the_future_is_refused() -> None:
    assert parse_rrn("261125-3234567", today=TODAY).birth_date == TODAY  # born today is fine
    _rrn_error("261126-3234567")  # tomorrow
    _rrn_error("500101-3234567")  # 2050
    # The same digits with a 1900s century digit are a past date and valid.
    assert parse_rrn("500101-1234567", today=TODAY).birth_date == date(1950, 1, 1)


# --- PIN policy --------------------------------------------------------------------------

BORN = date(1990, 1, 1)


def _never(_: str) -> bool:
    return False


def _pin_error(pin: object, code: str, born: date | None = None) -> None:
    test = _never if born is None else birth_date_patterns(born).__contains__
    with pytest.raises(InvalidInput) as caught:
        check_pin(pin, is_birth_pattern=test)
    assert caught.value.code == code, caught.value.detail


@pytest.mark.parametrize("pin", [PIN, "417093", "583920", "135790", "120934", "012346"])
def test_good_pins_pass(pin: str) -> None:
    assert check_pin(pin, is_birth_pattern=birth_date_patterns(BORN).__contains__) == pin


@pytest.mark.parametrize("pin", [
    "", "12345", "1234567", "9027145", "90271", "90271a", "abcdef", " 90271", "902 714",
    "902714 ", " 902714", "+90271", "-90271", "90.714", "9027.4", "90271\n", "902714\n",
    "\n902714", "902714\x00", digits_as(PIN, 0xFF10), digits_as(PIN, 0x0660),
    digits_as(PIN, 0x0966),
])
def test_pin_not_exactly_six_ascii_digits_is_pin_format(pin: str) -> None:
    _pin_error(pin, "pin_format")


@pytest.mark.parametrize("pin", [902714, 902714.0, None, b"902714", [PIN], True])
def test_pin_not_a_string_is_pin_format(pin: object) -> None:
    _pin_error(pin, "pin_format")


@pytest.mark.parametrize("pin", [f"{d}" * 6 for d in "0123456789"])
def test_pin_of_one_repeated_digit_is_weak(pin: str) -> None:
    _pin_error(pin, "pin_weak")


@pytest.mark.parametrize("pin", [
    "012345", "123456", "234567", "345678", "456789",  # up
    "987654", "876543", "765432", "654321", "543210",  # down
])
def test_pin_straight_run_is_weak(pin: str) -> None:
    _pin_error(pin, "pin_weak")


@pytest.mark.parametrize("pin", ["123455", "123457", "012354", "654320", "543211", "121212",
                                 "135246", "890123"])
def test_pin_near_runs_are_allowed(pin: str) -> None:
    assert check_pin(pin, is_birth_pattern=_never) == pin


@pytest.mark.parametrize(("born", "pin"), [
    (date(1990, 1, 1), "900101"),  # YYMMDD
    (date(1990, 1, 1), "010190"),  # MMDDYY (and DDMMYY: the same digits here)
    (date(1987, 6, 15), "870615"),  # YYMMDD
    (date(1987, 6, 15), "061587"),  # MMDDYY
    (date(1987, 6, 15), "150687"),  # DDMMYY
    (date(1987, 6, 15), "061590"),  # MMDD at the start
    (date(1987, 6, 15), "290615"),  # MMDD at the end
    (date(1987, 6, 15), "706159"),  # MMDD in the middle
    (date(2004, 2, 29), "040229"),  # a leap-day birthday, YYMMDD
    (date(2004, 2, 29), "022904"),
    (date(2004, 2, 29), "580229"),
])
def test_pin_holding_the_birth_date_is_weak(born: date, pin: str) -> None:
    _pin_error(pin, "pin_weak", born)


def test_pin_birth_date_of_another_person_is_allowed() -> None:
    # 870615 is weak for the person born 1987-06-15, not for someone born 1990-01-01.
    assert check_pin("870615", is_birth_pattern=birth_date_patterns(BORN).__contains__)


def test_birth_date_patterns_hold_the_obvious_forms() -> None:
    assert birth_date_patterns(date(1987, 6, 15)) == {"870615", "061587", "150687", "0615"}
    assert birth_date_patterns(date(2005, 11, 3)) == {"051103", "110305", "031105", "1103"}


def test_pin_policy_checks_format_before_strength() -> None:
    # A 7-character "run" is a format error, not a weak PIN.
    _pin_error("1234567", "pin_format")
    _pin_error("11111", "pin_format")


# --- the holder's name ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "홍길동\u202e", "\u202d홍길동", "\u2066홍\u2069", "\u200b", "홍\u200d길동", "홍\u200c길동",
    "\u2060홍길동", "\ufeff홍길동", "\u061c홍", "홍\u00ad길동",  # Cf: bidi, zero-width, soft hyphen
    "홍\x07", "홍\x1b[31m", "홍\u0085", "홍\u009b",  # Cc: C0 and C1 controls
    "홍\ue000", "홍\U000f0000",  # Co: private use
    "홍\u0378", "홍\U000e0080",  # Cn: unassigned
    "홍\u2028", "홍\u2029",  # Zl, Zp
    "", " ", "\u3000",  # blank (an ideographic space too)
])
def test_names_with_invisible_or_control_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_person_name(name)
    assert caught.value.code == "name_invalid"


@pytest.mark.parametrize("name", ["홍길동", "남궁 민수", "김철수", "José Müller", "Łukasz",
                                  "Seán O'Brien", "Anne-Marie d'Arc", "Nguyễn Văn An",
                                  "山田 太郎", "Ελένη"])
def test_ordinary_names_pass_unchanged(name: str) -> None:
    assert check_person_name(name) == name


@pytest.mark.parametrize("pin", ["", "abc", "90271", "9027145", "902714\n", " 902714",
                                 "\uff19\uff10\uff12\uff17\uff11\uff14",  # fullwidth
                                 "\u0669\u0660\u0662\u0667\u0661\u0664",  # Arabic-Indic
                                 None, 902714])
def test_a_pin_tried_must_be_six_ascii_digits(pin: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_pin_format(pin)
    assert refused.value.code == "pin_malformed"
    with pytest.raises(InvalidInput) as new_pin:  # the same rule for a new PIN, its own code
        check_pin(pin, is_birth_pattern=_never)
    assert new_pin.value.code == "pin_format"


def test_a_weak_pin_is_well_formed_when_tried() -> None:
    """Only the format is checked for a PIN tried: weak PINs set before a policy change (or
    by anyone) still open their key."""
    assert check_pin_format("111111") == "111111"
    assert check_pin_format("012345") == "012345"
