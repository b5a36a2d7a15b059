"""Signed order endpoints (spec section 8) and the order and fill history (8.5).

Writes decode the request, build the core command (convert.py), submit it and wait for
its durable outcome; the answer is folded from that outcome's events (orderbook.py).
Cancels answer the order as it is after the cancel: its terms are copied from the
engine (under the read lock) before the command is submitted, and what it executed is
`quantity - cancelled` from the OrderCancelled event.

An account only ever sees and touches its own orders: an open order of another account
is refused with 403 FORBIDDEN (spec 4.2), an unknown one with 404 RESOURCE_NOT_FOUND.

Trigger orders (spec 8.1, 8.3) are open orders too: a pending trigger (engine state
`triggers`, status TriggerPending) is answered by the open-order queries and cancelled
like a resting order. The engine keeps no acceptance time for a trigger; its `createdAt`
is read from the history views, where its row was written when it was accepted.

The same goes for two things the engine forgets about an open perpetual order: the
take-profit and stop-loss it was placed with (the engine turns them into trigger orders
at its first fill) and, for a take-profit or stop-loss that fired and now rests, its
parent (`relatedOrderId`) and trigger (`triggerPrice`, `triggerBy`, `triggeredAt`). The
open-order queries and the cancel answers read them from the order's history row
(orderbook.must_recall, complete_from_history), once the views have caught up with the
engine's seq at the copy, so an order shows the same terms here as in order history and
on the order stream.

`marketType` (SPOT or PERP) narrows open orders, order history and fills to the markets
of that kind; the other upstream kinds (IPERP, DATED, PREDICTION, RFQ) have no markets
here, so they answer [].

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, delete, get, post

from keel.core import limits
from keel.core.commands import NO_CLIENT_ID, NO_ORDER_ID, CancelAllOrders, CancelOrder, PlaceOrder, PlaceOrders
from keel.core.errors import RejectCode
from keel.core.events import CommandRejected, OrderCancelled
from keel.core.markets import MarketKind
from keel.core.orders import Order, OrderStatus
from keel.core.state import ExchangeState
from keel.core.trigger_records import Trigger
from keel.gateway import convert, shapes
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError, bad_request, not_found, rejection
from keel.gateway.format import MarketFormat
from keel.gateway.orderbook import (
    OrderRecord,
    batch_results,
    complete_from_history,
    fold_events,
    must_recall,
    record_of_trigger,
)
from keel.gateway.web import account_of, body_of, gateway_of, json_response, query
from keel.views import TRIGGER_PENDING

_PARTIAL = int(OrderStatus.PARTIALLY_FILLED)
_NEW = int(OrderStatus.NEW)
_CANCELLED = int(OrderStatus.CANCELLED)
MARKET_TYPES: Final = {"SPOT": int(MarketKind.SPOT), "PERP": int(MarketKind.PERP)}


def record_of_open(order: Order, lot_atomic: int) -> OrderRecord:
    """Copy an open engine order into a record (call under the read lock), with the
    take-profit and stop-loss it carries until its first fill."""
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
        reduce_only=order.reduce_only,
    )
    attached = order.attached
    if attached is not None:
        record.take_profit_trigger_ticks = attached.take_profit_trigger_ticks
        record.take_profit_limit_ticks = attached.take_profit_limit_ticks
        record.take_profit_trigger_by = attached.take_profit_trigger_by
        record.stop_loss_trigger_ticks = attached.stop_loss_trigger_ticks
        record.stop_loss_limit_ticks = attached.stop_loss_limit_ticks
        record.stop_loss_trigger_by = attached.stop_loss_trigger_by
    return record


def record_of_pending(trigger: Trigger) -> OrderRecord:
    """Copy a pending trigger into a record (call under the read lock); createdAt comes later."""
    return record_of_trigger(
        trigger.order_id,
        trigger.account_id,
        trigger.market_id,
        trigger.order,
        trigger.trigger_price_ticks,
        trigger.trigger_by,
        0,
        trigger.parent_order_id,
    )


def _find_trigger(state: ExchangeState, account_id: int, order_id: int, client_id: int) -> Trigger | None:
    if client_id == NO_CLIENT_ID:
        return state.triggers.get(order_id)
    for trigger in state.triggers.values():
        if trigger.account_id == account_id and trigger.order.client_id == client_id:
            return trigger
    return None


def _find_open(
    state: ExchangeState, account_id: int, market: MarketFormat, order_id: int, client_id: int
) -> OrderRecord | None:
    """Return the account's open order or pending trigger in `market` by id or client id;
    refuse another account's."""
    account = state.accounts.get(account_id)
    found = None
    if account is not None:
        found = account.orders_open.get(order_id) if client_id == NO_CLIENT_ID else account.client_orders.get(client_id)
    trigger = _find_trigger(state, account_id, order_id, client_id) if found is None else None
    if found is None and client_id == NO_CLIENT_ID:
        other = state.orders.get(order_id)
        owner = other.account_id if other is not None else trigger.account_id if trigger is not None else account_id
        if owner != account_id:
            raise ApiError(403, "FORBIDDEN", f"Order {order_id} belongs to another account")
    if found is not None:
        return record_of_open(found, market.lot_atomic) if found.market_id == market.market_id else None
    if trigger is not None and trigger.market_id == market.market_id:
        return record_of_pending(trigger)
    return None


