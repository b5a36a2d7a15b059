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
Filled. A trigger order is TriggerPending until its price is reached; then it is placed
(New, and on as above) or refused (TriggerFailed); cancelled while pending, Cancelled.

Events carry neither an order's reduce-only flag nor a trigger order's terms: they come
from the command's own orders, which `fold_events` is given in order (each OrderAccepted,
TriggerAccepted or batch-item rejection takes the next one); an order the engine places
after a LiquidationStarted is a liquidation's reduce-only closing order. The exception is
a take-profit or stop-loss created by its parent's first fill (TriggerAccepted with a
`parent_order_id`): no command carries it, so its event carries its terms
(`record_of_child`). An order's own attached take-profit and stop-loss are copied from
the command onto its record, for the order shapes (history's records take them from
the views, which keep them after the first fill; the engine does not).

Imports: keel.core, keel.views (the trigger statuses).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

from keel.core.commands import PlaceOrder
from keel.core.events import (
    CommandRejected,
    Event,
    LiquidationStarted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    TradeExecuted,
    TriggerAccepted,
    TriggerFailed,
    TriggerFired,
)
from keel.core.orders import EndReason, OrderStatus, OrderType, Side, TimeInForce
from keel.views import TRIGGER_FAILED, TRIGGER_PENDING

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
    status: int = int(OrderStatus.NEW)  # or keel.views' TRIGGER_PENDING, TRIGGER_FAILED
    end_reason: int = NONE
    updated_ns: int = 0
    reduce_only: bool = False
    trigger_price_ticks: int = 0  # 0: not a trigger order
    trigger_by: int = NONE  # keel.core.triggers.TriggerBy of a trigger order
    triggered_ns: int = 0  # when the trigger fired or failed; 0 before
    # The take-profit and stop-loss the order carries (PlaceOrder's fields; trigger price 0:
    # none, and then the leg's other two mean nothing: history's records have trigger-by
    # -1), and for a take-profit or stop-loss its parent order (0: none; the API's
    # relatedOrderId).
    take_profit_trigger_ticks: int = 0
    take_profit_limit_ticks: int = 0
    take_profit_trigger_by: int = 0
    stop_loss_trigger_ticks: int = 0
    stop_loss_limit_ticks: int = 0
    stop_loss_trigger_by: int = 0
    parent_order_id: int = 0


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
TERMINAL = frozenset({_FILLED, _CANCELLED, _EXPIRED, TRIGGER_FAILED})


def record_from_accepted(event: OrderAccepted, timestamp_ns: int, reduce_only: bool = False) -> OrderRecord:
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
        reduce_only=reduce_only,
    )


class AttachmentTerms(Protocol):
    """Where an order's take-profit and stop-loss can be read: its command (PlaceOrder),
    the engine's open order until its first fill (Attachment), or its history row."""

    @property
    def take_profit_trigger_ticks(self) -> int: ...
    @property
    def take_profit_limit_ticks(self) -> int: ...
    @property
    def take_profit_trigger_by(self) -> int: ...
    @property
    def stop_loss_trigger_ticks(self) -> int: ...
    @property
    def stop_loss_limit_ticks(self) -> int: ...
    @property
    def stop_loss_trigger_by(self) -> int: ...


def with_attachment(record: OrderRecord, order: AttachmentTerms | None) -> OrderRecord:
    """Copy the take-profit and stop-loss an order carries (AttachmentTerms) onto its record."""
    if order is not None and (order.take_profit_trigger_ticks or order.stop_loss_trigger_ticks):
        record.take_profit_trigger_ticks = order.take_profit_trigger_ticks
        record.take_profit_limit_ticks = order.take_profit_limit_ticks
        record.take_profit_trigger_by = order.take_profit_trigger_by
        record.stop_loss_trigger_ticks = order.stop_loss_trigger_ticks
        record.stop_loss_limit_ticks = order.stop_loss_limit_ticks
        record.stop_loss_trigger_by = order.stop_loss_trigger_by
    return record


