"""Klines: candles of trades per market, for every interval Backpack serves.

The projector keeps bars of three widths, 1 minute, 1 hour and 1 day (`kline_bars`),
updated as trades arrive; a query aggregates the bars of one width into the interval
asked for. That is exact, because every interval's candles are unions of whole bars of
the width chosen for it (open = first bar's open, close = last bar's close, high and low
the extremes, volumes and trade counts the sums):

    1m 3m 5m 15m 30m        from 1-minute bars
    1h 2h 4h 6h 8h 12h      from 1-hour bars
    1d 3d 1w 1month         from 1-day bars

Why bars and not per-interval tables or aggregation of raw trades at query time: one
trade updates three rows (at most three per market per batch, since the projector merges
a batch's trades in memory) instead of fifteen, and a query reads at most one row per bar
instead of one per trade; a year of daily-active 1w candles reads 365 rows, not
millions of trades.

Alignment (inferred; the spec does not pin it): candles start at multiples of their
length since the Unix epoch, in UTC, except weeks, which start on Monday 00:00 UTC, and
months, which are calendar months in UTC. Only candles with trades exist (spec 6.1).

Imports: records.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from keel.views.records import Kline

NS_PER_S: Final = 1_000_000_000
MINUTE_S: Final = 60
HOUR_S: Final = 3_600
DAY_S: Final = 86_400
BAR_WIDTHS_S: Final = (MINUTE_S, HOUR_S, DAY_S)
_WEEK_OFFSET_S: Final = 4 * DAY_S  # 1970-01-01 was a Thursday; Monday 1970-01-05 starts week 0


@dataclass(frozen=True, slots=True)
class KlineInterval:
    """A Backpack kline interval: its name, length (0: a calendar month) and the bar width it is built from."""

    name: str
    seconds: int
    bar_width_s: int
    offset_s: int = 0

    def start_of(self, timestamp_ns: int) -> int:
        """Return the start (ns) of the candle holding `timestamp_ns`."""
        if self.seconds == 0:
            moment = datetime.datetime.fromtimestamp(timestamp_ns // NS_PER_S, tz=datetime.UTC)
            return calendar.timegm((moment.year, moment.month, 1, 0, 0, 0)) * NS_PER_S
        length = self.seconds * NS_PER_S
        offset = self.offset_s * NS_PER_S
        return timestamp_ns - (timestamp_ns - offset) % length

    def end_of(self, start_ns: int) -> int:
        """Return the end (ns, exclusive) of the candle starting at `start_ns`."""
        if self.seconds == 0:
            moment = datetime.datetime.fromtimestamp(start_ns // NS_PER_S, tz=datetime.UTC)
            year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
            return calendar.timegm((year, month, 1, 0, 0, 0)) * NS_PER_S
        return start_ns + self.seconds * NS_PER_S

    def first_start_at_or_after(self, timestamp_ns: int) -> int:
        """Return the start of the first candle that starts at or after `timestamp_ns`."""
        start = self.start_of(timestamp_ns)
        return start if start == timestamp_ns else self.end_of(start)


def _interval(name: str, seconds: int, bar_width_s: int, offset_s: int = 0) -> KlineInterval:
    assert seconds == 0 or seconds % bar_width_s == 0, f"{name} is not made of whole bars"
    return KlineInterval(name, seconds, bar_width_s, offset_s)


KLINE_INTERVALS: Final = {
    interval.name: interval
    for interval in (
        _interval("1m", 60, MINUTE_S),
        _interval("3m", 180, MINUTE_S),
        _interval("5m", 300, MINUTE_S),
        _interval("15m", 900, MINUTE_S),
        _interval("30m", 1_800, MINUTE_S),
        _interval("1h", HOUR_S, HOUR_S),
        _interval("2h", 2 * HOUR_S, HOUR_S),
        _interval("4h", 4 * HOUR_S, HOUR_S),
        _interval("6h", 6 * HOUR_S, HOUR_S),
        _interval("8h", 8 * HOUR_S, HOUR_S),
        _interval("12h", 12 * HOUR_S, HOUR_S),
        _interval("1d", DAY_S, DAY_S),
        _interval("3d", 3 * DAY_S, DAY_S),
        _interval("1w", 7 * DAY_S, DAY_S, _WEEK_OFFSET_S),
        _interval("1month", 0, DAY_S),
    )
}


def bar_start_ns(timestamp_ns: int, width_s: int) -> int:
    """Return the start of the bar of `width_s` seconds holding `timestamp_ns`."""
    return timestamp_ns - timestamp_ns % (width_s * NS_PER_S)


# (start_ns, open, high, low, close, volume_steps, quote_volume_atomic, trades)
Bar = tuple[int, int, int, int, int, int, int, int]


def aggregate(bars: Iterable[Bar], interval: KlineInterval, limit: int) -> list[Kline]:
    """Return at most `limit` candles of `interval` from bars in ascending start order."""
    candles: list[Kline] = []
    current: list[int] | None = None  # [start, end, open, high, low, close, volume, quote volume, trades]
    for start_ns, open_ticks, high_ticks, low_ticks, close_ticks, volume, quote_volume, trades in bars:
        if current is not None and start_ns < current[1]:
            current[3] = max(current[3], high_ticks)
            current[4] = min(current[4], low_ticks)
            current[5] = close_ticks
            current[6] += volume
            current[7] += quote_volume
            current[8] += trades
            continue
        if current is not None:
            candles.append(Kline(*current))
            if len(candles) == limit:
                return candles
        candle_start = interval.start_of(start_ns)
        current = [
            candle_start,
            interval.end_of(candle_start),
            open_ticks,
            high_ticks,
            low_ticks,
            close_ticks,
            volume,
            quote_volume,
            trades,
        ]
    if current is not None:
        candles.append(Kline(*current))
    return candles
