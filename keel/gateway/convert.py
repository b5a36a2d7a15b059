"""Request bodies and query values into the engine's integers, refusing anything doubtful.

Decimal strings become ticks, steps and atomic units through the core's exact
converters (an off-grid or over-precise value is refused, never rounded). Every integer
is bounded here before a command is built: the log stores 64-bit integers, so a command
carrying a larger one must never reach the sequencer (it could not be encoded).
Wrong JSON types are refused by msgspec with the path of the offending field.

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

from keel.core import limits
from keel.core.commands import NO_CLIENT_ID, PlaceOrder
from keel.core.errors import RejectCode, Rejected
from keel.core.markets import Market, price_ticks_from_decimal, quantity_steps_from_decimal
from keel.core.money import parse_decimal
from keel.core.orders import AutoMargin, OrderType, SelfTradePrevention, Side, TimeInForce
from keel.core.triggers import TriggerBy
from keel.gateway.errors import FIELD_CODES, REJECTIONS, ApiError, bad_request, not_implemented
from keel.gateway.format import MarketFormat

S = TypeVar("S")

SIDES_IN: Final = {"Bid": int(Side.BUY), "Ask": int(Side.SELL)}
ORDER_TYPES_IN: Final = {"Limit": int(OrderType.LIMIT), "Market": int(OrderType.MARKET)}
TIME_IN_FORCE_IN: Final = {"GTC": int(TimeInForce.GTC), "IOC": int(TimeInForce.IOC), "FOK": int(TimeInForce.FOK)}
STP_IN: Final = {
    "RejectTaker": int(SelfTradePrevention.REJECT_TAKER),
    "RejectMaker": int(SelfTradePrevention.REJECT_MAKER),
    "RejectBoth": int(SelfTradePrevention.REJECT_BOTH),
}
TRIGGER_BY_IN: Final = {
    "LastPrice": int(TriggerBy.LAST_PRICE),
    "MarkPrice": int(TriggerBy.MARK_PRICE),
    "IndexPrice": int(TriggerBy.INDEX_PRICE),
}
UINT32_MAX: Final = 2**32 - 1


class OrderBody(msgspec.Struct, rename="camel", kw_only=True):
    """One order request (spec 8.1); unknown fields are ignored (they were still signed)."""

    symbol: str
    side: str
    order_type: str
    quantity: str | None = None
    quote_quantity: str | None = None
    price: str | None = None
    time_in_force: str | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    self_trade_prevention: str | None = None
    client_id: int | None = None
    trigger_price: str | None = None
    trigger_quantity: str | None = None
    trigger_by: str | None = None
    triggered_by: str | None = None  # bpx's spelling of triggerBy
    take_profit_trigger_price: str | None = None
    take_profit_limit_price: str | None = None
    take_profit_trigger_by: str | None = None
    stop_loss_trigger_price: str | None = None
    stop_loss_limit_price: str | None = None
    stop_loss_trigger_by: str | None = None
    auto_lend: bool | None = None
    auto_lend_redeem: bool | None = None
    auto_borrow: bool | None = None
    auto_borrow_repay: bool | None = None
    slippage_tolerance: str | None = None
    broker_id: int | None = None


class CancelBody(msgspec.Struct, rename="camel", kw_only=True):
    """DELETE /api/v1/order (spec 8.7): one of orderId (string) and clientId (integer; bpx sends a string)."""

    symbol: str
    order_id: str | int | None = None
    client_id: int | str | None = None


class CancelAllBody(msgspec.Struct, rename="camel", kw_only=True):
    """DELETE /api/v1/orders: every open order of the account in one market."""

    symbol: str
    order_type: str | None = None


def decode(body: Any, kind: type[S], what: str) -> S:
    """Return `body` (decoded JSON) as `kind`; refuse wrong shapes and types with the field's path."""
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as error:
        raise bad_request(f"{what}: {error}") from None


def from_rejected(rejected: Rejected, field: str) -> ApiError:
    """Return the ApiError for a decimal the core's converters refused in `field`."""
    status, code = REJECTIONS[rejected.code]
    if rejected.code in (RejectCode.DECIMAL_MALFORMED, RejectCode.DECIMAL_TOO_PRECISE):
        code = FIELD_CODES.get(field, code)
    return ApiError(status, code, rejected.message)


def price_ticks(market: Market | MarketFormat, quote_decimals: int, text: str) -> int:
    try:
        ticks = price_ticks_from_decimal(market, quote_decimals, text)  # type: ignore[arg-type]
    except Rejected as rejected:
        raise from_rejected(rejected, "price") from None
    if ticks > limits.price_ticks_max:
        raise ApiError(400, "INVALID_PRICE", f"price {text} is too large")
    return ticks


