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

Take-profit and stop-loss attached to an order (issue 5; the API's takeProfit* and
stopLoss* fields). A PlaceOrder on a perpetual may carry a take-profit, a stop-loss or
both (`take_profit_trigger_ticks`, `_limit_ticks`, `_trigger_by`, and the same for
`stop_loss_`; trigger price 0: none, limit price 0: a market order).

- Entry. `check_attachment` runs before the order's own checks and refuses, changing
  nothing: a spot market, a reduce-only order, an order by quote quantity (its quantity
  is not known yet) or a trigger order (ORDER_MALFORMED); a limit price or trigger-by
  without its trigger price, or an unknown trigger-by (ORDER_MALFORMED); a negative
  trigger or limit price (PRICE_NOT_POSITIVE) or either above
  limits.price_ticks_max (VALUE_TOO_LARGE); a market order whose trigger-by reference
  price does not exist yet (NO_MARK_PRICE); a trigger price on the wrong side
  (TRIGGER_PRICE_WRONG_SIDE): for a buy, the take-profit must be above and the
  stop-loss below the order's limit price (a market order: the trigger-by reference
  price now), mirrored for a sell; and an account whose pending triggers plus two for
  every open order still carrying an attachment plus these would pass
  limits.triggers_per_account_max (OPEN_ORDER_LIMIT). Then the order is placed as usual
  (any of its refusals changes nothing either) and carries the attachment
  (`Order.attached`, so it is in snapshots, the orders section of the state hash, and
  replay).