class HistoryTerms(AttachmentTerms, Protocol):
    """An order's history row (the views' record, or the gateway's copy of it) as
    complete_from_history reads it."""

    @property
    def parent_order_id(self) -> int: ...
    @property
    def trigger_price_ticks(self) -> int: ...
    @property
    def trigger_by(self) -> int: ...
    @property
    def triggered_ns(self) -> int: ...


def must_recall(is_perp: bool, filled_steps: int, reduce_only: bool) -> bool:
    """Whether an open order's record needs its history row (complete_from_history): a
    perpetual order that has filled (the engine forgot its take-profit and stop-loss at the
    first fill) or is reduce-only (a take-profit or stop-loss that fired and rests is one;
    the engine's order names neither its parent nor its trigger)."""
    return is_perp and bool(filled_steps or reduce_only)


def complete_from_history(record: OrderRecord, row: HistoryTerms) -> None:
    """Copy onto an open order's record what its history row keeps and the engine's order
    does not: the take-profit and stop-loss it was placed with, its parent, and for an
    order a trigger placed, that trigger's price, trigger-by and firing time."""
    if not (record.take_profit_trigger_ticks or record.stop_loss_trigger_ticks):
        with_attachment(record, row)
    record.parent_order_id = record.parent_order_id or row.parent_order_id
    if row.trigger_price_ticks and not record.trigger_price_ticks:
        record.trigger_price_ticks = row.trigger_price_ticks
        record.trigger_by = row.trigger_by
        record.triggered_ns = row.triggered_ns


def record_of_child(event: TriggerAccepted, created_ns: int) -> OrderRecord:
    """A pending take-profit or stop-loss its parent's first fill created, from its event."""
    assert event.parent_order_id > 0
    return OrderRecord(
        order_id=event.order_id,
        account_id=event.account_id,
        market_id=event.market_id,
        side=event.side,
        order_type=event.order_type,
        time_in_force=int(TimeInForce.GTC),
        price_ticks=event.price_ticks,
        quantity_steps=event.quantity_steps,
        quote_quantity_atomic=0,
        client_id=NONE,
        post_only=False,
        self_trade_prevention=event.self_trade_prevention,
        created_ns=created_ns,
        status=TRIGGER_PENDING,
        updated_ns=created_ns,
        reduce_only=True,
        trigger_price_ticks=event.trigger_price_ticks,
        trigger_by=event.trigger_by,
        parent_order_id=event.parent_order_id,
    )


def record_of_trigger(
    order_id: int,
    account_id: int,
    market_id: int,
    order: PlaceOrder,
    trigger_price_ticks: int,
    trigger_by: int,
    created_ns: int,
    parent_order_id: int = 0,
) -> OrderRecord:
    """A pending trigger order: the terms of the order it will place, status TriggerPending
    (`parent_order_id`: the order whose fill created it as a take-profit or stop-loss)."""
    return OrderRecord(
        order_id=order_id,
        account_id=account_id,
        market_id=market_id,
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        price_ticks=order.price_ticks if order.order_type != _MARKET else 0,
        quantity_steps=order.quantity_steps,
        quote_quantity_atomic=order.quote_quantity_atomic,
        client_id=order.client_id,
        post_only=order.post_only,
        self_trade_prevention=order.self_trade_prevention,
        created_ns=created_ns,
        status=TRIGGER_PENDING,
        updated_ns=created_ns,
        reduce_only=order.reduce_only,
        trigger_price_ticks=trigger_price_ticks,
        trigger_by=int(trigger_by),
        parent_order_id=parent_order_id,
    )


