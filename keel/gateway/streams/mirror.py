"""The streams' own copy of what they publish, folded from durable events.

Theory of operation. The WebSocket streams never read the engine while they run: the
engine may be up to one batch ahead of what is durable, and a stream must only say what
the log holds. So `Mirror` is seeded once from the engine state (before the sequencer
starts, or under its read lock) and from then on folds every durable command the
sequencer publishes, in seq order, into:

- per market, the book as price levels (`MarketMirror.sides`: price ticks -> open steps)
  and the market's **update id**: a counter that goes up by exactly one for every command
  that changed the market's book (some level's open quantity differs after the command
  from before it). It starts at the log seq the mirror was seeded at, so it never goes
  backwards across a restart (each change is a distinct command, so the id is at most
  the seq of its last change). `update_id_at(seq)` gives the id as of any recent seq,
  which is how the REST depth endpoint's `lastUpdateId` matches the stream's `U`/`u`;
- every open order (`LiveOrder`: its terms, what it executed, reduce-only, origin);
  events name orders by id only, so fills and cancels are described from here;
- every pending trigger order (`Mirror.triggers`), with the terms of the order it will
  place, taken from the command that placed it (TriggerAccepted carries only the trigger);
- every open perpetual position (size, entry cost, realized PnL since opened), and per
  perpetual its mark, index and open interest.

How an order reaches the book: the engine emits no event for "rests". An accepted order
is *pending* until the next order is accepted in the same command (a batch) or the
command ends; then, if it is a GTC limit order with quantity left and no event ended it,
its remainder rests at its price (matching.py: only a GTC limit remainder rests, anything
else left over ends with OrderExpired). A trade takes its quantity from the maker's
level; OrderCancelled and OrderExpired take the cancelled steps from a resting order's
level. A test drives scripted and random commands and checks that the mirror's book
equals the engine's after each one.

Status rules are those of keel/gateway/orderbook.py (and of the history views): a market
order whose budget ran out after trading is Filled, and an order that could not rest
and was not ended by an event is Filled when it traded (otherwise Expired).

Trigger orders on the order stream (spec 11.3): accepted, `orderAccepted` with status
TriggerPending and `P`/`B`/`Y`; when it fires, `triggerPlaced` (status New) stands for the
placed order's `orderAccepted`, and its fills and end follow as for any order; refused
when it fires, `triggerFailed` (TriggerFailed); cancelled while pending, `orderCancelled`.

Attached take-profit and stop-loss on the order stream (spec 11.3 `a`, `b`, `j`, `k`,
`d`, `g`). Events do not carry them, so an order's record takes them from the command's
order it is (the PlaceOrder, or the PlaceOrders item, as the history projector's
`_attachment` does), and every frame of that order shows them for its **whole life**,
after its first fill too: the engine forgets them at that fill (they become two trigger
orders), but the history views keep them on the order's row, and the execute answer
shows them filled or not, so a stream that dropped them there would contradict both.
The children a fill creates carry none of their own; each frame of one (pending,
placed when it fires, its fills and end) has `I`, its parent's id, as its history row
keeps parent_order_id. Seeding at a start reads both from the engine where it still
holds them (an unfilled order's attachment, a pending trigger's parent) and otherwise
from the history views (`orders_to_recall`): an open order that filled before the start
has lost its attachment in the engine, and a fired take-profit or stop-loss resting on
the book its parent and its trigger (`P`, `B`); the views, caught up to the same seq
before the streams are seeded, keep them all. So a restart changes none of these keys.

While folding, `Fold` collects what subscribers are owed, in log order: public frames
(trades, mark prices, liquidations), private frames (order and position updates, by
account), and per market the depth change (first update id and the levels it touched).
Frames are only built for streams someone watches (`Interest`).

Imports: keel.core, keel.sequencer, keel.views (records), keel.gateway.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from keel.core.commands import ListMarket, PlaceOrder, PlaceOrders
from keel.core.events import (
    CommandRejected,
    LiquidationStarted,
    MarketListed,
    MarkPriceChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    PositionChanged,
    TradeExecuted,
    TriggerAccepted,
    TriggerFailed,
    TriggerFired,
)
from keel.core.markets import MarketKind
from keel.core.orders import EndReason, Order, OrderStatus, OrderType, Side, TimeInForce
from keel.core.state import ExchangeState
from keel.gateway.context import build_catalog
from keel.gateway.format import MarketFormat
from keel.gateway.orderbook import (
    OrderRecord,
    complete_from_history,
    must_recall,
    record_from_accepted,
    record_of_child,
    record_of_trigger,
    with_attachment,
)
from keel.gateway.streams import messages
from keel.sequencer.sequencer import Published
from keel.views import TRIGGER_FAILED
from keel.views import OrderRecord as ViewsOrder

_LIMIT = int(OrderType.LIMIT)
_MARKET = int(OrderType.MARKET)
_GTC = int(TimeInForce.GTC)
_BUY = int(Side.BUY)
_NEW = int(OrderStatus.NEW)
_PARTIAL = int(OrderStatus.PARTIALLY_FILLED)
_FILLED = int(OrderStatus.FILLED)
_CANCELLED = int(OrderStatus.CANCELLED)
_EXPIRED = int(OrderStatus.EXPIRED)
_TERMINAL: Final = (_FILLED, _CANCELLED, _EXPIRED)
_BUDGET_SPENT = int(EndReason.INSUFFICIENT_FUNDS)
_PERP = int(MarketKind.PERP)

# How many book changes per market `update_id_at` remembers: a REST depth read waits at
# most a few milliseconds for the streams to reach its seq, far fewer changes than this.
CHANGES_KEPT: Final = 8_192

ORIGIN_USER: Final = "USER"
ORIGIN_LIQUIDATION: Final = "LIQUIDATION_AUTOCLOSE"


class LiveOrder:
    """An order the streams know: open, or accepted by the command being folded."""

    __slots__ = ("origin", "record", "reduce_only", "resting")

    def __init__(self, record: OrderRecord, reduce_only: bool, origin: str, resting: bool) -> None:
        self.record = record
        self.reduce_only = reduce_only
        self.origin = origin
        self.resting = resting

    def remaining_steps(self) -> int:
        return self.record.quantity_steps - self.record.filled_steps


class PositionMirror:
    """An account's open perpetual position: signed size (steps), signed entry cost (quote
    atomic units), and the PnL realized since it was opened."""

    __slots__ = ("cost_atomic", "realized_atomic", "size_steps")

    def __init__(self, size_steps: int, cost_atomic: int, realized_atomic: int) -> None:
        self.size_steps = size_steps
        self.cost_atomic = cost_atomic
        self.realized_atomic = realized_atomic


class MarketMirror:
    """One market as the streams see it: its book by level, its update id, perp prices."""

    __slots__ = (
        "changes",
        "floor",
        "format",
        "funding_cap_bps",
        "funding_interval_ns",
        "imf",
        "index_ticks",
        "is_perp",
        "mark_ticks",
        "mmf",
        "open_interest_steps",
        "sides",
        "update_id",
    )

    def __init__(self, market_format: MarketFormat, update_id: int, seq: int) -> None:
        self.format = market_format
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})  # Side.BUY, Side.SELL: price -> steps
        self.update_id = update_id
        # (seq, update id) of recent changes, ascending; `floor` is the last one forgotten
        # (or where the mirror was seeded): the id of every seq before the first kept change.
        self.changes: list[tuple[int, int]] = []
        self.floor = (seq, update_id)
        self.is_perp = False
        self.mark_ticks = 0
        self.index_ticks = 0
        self.funding_interval_ns = 0
        self.funding_cap_bps = 0
        self.open_interest_steps = 0
        self.imf = (0, 0)  # (base_e9, factor_e9)
        self.mmf = (0, 0)

    def record_change(self, seq: int) -> None:
        self.update_id += 1
        self.changes.append((seq, self.update_id))
        if len(self.changes) > 2 * CHANGES_KEPT:
            self.floor = self.changes[CHANGES_KEPT - 1]
            del self.changes[:CHANGES_KEPT]

    def update_id_at(self, seq: int) -> int:
        """Return the update id as of `seq` (everything up to `seq` applied); the mirror
        must have folded `seq`. A seq older than the remembered changes gets the oldest
        id known, the best there is."""
        index = bisect.bisect_right(self.changes, (seq, 1 << 62))
        if index == 0:
            return self.floor[1]
        return self.changes[index - 1][1]

    def best(self, side: int) -> tuple[int, int] | None:
        """Return the best (price, steps) of a side, or None when it is empty."""
        levels = self.sides[side]
        if not levels:
            return None
        price = max(levels) if side == _BUY else min(levels)
        return price, levels[price]


class Interest(Protocol):
    """Who listens: frames are only built for watched streams."""

    def watches(self, stream: str) -> bool: ...

    def watches_account(self, account_id: int, kind: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Private:
    """Where a private frame goes: an account's `account.<kind>` and `account.<kind>.<symbol>`."""

    account_id: int
    kind: str  # "orderUpdate" or "positionUpdate"
    symbol: str


