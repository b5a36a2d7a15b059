"""Backpack's response objects (spec sections 5, 6, 8, 9), built from records and state copies.

Each function returns a plain dict ready for msgspec.json; every number in it went
through format.py. Keys follow Backpack's spelling exactly; a success object never has
a top-level `code` (ccxt would treat it as an error).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

from keel.core.orders import EndReason, OrderStatus, OrderType, SelfTradePrevention, TimeInForce
from keel.core.triggers import TriggerBy
from keel.gateway import format as fmt
from keel.gateway.format import MarketFormat
from keel.gateway.history import Candle
from keel.gateway.orderbook import SIDES, FillRecord, OrderRecord, TradeRecord
from keel.views import TRIGGER_FAILED, TRIGGER_PENDING

STATUS_OUT: Final = {
    int(OrderStatus.NEW): "New",
    int(OrderStatus.PARTIALLY_FILLED): "PartiallyFilled",
    int(OrderStatus.FILLED): "Filled",
    int(OrderStatus.CANCELLED): "Cancelled",
    int(OrderStatus.EXPIRED): "Expired",
    TRIGGER_PENDING: "TriggerPending",
    TRIGGER_FAILED: "TriggerFailed",
}
TRIGGER_BY_OUT: Final = {
    int(TriggerBy.LAST_PRICE): "LastPrice",
    int(TriggerBy.MARK_PRICE): "MarkPrice",
    int(TriggerBy.INDEX_PRICE): "IndexPrice",
}
ORDER_TYPE_OUT: Final = {int(OrderType.LIMIT): "Limit", int(OrderType.MARKET): "Market"}
TIME_IN_FORCE_OUT: Final = {int(TimeInForce.GTC): "GTC", int(TimeInForce.IOC): "IOC", int(TimeInForce.FOK): "FOK"}
STP_OUT: Final = {
    int(SelfTradePrevention.REJECT_TAKER): "RejectTaker",
    int(SelfTradePrevention.REJECT_MAKER): "RejectMaker",
    int(SelfTradePrevention.REJECT_BOTH): "RejectBoth",
    int(SelfTradePrevention.ALLOW): "Allow",
}
EXPIRY_REASON_OUT: Final = {
    int(EndReason.IMMEDIATE_OR_CANCEL): "ImmediateOrCancel",
    int(EndReason.SELF_TRADE_PREVENTION): "SelfTradePrevention",
    int(EndReason.FILL_LIMIT): "Unknown",
    int(EndReason.PRICE_IMPACT): "PriceImpact",
    int(EndReason.INSUFFICIENT_FUNDS): "InsufficientFunds",
    int(EndReason.NO_LIQUIDITY): "InsufficientLiquidity",
    int(EndReason.REDUCE_ONLY): "ReduceOnlyNotReduced",
    int(EndReason.LIQUIDATION): "Liquidation",
}
# Orders a rule cancelled rather than the user (spec 10: "system actions").
SYSTEM_CANCEL_OUT: Final = {
    int(EndReason.LIQUIDATION): "Liquidation",
    int(EndReason.ORDER_BOOK_CLOSED): "OrderBookClosed",
}
_MARKET = int(OrderType.MARKET)
_FOK = int(TimeInForce.FOK)
_EXPIRED = int(OrderStatus.EXPIRED)
_CANCELLED = int(OrderStatus.CANCELLED)


def order(record: OrderRecord, market: MarketFormat, *, historical: bool = False) -> dict[str, Any]:
    """The order object of spec 8.4 (createdAt and triggeredAt in ms), or with `historical`
    that of 8.5 (naive ISO times, plus expiryReason and systemOrderType). A trigger order
    shows its quantity as both quantity and triggerQuantity (ccxt reads either)."""
    is_market = record.order_type == _MARKET
    is_trigger = record.trigger_price_ticks > 0
    quantity = market.quantity(record.quantity_steps) if record.quantity_steps else None
    triggered_at = None
    if record.triggered_ns:
        triggered_at = fmt.iso(record.triggered_ns) if historical else fmt.ms(record.triggered_ns)
    body: dict[str, Any] = {
        "id": str(record.order_id),
        "clientId": record.client_id if record.client_id >= 0 else None,
        "symbol": market.symbol,
        "side": SIDES[record.side],
        "orderType": ORDER_TYPE_OUT[record.order_type],
        "timeInForce": TIME_IN_FORCE_OUT[record.time_in_force],
        "quantity": quantity,
        "quoteQuantity": market.quote(record.quote_quantity_atomic) if record.quote_quantity_atomic else None,
        "executedQuantity": market.quantity(record.filled_steps),
        "executedQuoteQuantity": market.quote(record.executed_lots * market.lot_atomic),
        "status": STATUS_OUT[record.status],
        "reduceOnly": record.reduce_only,
        "selfTradePrevention": STP_OUT[record.self_trade_prevention],
        "createdAt": fmt.iso(record.created_ns) if historical else fmt.ms(record.created_ns),
        "triggerPrice": market.price(record.trigger_price_ticks) if is_trigger else None,
        "triggerQuantity": quantity if is_trigger else None,
        "triggerBy": TRIGGER_BY_OUT[record.trigger_by] if is_trigger else None,
        "triggeredAt": triggered_at,
        "relatedOrderId": str(record.parent_order_id) if record.parent_order_id else None,
        "strategyId": None,
        **_attached(
            "stopLoss",
            market,
            record.stop_loss_trigger_ticks,
            record.stop_loss_limit_ticks,
            record.stop_loss_trigger_by,
        ),
        **_attached(
            "takeProfit",
            market,
            record.take_profit_trigger_ticks,
            record.take_profit_limit_ticks,
            record.take_profit_trigger_by,
        ),
    }
    if not is_market:
        # Backpack's market-order schema has neither price nor postOnly (spec 8.4).
        body["price"] = market.price(record.price_ticks)
        body["postOnly"] = record.post_only
    if historical:
        reason = None
        if record.status == _EXPIRED:
            reason = "FillOrKill" if record.time_in_force == _FOK else EXPIRY_REASON_OUT.get(record.end_reason)
        elif record.status == _CANCELLED:
            reason = SYSTEM_CANCEL_OUT.get(record.end_reason)
        body["expiryReason"] = reason
        body["systemOrderType"] = None
    return body


def attached_leg(
    market: MarketFormat, trigger_ticks: int, limit_ticks: int, trigger_by: int
) -> tuple[str | None, str | None, str | None]:
    """Return an attached take-profit's or stop-loss's trigger price, limit price and
    trigger-by as the API spells them: all None when the order carries no such leg, the
    limit price None for a market order. The order stream (streams/messages.py) prints
    the same strings under its own keys."""
    if not trigger_ticks:
        return None, None, None
    return market.price(trigger_ticks), market.price(limit_ticks) if limit_ticks else None, TRIGGER_BY_OUT[trigger_by]


def _attached(
    prefix: str, market: MarketFormat, trigger_ticks: int, limit_ticks: int, trigger_by: int
) -> dict[str, str | None]:
    """An order's attached take-profit or stop-loss fields (attached_leg)."""
    trigger, limit, by = attached_leg(market, trigger_ticks, limit_ticks, trigger_by)
    return {f"{prefix}TriggerPrice": trigger, f"{prefix}LimitPrice": limit, f"{prefix}TriggerBy": by}


