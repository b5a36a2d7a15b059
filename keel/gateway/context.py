"""The gateway's handle on a running node: catalog, submission, consistent reads, auth.

`Gateway` is what every handler reaches through `request.app.state.gateway`. Writes go
through `submit`: the commands submitted during one pass of the event loop are handed
to the sequencer together (`submit_many`), whose callbacks (on its committer thread,
once the batch holding their records is durable) resolve their asyncio futures through
one `loop.call_soon_threadsafe`; nothing is answered before that. Reads of current state
take `sequencer.read_lock` (held by the engine thread while it changes state), copy what
they need and format outside it.

Imports: keel.core, keel.node, keel.sequencer, keel.gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from keel.core.commands import Command
from keel.core.state import ExchangeState
from keel.gateway import auth
from keel.gateway.errors import ApiError
from keel.gateway.format import MarketFormat
from keel.gateway.history import History
from keel.gateway.keys import KeyStore, public_key_from_b64
from keel.gateway.ratelimit import Limit, TokenBuckets
from keel.gateway.verifier import SignatureChecks
from keel.node.node import Node
from keel.sequencer.sequencer import Outcome, Sequencer, SequencerStopped

T = TypeVar("T")

SUBMIT_TIMEOUT_S: Final = 10.0
SUBMIT_GROUP_MAX: Final = 256  # commands handed to the sequencer at once (see _Group)


@dataclass(frozen=True, slots=True)
class AssetFormat:
    asset_id: int
    symbol: str
    decimals: int


@dataclass(slots=True)
class Catalog:
    """Listed assets and markets with what formatting needs; listings never change, only grow."""

    assets: list[AssetFormat] = field(default_factory=list)
    asset_by_symbol: dict[str, AssetFormat] = field(default_factory=dict)
    markets: list[MarketFormat] = field(default_factory=list)
    market_by_symbol: dict[str, MarketFormat] = field(default_factory=dict)


def build_catalog(state: ExchangeState) -> Catalog:
    """Return the catalog of `state` (call with the read lock held, or before start)."""
    catalog = Catalog()
    for asset in state.assets:
        asset_entry = AssetFormat(asset.asset_id, asset.symbol, asset.decimals)
        catalog.assets.append(asset_entry)
        catalog.asset_by_symbol[asset.symbol] = asset_entry
    for market in state.markets:
        base = state.assets[market.base_asset_id]
        quote = state.assets[market.quote_asset_id]
        entry = MarketFormat(
            market_id=market.market_id,
            symbol=market.symbol,
            base_symbol=base.symbol,
            quote_symbol=quote.symbol,
            base_asset_id=base.asset_id,
            quote_asset_id=quote.asset_id,
            base_decimals=base.decimals,
            quote_decimals=quote.decimals,
            tick_atomic=market.tick_atomic,
            step_atomic=market.step_atomic,
            lot_atomic=market.lot_atomic,
        )
        catalog.markets.append(entry)
        catalog.market_by_symbol[market.symbol] = entry
    return catalog


KEY_LIMIT_DEFAULT: Final = Limit(rate_per_s=100.0, burst=200)
IP_LIMIT_DEFAULT: Final = Limit(rate_per_s=500.0, burst=1_000)


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits (spec section 10): per API key and per client address."""

    key: Limit = KEY_LIMIT_DEFAULT
    ip: Limit = IP_LIMIT_DEFAULT


Waiting = asyncio.Future[Outcome | SequencerStopped | None]  # None: timed out


