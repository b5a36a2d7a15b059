"""Tests of keel.core.money: named rounding and exact decimal-string conversion."""

from __future__ import annotations

import pytest

from keel.core.errors import RejectCode, Rejected
from keel.core.money import BPS, div_ceil, div_floor, div_toward_zero, format_decimal, parse_decimal


def test_bps_is_ten_thousand() -> None:
    """One unit is 10,000 basis points."""
    assert BPS == 10_000


@pytest.mark.parametrize(
    ("numerator", "denominator", "floor", "ceil", "toward_zero"),
    [
        (7, 2, 3, 4, 3),  # 3.5
        (-7, 2, -4, -3, -3),  # -3.5: floor goes down, ceil and toward-zero go up
        (6, 3, 2, 2, 2),  # exact
        (-6, 3, -2, -2, -2),  # exact, negative
        (0, 5, 0, 0, 0),
        (1, 10_000, 0, 1, 0),  # the smallest positive fee rounds up to 1 under ceil
        (-1, 10_000, -1, 0, 0),  # a tiny rebate rounds to 0 toward zero and under ceil
        (-14_001_400, 10_000, -1_401, -1_400, -1_400),  # -1400.14
        (14_001_400, 10_000, 1_400, 1_401, 1_400),  # 1400.14
    ],
)
def test_divisions_round_in_their_named_direction(
    numerator: int, denominator: int, floor: int, ceil: int, toward_zero: int
) -> None:
    """div_floor, div_ceil and div_toward_zero round as named, for positive and negative numerators."""
    assert div_floor(numerator, denominator) == floor
    assert div_ceil(numerator, denominator) == ceil
    assert div_toward_zero(numerator, denominator) == toward_zero


@pytest.mark.parametrize("denominator", [0, -1, -10_000])
def test_divisions_refuse_non_positive_denominators(denominator: int) -> None:
    """A zero or negative denominator is a programmer's mistake and fails an assertion."""
    for divide in (div_floor, div_ceil, div_toward_zero):
        with pytest.raises(AssertionError):
            divide(7, denominator)


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        ("1", 6, 1_000_000),
        ("1.5", 6, 1_500_000),
        ("0.000001", 6, 1),
        ("123.456789", 6, 123_456_789),
        (".5", 6, 500_000),  # no whole part
        ("5.", 6, 5_000_000),  # no fraction part
        ("1.0000000000", 6, 1_000_000),  # trailing zeros beyond the decimals are not precision
        ("007", 2, 700),  # leading zeros
        ("0", 9, 0),
        ("42", 0, 42),
        ("42.000", 0, 42),
        ("100.01", 6, 100_010_000),
        ("18446744073709551616", 0, 2**64),  # no float on the way: exact for big numbers
        ("0.123456789012345678", 18, 123_456_789_012_345_678),
    ],
)
def test_parse_decimal_is_exact(text: str, decimals: int, expected: int) -> None:
    """parse_decimal scales a plain decimal string to an exact integer."""
    assert parse_decimal(text, decimals) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "-1",  # no sign: amounts at the gateway are never negative
        "+1",
        "1e5",
        "1E5",
        " 1",
        "1 ",
        "1,5",
        "1.2.3",
        "0x10",
        "abc",
        "1_000",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: isdigit() but not ASCII
        "1." + "0" * 63,  # 65 characters: too long
        "nan",
        "inf",
    ],
)
def test_parse_decimal_rejects_malformed_text(text: str) -> None:
    """Anything but ASCII digits with at most one point is refused as DECIMAL_MALFORMED, naming the field."""
    with pytest.raises(Rejected) as caught:
        parse_decimal(text, 6, field="price")
    assert caught.value.code is RejectCode.DECIMAL_MALFORMED
    assert "price" in caught.value.message
    assert "decimal number" in caught.value.message


@pytest.mark.parametrize("value", [None, 5, 1.5, b"1"])
def test_parse_decimal_rejects_non_strings(value: object) -> None:
    """A value that is not a string at all is refused as DECIMAL_MALFORMED, never converted."""
    with pytest.raises(Rejected) as caught:
        parse_decimal(value, 6)  # type: ignore[arg-type]
    assert caught.value.code is RejectCode.DECIMAL_MALFORMED


@pytest.mark.parametrize(
    ("text", "decimals"),
    [
        ("0.0000001", 6),
        ("1.5", 0),
        ("100.005", 2),
        ("1.0000001000", 6),  # trailing zeros are ignored, the 7th digit is not
    ],
)
def test_parse_decimal_refuses_to_round(text: str, decimals: int) -> None:
    """More significant fractional digits than the asset has is DECIMAL_TOO_PRECISE: parse never rounds."""
    with pytest.raises(Rejected) as caught:
        parse_decimal(text, decimals, field="quantity")
    assert caught.value.code is RejectCode.DECIMAL_TOO_PRECISE
    assert f"quantity {text} has more than {decimals} decimal places" == caught.value.message


def test_parse_decimal_default_field_name() -> None:
    """Without a field name the message says 'value'."""
    with pytest.raises(Rejected) as caught:
        parse_decimal("x", 2)
    assert caught.value.message == "value 'x' is not a decimal number"


@pytest.mark.parametrize(
    ("amount", "decimals", "expected"),
    [
        (1_500_000, 6, "1.5"),
        (1_000_000, 6, "1"),
        (1, 6, "0.000001"),
        (0, 6, "0"),
        (123_456_789, 6, "123.456789"),
        (-1, 6, "-0.000001"),
        (-1_500_000, 6, "-1.5"),
        (-2_000_000, 6, "-2"),
        (42, 0, "42"),
        (-42, 0, "-42"),
        (0, 0, "0"),
        (10_000_000, 9, "0.01"),
        (2**64, 0, "18446744073709551616"),
    ],
)
def test_format_decimal(amount: int, decimals: int, expected: str) -> None:
    """format_decimal writes a plain decimal string without trailing zeros, with a leading minus for negatives."""
    assert format_decimal(amount, decimals) == expected


@pytest.mark.parametrize("amount", [0, 1, 9, 10, 999_999, 1_000_000, 1_000_001, 123_456_789_012, 10**30 + 7])
@pytest.mark.parametrize("decimals", [0, 1, 6, 9, 18])
def test_format_then_parse_round_trips(amount: int, decimals: int) -> None:
    """parse_decimal(format_decimal(x)) == x for non-negative amounts at every scale."""
    assert parse_decimal(format_decimal(amount, decimals), decimals) == amount


def test_format_decimal_refuses_negative_decimals() -> None:
    """A negative number of decimals is a programmer's mistake."""
    with pytest.raises(AssertionError):
        format_decimal(1, -1)
    with pytest.raises(AssertionError):
        parse_decimal("1", -1)