@dataclass(slots=True)
class DepthChange:
    """A market's book changes in one fold: update ids first..last, the levels touched."""

    first_id: int
    levels: dict[tuple[int, int], None] = field(default_factory=dict)  # (side, price), insertion-ordered


@dataclass(slots=True)
class Fold:
    """What a group of durable commands owes subscribers, in log order."""

    frames: list[tuple[str | Private, dict[str, Any]]] = field(default_factory=list)
    depth: dict[int, DepthChange] = field(default_factory=dict)
    traded: dict[int, None] = field(default_factory=dict)  # markets with trades
    seq_last: int = 0


class _Everyone:
    def watches(self, stream: str) -> bool:
        return True

    def watches_account(self, account_id: int, kind: str) -> bool:
        return True


EVERYONE: Final = _Everyone()


def orders_to_recall(state: ExchangeState) -> list[int]:
    """Return the open orders whose take-profit and stop-loss, parent or trigger only the
    history views still know (module docstring; orderbook.must_recall)."""
    markets = state.markets
    return [
        order_id
        for order_id, order in state.orders.items()
        if must_recall(markets[order.market_id].kind == _PERP, order.filled_steps, order.reduce_only)
    ]


def _live_of_open(order: Order, lot_atomic: int) -> LiveOrder:
    record = OrderRecord(
        order_id=order.order_id,
        account_id=order.account_id,
        market_id=order.market_id,
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        price_ticks=order.price_ticks,
        quantity_steps=order.quantity_steps,
        quote_quantity_atomic=0,
        client_id=order.client_id,
        post_only=order.post_only,
        self_trade_prevention=order.self_trade_prevention,
        created_ns=order.created_ns,
        filled_steps=order.filled_steps,
        executed_lots=(order.notional_taker_atomic + order.notional_maker_atomic) // lot_atomic,
        status=_PARTIAL if order.filled_steps else _NEW,
    )
    with_attachment(record, order.attached)  # the engine keeps it until the first fill
    return LiveOrder(record, order.reduce_only, ORIGIN_USER, resting=True)


