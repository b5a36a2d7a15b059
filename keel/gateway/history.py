"""The gateway's view of the past: orders, fills, public trades, candles, 24 h tickers.

Endpoints ask `History` (integers in, records out) and never look at how it is kept.
Until the history views (keel/views) land, `MemoryHistory` keeps it in this process,
fed by a sequencer listener with every durable command's events (and at start by the
records recovery replays after the newest snapshot). So in this interim a restart
forgets history older than that snapshot; the order book, balances and open orders are
unaffected (they are read from the engine). Swapping in keel/views changes this module
only.

Bounds: per market, the newest `trades_per_market_max` public trades and one-minute
candles for `candle_minutes_max` minutes; per account, every order and fill (interim).

Imports: keel.core, keel.sequencer, keel.gateway.
"""

from __future__ import annotations

import calendar
import datetime
import threading
from collections import deque
from collections.abc import Iterable
from typing import Final, Protocol

import msgspec

from keel.core.commands import Command
from keel.core.events import Event
from keel.gateway.orderbook import FillRecord, OrderRecord, TradeRecord, fold_events
from keel.sequencer.sequencer import Published

NS_PER_S: Final = 1_000_000_000
DAY_S: Final = 86_400

# Backpack's kline intervals (spec section 3) in seconds; 1month is by calendar month.
INTERVALS_S: Final[dict[str, int]] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1_800,
    "1h": 3_600,
    "2h": 7_200,
    "4h": 14_400,
    "6h": 21_600,
    "8h": 28_800,
    "12h": 43_200,
    "1d": 86_400,
    "3d": 259_200,
    "1w": 604_800,
    "1month": 0,
}


class Candle(msgspec.Struct, gc=False):
    """OHLC in ticks, volume in steps, quote volume in lots, over [start_s, end_s)."""

    start_s: int
    end_s: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    volume_steps: int = 0
    volume_lots: int = 0
    trades: int = 0

    def add(self, price_ticks: int, quantity_steps: int) -> None:
        self.high_ticks = max(self.high_ticks, price_ticks)
        self.low_ticks = min(self.low_ticks, price_ticks)
        self.close_ticks = price_ticks
        self.volume_steps += quantity_steps
        self.volume_lots += price_ticks * quantity_steps
        self.trades += 1

    def merge(self, later: Candle) -> None:
        self.high_ticks = max(self.high_ticks, later.high_ticks)
        self.low_ticks = min(self.low_ticks, later.low_ticks)
        self.close_ticks = later.close_ticks
        self.volume_steps += later.volume_steps
        self.volume_lots += later.volume_lots
        self.trades += later.trades


def bucket_start_s(interval: str, timestamp_s: int) -> tuple[int, int]:
    """Return the [start, end) in seconds of the `interval` candle holding `timestamp_s` (UTC, epoch-aligned)."""
    seconds = INTERVALS_S[interval]
    if seconds:
        start = timestamp_s - timestamp_s % seconds
        return start, start + seconds
    moment = datetime.datetime.fromtimestamp(timestamp_s, datetime.UTC)
    start = calendar.timegm((moment.year, moment.month, 1, 0, 0, 0))
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return start, calendar.timegm((year, month, 1, 0, 0, 0))


