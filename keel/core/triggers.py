"""Trigger orders (stop and take-profit): orders that wait for a price, then are placed.

Theory of operation. A PlaceOrder with `trigger_price_ticks` set is not placed: it is
checked (account, market, shape, trigger price, reference price) and kept as a pending
trigger (API status `TriggerPending`) under an order id of its own. Its reference price
is the market's last trade, mark or index price (`trigger_by`); it fires when that price
reaches the trigger price from the side it was on when the trigger was accepted (at or
above it if the trigger was above the reference then, at or below it otherwise).

Triggers are evaluated after every command that can move a reference price (orders,
index prices, Ticks), only in markets that can match (Open, LimitOnly), in ascending
order id, repeatedly until none fires (a triggered order that trades can move the last
price and fire another): the stated deterministic order. A firing trigger is placed as
the order it carries, with its own order id, stamped with the command that fired it;
`TriggerFired` precedes the order's events, or `TriggerFailed` (with the rejection)
replaces them. Cancelling by order id, client id or cancel-all removes a pending
trigger like an open order. A trigger holds nothing: the order it places is checked
(funds, margin, reduce-only) when it fires.

Imports: commands, errors, events, limits, markets, matching, state.
"""

from __future__ import annotations

import enum

import msgspec

from keel.core import limits
from keel.core.commands import NO_CLIENT_ID, NO_ORDER_ID, CancelAllOrders, CancelOrder, PlaceOrder
from keel.core.errors import RejectCode, Rejected
from keel.core.events import Event, OrderCancelled, TriggerAccepted, TriggerFailed, TriggerFired
from keel.core.markets import Market, MarketState
from keel.core.matching import (
    cancel_all_orders,
    cancel_order,
    check_order_shape,
    market_for,
    place_order,
    user_account_for,
)
from keel.core.orders import EndReason
from keel.core.state import ExchangeState
from keel.core.trigger_records import Trigger

_USER_CANCEL = int(EndReason.USER_CANCEL)
_MATCHING = (int(MarketState.OPEN), int(MarketState.LIMIT_ONLY))
_FIRES_MAX = 1_000  # per command: a cascade stops there and resumes at the next command


@enum.unique
class TriggerBy(enum.IntEnum):
    LAST_PRICE = 0
    MARK_PRICE = 1
    INDEX_PRICE = 2


def reference_ticks(market: Market, trigger_by: int) -> int:
    if trigger_by == TriggerBy.LAST_PRICE:
        return market.last_price_ticks
    if trigger_by == TriggerBy.MARK_PRICE:
        return market.mark_ticks
    return market.index_ticks


def accept_trigger(state: ExchangeState, command: PlaceOrder, events: list[Event]) -> None:
    """Keep a trigger order (module docstring). Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_MARKET,
    ORDER_MALFORMED, PRICE_NOT_POSITIVE, NO_MARK_PRICE, OPEN_ORDER_LIMIT, DUPLICATE_CLIENT_ID, ...shape codes)."""
    account = user_account_for(state, command.account_id)
    market = market_for(state, command.market_id)
    if command.trigger_by not in (0, 1, 2):
        raise Rejected(RejectCode.ORDER_MALFORMED, "trigger by must be LastPrice, MarkPrice or IndexPrice")
    if not 0 < command.trigger_price_ticks <= limits.price_ticks_max:
        raise Rejected(RejectCode.PRICE_NOT_POSITIVE, "a trigger price must be positive")
    check_order_shape(command)
    reference = reference_ticks(market, command.trigger_by)
    if reference == 0:
        what = TriggerBy(command.trigger_by).name.lower().replace("_", " ")
        raise Rejected(RejectCode.NO_MARK_PRICE, f"{market.symbol} has no {what} to trigger on yet")
    mine = sum(1 for trigger in state.triggers.values() if trigger.account_id == account.account_id)
    if mine >= limits.triggers_per_account_max:
        raise Rejected(
            RejectCode.OPEN_ORDER_LIMIT, f"an account may have at most {limits.triggers_per_account_max} triggers"
        )
    client_id = command.client_id
    if client_id != NO_CLIENT_ID and (
        client_id in account.client_orders
        or any(t.account_id == account.account_id and t.order.client_id == client_id for t in state.triggers.values())
    ):
        raise Rejected(RejectCode.DUPLICATE_CLIENT_ID, f"an open order already has client id {client_id}")
    order_id = state.order_id_next
    state.order_id_next = order_id + 1
    carried = msgspec.structs.replace(command, trigger_price_ticks=0, trigger_by=0, seq=0, timestamp_ns=0)
    state.triggers[order_id] = Trigger(
        order_id,
        account.account_id,
        market.market_id,
        command.trigger_price_ticks,
        command.trigger_by,
        command.trigger_price_ticks >= reference,
        carried,
    )
    events.append(
        TriggerAccepted(order_id, account.account_id, market.market_id, command.trigger_price_ticks, command.trigger_by)
    )


