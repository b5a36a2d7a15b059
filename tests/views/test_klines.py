"""Kline intervals: alignment, and candles built from bars equal candles built from trades.

Alignment is checked on known dates (weeks start on Monday 00:00 UTC, months on the 1st,
fixed intervals at multiples of their length since the epoch). Exactness: 3,000 seeded
random trades over 120 days are bucketed directly into candles of every interval (the
naive oracle), and into 1-minute, 1-hour and 1-day bars that `aggregate` then combines;
both must give the same candles, all of them and also when cut off by a limit.
"""

from __future__ import annotations

import calendar
import random

import pytest

from keel.views.klines import BAR_WIDTHS_S, KLINE_INTERVALS, NS_PER_S, Bar, aggregate, bar_start_ns
from keel.views.records import Kline


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second)) * NS_PER_S


@pytest.mark.parametrize(
    ("interval", "moment", "start", "end"),
    [
        ("1m", utc_ns(2024, 2, 29, 13, 9, 59) + 7, utc_ns(2024, 2, 29, 13, 9), utc_ns(2024, 2, 29, 13, 10)),
        ("15m", utc_ns(2024, 2, 29, 13, 29, 59), utc_ns(2024, 2, 29, 13, 15), utc_ns(2024, 2, 29, 13, 30)),
        ("4h", utc_ns(2024, 2, 29, 3, 59), utc_ns(2024, 2, 29, 0), utc_ns(2024, 2, 29, 4)),
        ("1d", utc_ns(2024, 2, 29, 23, 59, 59), utc_ns(2024, 2, 29), utc_ns(2024, 3, 1)),
        ("1w", utc_ns(2024, 3, 3, 23), utc_ns(2024, 2, 26), utc_ns(2024, 3, 4)),  # Sunday -> Monday
        ("1w", utc_ns(2024, 3, 4), utc_ns(2024, 3, 4), utc_ns(2024, 3, 11)),  # a Monday starts its own
        ("1month", utc_ns(2024, 2, 29, 12), utc_ns(2024, 2, 1), utc_ns(2024, 3, 1)),
        ("1month", utc_ns(2023, 12, 31, 23), utc_ns(2023, 12, 1), utc_ns(2024, 1, 1)),
        ("3d", 0, 0, 3 * 86_400 * NS_PER_S),
    ],
)
def test_candles_are_aligned(interval: str, moment: int, start: int, end: int) -> None:
    found = KLINE_INTERVALS[interval]
    assert found.start_of(moment) == start
    assert found.end_of(start) == end
    assert found.first_start_at_or_after(start) == start
    assert found.first_start_at_or_after(start + 1) == end


def test_every_backpack_interval_is_served() -> None:
    assert list(KLINE_INTERVALS) == [
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1month",
    ]
    for interval in KLINE_INTERVALS.values():
        assert interval.bar_width_s in BAR_WIDTHS_S


def _trades(seed: int, count: int) -> list[tuple[int, int, int]]:
    """(timestamp_ns, price, quantity) ascending in time, with bursts inside one minute."""
    generator = random.Random(seed)
    moment = utc_ns(2024, 1, 30, 22, 59, 30)
    trades = []
    for _ in range(count):
        moment += generator.choice((0, 1, 10**9, 45 * 10**9, 3_600 * 10**9, 20 * 3_600 * 10**9))
        trades.append((moment, generator.randint(9_000, 11_000), generator.randint(1, 500)))
    return trades


def _naive(trades: list[tuple[int, int, int]], interval: str) -> list[Kline]:
    found = KLINE_INTERVALS[interval]
    candles: dict[int, list[int]] = {}
    for moment, price, quantity in trades:
        start = found.start_of(moment)
        candle = candles.get(start)
        if candle is None:
            candles[start] = [start, found.end_of(start), price, price, price, price, quantity, price * quantity, 1]
            continue
        candle[3] = max(candle[3], price)
        candle[4] = min(candle[4], price)
        candle[5] = price
        candle[6] += quantity
        candle[7] += price * quantity
        candle[8] += 1
    return [Kline(*candles[start]) for start in sorted(candles)]


def _bars(trades: list[tuple[int, int, int]], width_s: int) -> list[Bar]:
    bars: dict[int, list[int]] = {}
    for moment, price, quantity in trades:
        start = bar_start_ns(moment, width_s)
        bar = bars.setdefault(start, [start, price, price, price, price, 0, 0, 0])
        bar[2] = max(bar[2], price)
        bar[3] = min(bar[3], price)
        bar[4] = price
        bar[5] += quantity
        bar[6] += price * quantity
        bar[7] += 1
    return [(bar[0], bar[1], bar[2], bar[3], bar[4], bar[5], bar[6], bar[7]) for _, bar in sorted(bars.items())]


@pytest.mark.parametrize("interval", list(KLINE_INTERVALS))
def test_candles_from_bars_equal_candles_from_trades(interval: str) -> None:
    trades = _trades(seed=7, count=3_000)
    expected = _naive(trades, interval)
    bars = _bars(trades, KLINE_INTERVALS[interval].bar_width_s)
    assert aggregate(bars, KLINE_INTERVALS[interval], limit=10**6) == expected
    assert aggregate(bars, KLINE_INTERVALS[interval], limit=3) == expected[:3]
    assert aggregate([], KLINE_INTERVALS[interval], limit=3) == []