class _Command:
    """Bookkeeping while one command's events are folded."""

    __slots__ = (
        "command",
        "fired",
        "last_draft",
        "liquidating",
        "next_item",
        "pending",
        "placed",
        "seq",
        "timestamp_ns",
        "touched",
        "user_orders",
    )

    def __init__(self, published: Published) -> None:
        self.command = published.command
        self.seq = published.seq
        self.timestamp_ns = published.timestamp_ns
        self.touched: dict[tuple[int, int, int], int] = {}  # (market, side, price) -> steps before the command
        self.pending: LiveOrder | None = None  # accepted last; rests or ends when the next one comes
        self.placed: list[LiveOrder] = []
        self.last_draft: dict[int, dict[str, Any]] = {}  # order id -> its last order-update frame
        self.next_item = 0  # PlaceOrders: the batch item the next OrderAccepted belongs to
        command = self.command
        # Orders the command itself places; any order accepted after them (or after a
        # LiquidationStarted) was placed by the engine: a liquidation's closing order.
        self.user_orders = (
            1 if isinstance(command, PlaceOrder) else len(command.orders) if isinstance(command, PlaceOrders) else 0
        )
        self.liquidating = False
        self.fired = -1  # the trigger whose OrderAccepted comes next

    def next_order(self) -> PlaceOrder | None:
        """Return the command's next own order (None: the engine placed this one)."""
        command = self.command
        if self.liquidating or self.next_item >= self.user_orders:
            return None
        item = command if isinstance(command, PlaceOrder) else command.orders[self.next_item]  # type: ignore[union-attr]
        self.next_item += 1
        return item