class _Group:
    """Commands submitted during one pass of the event loop, handed to the sequencer in
    one `submit_many` and answered back to the loop in one call.

    Per command, a hand-off to the sequencer wakes its engine thread and an answer wakes
    the loop; on two cores those cross-thread wake-ups were a visible share of the loop
    thread's time under `keel bench api`. The sequencer calls back exactly once per
    command, in submission order, and applies one `submit_many` within one batch, so the
    group's outcomes arrive together after its one durable commit. Its commands were all
    submitted within one pass, so one timer times them all out (None)."""

    __slots__ = ("commands", "futures", "loop", "results", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.commands: list[Command] = []
        self.futures: list[Waiting] = []
        self.results: list[Outcome | SequencerStopped] = []
        self.timeout = loop.call_later(SUBMIT_TIMEOUT_S, self._resolve, [])

    def deliver(self, result: Outcome | SequencerStopped) -> None:
        # On the committer thread (or at once, on this one, if the sequencer has stopped).
        self.results.append(result)
        if len(self.results) == len(self.futures):
            self.loop.call_soon_threadsafe(self._resolve, self.results)

    def _resolve(self, results: list[Outcome | SequencerStopped]) -> None:
        # On the loop: with every outcome, or with none when the timer fires first.
        self.timeout.cancel()
        for index, future in enumerate(self.futures):
            if not future.done():  # the first of the outcomes and the timeout wins
                future.set_result(results[index] if results else None)


class Gateway:
    """A started node as the API sees it."""

    def __init__(
        self,
        node: Node,
        sequencer: Sequencer,
        history: History,
        keys: KeyStore,
        operator_key_b64: str,
        *,
        limits: Limits = Limits(),
        listed_ns: dict[str, int] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.node = node
        self.sequencer = sequencer
        self.state = node.engine.state
        self.history = history
        self.keys = keys
        self.operator_key_b64 = operator_key_b64
        self.operator_verifier = public_key_from_b64(operator_key_b64)
        self.clock_ns = clock_ns
        self.started_ms = clock_ns() // 1_000_000
        self.replays = auth.ReplayCache(self.started_ms)
        self.key_buckets = TokenBuckets(limits.key, "API key")
        self.ip_buckets = TokenBuckets(limits.ip, "address")
        self.listed_ns = listed_ns or {}
        self.acknowledged_seq = 0  # the highest seq answered to any client
        self._group: _Group | None = None  # commands waiting for the end of this loop pass
        # Verified in a child process once `keel serve` starts it (verifier.py); until then here.
        self.signatures = SignatureChecks()
        with sequencer.read_lock:
            self.catalog = build_catalog(self.state)

    # ---- catalog ----------------------------------------------------------------------
    def _refresh_catalog(self) -> None:
        with self.sequencer.read_lock:
            self.catalog = build_catalog(self.state)

    def market(self, symbol: Any) -> MarketFormat:
        """Return the market named `symbol`; raise 400 INVALID_MARKET (ccxt BadSymbol)."""
        if not isinstance(symbol, str) or not symbol:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "symbol is required")
        found = self.catalog.market_by_symbol.get(symbol)
        if found is None and len(self.state.markets) != len(self.catalog.markets):
            self._refresh_catalog()
            found = self.catalog.market_by_symbol.get(symbol)
        if found is None:
            raise ApiError(400, "INVALID_MARKET", f"Invalid market symbol {symbol[:64]!r}")
        return found

    def markets(self) -> list[MarketFormat]:
        if len(self.state.markets) != len(self.catalog.markets):
            self._refresh_catalog()
        return self.catalog.markets

    def assets(self) -> list[AssetFormat]:
        if len(self.state.assets) != len(self.catalog.assets):
            self._refresh_catalog()
        return self.catalog.assets

    def asset(self, symbol: Any) -> AssetFormat:
        """Return the asset named `symbol`; raise 400 INVALID_ASSET."""
        if not isinstance(symbol, str) or not symbol:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "asset symbol is required")
        self.assets()
        found = self.catalog.asset_by_symbol.get(symbol)
        if found is None:
            raise ApiError(400, "INVALID_ASSET", f"Invalid asset symbol {symbol[:64]!r}")
        return found

    # ---- reads and writes -------------------------------------------------------------
    def read(self, reader: Callable[[ExchangeState], T]) -> T:
        """Run `reader` on the engine state under the read lock; it must only copy. (The
        perps readers it calls, equity_atomic and the like, may value an account's stale
        margin terms again: derived data, never state, and the lock keeps the engine out.)"""
        with self.sequencer.read_lock:
            return reader(self.state)

    async def submit(self, command: Command) -> Outcome:
        """Submit a command and return its outcome once durable.

        Raises ApiError 504 TIMEOUT (outcome unknown: the client must query) or 500
        SERVER_ERROR when the sequencer has stopped (the node must restart)."""
        loop = asyncio.get_running_loop()
        future: Waiting = loop.create_future()
        group = self._group
        if group is None:
            group = self._group = _Group(loop)
            loop.call_soon(self._hand_over, group)
        group.commands.append(command)
        group.futures.append(future)
        if len(group.commands) >= SUBMIT_GROUP_MAX:
            self._hand_over(group)
        # The future is awaited directly, its group's timer standing for the timeout, rather
        # than through wait_for(shield(...)): each of those layers costs the answer one more
        # pass of the event loop, and under load a pass serves every other ready request first.
        result = await future
        if result is None:
            raise ApiError(504, "TIMEOUT", f"no durable outcome within {SUBMIT_TIMEOUT_S:g} s; query before retrying")
        if isinstance(result, SequencerStopped):
            raise ApiError(
                500, "SERVER_ERROR", "the exchange stopped accepting commands; it must be restarted by its operator"
            )
        self.acknowledged_seq = max(self.acknowledged_seq, result.seq)
        return result

    def _hand_over(self, group: _Group) -> None:
        """Submit the group (scheduled when its first command came; at most once)."""
        if self._group is not group:
            return  # already handed over when it filled up
        self._group = None
        self.sequencer.submit_many(group.commands, group.deliver)

    async def history_caught_up(self, seq: int | None = None, timeout_s: float = 2.0) -> None:
        """Wait until the history store holds `seq` (default: everything answered so far),
        so that a client reads its own orders and fills right after placing them. History
        is projected just after the sequencer's callbacks; the wait is that short lag."""
        target = self.acknowledged_seq if seq is None else seq
        deadline = time.monotonic() + timeout_s
        while self.history.seq_last() < target and time.monotonic() < deadline and not self.history.stalled():
            await asyncio.sleep(0.001)

    def now_ms(self) -> int:
        return self.clock_ns() // 1_000_000