def fold_events(
    events: Iterable[Event],
    timestamp_ns: int,
    find: dict[int, OrderRecord],
    accepted: list[OrderRecord] | None = None,
    orders: Sequence[PlaceOrder] | None = None,
) -> list[OrderRecord]:
    """Apply one command's events to the records in `find` (order id -> record, updated in
    place; new orders are added); return the records touched, in first-touch order.

    Orders not in `find` that trade or end (a maker placed before the store began) are
    skipped. `orders` are the command's own orders (a PlaceOrder's one, a batch's items):
    when given, `accepted` receives the record of each of them that was accepted (an order
    or a pending trigger), in order, and not the orders the engine placed itself (fired
    triggers, liquidations); without them, every order accepted (module docstring)."""
    touched: dict[int, OrderRecord] = {}
    record: OrderRecord | None
    accepted_here: list[OrderRecord] = [] if accepted is None else accepted
    placed_here: list[OrderRecord] = []  # every order placed on the book by this command
    next_item = 0
    liquidating = False
    fired = NONE  # the trigger whose OrderAccepted comes next
    for event in events:
        if isinstance(event, OrderAccepted):
            if event.order_id == fired:
                fired = NONE
                record = find.get(event.order_id)
                if record is None:  # a trigger accepted by an earlier command
                    record = find[event.order_id] = record_from_accepted(event, timestamp_ns)
                record.status = _NEW
                record.triggered_ns = record.updated_ns = timestamp_ns
                touched[event.order_id] = record
                placed_here.append(record)
                continue
            own = orders is None or (not liquidating and next_item < len(orders))
            item = orders[next_item] if orders is not None and own else None
            if orders is not None and own:
                next_item += 1
            created = record_from_accepted(event, timestamp_ns, liquidating or (item is not None and item.reduce_only))
            with_attachment(created, item)
            find[event.order_id] = created
            touched[event.order_id] = created
            placed_here.append(created)
            if own:
                accepted_here.append(created)
        elif isinstance(event, TriggerAccepted):
            if event.parent_order_id:  # a take-profit or stop-loss a fill created
                created = find[event.order_id] = record_of_child(event, timestamp_ns)
                touched[event.order_id] = created
                continue
            if orders is None:
                continue  # its terms are the command's, which the caller did not give
            assert next_item < len(orders), "a trigger accepted from no order"
            created = record_of_trigger(
                event.order_id,
                event.account_id,
                event.market_id,
                orders[next_item],
                event.trigger_price_ticks,
                event.trigger_by,
                timestamp_ns,
            )
            next_item += 1
            find[event.order_id] = created
            touched[event.order_id] = created
            accepted_here.append(created)
        elif isinstance(event, TriggerFired):
            fired = event.order_id
        elif isinstance(event, TriggerFailed):
            record = find.get(event.order_id)
            if record is not None:
                record.status = TRIGGER_FAILED
                record.triggered_ns = record.updated_ns = timestamp_ns
                touched[event.order_id] = record
        elif isinstance(event, CommandRejected):
            if event.item >= 0:
                next_item = event.item + 1
        elif isinstance(event, LiquidationStarted):
            liquidating = True
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
    for placed in placed_here:
        # Only a GTC limit order rests; anything else placed here that did not end by an
        # event ended by using up its quantity.
        resting = placed.order_type != _MARKET and placed.time_in_force == _GTC
        if not resting and placed.status not in TERMINAL:
            placed.status = _FILLED if placed.filled_steps else _EXPIRED
    return list(touched.values())


def batch_results(
    events: list[Event], timestamp_ns: int, orders: Sequence[PlaceOrder]
) -> list[OrderRecord | CommandRejected]:
    """Return each PlaceOrders item's record as the command left it, or its rejection (spec 8.6).

    The whole command is folded at once, so an item's record includes what later items,
    fired triggers and liquidations did to it; items are accepted in order."""
    accepted: list[OrderRecord] = []
    fold_events(events, timestamp_ns, {}, accepted, orders)
    rejected = {event.item: event for event in events if isinstance(event, CommandRejected) and event.item >= 0}
    records = iter(accepted)
    results: list[OrderRecord | CommandRejected] = []
    for index in range(len(orders)):
        refusal = rejected.get(index)
        results.append(refusal if refusal is not None else next(records))
    assert next(records, None) is None, "more batch orders accepted than items"
    return results


def is_open(record: OrderRecord) -> bool:
    return record.status not in TERMINAL


SIDES = {int(Side.BUY): "Bid", int(Side.SELL): "Ask"}
