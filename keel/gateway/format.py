"""Decimal strings and timestamps on the wire: the only place integers become text.

The engine speaks integers (atomic units, ticks, steps, nanoseconds); Backpack's API
speaks decimal strings and a different time unit per field (spec section 1.3). Every
conversion the gateway (and the WebSocket streams built on it) does goes through here so
that the same integer always prints the same way.

Imports: keel.core (money, markets, assets).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from keel.core.money import format_decimal

_EPOCH = datetime.datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class MarketFormat:
    """What a market's prices and quantities need to become decimal strings (fixed at listing)."""

    market_id: int
    symbol: str
    base_symbol: str
    quote_symbol: str
    base_asset_id: int
    quote_asset_id: int
    base_decimals: int
    quote_decimals: int
    tick_atomic: int
    step_atomic: int
    lot_atomic: int

    def price(self, price_ticks: int) -> str:
        """Return a price in ticks as a decimal of the quote asset ("101.25")."""
        return format_decimal(price_ticks * self.tick_atomic, self.quote_decimals)

    def quantity(self, quantity_steps: int) -> str:
        """Return a quantity in steps as a decimal of the base asset ("0.5")."""
        return format_decimal(quantity_steps * self.step_atomic, self.base_decimals)

    def quote(self, amount_atomic: int) -> str:
        """Return an amount of the quote asset in atomic units as a decimal."""
        return format_decimal(amount_atomic, self.quote_decimals)

    def base(self, amount_atomic: int) -> str:
        """Return an amount of the base asset in atomic units as a decimal."""
        return format_decimal(amount_atomic, self.base_decimals)

    def notional(self, price_ticks: int, quantity_steps: int) -> str:
        """Return price x quantity as a decimal of the quote asset (exact: one lot is whole atomic units)."""
        return format_decimal(price_ticks * quantity_steps * self.lot_atomic, self.quote_decimals)


def amount(amount_atomic: int, decimals: int) -> str:
    """Return an amount in atomic units as a plain decimal string."""
    return format_decimal(amount_atomic, decimals)


def ratio(numerator: int, denominator: int, decimals: int = 6) -> str:
    """Return numerator / denominator as a decimal with `decimals` places, rounded toward zero
    (for display only: ticker percentages, fee rates)."""
    assert denominator > 0
    scaled = numerator * 10**decimals
    quotient = scaled // denominator if scaled >= 0 else -((-scaled) // denominator)
    return format_decimal(quotient, decimals)


def ms(timestamp_ns: int) -> int:
    """Return integer milliseconds (createdAt on orders, trade timestamps, /time)."""
    return timestamp_ns // 1_000_000


def us(timestamp_ns: int) -> int:
    """Return integer microseconds (depth timestamp, WebSocket E and T)."""
    return timestamp_ns // 1_000


def iso(timestamp_ns: int) -> str:
    """Return a naive UTC ISO-8601 string with milliseconds: "2025-07-27T18:05:40.897"."""
    moment = _EPOCH + datetime.timedelta(microseconds=timestamp_ns // 1_000)
    return moment.isoformat(timespec="milliseconds")


def kline_time(timestamp_s: int) -> str:
    """Return a kline boundary as Backpack prints it: "2025-07-19 13:09:00" (naive UTC)."""
    return (_EPOCH + datetime.timedelta(seconds=timestamp_s)).strftime("%Y-%m-%d %H:%M:%S")