def quantity_steps(market: Market | MarketFormat, base_decimals: int, text: str) -> int:
    try:
        steps = quantity_steps_from_decimal(market, base_decimals, text)  # type: ignore[arg-type]
    except Rejected as rejected:
        raise from_rejected(rejected, "quantity") from None
    if steps > limits.quantity_steps_max:
        raise ApiError(400, "INVALID_QUANTITY", f"quantity {text} is too large")
    return steps


def positive_amount(text: str, decimals: int, field: str) -> int:
    """Return a positive decimal amount in atomic units, at most limits.amount_atomic_max."""
    try:
        atomic = parse_decimal(text, decimals, field=field)
    except Rejected as rejected:
        raise from_rejected(rejected, field) from None
    if atomic <= 0:
        raise ApiError(400, FIELD_CODES.get(field, "INVALID_CLIENT_REQUEST"), f"{field} must be positive, got {text}")
    if atomic > limits.amount_atomic_max:
        raise ApiError(400, FIELD_CODES.get(field, "INVALID_CLIENT_REQUEST"), f"{field} {text} is too large")
    return atomic


def client_id_of(value: int | str | None) -> int:
    """Return a uint32 client id (bpx sends cancels' as strings), or NO_CLIENT_ID when absent."""
    if value is None:
        return NO_CLIENT_ID
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 10):
            raise bad_request(f"clientId must be an unsigned 32-bit integer, got {value[:32]!r}")
        value = int(value)
    if not 0 <= value <= UINT32_MAX:
        raise bad_request(f"clientId must be an unsigned 32-bit integer, got {value}")
    return value


def order_id_of(value: str | int | None) -> int:
    """Return an order id (a decimal digit string on the wire), or -1 when absent."""
    if value is None:
        return -1
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 19):
            raise bad_request(f"orderId must be a decimal integer string, got {value[:32]!r}")
        value = int(value)
    if not 0 < value < 2**63:
        raise bad_request(f"orderId {value} is not an order id")
    return value


def _choice(value: str | None, table: dict[str, int], field: str, default: int | None = None) -> int:
    if value is None:
        if default is None:
            raise bad_request(f"{field} is required")
        return default
    found = table.get(value)
    if found is None:
        raise bad_request(f"{field} must be one of {', '.join(table)}, got {value[:32]!r}")
    return found


def auto_margin_of(body: OrderBody) -> int:
    """Return the AutoMargin flags of an order's autoBorrow, autoBorrowRepay, autoLend and
    autoLendRedeem (absent or false: not set)."""
    flags = 0
    for value, flag in (
        (body.auto_borrow, AutoMargin.BORROW),
        (body.auto_borrow_repay, AutoMargin.BORROW_REPAY),
        (body.auto_lend, AutoMargin.LEND),
        (body.auto_lend_redeem, AutoMargin.LEND_REDEEM),
    ):
        if value:
            flags |= flag
    return int(flags)