async def _from_history(gateway: Gateway, records: list[OrderRecord], seq: int) -> None:
    """Complete copied records with what only the history views keep (module docstring):
    a pending trigger's acceptance time; an open perpetual order's take-profit, stop-loss,
    parent and trigger once the engine has forgotten them (orderbook.must_recall). The
    views first catch up with `seq`, the engine's position when the records were copied."""
    pending = [record for record in records if record.status == TRIGGER_PENDING and record.created_ns == 0]
    recall = [record for record in records if record.status != TRIGGER_PENDING]
    if recall:
        perps = set(market_ids_of_type(gateway, "PERP") or ())
        recall = [
            record
            for record in recall
            if must_recall(record.market_id in perps, record.filled_steps, record.reduce_only)
        ]
    if not pending and not recall:
        return
    await gateway.history_caught_up(seq)
    for record in pending:
        found = gateway.history.orders(record.account_id, None, record.order_id, 1, 0, True)
        if found:
            record.created_ns = record.updated_ns = found[0].created_ns
    if recall:
        rows = {row.order_id: row for row in gateway.history.orders_by_id([record.order_id for record in recall])}
        for record in recall:
            row = rows.get(record.order_id)
            if row is None or row.account_id != record.account_id:
                continue  # not projected yet (a stalled store): what the engine holds
            complete_from_history(record, row)


def market_ids_of_type(gateway: Gateway, market_type: str | None) -> list[int] | None:
    """Return the ids of the markets of `marketType` (None: no filter; [] for a kind with no markets)."""
    if market_type is None:
        return None
    kind = MARKET_TYPES.get(market_type)
    return gateway.read(lambda state: [market.market_id for market in state.markets if market.kind == kind])


def _ids(body_order_id: Any, body_client_id: Any) -> tuple[int, int]:
    order_id = convert.order_id_of(body_order_id)
    client_id = convert.client_id_of(body_client_id)
    if (order_id == NO_ORDER_ID) == (client_id == NO_CLIENT_ID):
        raise bad_request("give exactly one of orderId and clientId")
    return order_id, client_id


def _missing(order_id: int, client_id: int, market: MarketFormat) -> ApiError:
    what = f"Order {order_id}" if client_id == NO_CLIENT_ID else f"Order with clientId {client_id}"
    return not_found(f"{what} is not open in {market.symbol}")