def cancel_trigger(
    state: ExchangeState, account_id: int, market_id: int, order_id: int, client_id: int
) -> Trigger | None:
    """Find the account's pending trigger in the market by order id or client id."""
    for trigger in state.triggers.values():
        if (
            trigger.account_id == account_id
            and trigger.market_id == market_id
            and (trigger.order_id == order_id if client_id == NO_CLIENT_ID else trigger.order.client_id == client_id)
        ):
            return trigger
    return None


def remove_trigger(state: ExchangeState, trigger: Trigger, events: list[Event], reason: int = _USER_CANCEL) -> None:
    del state.triggers[trigger.order_id]
    quantity = trigger.order.quantity_steps
    events.append(OrderCancelled(trigger.order_id, trigger.account_id, trigger.market_id, reason, quantity))


def fire_triggers(state: ExchangeState, seq: int, timestamp_ns: int, events: list[Event]) -> None:
    """Place every trigger whose price was reached, in order id order, until none is left."""
    markets = state.markets
    for _ in range(_FIRES_MAX):
        due = None
        for trigger in state.triggers.values():  # ascending order id: insertion order
            market = markets[trigger.market_id]
            if market.state not in _MATCHING:
                continue
            reference = reference_ticks(market, trigger.trigger_by)
            if reference and (
                reference >= trigger.trigger_price_ticks
                if trigger.fires_upward
                else reference <= trigger.trigger_price_ticks
            ):
                due = trigger
                break
        if due is None:
            return
        del state.triggers[due.order_id]
        order = msgspec.structs.replace(due.order, seq=seq, timestamp_ns=timestamp_ns)
        start = len(events)
        events.append(
            TriggerFired(
                due.order_id, due.account_id, due.market_id, reference_ticks(markets[due.market_id], due.trigger_by)
            )
        )
        try:
            place_order(state, order, events, order_id=due.order_id)
        except Rejected as rejected:
            del events[start + 1 :]
            events[start] = TriggerFailed(
                due.order_id, due.account_id, due.market_id, int(rejected.code), rejected.message
            )


def place_or_trigger(state: ExchangeState, command: PlaceOrder, events: list[Event]) -> None:
    """The PlaceOrder handler: a trigger order waits, any other order is placed."""
    if command.trigger_price_ticks:
        accept_trigger(state, command, events)
    else:
        place_order(state, command, events)


def cancel_order_or_trigger(state: ExchangeState, command: CancelOrder, events: list[Event]) -> None:
    """The CancelOrder handler: a pending trigger is cancelled like an open order."""
    trigger = None
    if state.triggers and 0 <= command.market_id < len(state.markets):
        trigger = cancel_trigger(state, command.account_id, command.market_id, command.order_id, command.client_id)
    if trigger is None or (command.order_id == NO_ORDER_ID) == (command.client_id == NO_CLIENT_ID):
        cancel_order(state, command, events)
        return
    if state.markets[command.market_id].state == MarketState.CLOSED:
        raise Rejected(RejectCode.MARKET_NOT_OPEN, f"{state.markets[command.market_id].symbol} is closed: cancels wait")
    remove_trigger(state, trigger, events)


def cancel_all_orders_and_triggers(state: ExchangeState, command: CancelAllOrders, events: list[Event]) -> None:
    """The CancelAllOrders handler: open orders, then pending triggers, of the market."""
    cancel_all_orders(state, command, events)
    for trigger in [
        t for t in state.triggers.values() if t.account_id == command.account_id and t.market_id == command.market_id
    ]:
        remove_trigger(state, trigger, events)