def fill(record: FillRecord, market: MarketFormat) -> dict[str, Any]:
    """A fill of spec 8.5: ISO timestamp (ccxt requires the string), fee in the quote asset."""
    return {
        "tradeId": record.trade_id,
        "orderId": str(record.order_id),
        "clientId": str(record.client_id) if record.client_id >= 0 else None,
        "symbol": market.symbol,
        "side": SIDES[record.side],
        "price": market.price(record.price_ticks),
        "quantity": market.quantity(record.quantity_steps),
        "fee": market.quote(record.fee_atomic),
        "feeSymbol": market.quote_symbol,
        "isMaker": record.is_maker,
        "systemOrderType": None,
        "timestamp": fmt.iso(record.timestamp_ns),
    }


def trade(record: TradeRecord, market: MarketFormat) -> dict[str, Any]:
    """A public trade (spec 6.1): integer id, ms timestamp, isBuyerMaker."""
    return {
        "id": record.trade_id,
        "price": market.price(record.price_ticks),
        "quantity": market.quantity(record.quantity_steps),
        "quoteQuantity": market.notional(record.price_ticks, record.quantity_steps),
        "timestamp": fmt.ms(record.timestamp_ns),
        "isBuyerMaker": record.taker_side == 1,
    }


def kline(candle: Candle, market: MarketFormat) -> dict[str, Any]:
    return {
        "start": fmt.kline_time(candle.start_s),
        "end": fmt.kline_time(candle.end_s),
        "open": market.price(candle.open_ticks),
        "high": market.price(candle.high_ticks),
        "low": market.price(candle.low_ticks),
        "close": market.price(candle.close_ticks),
        "volume": market.quantity(candle.volume_steps),
        "quoteVolume": market.quote(candle.volume_lots * market.lot_atomic),
        "trades": str(candle.trades),
    }


def ticker(day: Candle | None, market: MarketFormat) -> dict[str, Any]:
    """The rolling 24 h ticker (spec 6.1); a market without trades answers "0" strings."""
    if day is None:
        zero = "0"
        return {
            "symbol": market.symbol,
            "firstPrice": zero,
            "lastPrice": zero,
            "high": zero,
            "low": zero,
            "priceChange": zero,
            "priceChangePercent": zero,
            "volume": zero,
            "quoteVolume": zero,
            "trades": zero,
        }
    change_ticks = day.close_ticks - day.open_ticks
    return {
        "symbol": market.symbol,
        "firstPrice": market.price(day.open_ticks),
        "lastPrice": market.price(day.close_ticks),
        "high": market.price(day.high_ticks),
        "low": market.price(day.low_ticks),
        "priceChange": market.price(change_ticks),
        "priceChangePercent": fmt.ratio(change_ticks, day.open_ticks),
        "volume": market.quantity(day.volume_steps),
        "quoteVolume": market.quote(day.volume_lots * market.lot_atomic),
        "trades": str(day.trades),
    }
