"""The streams' hub: from the sequencer's committer thread to every subscribed socket.

Theory of operation. The sequencer calls `StreamHub.listener` on its committer thread
with each durable group of commands, in seq order. The listener only hands the group to
the asyncio loop (`loop.call_soon_threadsafe`; before the server's loop is attached it
keeps them in order in a buffer), so the log is never held up by a socket. On the loop,
`_process` folds the group into the mirror (mirror.py) and fans the frames out: public
frames to the sessions subscribed to that stream name, private ones to the sessions
subscribed for that account, then one depth update per changed market and, when the best
price or its quantity moved, a bookTicker. Each frame is encoded once and queued on every
session it goes to; a session's own writer task sends them (endpoint.py).

Everything on the loop is synchronous between awaits, so a subscribe (which registers
the session and queues its first frame, such as the depth snapshot) can never interleave
with a fold: the snapshot is at update id u, and the next depth frame it gets has
U = u + 1.

Depth and REST. `update_id_at(market, seq)` answers the REST depth endpoint: the endpoint
copies the engine's book under the read lock at the engine's seq S, then asks for the
market's update id as of S, waiting (briefly) until the hub has folded S. So REST's
`lastUpdateId` and the stream's `U`/`u` are one sequence, as ccxt.pro's order book sync
needs (spec 11.2).

Timed pushes (a task that wakes every 100 ms): throttled depth (`depth.200ms.SYM`, ...)
flushes what changed since its last flush; every second the 24 h ticker and the current
kline of each watched market are read from the history views (after waiting until they
hold everything folded), and every 60 s the open interest of watched perpetuals.

A session that falls `SESSION_QUEUE_MAX` frames behind is closed (1008) rather than
buffered without bound.

Imports: keel.core, keel.sequencer, keel.views (records), keel.gateway.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from keel.core.orders import Side
from keel.gateway.history import NS_PER_S
from keel.gateway.streams import messages
from keel.gateway.streams.mirror import DepthChange, Fold, Mirror, Private
from keel.sequencer.sequencer import Published

if TYPE_CHECKING:
    from collections.abc import Mapping

    from keel.core.state import ExchangeState
    from keel.gateway.context import Gateway
    from keel.views import OrderRecord as ViewsOrder

log = logging.getLogger("keel.gateway.streams")

SESSION_QUEUE_MAX: Final = 50_000  # frames queued for one socket before it is dropped
REST_WAIT_S: Final = 2.0  # how long a REST depth read waits for the streams to reach its seq
TIMER_S: Final = 0.1
OPEN_INTEREST_EVERY_S: Final = 60.0
# How far back the current candle of an interval can have started (the longest month).
INTERVAL_SPAN_S: Final = {
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
    "1month": 31 * 86_400,
}
KLINE_GRACE_S: Final = 1  # a candle is final this long after its end (a trade stamped before it may still be in flight)
DEPTH_PERIODS_MS: Final = (200, 600, 1000)
CLOSE_GOING_AWAY: Final = 1001
CLOSE_ERROR: Final = 1011

_encoder = msgspec.json.Encoder()
_BUY = int(Side.BUY)
_SELL = int(Side.SELL)


def encode_frame(stream: str, data: dict[str, Any]) -> str:
    """Return the wire text of a data frame: {"stream": ..., "data": ...} (spec 11.1)."""
    return _encoder.encode({"stream": stream, "data": data}).decode()


class Subscriber:
    """What the hub needs of a session: a place to queue frames, and a way to end it."""

    def push(self, frame: str) -> None:
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class _Throttled:
    """A throttled depth stream of one market: what changed since its last flush."""

    period_s: float
    due_s: float
    change: DepthChange | None = None


@dataclass(slots=True)
class _KlineFeed:
    """Where the candles of one (market, interval) stand for their subscribers."""

    since_s: int  # when the first subscriber came: candles that ended before are not news
    fresh: bool = True  # no push yet: the current candle goes out at the next second
    after_s: int = -1  # candles starting before this were pushed final (-1: none yet)
    open_start_s: int = -1  # the candle last pushed while open (-1: none)
    open_end_s: int = 0
    trades_sent: int = 0


class StreamHub:
    """Folds durable commands and fans out frames; see the module docstring."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.gateway: Gateway | None = None
        self.failed: BaseException | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer: list[list[Published]] = []
        # stream name -> sessions; private streams by (account id, stream name).
        self.public: dict[str, dict[Subscriber, None]] = {}
        self.private: dict[tuple[int, str], dict[Subscriber, None]] = {}
        self._account_kinds: dict[tuple[int, str], int] = {}  # (account, kind) -> subscriptions
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_order = itertools.count()
        self._throttled: dict[tuple[int, int], _Throttled] = {}  # (market, period ms)
        self._klines: dict[tuple[int, str], _KlineFeed] = {}
        self._book_tickers: dict[int, tuple[Any, Any]] = {}  # market -> last (ask, bid) sent
        self._traded: dict[int, None] = {}  # markets with trades since the last kline pass
        self._timer: asyncio.Task[None] | None = None
        self._closing = False
        self.sessions: dict[Subscriber, None] = {}  # every open socket (endpoint.py adds and removes them)

    @classmethod
    def seeded(cls, state: ExchangeState, recalled: Mapping[int, ViewsOrder] | None = None) -> StreamHub:
        """A hub over a mirror of `state` (call before the sequencer starts); `recalled` as
        for Mirror.seeded."""
        return cls(Mirror.seeded(state, recalled))

    # ---- wiring -------------------------------------------------------------------------
    def bind(self, gateway: Gateway) -> None:
        """Give the hub the gateway it formats and reads history through."""
        self.gateway = gateway
        self.mirror.format_of = lambda market_id: gateway.markets()[market_id]

    def listener(self, group: list[Published]) -> None:
        """The sequencer listener (committer thread): hand the group to the loop, in order."""
        with self._lock:
            loop = self._loop
            if loop is None:
                if not self._closing:
                    self._buffer.append(group)
                return
            try:
                loop.call_soon_threadsafe(self._process, group)
            except RuntimeError:  # the loop has closed: the server is stopping
                self._loop = None
                self._closing = True

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start delivering on `loop` (call on it, once the server listens)."""
        with self._lock:
            self._loop = loop
            for group in self._buffer:
                loop.call_soon_threadsafe(self._process, group)
            self._buffer.clear()
        self._timer = loop.create_task(self._run_timer())

    async def close_sessions(self, timeout_s: float = 2.0) -> None:
        """Close every socket with 1001 (server shutdown), waiting up to `timeout_s` for them to go."""
        for session in list(self.sessions):
            session.close(CLOSE_GOING_AWAY, "server shutting down")
        deadline = time.monotonic() + timeout_s
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def detach(self) -> None:
        """Stop delivering (the loop is going away)."""
        with self._lock:
            self._loop = None
            self._closing = True
            self._buffer.clear()
        if self._timer is not None:
            self._timer.cancel()

    # ---- Interest (mirror.py asks before building a frame) ------------------------------
    def watches(self, stream: str) -> bool:
        return stream in self.public

    def watches_account(self, account_id: int, kind: str) -> bool:
        return (account_id, kind) in self._account_kinds

    # ---- folding and fan-out ------------------------------------------------------------
    def _process(self, group: list[Published]) -> None:
        if self.failed is not None or not group:
            return
        try:
            fold = self.mirror.fold(group, self)
            self._deliver(fold)
        except Exception as error:
            # A bug: the mirror can no longer be trusted. Say so and stop streaming (REST
            # depth falls back to the log seq); the next start seeds a fresh mirror.
            self.failed = error
            log.error("the WebSocket streams stopped: folding seq %s failed", group[0].seq, exc_info=error)
            for session in list(self.sessions):
                session.close(CLOSE_ERROR, "the streams stopped; reconnect after the exchange restarts")
        finally:
            self._resolve_waiters()

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        sessions = self.public.get(stream)
        if sessions:
            frame = encode_frame(stream, data)
            for session in list(sessions):
                session.push(frame)

    def _deliver(self, fold: Fold) -> None:
        for target, data in fold.frames:
            if isinstance(target, str):
                self._publish(target, data)
            else:
                self._deliver_private(target, data)
        for market_id in fold.traded:
            self._traded[market_id] = None
        for market_id, change in fold.depth.items():
            self._deliver_depth(market_id, change)

    def _deliver_private(self, target: Private, data: dict[str, Any]) -> None:
        for stream in (f"account.{target.kind}", f"account.{target.kind}.{target.symbol}"):
            sessions = self.private.get((target.account_id, stream))
            if sessions:
                frame = encode_frame(stream, data)
                for session in list(sessions):
                    session.push(frame)

    def _levels(self, market_id: int, levels: dict[tuple[int, int], None]) -> tuple[list[Any], list[Any]]:
        sides = self.mirror.markets[market_id].sides
        asks = sorted((price, sides[_SELL].get(price, 0)) for side, price in levels if side == _SELL)
        bids = sorted((price, sides[_BUY].get(price, 0)) for side, price in levels if side == _BUY)
        return asks, bids

    def _deliver_depth(self, market_id: int, change: DepthChange) -> None:
        market = self.mirror.markets[market_id]
        symbol = market.format.symbol
        stream = "depth." + symbol
        if stream in self.public:
            asks, bids = self._levels(market_id, change.levels)
            data = messages.depth(
                market.format, asks, bids, change.first_id, market.update_id, self.mirror.timestamp_ns
            )
            self._publish(stream, data)
        for period_ms in DEPTH_PERIODS_MS:
            throttled = self._throttled.get((market_id, period_ms))
            if throttled is not None:
                if throttled.change is None:
                    throttled.change = DepthChange(change.first_id)
                throttled.change.levels.update(change.levels)
        if "bookTicker." + symbol in self.public:
            self._book_ticker(market_id, force=False)

    def _book_ticker(self, market_id: int, force: bool, only: Subscriber | None = None) -> None:
        market = self.mirror.markets[market_id]
        best = (market.best(_SELL), market.best(_BUY))
        if not force and self._book_tickers.get(market_id) == best:
            return
        self._book_tickers[market_id] = best
        data = messages.book_ticker(market.format, best[0], best[1], market.update_id, self.mirror.timestamp_ns)
        stream = "bookTicker." + market.format.symbol
        if only is not None:
            only.push(encode_frame(stream, data))
        else:
            self._publish(stream, data)

    def _flush_throttled(self, market_id: int, period_ms: int, throttled: _Throttled) -> None:
        change = throttled.change
        throttled.change = None
        if change is None:
            return
        market = self.mirror.markets[market_id]
        asks, bids = self._levels(market_id, change.levels)
        data = messages.depth(market.format, asks, bids, change.first_id, market.update_id, self.mirror.timestamp_ns)
        self._publish(f"depth.{period_ms}ms.{market.format.symbol}", data)

    # ---- subscriptions (endpoint.py parses and authenticates; these only register) ------
    def add_public(self, session: Subscriber, stream: str, market_id: int, kind: str, detail: str = "") -> None:
        """Subscribe `session` to a public stream and queue what it needs first."""
        sessions = self.public.get(stream)
        if sessions is not None and session in sessions:
            return
        market = self.mirror.markets[market_id] if market_id >= 0 else None
        if kind == "depth" and market is not None:
            if detail:
                key = (market_id, int(detail))
                throttled = self._throttled.get(key)
                if throttled is None:
                    period_s = int(detail) / 1000
                    self._throttled[key] = _Throttled(period_s, time.monotonic() + period_s)
                else:  # bring the others up to now, so the snapshot and the next update meet
                    self._flush_throttled(market_id, int(detail), throttled)
            bids, asks = self.mirror.book_levels(market_id)
            data = messages.depth_snapshot(market.format, asks, bids, market.update_id, self.mirror.timestamp_ns)
            session.push(encode_frame(stream, data))
        elif kind == "bookTicker" and market is not None:
            self._book_ticker(market_id, force=True, only=session)
        elif kind == "markPrice" and market is not None and market.mark_ticks:
            session.push(encode_frame(stream, messages.mark_price(market, self.mirror.timestamp_ns)))
        elif kind == "kline" and (market_id, detail) not in self._klines:
            self._klines[(market_id, detail)] = _KlineFeed(since_s=self._now_ns() // NS_PER_S)
        self.public.setdefault(stream, {})[session] = None

    def remove_public(self, session: Subscriber, stream: str) -> None:
        sessions = self.public.get(stream)
        if sessions is None or session not in sessions:
            return
        del sessions[session]
        if sessions:
            return
        del self.public[stream]
        parts = stream.split(".")
        symbol = parts[-1]
        market_ids = [one.format.market_id for one in self.mirror.markets if one.format.symbol == symbol]
        if not market_ids:
            return
        if parts[0] == "depth" and len(parts) == 3:
            self._throttled.pop((market_ids[0], int(parts[1].removesuffix("ms"))), None)
        elif parts[0] == "kline":
            self._klines.pop((market_ids[0], parts[1]), None)

    def add_private(self, session: Subscriber, account_id: int, stream: str, kind: str, market_id: int) -> None:
        """Subscribe `session` to an account's private stream (its signature checked already)."""
        sessions = self.private.setdefault((account_id, stream), {})
        if session in sessions:
            return
        sessions[session] = None
        self._account_kinds[(account_id, kind)] = self._account_kinds.get((account_id, kind), 0) + 1
        if kind == "positionUpdate":
            # The account's open positions first, without `e` (spec 11.3: ccxt skips them).
            for (owner, held_market_id), held in sorted(self.mirror.positions.items()):
                if owner == account_id and market_id in (-1, held_market_id):
                    market = self.mirror.markets[held_market_id]
                    data = messages.position(None, held, market, self.mirror.timestamp_ns)
                    session.push(encode_frame(stream, data))

    def remove_private(self, session: Subscriber, account_id: int, stream: str, kind: str) -> None:
        sessions = self.private.get((account_id, stream))
        if sessions is None or session not in sessions:
            return
        del sessions[session]
        if not sessions:
            del self.private[(account_id, stream)]
        count = self._account_kinds[(account_id, kind)] - 1
        if count:
            self._account_kinds[(account_id, kind)] = count
        else:
            del self._account_kinds[(account_id, kind)]

    # ---- REST depth ---------------------------------------------------------------------
    async def update_id_at(self, market_id: int, seq: int) -> int | None:
        """Return the market's depth update id as of log seq `seq` (waiting until the hub
        has folded it), or None if the streams cannot say (stopped, or not caught up in time)."""
        if self.failed is not None:
            return None
        if self.mirror.seq < seq:
            if self._loop is None:
                return None
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (seq, next(self._waiter_order), future))
            try:
                await asyncio.wait_for(future, REST_WAIT_S)
            except TimeoutError:
                return None
        if self.failed is not None or market_id >= len(self.mirror.markets):
            return None
        return self.mirror.markets[market_id].update_id_at(seq)

    def _resolve_waiters(self) -> None:
        waiters = self._waiters
        while waiters and (waiters[0][0] <= self.mirror.seq or self.failed is not None):
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)

    # ---- timed pushes -------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.gateway.clock_ns() if self.gateway is not None else time.time_ns()

    async def _run_timer(self) -> None:
        next_second = time.monotonic() + 1.0
        next_open_interest = time.monotonic() + OPEN_INTEREST_EVERY_S
        while True:
            await asyncio.sleep(TIMER_S)
            if self.failed is not None:
                continue
            now = time.monotonic()
            try:
                for (market_id, period_ms), throttled in list(self._throttled.items()):
                    if now >= throttled.due_s:
                        throttled.due_s = now + throttled.period_s
                        self._flush_throttled(market_id, period_ms, throttled)
                if now >= next_second:
                    next_second = now + 1.0
                    await self._every_second()
                if now >= next_open_interest:
                    next_open_interest = now + OPEN_INTEREST_EVERY_S
                    self._open_interest()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a history read failed: try again next time
                log.warning("a timed WebSocket push failed: %s", error, exc_info=error)

    async def _every_second(self) -> None:
        gateway = self.gateway
        tickers = [one for one in self.mirror.markets if "ticker." + one.format.symbol in self.public]
        if gateway is None or (not tickers and not self._klines):
            self._traded.clear()
            return
        await gateway.history_caught_up(self.mirror.seq)
        now_ns = self._now_ns()
        for market in tickers:
            day = gateway.history.day(market.format.market_id, now_ns)
            self._publish("ticker." + market.format.symbol, messages.ticker(day, market.format, now_ns))
        traded = self._traded
        self._traded = {}
        now_s = now_ns // NS_PER_S
        for (market_id, interval), feed in list(self._klines.items()):
            if (
                feed.fresh
                or market_id in traded
                or (feed.open_start_s >= 0 and now_s >= feed.open_end_s + KLINE_GRACE_S)
            ):
                feed.fresh = False
                self._kline(market_id, interval, feed, now_ns)

    def _kline(self, market_id: int, interval: str, feed: _KlineFeed, now_ns: int) -> None:
        gateway = self.gateway
        assert gateway is not None
        market = self.mirror.markets[market_id].format
        now_s = now_ns // NS_PER_S
        lower = max(feed.after_s, now_s - INTERVAL_SPAN_S[interval])
        if feed.open_start_s >= 0:
            lower = feed.open_start_s
        stream = f"kline.{interval}.{market.symbol}"
        feed.open_start_s = -1
        for candle in gateway.history.candles(market_id, interval, lower, now_s + 1):
            if candle.end_s <= feed.since_s or candle.start_s < feed.after_s:
                continue
            closed = now_s >= candle.end_s + KLINE_GRACE_S
            unchanged = candle.start_s == lower and candle.trades == feed.trades_sent
            if not (unchanged and not closed):
                self._publish(stream, messages.kline(candle, market, closed, now_ns))
            if closed:
                feed.after_s, feed.trades_sent = candle.end_s, 0
            else:
                feed.open_start_s, feed.open_end_s, feed.trades_sent = candle.start_s, candle.end_s, candle.trades

    def _open_interest(self) -> None:
        now_ns = self._now_ns()
        for market in self.mirror.markets:
            stream = "openInterest." + market.format.symbol
            if market.is_perp and stream in self.public:
                self._publish(stream, messages.open_interest(market, now_ns))