class History(Protocol):
    """What the endpoints read about the past. Limits and offsets are already validated."""

    def seq_last(self) -> int: ...

    def orders(
        self, account_id: int, market_id: int | None, order_id: int | None, limit: int, offset: int, ascending: bool
    ) -> list[OrderRecord]: ...

    def fills(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[FillRecord]: ...

    def trades(self, market_id: int, limit: int, offset: int) -> list[TradeRecord]: ...

    def candles(self, market_id: int, interval: str, start_s: int, end_s: int) -> list[Candle]: ...

    def day(self, market_id: int, now_ns: int) -> Candle | None: ...

    def listener(self, published: list[Published]) -> None: ...

    def replayed(self, seq: int, timestamp_ns: int, command: Command, events: list[Event]) -> None: ...


class MemoryHistory:
    """History kept in this process (interim, until keel/views): see the module docstring."""

    trades_per_market_max = 100_000
    candle_minutes_max = 60 * 24 * 31

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq_last = 0
        self._orders: dict[int, OrderRecord] = {}
        self._orders_by_account: dict[int, list[OrderRecord]] = {}
        self._fills_by_account: dict[int, list[FillRecord]] = {}
        self._trades: dict[int, deque[TradeRecord]] = {}
        self._minutes: dict[int, dict[int, Candle]] = {}  # market -> minute start s -> candle
        self._minute_order: dict[int, deque[int]] = {}

    # ---- feeding ----------------------------------------------------------------------
    def listener(self, published: list[Published]) -> None:
        """Sequencer listener: called on the committer thread with durable commands, in seq order."""
        with self._lock:
            for one in published:
                self._apply(one.seq, one.timestamp_ns, one.events)

    def replayed(self, seq: int, timestamp_ns: int, command: Command, events: list[Event]) -> None:
        """Recovery hook (Node.open on_replayed): the records after the snapshot."""
        with self._lock:
            self._apply(seq, timestamp_ns, events)

    def _apply(self, seq: int, timestamp_ns: int, events: Iterable[Event]) -> None:
        if seq <= self._seq_last:
            return
        self._seq_last = seq
        fills: list[FillRecord] = []
        trades: list[TradeRecord] = []
        accepted: list[OrderRecord] = []
        fold_events(events, timestamp_ns, self._orders, fills, trades, accepted)
        for record in accepted:
            self._orders_by_account.setdefault(record.account_id, []).append(record)
        for fill in fills:
            self._fills_by_account.setdefault(fill.account_id, []).append(fill)
        for trade in trades:
            prints = self._trades.get(trade.market_id)
            if prints is None:
                prints = self._trades[trade.market_id] = deque(maxlen=self.trades_per_market_max)
            prints.append(trade)
            self._add_to_minute(trade)

    def _add_to_minute(self, trade: TradeRecord) -> None:
        start = trade.timestamp_ns // NS_PER_S // 60 * 60
        minutes = self._minutes.setdefault(trade.market_id, {})
        candle = minutes.get(start)
        if candle is None:
            price = trade.price_ticks
            candle = minutes[start] = Candle(start, start + 60, price, price, price, price)
            order = self._minute_order.setdefault(trade.market_id, deque())
            order.append(start)
            while len(order) > self.candle_minutes_max:
                minutes.pop(order.popleft(), None)
        candle.add(trade.price_ticks, trade.quantity_steps)

    # ---- queries ----------------------------------------------------------------------
    def seq_last(self) -> int:
        return self._seq_last

    def orders(
        self, account_id: int, market_id: int | None, order_id: int | None, limit: int, offset: int, ascending: bool
    ) -> list[OrderRecord]:
        with self._lock:
            records = self._orders_by_account.get(account_id, [])
            chosen = [
                msgspec.structs.replace(record)
                for record in (records if ascending else reversed(records))
                if (market_id is None or record.market_id == market_id)
                and (order_id is None or record.order_id == order_id)
            ]
        return chosen[offset : offset + limit]

    def fills(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[FillRecord]:
        with self._lock:
            records = self._fills_by_account.get(account_id, [])
            chosen = [
                fill
                for fill in (records if ascending else reversed(records))
                if (market_id is None or fill.market_id == market_id)
                and (order_id is None or fill.order_id == order_id)
                and (from_ns is None or fill.timestamp_ns >= from_ns)
                and (to_ns is None or fill.timestamp_ns <= to_ns)
            ]
        return chosen[offset : offset + limit]

    def trades(self, market_id: int, limit: int, offset: int) -> list[TradeRecord]:
        """Newest first."""
        with self._lock:
            prints = self._trades.get(market_id)
            if not prints:
                return []
            newest_first = []
            for index in range(len(prints) - 1 - offset, max(-1, len(prints) - 1 - offset - limit), -1):
                newest_first.append(prints[index])
        return newest_first

    def candles(self, market_id: int, interval: str, start_s: int, end_s: int) -> list[Candle]:
        """Candles (ascending) of `interval` that start in [start_s, end_s) and hold a trade."""
        with self._lock:
            minutes = self._minutes.get(market_id, {})
            chosen = sorted(
                (minute, candle) for minute, candle in minutes.items() if start_s <= minute < end_s + DAY_S * 31
            )
            buckets: dict[int, Candle] = {}
            for minute, candle in chosen:
                start, end = bucket_start_s(interval, minute)
                if not start_s <= start < end_s:
                    continue
                bucket = buckets.get(start)
                if bucket is None:
                    buckets[start] = msgspec.structs.replace(candle, start_s=start, end_s=end)
                else:
                    bucket.merge(candle)
        return [buckets[start] for start in sorted(buckets)]

    def day(self, market_id: int, now_ns: int) -> Candle | None:
        """The rolling 24 h aggregate (minute resolution) ending now, or None without trades."""
        now_s = now_ns // NS_PER_S
        since = now_s - DAY_S
        with self._lock:
            minutes = self._minutes.get(market_id, {})
            order = self._minute_order.get(market_id, deque())
            total: Candle | None = None
            for start in reversed(order):
                if start + 60 <= since:
                    break
                candle = minutes[start]
                if total is None:
                    total = msgspec.structs.replace(candle)
                else:
                    earlier = msgspec.structs.replace(candle)
                    earlier.merge(total)
                    total = earlier
        if total is not None:
            total.start_s, total.end_s = since, now_s
        return total
