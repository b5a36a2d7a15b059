"""Integer money: named rounding and exact decimal-string conversion.

Amounts are integers of an asset's atomic unit. Every division in the core names its
direction through one of the helpers here, because Python's `//` floors toward minus
infinity, which is a silent choice on signed amounts. Decimal strings appear only at
the edges; `parse_decimal` converts them exactly or refuses, it never rounds.

Imports: errors only.
"""

from __future__ import annotations

from keel.core.errors import RejectCode, Rejected

BPS = 10_000  # basis points per unit
E9 = 1_000_000_000  # margin fractions and funding rates are in units of 1e-9


def div_floor(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded toward minus infinity."""
    assert denominator > 0
    return numerator // denominator


def div_ceil(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded toward plus infinity."""
    assert denominator > 0
    return -((-numerator) // denominator)


def div_toward_zero(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded toward zero (payouts round this way)."""
    assert denominator > 0
    if numerator >= 0:
        return numerator // denominator
    return -((-numerator) // denominator)


def parse_decimal(text: str, decimals: int, *, field: str = "value") -> int:
    """Return the exact integer of `text` scaled by 10**decimals.

    Refuses (never rounds) a string with more fractional digits than `decimals`, a sign,
    an exponent, or anything that is not plain digits with one optional point.
    Raises Rejected(DECIMAL_MALFORMED) or Rejected(DECIMAL_TOO_PRECISE).
    """
    assert decimals >= 0
    if not isinstance(text, str) or not text or len(text) > 64:
        raise Rejected(RejectCode.DECIMAL_MALFORMED, f"{field} must be a decimal number")
    whole, _, fraction = text.partition(".")
    if (
        (not whole and not fraction)
        or (whole and not (whole.isascii() and whole.isdigit()))
        or (fraction and not (fraction.isascii() and fraction.isdigit()))
    ):
        raise Rejected(RejectCode.DECIMAL_MALFORMED, f"{field} {text!r} is not a decimal number")
    significant = fraction.rstrip("0")
    if len(significant) > decimals:
        raise Rejected(
            RejectCode.DECIMAL_TOO_PRECISE,
            f"{field} {text} has more than {decimals} decimal places",
        )
    scale: int = 10**decimals
    scaled_fraction = int(significant.ljust(decimals, "0")) if significant else 0
    return int(whole or "0") * scale + scaled_fraction


def format_decimal(amount: int, decimals: int) -> str:
    """Return `amount` (an integer scaled by 10**decimals) as a plain decimal string."""
    assert decimals >= 0
    sign = "-" if amount < 0 else ""
    magnitude = -amount if amount < 0 else amount
    if decimals == 0:
        return f"{sign}{magnitude}"
    whole, fraction = divmod(magnitude, 10**decimals)
    fraction_text = str(fraction).rjust(decimals, "0").rstrip("0")
    if not fraction_text:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction_text}"