class Mirror:
    """Books, open orders, positions and update ids, folded from durable commands."""

    def __init__(self, seq: int) -> None:
        self.seq = seq  # the last command folded
        self.timestamp_ns = 0  # its log timestamp
        self.markets: list[MarketMirror] = []
        self.orders: dict[int, LiveOrder] = {}
        self.triggers: dict[int, LiveOrder] = {}  # pending trigger orders by id
        self.positions: dict[tuple[int, int], PositionMirror] = {}  # (account, market)
        self.format_of: Callable[[int], MarketFormat] | None = None  # for markets listed later

    # ---- seeding ------------------------------------------------------------------------
    @classmethod
    def seeded(cls, state: ExchangeState, recalled: Mapping[int, ViewsOrder] | None = None) -> Mirror:
        """Return a mirror of `state` (call before the sequencer starts or under its read lock);
        `recalled` are the history rows of `orders_to_recall(state)`, by order id, from views
        at the state's seq (None: none, and those orders show what the engine still holds)."""
        mirror = cls(state.seq_last)
        mirror.timestamp_ns = state.timestamp_ns_last
        catalog = build_catalog(state)
        for market, market_format in zip(state.markets, catalog.markets, strict=True):
            one = MarketMirror(market_format, state.seq_last, state.seq_last)
            book = state.books[market.market_id]
            one.sides[_BUY].update((price, level.open_steps) for price, level in book.bids.items())
            one.sides[1].update((price, level.open_steps) for price, level in book.asks.items())
            if market.kind == _PERP:
                one.is_perp = True
                one.mark_ticks = market.mark_ticks
                one.index_ticks = market.index_ticks
                one.funding_interval_ns = market.funding_interval_ns
                one.funding_cap_bps = market.funding_cap_bps
                one.open_interest_steps = market.open_interest_steps
                one.imf = (market.imf_base_e9, market.imf_factor_e9)
                one.mmf = (market.mmf_base_e9, market.mmf_factor_e9)
            mirror.markets.append(one)
        for order_id, order in state.orders.items():
            live = mirror.orders[order_id] = _live_of_open(order, state.markets[order.market_id].lot_atomic)
            row = recalled.get(order_id) if recalled else None
            if row is not None:
                assert row.account_id == order.account_id, f"streams: order {order_id} is another account's in history"
                complete_from_history(live.record, row)
        for order_id, trigger in state.triggers.items():
            record = record_of_trigger(
                order_id,
                trigger.account_id,
                trigger.market_id,
                trigger.order,
                trigger.trigger_price_ticks,
                trigger.trigger_by,
                0,
                trigger.parent_order_id,
            )
            mirror.triggers[order_id] = LiveOrder(record, trigger.order.reduce_only, ORIGIN_USER, resting=False)
        for market_id, positions in enumerate(state.positions_by_market):
            for account_id, position in positions.items():
                if position.size_steps:
                    mirror.positions[(account_id, market_id)] = PositionMirror(
                        position.size_steps, position.cost_atomic, position.realized_pnl_atomic
                    )
        return mirror

    def book_levels(self, market_id: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return (bids, asks) as ascending (price ticks, steps) lists."""
        sides = self.markets[market_id].sides
        return sorted(sides[_BUY].items()), sorted(sides[1].items())

    # ---- folding ------------------------------------------------------------------------
    def fold(self, group: list[Published], interest: Interest = EVERYONE) -> Fold:
        """Fold durable commands (in seq order, each after the last folded) into the mirror."""
        out = Fold()
        for published in group:
            if published.seq <= self.seq:
                continue  # folded already (the mirror was seeded after it)
            assert published.seq == self.seq + 1, f"streams: seq {published.seq} after {self.seq}"
            self._fold_command(published, interest, out)
            self.seq = published.seq
            self.timestamp_ns = published.timestamp_ns
        out.seq_last = self.seq
        return out

    def _fold_command(self, published: Published, interest: Interest, out: Fold) -> None:
        here = _Command(published)
        for event in published.events:
            if isinstance(event, OrderAccepted):
                self._settle(here, interest, out)
                self._accepted(here, event, interest, out)
            elif isinstance(event, TradeExecuted):
                self._trade(here, event, interest, out)
            elif isinstance(event, OrderCancelled | OrderExpired):
                self._ended(here, event, interest, out)
            elif isinstance(event, PositionChanged):
                self._position(here, event, interest, out)
            elif isinstance(event, MarkPriceChanged):
                self._mark(here, event, interest, out)
            elif isinstance(event, TriggerAccepted):
                self._trigger_accepted(here, event, interest, out)
            elif isinstance(event, TriggerFired):
                here.fired = event.order_id
            elif isinstance(event, TriggerFailed):
                self._trigger_failed(here, event, interest, out)
            elif isinstance(event, CommandRejected):
                if isinstance(here.command, PlaceOrders) and event.item >= 0:
                    here.next_item = event.item + 1
            elif isinstance(event, LiquidationStarted):
                here.liquidating = True
            elif isinstance(event, MarketListed):
                self._listed(here, event)
        self._settle(here, interest, out)
        for placed in here.placed:
            if placed.record.status in _TERMINAL:
                self.orders.pop(placed.record.order_id, None)
        self._close_levels(here, out)

    def _listed(self, here: _Command, event: MarketListed) -> None:
        assert event.market_id == len(self.markets)
        assert self.format_of is not None, "a market was listed before the streams were bound to the gateway"
        one = MarketMirror(self.format_of(event.market_id), here.seq, here.seq)
        command = here.command
        if isinstance(command, ListMarket) and command.kind == _PERP:
            one.is_perp = True
            one.funding_interval_ns = command.funding_interval_ns
            one.funding_cap_bps = command.funding_cap_bps
            one.imf = (command.imf_base_e9, command.imf_factor_e9)
            one.mmf = (command.mmf_base_e9, command.mmf_factor_e9)
        self.markets.append(one)

    def _touch(self, here: _Command, market_id: int, side: int, price: int, delta_steps: int) -> None:
        levels = self.markets[market_id].sides[side]
        before = levels.get(price, 0)
        key = (market_id, side, price)
        if key not in here.touched:
            here.touched[key] = before
        after = before + delta_steps
        assert after >= 0, f"streams: level {key} would hold {after} steps"
        if after:
            levels[price] = after
        else:
            levels.pop(price, None)

    def _close_levels(self, here: _Command, out: Fold) -> None:
        changed: dict[int, list[tuple[int, int]]] = {}
        for (market_id, side, price), before in here.touched.items():
            if self.markets[market_id].sides[side].get(price, 0) != before:
                changed.setdefault(market_id, []).append((side, price))
        for market_id, levels in changed.items():
            market = self.markets[market_id]
            depth = out.depth.get(market_id)
            if depth is None:
                depth = out.depth[market_id] = DepthChange(market.update_id + 1)
            market.record_change(here.seq)
            for level in levels:
                depth.levels[level] = None

    def _accepted(self, here: _Command, event: OrderAccepted, interest: Interest, out: Fold) -> None:
        kind = "orderAccepted"
        trigger = item = None
        if event.order_id == here.fired:  # a trigger places its order
            here.fired = -1
            trigger = self.triggers.pop(event.order_id)
            reduce_only, origin, kind = trigger.reduce_only, ORIGIN_USER, "triggerPlaced"
        elif here.liquidating:  # the engine closes a position: a reduce-only market order
            reduce_only, origin = True, ORIGIN_LIQUIDATION
        else:
            item = here.next_order()
            # Without an item of its own, an order was placed by the engine for the user's
            # account (nothing else does so today).
            reduce_only, origin = (item.reduce_only if item is not None else False), ORIGIN_USER
        record = record_from_accepted(event, here.timestamp_ns, reduce_only)
        if trigger is not None:
            record.trigger_price_ticks = trigger.record.trigger_price_ticks
            record.trigger_by = trigger.record.trigger_by
            record.triggered_ns = here.timestamp_ns
            record.parent_order_id = trigger.record.parent_order_id  # a take-profit or stop-loss stays linked
        else:
            with_attachment(record, item)  # kept for the order's whole life (module docstring)
        live = LiveOrder(record, reduce_only, origin, resting=False)
        self.orders[event.order_id] = live
        here.pending = live
        here.placed.append(live)
        self._order_frame(here, live, kind, interest, out)

    def _trigger_accepted(self, here: _Command, event: TriggerAccepted, interest: Interest, out: Fold) -> None:
        if event.parent_order_id:  # a take-profit or stop-loss its parent's fill created
            live = LiveOrder(record_of_child(event, here.timestamp_ns), True, ORIGIN_USER, resting=False)
            self.triggers[event.order_id] = live
            self._order_frame(here, live, "orderAccepted", interest, out)
            return
        item = here.next_order()
        assert item is not None, f"streams: trigger {event.order_id} from no order of the command"
        record = record_of_trigger(
            event.order_id,
            event.account_id,
            event.market_id,
            item,
            event.trigger_price_ticks,
            event.trigger_by,
            here.timestamp_ns,
        )
        live = LiveOrder(record, item.reduce_only, ORIGIN_USER, resting=False)
        self.triggers[event.order_id] = live
        self._order_frame(here, live, "orderAccepted", interest, out)

    def _trigger_failed(self, here: _Command, event: TriggerFailed, interest: Interest, out: Fold) -> None:
        live = self.triggers.pop(event.order_id)
        live.record.status = TRIGGER_FAILED
        live.record.triggered_ns = live.record.updated_ns = here.timestamp_ns
        self._order_frame(here, live, "triggerFailed", interest, out)

    def _settle(self, here: _Command, interest: Interest, out: Fold) -> None:
        """The pending order rests, or ends, now that its part of the command is over."""
        live = here.pending
        here.pending = None
        if live is None:
            return
        record = live.record
        if record.status in _TERMINAL:
            return
        remaining = live.remaining_steps()
        if record.order_type == _LIMIT and record.time_in_force == _GTC and remaining > 0:
            live.resting = True
            self._touch(here, record.market_id, record.side, record.price_ticks, remaining)
            return
        # It could not rest and no event ended it: it used up its quantity or budget.
        if record.filled_steps:
            record.status = _FILLED
            last = here.last_draft.get(record.order_id)  # its last fill: it is what filled it
            if last is not None:
                last["X"] = "Filled"
        else:
            record.status = _EXPIRED
            self._order_frame(here, live, "orderExpired", interest, out)

    def _trade(self, here: _Command, event: TradeExecuted, interest: Interest, out: Fold) -> None:
        market = self.markets[event.market_id]
        maker = self.orders[event.maker_order_id]
        taker = self.orders[event.taker_order_id]
        assert maker.resting, f"streams: maker {event.maker_order_id} is not resting"
        assert taker is here.pending, f"streams: taker {event.taker_order_id} is not the order being placed"
        quantity = event.quantity_steps
        self._touch(here, event.market_id, maker.record.side, event.price_ticks, -quantity)
        out.traded[event.market_id] = None
        symbol = market.format.symbol
        stream = "trade." + symbol
        if interest.watches(stream):
            out.frames.append((stream, messages.trade(event, market.format, here.timestamp_ns)))
        if taker.origin == ORIGIN_LIQUIDATION and interest.watches("liquidation"):
            out.frames.append(("liquidation", messages.liquidation(event, market.format, here.timestamp_ns)))
        for live, fee_atomic, is_maker in (
            (taker, event.fee_taker_atomic, False),
            (maker, event.fee_maker_atomic, True),
        ):
            record = live.record
            record.filled_steps += quantity
            record.executed_lots += event.price_ticks * quantity
            record.updated_ns = here.timestamp_ns
            if record.quantity_steps and record.filled_steps >= record.quantity_steps:
                record.status = _FILLED
            else:
                record.status = _PARTIAL
            if is_maker and record.status == _FILLED:
                live.resting = False
                del self.orders[record.order_id]
            fill = messages.Fill(event.trade_id, quantity, event.price_ticks, is_maker, fee_atomic)
            self._order_frame(here, live, "orderFill", interest, out, fill=fill)

    def _ended(self, here: _Command, event: OrderCancelled | OrderExpired, interest: Interest, out: Fold) -> None:
        live = self.orders.get(event.order_id)
        if live is None:
            live = self.triggers.pop(event.order_id, None)
            if live is None:  # not an order the streams knew: nothing to show
                return
            live.record.status = _CANCELLED  # a pending trigger, cancelled before it fired
            live.record.updated_ns = here.timestamp_ns
            live.record.end_reason = event.reason
            self._order_frame(here, live, "orderCancelled", interest, out)
            return
        record = live.record
        if live.resting:
            assert event.cancelled_steps == live.remaining_steps()
            self._touch(here, record.market_id, record.side, record.price_ticks, -event.cancelled_steps)
            live.resting = False
            del self.orders[record.order_id]
        if live is here.pending:
            here.pending = None
        record.updated_ns = here.timestamp_ns
        record.end_reason = event.reason
        if isinstance(event, OrderCancelled):
            record.status = _CANCELLED
            self._order_frame(here, live, "orderCancelled", interest, out)
        elif record.order_type == _MARKET and record.filled_steps and event.reason == _BUDGET_SPENT:
            record.status = _FILLED  # spent its budget: it is done, not cut short (orderbook.py)
            last = here.last_draft.get(record.order_id)
            if last is not None:
                last["X"] = "Filled"
        else:
            record.status = _EXPIRED
            self._order_frame(here, live, "orderExpired", interest, out)

    def _order_frame(
        self,
        here: _Command,
        live: LiveOrder,
        kind: str,
        interest: Interest,
        out: Fold,
        *,
        fill: messages.Fill | None = None,
    ) -> None:
        record = live.record
        if not interest.watches_account(record.account_id, "orderUpdate"):
            return
        market = self.markets[record.market_id].format
        data = messages.order_update(
            kind, record, market, here.timestamp_ns, reduce_only=live.reduce_only, origin=live.origin, fill=fill
        )
        here.last_draft[record.order_id] = data
        out.frames.append((Private(record.account_id, "orderUpdate", market.symbol), data))

    def _position(self, here: _Command, event: PositionChanged, interest: Interest, out: Fold) -> None:
        key = (event.account_id, event.market_id)
        market = self.markets[event.market_id]
        market.open_interest_steps += max(event.size_after_steps, 0) - max(event.size_before_steps, 0)
        position = self.positions.get(key)
        if event.size_before_steps == 0 or position is None:
            position = PositionMirror(0, 0, 0)
        position.size_steps = event.size_after_steps
        position.cost_atomic = event.cost_after_atomic
        position.realized_atomic += event.realized_pnl_atomic
        if event.size_after_steps:
            self.positions[key] = position
        else:
            self.positions.pop(key, None)
        if not interest.watches_account(event.account_id, "positionUpdate"):
            return
        if event.size_before_steps == 0:
            kind = "positionOpened"
        elif event.size_after_steps == 0:
            kind = "positionClosed"
        else:
            kind = "positionAdjusted"
        data = messages.position(kind, position, market, here.timestamp_ns)
        out.frames.append((Private(event.account_id, "positionUpdate", market.format.symbol), data))

    def _mark(self, here: _Command, event: MarkPriceChanged, interest: Interest, out: Fold) -> None:
        market = self.markets[event.market_id]
        market.mark_ticks = event.mark_ticks
        market.index_ticks = event.index_ticks
        stream = "markPrice." + market.format.symbol
        if interest.watches(stream):
            out.frames.append((stream, messages.mark_price(market, here.timestamp_ns)))