def place_order(market: MarketFormat, account_id: int, body: OrderBody) -> PlaceOrder:
    """Return the PlaceOrder for a decoded order request (seq and timestamp are the sequencer's).

    Raises ApiError for anything the request itself gets wrong; the engine decides the rest."""
    side = _choice(body.side, SIDES_IN, "side")
    order_type = _choice(body.order_type, ORDER_TYPES_IN, "orderType")
    if body.self_trade_prevention == "Allow":
        raise bad_request("selfTradePrevention Allow is not offered: use RejectTaker, RejectMaker or RejectBoth")
    stp = _choice(body.self_trade_prevention, STP_IN, "selfTradePrevention", int(SelfTradePrevention.REJECT_TAKER))
    time_in_force = _choice(body.time_in_force, TIME_IN_FORCE_IN, "timeInForce", int(TimeInForce.GTC))
    # An attached take-profit and stop-loss (perpetuals; keel/core/triggers.py): prices on
    # the market's tick like triggerPrice; no limit price is a market order. The engine
    # checks the rest (a spot market, a limit price or triggerBy without its trigger price,
    # the sides) and answers with its codes.
    attached = (
        _price_or_zero(market, body.take_profit_trigger_price),
        _price_or_zero(market, body.take_profit_limit_price),
        _choice(body.take_profit_trigger_by, TRIGGER_BY_IN, "takeProfitTriggerBy", int(TriggerBy.LAST_PRICE)),
        _price_or_zero(market, body.stop_loss_trigger_price),
        _price_or_zero(market, body.stop_loss_limit_price),
        _choice(body.stop_loss_trigger_by, TRIGGER_BY_IN, "stopLossTriggerBy", int(TriggerBy.LAST_PRICE)),
    )
    trigger_price = trigger_by = 0
    if (body.trigger_price is None) != (body.trigger_quantity is None):
        raise bad_request("Must specify both `triggerPrice` and `triggerQuantity` or neither")
    if body.trigger_price is None and (body.trigger_by is not None or body.triggered_by is not None):
        raise bad_request("triggerBy is only for trigger orders (with triggerPrice and triggerQuantity)")
    if body.trigger_price is not None:
        assert body.trigger_quantity is not None
        if body.quantity is not None or body.quote_quantity is not None:
            raise bad_request("a trigger order's quantity is its triggerQuantity: give no quantity or quoteQuantity")
        if body.trigger_by is not None and body.triggered_by is not None and body.trigger_by != body.triggered_by:
            raise bad_request("triggerBy and triggeredBy (its bpx spelling) disagree")
        by = body.trigger_by if body.trigger_by is not None else body.triggered_by
        trigger_by = _choice(by, TRIGGER_BY_IN, "triggerBy", int(TriggerBy.LAST_PRICE))
        trigger_price = price_ticks(market, market.quote_decimals, body.trigger_price)
        body = msgspec.structs.replace(body, quantity=body.trigger_quantity)
    if body.slippage_tolerance is not None:
        raise not_implemented("slippageTolerance")
    auto_margin = auto_margin_of(body)
    post_only = bool(body.post_only)
    client_id = client_id_of(body.client_id)
    price = quantity = quote_quantity = 0
    if order_type == ORDER_TYPES_IN["Limit"]:
        if body.price is None:
            raise bad_request("a limit order needs a price")
        if body.quantity is None:
            raise bad_request("a limit order needs a quantity")
        if body.quote_quantity is not None:
            raise bad_request("a limit order takes a quantity, not a quoteQuantity")
        if post_only and time_in_force != TimeInForce.GTC:
            raise bad_request("a post-only order must be GTC")
        price = price_ticks(market, market.quote_decimals, body.price)
        quantity = quantity_steps(market, market.base_decimals, body.quantity)
    else:
        if body.price is not None:
            raise bad_request("a market order takes no price")
        if post_only:
            raise bad_request("a market order cannot be post-only")
        if (body.quantity is None) == (body.quote_quantity is None):
            raise bad_request("a market order takes exactly one of quantity and quoteQuantity")
        if body.quantity is not None:
            quantity = quantity_steps(market, market.base_decimals, body.quantity)
        else:
            assert body.quote_quantity is not None
            quote_quantity = positive_amount(body.quote_quantity, market.quote_decimals, "quoteQuantity")
    return PlaceOrder(
        seq=0,
        timestamp_ns=0,
        account_id=account_id,
        market_id=market.market_id,
        side=side,
        order_type=order_type,
        time_in_force=time_in_force,
        price_ticks=price,
        quantity_steps=quantity,
        quote_quantity_atomic=quote_quantity,
        post_only=post_only,
        self_trade_prevention=stp,
        client_id=client_id,
        reduce_only=bool(body.reduce_only),  # the engine refuses it on a spot market
        trigger_price_ticks=trigger_price,
        trigger_by=trigger_by,
        take_profit_trigger_ticks=attached[0],
        take_profit_limit_ticks=attached[1],
        take_profit_trigger_by=attached[2],
        stop_loss_trigger_ticks=attached[3],
        stop_loss_limit_ticks=attached[4],
        stop_loss_trigger_by=attached[5],
        auto_margin=auto_margin,  # the engine refuses it on a perpetual
    )


def _price_or_zero(market: MarketFormat, value: str | None) -> int:
    """Return an optional price in ticks (0: absent), on the market's tick like any price."""
    return 0 if value is None else price_ticks(market, market.quote_decimals, value)


def bounded_int(value: str | None, field: str, default: int, low: int, high: int) -> int:
    """Return an integer query value in [low, high], or `default` when absent."""
    if value is None or value == "":
        return default
    text = value.strip()
    if not (text.lstrip("-").isascii() and text.lstrip("-").isdigit() and len(text) <= 20):
        raise bad_request(f"{field} must be an integer, got {value[:32]!r}")
    number = int(text)
    if not low <= number <= high:
        raise bad_request(f"{field} must be between {low} and {high}, got {number}")
    return number
