"""Pending trigger orders, and creating the take-profit and stop-loss an order carries
(the rules are in triggers.py).

`create_attached` lives here rather than in triggers.py because matching.py calls it at
a fill, and triggers.py imports matching.py.

Imports: msgspec, commands, events, orders (and state for types only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from keel.core.commands import PlaceOrder
from keel.core.events import Event, TriggerAccepted
from keel.core.orders import Order, OrderType

if TYPE_CHECKING:
    from keel.core.state import ExchangeState

_LIMIT = int(OrderType.LIMIT)
_MARKET = int(OrderType.MARKET)


class Trigger(msgspec.Struct, array_like=True, gc=False):
    order_id: int
    account_id: int
    market_id: int
    trigger_price_ticks: int
    trigger_by: int  # triggers.TriggerBy
    fires_upward: bool  # fires when the reference reaches the price from below
    order: PlaceOrder  # what is placed when it fires (its own trigger fields cleared)
    parent_order_id: int = 0  # > 0: a take-profit or stop-loss created by that order's first fill
    sibling_order_id: int = 0  # > 0: cancelled (ONE_CANCELS_OTHER) when this one fires and is placed


def create_attached(state: ExchangeState, order: Order, events: list[Event]) -> None:
    """Create the take-profit, then the stop-loss, that `order` carries, at its first fill.

    Each is a pending trigger of the order's account and market: the other side,
    reduce-only, for the order's whole quantity, a limit order (GTC) at its limit price or
    a market order, with the order's self-trade prevention and no client id; the two are
    each other's sibling. Ids are the next order ids, take-profit first. Appends a
    TriggerAccepted for each and forgets the attachment (so later fills create nothing)."""
    attached = order.attached
    assert attached is not None
    assert attached.take_profit_trigger_ticks > 0 or attached.stop_loss_trigger_ticks > 0
    order.attached = None
    state.dirty_orders.append(order)
    is_buy = order.side == 0
    order_id = state.order_id_next
    take_profit_id = stop_loss_id = 0
    if attached.take_profit_trigger_ticks:
        take_profit_id = order_id
        order_id += 1
    if attached.stop_loss_trigger_ticks:
        stop_loss_id = order_id
        order_id += 1
    state.order_id_next = order_id
    # A buy's take-profit sells when the price rises to it and its stop-loss when the
    # price falls to it; a sell's are the mirror image.
    for child_id, sibling_id, trigger_ticks, limit_ticks, trigger_by, fires_upward in (
        (
            take_profit_id,
            stop_loss_id,
            attached.take_profit_trigger_ticks,
            attached.take_profit_limit_ticks,
            attached.take_profit_trigger_by,
            is_buy,
        ),
        (
            stop_loss_id,
            take_profit_id,
            attached.stop_loss_trigger_ticks,
            attached.stop_loss_limit_ticks,
            attached.stop_loss_trigger_by,
            not is_buy,
        ),
    ):
        if not child_id:
            continue
        carried = PlaceOrder(
            seq=0,
            timestamp_ns=0,
            account_id=order.account_id,
            market_id=order.market_id,
            side=1 - order.side,
            order_type=_LIMIT if limit_ticks else _MARKET,
            price_ticks=limit_ticks,
            quantity_steps=order.quantity_steps,
            self_trade_prevention=order.self_trade_prevention,
            reduce_only=True,
        )
        state.triggers[child_id] = Trigger(
            child_id,
            order.account_id,
            order.market_id,
            trigger_ticks,
            trigger_by,
            fires_upward,
            carried,
            order.order_id,
            sibling_id,
        )
        events.append(
            TriggerAccepted(
                child_id,
                order.account_id,
                order.market_id,
                trigger_ticks,
                trigger_by,
                order.order_id,
                carried.side,
                carried.order_type,
                limit_ticks,
                carried.quantity_steps,
                carried.self_trade_prevention,
                sibling_id,
            )
        )