async def _execute(gateway: Gateway, market: MarketFormat, command: PlaceOrder) -> dict[str, Any]:
    outcome = await gateway.submit(command)
    first = outcome.events[0]
    if isinstance(first, CommandRejected):
        raise rejection(first.code, first.message)
    accepted: list[OrderRecord] = []
    fold_events(outcome.events, outcome.timestamp_ns, {}, accepted, (command,))
    return shapes.order(accepted[0], market)


@post(
    "/api/v1/order",
    opt={"instruction": "orderExecute"},
    status_code=200,
    tags=["orders"],
    summary="Place an order; answered once durable, with what it did",
)
async def execute_order(request: Request[Any, Any, Any]) -> Response[bytes]:
    return json_response(await place(gateway_of(request), account_of(request), body_of(request)))


async def place(gateway: Gateway, account_id: int, body: Any) -> dict[str, Any]:
    """Place one order (POST /api/v1/order; also the fast lane's) and return its answer."""
    order = convert.decode(body, convert.OrderBody, "order")
    market = gateway.market(order.symbol)
    command = convert.place_order(market, account_id, order)
    return await _execute(gateway, market, command)


@post(
    "/api/v1/orders",
    opt={"instruction": "orderExecute", "batch": True},
    status_code=200,
    tags=["orders"],
    summary="Place up to 20 orders, each independently, in order",
)
async def execute_orders(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    items = body_of(request)
    if not isinstance(items, list) or not 1 <= len(items) <= limits.batch_orders_max:
        raise bad_request(f"a batch is a JSON array of 1 to {limits.batch_orders_max} orders")
    results: list[dict[str, Any] | None] = []
    commands: list[PlaceOrder] = []
    placed: list[tuple[int, MarketFormat]] = []  # (result index, market) per submitted command
    for item in items:
        try:
            body = convert.decode(item, convert.OrderBody, f"order {len(results)}")
            market = gateway.market(body.symbol)
            commands.append(convert.place_order(market, account_id, body))
            placed.append((len(results), market))
            results.append(None)
        except ApiError as refused:
            results.append({"operation": "Err", "code": refused.code, "message": refused.message})
    if commands:
        outcome = await gateway.submit(
            PlaceOrders(seq=0, timestamp_ns=0, account_id=account_id, orders=tuple(commands))
        )
        first = outcome.events[0]
        if isinstance(first, CommandRejected) and first.item == -1:
            raise rejection(first.code, first.message)
        parts = batch_results(outcome.events, outcome.timestamp_ns, commands)
        for (index, market), part in zip(placed, parts, strict=True):
            if isinstance(part, CommandRejected):
                error = rejection(part.code, part.message)
                results[index] = {"operation": "Err", "code": error.code, "message": error.message}
                continue
            results[index] = {**shapes.order(part, market), "operation": "Ok"}
    return json_response(results)


@get(
    "/api/v1/order",
    opt={"instruction": "orderQuery"},
    tags=["orders"],
    summary="One open order by orderId or clientId; 404 once it is no longer open",
)
async def query_order(
    request: Request[Any, Any, Any],
    symbol: str,
    orderId: str | None = None,
    clientId: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    market = gateway.market(symbol)
    order_id, client_id = _ids(orderId, clientId)
    record, seq = gateway.read(
        lambda state: (_find_open(state, account_id, market, order_id, client_id), state.seq_last)
    )
    if record is None:
        raise _missing(order_id, client_id, market)
    await _from_history(gateway, [record], seq)
    return json_response(shapes.order(record, market))


def _open_orders(
    state: ExchangeState, account_id: int, market_ids: list[int] | None, lots: list[int]
) -> tuple[list[OrderRecord], int]:
    """The account's open orders, then its pending triggers (oldest first), and the engine's seq."""
    account = state.accounts.get(account_id)
    if account is None:
        return [], state.seq_last
    records = [
        record_of_open(order, lots[order.market_id])
        for order in account.orders_open.values()
        if market_ids is None or order.market_id in market_ids
    ]
    records += [
        record_of_pending(trigger)
        for trigger in state.triggers.values()
        if trigger.account_id == account_id and (market_ids is None or trigger.market_id in market_ids)
    ]
    return records, state.seq_last


@get(
    "/api/v1/orders",
    opt={"instruction": "orderQueryAll"},
    tags=["orders"],
    summary="The account's open orders, pending trigger orders included",
)
async def query_orders(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    marketType: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    market_ids = market_ids_of_type(gateway, marketType)
    if symbol is not None:
        market_id = gateway.market(symbol).market_id
        market_ids = [market_id] if market_ids is None or market_id in market_ids else []
    markets = gateway.markets()
    lots = [market.lot_atomic for market in markets]
    records, seq = gateway.read(lambda state: _open_orders(state, account_id, market_ids, lots))
    await _from_history(gateway, records, seq)
    return json_response([shapes.order(record, markets[record.market_id]) for record in records])


async def _record_for(
    gateway: Gateway, copied: dict[int, OrderRecord], cancelled: OrderCancelled, seq: int, market: MarketFormat
) -> OrderRecord | None:
    """Return the record of an order as its cancel left it (see the module docstring).

    `copied` holds the records copied before the cancel was submitted. An order placed or
    traded after that copy is looked up in the history store once it has seen `seq`."""
    record = copied.get(cancelled.order_id)
    filled = record.quantity_steps - cancelled.cancelled_steps if record is not None else -1
    if record is None or filled != record.filled_steps:
        await gateway.history_caught_up(seq)
        found = gateway.history.orders(cancelled.account_id, market.market_id, cancelled.order_id, 1, 0, True)
        if not found:
            return None
        record = found[0]
    record.filled_steps = record.quantity_steps - cancelled.cancelled_steps
    record.status = _CANCELLED
    record.end_reason = cancelled.reason
    return record


@delete(
    "/api/v1/order",
    opt={"instruction": "orderCancel"},
    status_code=200,
    tags=["orders"],
    summary="Cancel one open order; answers it as cancelled",
)
async def cancel_order(request: Request[Any, Any, Any]) -> Response[bytes]:
    return json_response(await cancel(gateway_of(request), account_of(request), body_of(request)))


async def cancel(gateway: Gateway, account_id: int, request_body: Any) -> dict[str, Any]:
    """Cancel one open order (DELETE /api/v1/order; also the fast lane's) and return its answer."""
    body = convert.decode(request_body, convert.CancelBody, "cancel")
    market = gateway.market(body.symbol)
    order_id, client_id = _ids(body.order_id, body.client_id)
    record, seq = gateway.read(
        lambda state: (_find_open(state, account_id, market, order_id, client_id), state.seq_last)
    )
    if record is None:
        raise _missing(order_id, client_id, market)
    await _from_history(gateway, [record], seq)
    outcome = await gateway.submit(
        CancelOrder(
            seq=0,
            timestamp_ns=0,
            account_id=account_id,
            market_id=market.market_id,
            order_id=order_id,
            client_id=client_id,
        )
    )
    first = outcome.events[0]
    if isinstance(first, CommandRejected):
        raise rejection(first.code, first.message)
    assert isinstance(first, OrderCancelled)
    settled = await _record_for(gateway, {record.order_id: record}, first, outcome.seq, market)
    assert settled is not None
    return shapes.order(settled, market)


@delete(
    "/api/v1/orders",
    opt={"instruction": "orderCancelAll"},
    status_code=200,
    tags=["orders"],
    summary="Cancel every open order of the account in one market; answers them",
)
async def cancel_orders(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    body = convert.decode(body_of(request), convert.CancelAllBody, "cancel all")
    market = gateway.market(body.symbol)
    if body.order_type not in (None, "RestingLimitOrder", "ConditionalOrder"):
        raise bad_request("orderType must be RestingLimitOrder or ConditionalOrder")
    lots = [one.lot_atomic for one in gateway.markets()]
    before, seq = gateway.read(lambda state: _open_orders(state, account_id, [market.market_id], lots))
    await _from_history(gateway, before, seq)
    by_id = {record.order_id: record for record in before}
    conditional = [record for record in before if record.status == TRIGGER_PENDING]
    if body.order_type is None or (body.order_type == "RestingLimitOrder" and not conditional):
        # The engine cancels resting orders and pending triggers of the market at once.
        commands: list[CancelOrder | CancelAllOrders] = [
            CancelAllOrders(seq=0, timestamp_ns=0, account_id=account_id, market_id=market.market_id)
        ]
    else:
        # Only one kind: cancel each of that kind by id, in order (not one command).
        wanted = (
            conditional
            if body.order_type == "ConditionalOrder"
            else [record for record in before if record.status != TRIGGER_PENDING]
        )
        commands = [
            CancelOrder(
                seq=0, timestamp_ns=0, account_id=account_id, market_id=market.market_id, order_id=record.order_id
            )
            for record in wanted
        ]
    answered = []
    for command in commands:
        outcome = await gateway.submit(command)
        first = outcome.events[0] if outcome.events else None
        if isinstance(first, CommandRejected):
            if isinstance(command, CancelOrder) and first.code == int(RejectCode.UNKNOWN_ORDER):
                continue  # it ended meanwhile (filled, or fired): nothing to cancel
            raise rejection(first.code, first.message)
        for event in outcome.events:
            if not isinstance(event, OrderCancelled):
                continue
            settled = await _record_for(gateway, by_id, event, outcome.seq, market)
            if settled is not None:
                answered.append(shapes.order(settled, market))
    return json_response(answered)


def _sort_ascending(value: str | None) -> bool:
    if value in (None, "Desc"):
        return False
    if value == "Asc":
        return True
    raise bad_request("sortDirection must be Asc or Desc")


@get(
    "/wapi/v1/history/orders",
    opt={"instruction": "orderHistoryQueryAll"},
    tags=["history"],
    summary="Every order the account placed, in any status, newest first",
)
async def order_history(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    orderId: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    marketType: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, 2**62)
    ascending = _sort_ascending(sortDirection)
    market_ids = market_ids_of_type(gateway, marketType)
    market_id = gateway.market(symbol).market_id if symbol is not None else None
    order_id = convert.order_id_of(orderId) if orderId is not None else None
    markets = gateway.markets()
    await gateway.history_caught_up()
    records = gateway.history.orders(account_id, market_id, order_id, count, skip, ascending, market_ids)
    return json_response([shapes.order(record, markets[record.market_id], historical=True) for record in records])


@get(
    "/wapi/v1/history/fills",
    opt={"instruction": "fillHistoryQueryAll"},
    tags=["history"],
    summary="The account's fills with fees, newest first (from/to in ms)",
)
async def fill_history(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    orderId: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    fillType: str | None = None,
    marketType: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, 2**62)
    from_ms = query(request, "from")
    to_ms = query(request, "to")
    from_ns = convert.bounded_int(from_ms, "from", 0, 0, 2**43) * 1_000_000 if from_ms else None
    to_ns = (convert.bounded_int(to_ms, "to", 0, 0, 2**43) + 1) * 1_000_000 if to_ms else None  # `to` is inclusive
    ascending = _sort_ascending(sortDirection)
    if fillType not in (None, "User"):
        return json_response([])  # Keel's fills are all the account's own orders' (liquidations' included)
    market_ids = market_ids_of_type(gateway, marketType)
    market_id = gateway.market(symbol).market_id if symbol is not None else None
    order_id = convert.order_id_of(orderId) if orderId is not None else None
    markets = gateway.markets()
    await gateway.history_caught_up()
    fills = gateway.history.fills(account_id, market_id, order_id, from_ns, to_ns, count, skip, ascending, market_ids)
    return json_response([shapes.fill(one, markets[one.market_id]) for one in fills])


HANDLERS: Final = [
    execute_order,
    execute_orders,
    query_order,
    query_orders,
    cancel_order,
    cancel_orders,
    order_history,
    fill_history,
]