- First fill. When the order first fills, in whichever command fills it (its own, or
  another account's as a maker), `trigger_records.create_attached` creates the
  take-profit, then the stop-loss, as pending triggers with the next order ids: same
  account and market, the other side, reduce-only, the parent's whole quantity, a limit
  GTC order at the limit price or a market order, the parent's self-trade prevention,
  no client id. When one fires, its quantity is cut to what the position then holds on
  its side, if that is less (a reduce-only order larger than the position is refused,
  and the parent may have filled in part or the position been reduced since); with
  nothing left to reduce it is placed as it is and refused (TriggerFailed).
  A buy's take-profit fires when its reference rises to the trigger price and its
  stop-loss when it falls to it (a sell's mirror that), whatever the reference is when
  they are created: one already past fires in the same command's trigger pass (one
  created by a liquidation's trade, after that pass, waits for the next command). Each
  gets a TriggerAccepted carrying its terms and its parent's id, right after the events
  of the fill that created it; the parent forgets its attachment, so later fills create
  nothing. A parent that ends without any fill (cancelled, expired, a liquidation)
  creates nothing. Why at the first fill, for the whole quantity: before a fill there is
  no position to protect, and creating both once, sized for everything the order can
  still fill, covers later fills without creating, resizing or linking more triggers.
- One cancels the other. When one of the pair fires and its order is placed, the other
  (if still pending) is cancelled in the same command, right after the placed order's
  events: OrderCancelled with EndReason ONE_CANCELS_OTHER. If the order it fires is
  refused (TriggerFailed: say the position is already closed, or the market is
  LimitOnly and it is a market order), the other stays pending: it is still the
  position's protection. A user may cancel either one alone; the other stays.
- Order. Children are created in the order fills happen; at one fill, the taker's
  before the maker's; the take-profit before the stop-loss. They fire as every trigger
  does (ascending order id, repeated until none fires), so if both are due at once the
  take-profit (the lower id) fires and cancels the stop-loss.

Invariants: every attachment is on an open order with no fill; a child's sibling is a
pending trigger or gone (ids are never reused, so a stale link is harmless); a pending
child is reduce-only, on the other side of its parent, with the parent's quantity.

Imports: commands, errors, events, limits, markets, matching, orders, state, trigger_records.
"""

from __future__ import annotations

import enum

import msgspec

from keel.core import limits
from keel.core.commands import NO_CLIENT_ID, NO_ORDER_ID, CancelAllOrders, CancelOrder, PlaceOrder
from keel.core.errors import RejectCode, Rejected
from keel.core.events import Event, OrderCancelled, TriggerAccepted, TriggerFailed, TriggerFired
from keel.core.markets import Market, MarketKind, MarketState
from keel.core.matching import (
    cancel_all_orders,
    cancel_order,
    check_auto_margin,
    check_order_shape,
    market_for,
    place_order,
    price_text,
    user_account_for,
)
from keel.core.orders import Attachment, EndReason, OrderType
from keel.core.state import ExchangeState
from keel.core.trigger_records import Trigger

_USER_CANCEL = int(EndReason.USER_CANCEL)
_ONE_CANCELS_OTHER = int(EndReason.ONE_CANCELS_OTHER)
_PERP = int(MarketKind.PERP)
_LIMIT = int(OrderType.LIMIT)
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


def has_attachment(command: PlaceOrder) -> bool:
    """Return whether any take-profit or stop-loss field is set (one test for the hot path)."""
    return bool(
        command.take_profit_trigger_ticks
        | command.stop_loss_trigger_ticks
        | command.take_profit_limit_ticks
        | command.stop_loss_limit_ticks
        | command.take_profit_trigger_by
        | command.stop_loss_trigger_by
    )


def _triggers_counted(state: ExchangeState, account_id: int) -> int:
    """The account's pending triggers plus two for each open order still carrying an
    attachment, so that the children it will create stay within the limit."""
    pending = sum(1 for trigger in state.triggers.values() if trigger.account_id == account_id)
    account = state.accounts[account_id]
    return pending + sum(2 for order in account.orders_open.values() if order.attached is not None)


def _check_attached_trigger(
    state: ExchangeState,
    market: Market,
    command: PlaceOrder,
    name: str,
    trigger_ticks: int,
    limit_ticks: int,
    trigger_by: int,
    above: bool,
) -> None:
    """Refuse one malformed or misplaced take-profit or stop-loss (`above`: its trigger
    price must be above the reference price)."""
    if trigger_by not in (0, 1, 2):
        raise Rejected(RejectCode.ORDER_MALFORMED, f"{name} trigger by must be LastPrice, MarkPrice or IndexPrice")
    if trigger_ticks == 0:
        if limit_ticks or trigger_by:
            raise Rejected(
                RejectCode.ORDER_MALFORMED, f"a {name} limit price or trigger by needs a {name} trigger price"
            )
        return
    if trigger_ticks < 0:
        raise Rejected(RejectCode.PRICE_NOT_POSITIVE, f"a {name} trigger price must be positive")
    if limit_ticks < 0:
        raise Rejected(RejectCode.PRICE_NOT_POSITIVE, f"a {name} limit price must be positive")
    if trigger_ticks > limits.price_ticks_max or limit_ticks > limits.price_ticks_max:
        raise Rejected(RejectCode.VALUE_TOO_LARGE, f"the {name} price is too large")
    if command.order_type == _LIMIT:
        reference, what = command.price_ticks, "its price"
    else:
        reference = reference_ticks(market, trigger_by)
        what = TriggerBy(trigger_by).name.lower().replace("_", " ")
        if reference == 0:
            raise Rejected(RejectCode.NO_MARK_PRICE, f"{market.symbol} has no {what} to place a {name} against yet")
        what = f"the {what}"
    if (trigger_ticks <= reference) if above else (trigger_ticks >= reference):
        raise Rejected(
            RejectCode.TRIGGER_PRICE_WRONG_SIDE,
            f"a {'buy' if command.side == 0 else 'sell'} order's {name} must trigger "
            f"{'above' if above else 'below'} {what} {price_text(state, market, reference)}: "
            f"{price_text(state, market, trigger_ticks)} is not",
        )


def check_attachment(state: ExchangeState, command: PlaceOrder) -> Attachment:
    """Return the take-profit and stop-loss the order carries, checked (module docstring);
    change nothing. Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_MARKET, ORDER_MALFORMED,
    PRICE_NOT_POSITIVE, VALUE_TOO_LARGE, NO_MARK_PRICE, TRIGGER_PRICE_WRONG_SIDE,
    OPEN_ORDER_LIMIT, and the order's shape codes)."""
    account = user_account_for(state, command.account_id)
    market = market_for(state, command.market_id)
    if market.kind != _PERP:
        raise Rejected(RejectCode.ORDER_MALFORMED, "take-profit and stop-loss are for perpetual markets")
    check_order_shape(command)
    if command.reduce_only:
        raise Rejected(RejectCode.ORDER_MALFORMED, "a reduce-only order cannot carry a take-profit or stop-loss")
    if command.quote_quantity_atomic:
        raise Rejected(
            RejectCode.ORDER_MALFORMED, "take-profit and stop-loss need an order by quantity, not quote quantity"
        )
    is_buy = command.side == 0
    _check_attached_trigger(
        state,
        market,
        command,
        "take-profit",
        command.take_profit_trigger_ticks,
        command.take_profit_limit_ticks,
        command.take_profit_trigger_by,
        is_buy,
    )
    _check_attached_trigger(
        state,
        market,
        command,
        "stop-loss",
        command.stop_loss_trigger_ticks,
        command.stop_loss_limit_ticks,
        command.stop_loss_trigger_by,
        not is_buy,
    )
    if not (command.take_profit_trigger_ticks or command.stop_loss_trigger_ticks):
        raise Rejected(RejectCode.ORDER_MALFORMED, "a take-profit or stop-loss needs a trigger price")
    if _triggers_counted(state, account.account_id) + 2 > limits.triggers_per_account_max:
        raise Rejected(
            RejectCode.OPEN_ORDER_LIMIT,
            f"an account may have at most {limits.triggers_per_account_max} triggers, counting two for every "
            "order that carries a take-profit or stop-loss",
        )
    return Attachment(
        command.take_profit_trigger_ticks,
        command.take_profit_limit_ticks,
        command.take_profit_trigger_by,
        command.stop_loss_trigger_ticks,
        command.stop_loss_limit_ticks,
        command.stop_loss_trigger_by,
    )


def accept_trigger(state: ExchangeState, command: PlaceOrder, events: list[Event]) -> None:
    """Keep a trigger order (module docstring). Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_MARKET,
    ORDER_MALFORMED, PRICE_NOT_POSITIVE, NO_MARK_PRICE, OPEN_ORDER_LIMIT, DUPLICATE_CLIENT_ID, ...shape codes)."""
    account = user_account_for(state, command.account_id)
    market = market_for(state, command.market_id)
    if command.trigger_by not in (0, 1, 2):
        raise Rejected(RejectCode.ORDER_MALFORMED, "trigger by must be LastPrice, MarkPrice or IndexPrice")
    if has_attachment(command):
        raise Rejected(RejectCode.ORDER_MALFORMED, "a trigger order cannot carry a take-profit or stop-loss")
    if not 0 < command.trigger_price_ticks <= limits.price_ticks_max:
        raise Rejected(RejectCode.PRICE_NOT_POSITIVE, "a trigger price must be positive")
    check_order_shape(command)
    if command.auto_margin:
        check_auto_margin(market, command.auto_margin)
    reference = reference_ticks(market, command.trigger_by)
    if reference == 0:
        what = TriggerBy(command.trigger_by).name.lower().replace("_", " ")
        raise Rejected(RejectCode.NO_MARK_PRICE, f"{market.symbol} has no {what} to trigger on yet")
    if _triggers_counted(state, account.account_id) >= limits.triggers_per_account_max:
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
        if due.parent_order_id:
            order = _trimmed_to_position(state, order)
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
            continue
        if due.sibling_order_id:
            # One cancels the other: its take-profit or stop-loss partner (module docstring).
            sibling = state.triggers.get(due.sibling_order_id)
            if sibling is not None:
                remove_trigger(state, sibling, events, _ONE_CANCELS_OTHER)


def _trimmed_to_position(state: ExchangeState, order: PlaceOrder) -> PlaceOrder:
    """A take-profit or stop-loss reduces what the position holds when it fires, up to its
    quantity (a reduce-only order larger than the position would be refused). With no
    position left to reduce it stays as it is, and placing it refuses it."""
    position = state.accounts[order.account_id].positions.get(order.market_id)
    size = position.size_steps if position is not None else 0
    reducible = size if order.side == 1 else -size
    if 0 < reducible < order.quantity_steps:
        return msgspec.structs.replace(order, quantity_steps=reducible)
    return order


def place_or_trigger(state: ExchangeState, command: PlaceOrder, events: list[Event]) -> None:
    """The PlaceOrder handler: a trigger order waits, any other order is placed (with its
    take-profit and stop-loss, if it carries them)."""
    if command.trigger_price_ticks:
        accept_trigger(state, command, events)
    elif has_attachment(command):
        place_order(state, command, events, attached=check_attachment(state, command))
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
