"""What happened to orders, folded from engine events: the records responses are built from.

`OrderRecord` is an order as the API shows it: its terms, how much executed (quantity
in steps, value in *lots*: one lot is one tick times one step, so the quote value is
lots x the market's lot_atomic, exact) and its status. `fold_events` turns one command's
events into updated records for the execute responses; the history views (keel/views)
apply the same status rules, and the gateway tests check that a response and the later
history query agree.

Status rules (spec 8.3): an order is New until it fills; PartiallyFilled, then Filled
when its whole quantity traded; Cancelled by its owner or self-trade prevention as a
resting order; Expired when its remainder ended by rule (IOC, FOK, market remainder,
self-trade prevention of a taker). A market order never rests: one that traded and
stopped because its quote budget was spent, or whose last fill used up its quantity, is
Filled.

Imports: keel.core.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from keel.core.events import (
    CommandRejected,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    TradeExecuted,
)
from keel.core.orders import EndReason, OrderStatus, OrderType, Side, TimeInForce

NONE = -1


class OrderRecord(msgspec.Struct, gc=False):
    """One order as the API reports it. Mutable: folding events updates it."""

    order_id: int
    account_id: int
    market_id: int
    side: int
    order_type: int
    time_in_force: int
    price_ticks: int  # 0: market order
    quantity_steps: int  # 0: market order by quote quantity
    quote_quantity_atomic: int
    client_id: int  # -1: none
    post_only: bool
    self_trade_prevention: int
    created_ns: int
    filled_steps: int = 0
    executed_lots: int = 0
    status: int = int(OrderStatus.NEW)
    end_reason: int = NONE
    updated_ns: int = 0


class FillRecord(msgspec.Struct, frozen=True, gc=False):
    """One side of one trade, as the account that traded sees it."""

    trade_id: int
    order_id: int
    client_id: int
    account_id: int
    market_id: int
    side: int
    price_ticks: int
    quantity_steps: int
    fee_atomic: int  # in the quote asset; negative: a rebate
    is_maker: bool
    timestamp_ns: int


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """A public trade print."""

    trade_id: int
    market_id: int
    price_ticks: int
    quantity_steps: int
    taker_side: int
    taker_order_id: int
    maker_order_id: int
    timestamp_ns: int


_MARKET = int(OrderType.MARKET)
_GTC = int(TimeInForce.GTC)
_FILLED = int(OrderStatus.FILLED)
_PARTIAL = int(OrderStatus.PARTIALLY_FILLED)
_CANCELLED = int(OrderStatus.CANCELLED)
_EXPIRED = int(OrderStatus.EXPIRED)
_NEW = int(OrderStatus.NEW)
_BUDGET_SPENT = int(EndReason.INSUFFICIENT_FUNDS)
TERMINAL = frozenset({_FILLED, _CANCELLED, _EXPIRED})


def record_from_accepted(event: OrderAccepted, timestamp_ns: int) -> OrderRecord:
    return OrderRecord(
        order_id=event.order_id,
        account_id=event.account_id,
        market_id=event.market_id,
        side=event.side,
        order_type=event.order_type,
        time_in_force=event.time_in_force,
        price_ticks=event.price_ticks if event.order_type != _MARKET else 0,
        quantity_steps=event.quantity_steps,
        quote_quantity_atomic=event.quote_quantity_atomic,
        client_id=event.client_id,
        post_only=event.post_only,
        self_trade_prevention=event.self_trade_prevention,
        created_ns=timestamp_ns,
        updated_ns=timestamp_ns,
    )


def fold_events(
    events: Iterable[Event],
    timestamp_ns: int,
    find: dict[int, OrderRecord],
    accepted: list[OrderRecord] | None = None,
) -> list[OrderRecord]:
    """Apply one command's events to the records in `find` (order id -> record, updated in
    place; new orders are added); return the records touched, in first-touch order.

    Orders not in `find` that trade or end (a maker placed before the store began) are
    skipped. When given, `accepted` receives the records of the orders it accepted."""
    touched: dict[int, OrderRecord] = {}
    record: OrderRecord | None
    accepted_here: list[OrderRecord] = [] if accepted is None else accepted
    for event in events:
        if isinstance(event, OrderAccepted):
            created = record_from_accepted(event, timestamp_ns)
            find[event.order_id] = created
            touched[event.order_id] = created
            accepted_here.append(created)
        elif isinstance(event, TradeExecuted):
            for order_id in (event.taker_order_id, event.maker_order_id):
                record = find.get(order_id)
                if record is None:
                    continue
                record.filled_steps += event.quantity_steps
                record.executed_lots += event.price_ticks * event.quantity_steps
                record.updated_ns = timestamp_ns
                if record.quantity_steps and record.filled_steps >= record.quantity_steps:
                    record.status = _FILLED
                else:
                    record.status = _PARTIAL
                touched[order_id] = record
        elif isinstance(event, OrderCancelled | OrderExpired):
            record = find.get(event.order_id)
            if record is None:
                continue
            record.updated_ns = timestamp_ns
            record.end_reason = event.reason
            if (
                isinstance(event, OrderExpired)
                and record.order_type == _MARKET
                and record.filled_steps
                and (event.reason == _BUDGET_SPENT)
            ):
                record.status = _FILLED
            else:
                record.status = _CANCELLED if isinstance(event, OrderCancelled) else _EXPIRED
            touched[event.order_id] = record
    for placed in accepted_here:
        # Only a GTC limit order rests; anything else that did not end by an event ended
        # by using up its quantity.
        resting = placed.order_type != _MARKET and placed.time_in_force == _GTC
        if not resting and placed.status not in TERMINAL:
            placed.status = _FILLED if placed.filled_steps else _EXPIRED
    return list(touched.values())


def split_batch(events: list[Event], items: int) -> list[list[Event] | CommandRejected]:
    """Split a PlaceOrders outcome into each item's events, or its rejection (spec 8.6).

    Items are placed in order: each one's events begin with its CommandRejected (carrying
    its index) or its OrderAccepted, and run until the next item's."""
    results: list[list[Event] | CommandRejected] = []
    current: list[Event] | None = None
    for event in events:
        if isinstance(event, CommandRejected):
            assert event.item == len(results), f"batch rejection for item {event.item} out of order"
            results.append(event)
            current = None
        elif isinstance(event, OrderAccepted):
            current = [event]
            results.append(current)
        else:
            assert current is not None, "a batch event before any order was accepted"
            current.append(event)
    assert len(results) == items, f"{len(results)} outcomes for {items} batch items"
    return results


def is_open(record: OrderRecord) -> bool:
    return record.status not in TERMINAL


SIDES = {int(Side.BUY): "Bid", int(Side.SELL): "Ask"}
