"""The `data` objects of the WebSocket streams (spec 11.2 and 11.3), one function each.

Every number goes through keel/gateway/format.py (decimal strings, µs times), so a
stream prints an integer exactly as the REST endpoints do. `E` (event time) and `T`
(engine time) are the command's log timestamp in µs for everything folded from the
log (so a replay prints the same), and the gateway's clock for the timed pushes
(ticker, kline, open interest). Order ids are digit strings, trade ids integers (spec 1.3).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

from keel.core.events import TradeExecuted
from keel.core.money import BPS, E9, div_toward_zero, format_decimal
from keel.core.orders import EndReason, OrderType, Side, TimeInForce
from keel.core.perps import margin_fraction_e9
from keel.gateway import format as fmt
from keel.gateway.format import MarketFormat
from keel.gateway.history import Candle
from keel.gateway.orderbook import SIDES, OrderRecord
from keel.gateway.shapes import (
    EXPIRY_REASON_OUT,
    STATUS_OUT,
    STP_OUT,
    TIME_IN_FORCE_OUT,
    TRIGGER_BY_OUT,
    attached_leg,
)

if TYPE_CHECKING:
    from keel.gateway.streams.mirror import MarketMirror, PositionMirror

_BUY = int(Side.BUY)
_SELL = int(Side.SELL)
_MARKET = int(OrderType.MARKET)
_FOK = int(TimeInForce.FOK)
ORDER_TYPE_WS: Final = {int(OrderType.LIMIT): "LIMIT", _MARKET: "MARKET"}  # the stream's spelling (spec 3)
EXPIRY_REASON_WS: Final = {**EXPIRY_REASON_OUT, int(EndReason.LIQUIDATION): "Liquidation"}


class Fill(NamedTuple):
    """One order's side of a trade."""

    trade_id: int
    quantity_steps: int
    price_ticks: int
    is_maker: bool
    fee_atomic: int  # in the quote asset; negative: a rebate


Level = tuple[int, int]  # (price ticks, steps)


def _levels(market: MarketFormat, levels: list[Level]) -> list[list[str]]:
    return [[market.price(price), market.quantity(steps)] for price, steps in levels]


def depth(
    market: MarketFormat, asks: list[Level], bids: list[Level], first_id: int, last_id: int, timestamp_ns: int
) -> dict[str, Any]:
    """A depth update: the new absolute quantity of each level that changed ("0": gone)."""
    moment = fmt.us(timestamp_ns)
    return {
        "e": "depth",
        "E": moment,
        "s": market.symbol,
        "a": _levels(market, asks),
        "b": _levels(market, bids),
        "U": first_id,
        "u": last_id,
        "T": moment,
    }


def depth_snapshot(
    market: MarketFormat, asks: list[Level], bids: list[Level], update_id: int, timestamp_ns: int
) -> dict[str, Any]:
    """The whole book as of update `update_id` (a Keel addition, sent first on subscribe)."""
    moment = fmt.us(timestamp_ns)
    return {
        "e": "depthSnapshot",
        "E": moment,
        "s": market.symbol,
        "a": _levels(market, asks),
        "b": _levels(market, bids),
        "u": update_id,
        "T": moment,
    }


def book_ticker(
    market: MarketFormat, ask: Level | None, bid: Level | None, update_id: int, timestamp_ns: int
) -> dict[str, Any]:
    """The best bid and ask (null when a side is empty) and the depth update id they are at."""
    moment = fmt.us(timestamp_ns)
    return {
        "e": "bookTicker",
        "E": moment,
        "s": market.symbol,
        "a": market.price(ask[0]) if ask else None,
        "A": market.quantity(ask[1]) if ask else None,
        "b": market.price(bid[0]) if bid else None,
        "B": market.quantity(bid[1]) if bid else None,
        "u": str(update_id),
        "T": moment,
    }


def trade(event: TradeExecuted, market: MarketFormat, timestamp_ns: int) -> dict[str, Any]:
    """A public trade: `m` is true when the buyer was the maker (the taker sold)."""
    taker_buys = event.taker_side == _BUY
    moment = fmt.us(timestamp_ns)
    return {
        "e": "trade",
        "E": moment,
        "s": market.symbol,
        "p": market.price(event.price_ticks),
        "q": market.quantity(event.quantity_steps),
        "b": str(event.taker_order_id if taker_buys else event.maker_order_id),
        "a": str(event.maker_order_id if taker_buys else event.taker_order_id),
        "t": event.trade_id,
        "T": moment,
        "m": not taker_buys,
    }


def liquidation(event: TradeExecuted, market: MarketFormat, timestamp_ns: int) -> dict[str, Any]:
    """A liquidation's closing order traded: its side, price and quantity."""
    moment = fmt.us(timestamp_ns)
    return {
        "e": "liquidation",
        "E": moment,
        "q": market.quantity(event.quantity_steps),
        "p": market.price(event.price_ticks),
        "S": SIDES[event.taker_side],
        "s": market.symbol,
        "T": moment,
    }


def order_update(
    kind: str,
    record: OrderRecord,
    market: MarketFormat,
    timestamp_ns: int,
    *,
    reduce_only: bool,
    origin: str,
    fill: Fill | None = None,
) -> dict[str, Any]:
    """An order update (spec 11.3): `kind` is orderAccepted, orderFill, orderCancelled,
    orderExpired, triggerPlaced or triggerFailed; `X` the status after it; `z`/`Z` what the
    order executed so far; a trigger order adds `P` (trigger price), `B` (trigger by) and
    `Y` (trigger quantity). An order carrying a take-profit adds `a` (its trigger price),
    `j` (its limit price, unless a market order) and `d` (its trigger-by), one carrying a
    stop-loss `b`, `k` and `g`, the strings of the order object's takeProfit*/stopLoss*
    (shapes.attached_leg); a take-profit or stop-loss created by its parent's fill adds
    `I`, the parent's id (the order object's relatedOrderId)."""
    moment = fmt.us(timestamp_ns)
    data: dict[str, Any] = {"e": kind, "E": moment, "s": market.symbol, "i": str(record.order_id)}
    if record.client_id >= 0:
        data["c"] = record.client_id
    data["S"] = SIDES[record.side]
    data["o"] = ORDER_TYPE_WS[record.order_type]
    data["f"] = TIME_IN_FORCE_OUT[record.time_in_force]
    if record.quantity_steps:
        data["q"] = market.quantity(record.quantity_steps)
    if record.quote_quantity_atomic:
        data["Q"] = market.quote(record.quote_quantity_atomic)
    if record.order_type != _MARKET:
        data["p"] = market.price(record.price_ticks)
    if record.trigger_price_ticks:
        data["P"] = market.price(record.trigger_price_ticks)
        data["B"] = TRIGGER_BY_OUT[record.trigger_by]
        data["Y"] = market.quantity(record.quantity_steps)
    if record.take_profit_trigger_ticks or record.stop_loss_trigger_ticks:
        _attached(data, record, market)
    data["X"] = STATUS_OUT[record.status]
    if kind == "orderExpired":
        reason = "FillOrKill" if record.time_in_force == _FOK else EXPIRY_REASON_WS.get(record.end_reason, "Unknown")
        data["R"] = reason
    data["z"] = market.quantity(record.filled_steps)
    data["Z"] = market.quote(record.executed_lots * market.lot_atomic)
    if fill is not None:
        data["t"] = fill.trade_id
        data["l"] = market.quantity(fill.quantity_steps)
        data["L"] = market.price(fill.price_ticks)
        data["m"] = fill.is_maker
        data["n"] = market.quote(fill.fee_atomic)
        data["N"] = market.quote_symbol
    data["V"] = STP_OUT[record.self_trade_prevention]
    data["r"] = reduce_only
    data["y"] = record.post_only
    data["O"] = origin
    if record.parent_order_id:
        data["I"] = str(record.parent_order_id)
    data["T"] = moment
    return data


def _attached(data: dict[str, Any], record: OrderRecord, market: MarketFormat) -> None:
    # In the spec table's order (11.3): both trigger prices, both limit prices, both
    # trigger-bys; a key only for what the order carries.
    take_profit = attached_leg(
        market, record.take_profit_trigger_ticks, record.take_profit_limit_ticks, record.take_profit_trigger_by
    )
    stop_loss = attached_leg(
        market, record.stop_loss_trigger_ticks, record.stop_loss_limit_ticks, record.stop_loss_trigger_by
    )
    for position, keys in enumerate(("ab", "jk", "dg")):
        for key, leg in zip(keys, (take_profit, stop_loss), strict=True):
            value = leg[position]
            if value is not None:
                data[key] = value


def _entry_ticks(position: PositionMirror, lot_atomic: int) -> int:
    # |cost| / |size| in ticks, to the nearest tick (display only, perps.py).
    size = abs(position.size_steps)
    if size == 0:
        return 0
    unit = size * lot_atomic
    return (2 * abs(position.cost_atomic) + unit) // (2 * unit)


def position(kind: str | None, held: PositionMirror, market: MarketMirror, timestamp_ns: int) -> dict[str, Any]:
    """A position update (spec 11.3); `kind` None for the frames sent on subscribe (no `e`).

    `q` is the signed size, `Q` its absolute size, `n` its notional at the mark; `B`
    and `b` are both the entry price (Keel has no separate break-even price, and ccxt
    reads `b` as the entry price); `f`/`m` the initial and maintenance margin fractions
    of the market's margin functions at that notional; `p` the PnL realized since the
    position was opened, `P` the unrealized PnL at the mark; `l` is "0" as upstream."""
    market_format = market.format
    lot = market_format.lot_atomic
    size = held.size_steps
    notional = abs(size) * market.mark_ticks * lot
    entry = market_format.price(_entry_ticks(held, lot))
    decimals = market_format.quote_decimals
    moment = fmt.us(timestamp_ns)
    data: dict[str, Any] = {} if kind is None else {"e": kind}
    data.update(
        {
            "E": moment,
            "s": market_format.symbol,
            "i": market_format.market_id,
            "q": market_format.quantity(size),
            "Q": market_format.quantity(abs(size)),
            "n": market_format.quote(notional),
            "B": entry,
            "b": entry,
            "M": market_format.price(market.mark_ticks),
            "f": format_decimal(margin_fraction_e9(market.imf[0], market.imf[1], notional, decimals), 9),
            "m": format_decimal(margin_fraction_e9(market.mmf[0], market.mmf[1], notional, decimals), 9),
            "p": market_format.quote(held.realized_atomic),
            "P": market_format.quote(size * market.mark_ticks * lot - held.cost_atomic),
            "l": "0",
            "T": moment,
        }
    )
    return data


def funding_rate_e9(market: MarketMirror) -> int:
    """The rate the next funding round would pay at today's mark and index (perps.py)."""
    index = market.index_ticks
    if index == 0 or market.mark_ticks == 0:
        return 0
    cap = market.funding_cap_bps * (E9 // BPS)
    rate = div_toward_zero((market.mark_ticks - index) * E9, index)
    return max(-cap, min(cap, rate))


def mark_price(market: MarketMirror, timestamp_ns: int) -> dict[str, Any]:
    """A perpetual's mark and index, the estimated funding rate and the next funding time (ms):
    funding is paid at the first Tick at or after each multiple of the interval (perps.py)."""
    market_format = market.format
    interval = market.funding_interval_ns
    next_ns = (timestamp_ns // interval + 1) * interval if interval else 0
    moment = fmt.us(timestamp_ns)
    return {
        "e": "markPrice",
        "E": moment,
        "s": market_format.symbol,
        "p": market_format.price(market.mark_ticks),
        "f": format_decimal(funding_rate_e9(market), 9),
        "i": market_format.price(market.index_ticks),
        "n": fmt.ms(next_ns),
        "T": moment,
    }


def open_interest(market: MarketMirror, now_ns: int) -> dict[str, Any]:
    return {
        "e": "openInterest",
        "E": fmt.us(now_ns),
        "s": market.format.symbol,
        "o": market.format.quantity(market.open_interest_steps),
    }


def ticker(day: Candle | None, market: MarketFormat, now_ns: int) -> dict[str, Any]:
    """The rolling 24 h ticker; a market without trades in that window prints "0"s, as REST does."""
    data: dict[str, Any] = {"e": "ticker", "E": fmt.us(now_ns), "s": market.symbol}
    if day is None:
        data.update({"o": "0", "c": "0", "h": "0", "l": "0", "v": "0", "V": "0", "n": 0})
        return data
    data.update(
        {
            "o": market.price(day.open_ticks),
            "c": market.price(day.close_ticks),
            "h": market.price(day.high_ticks),
            "l": market.price(day.low_ticks),
            "v": market.quantity(day.volume_steps),
            "V": market.quote(day.volume_lots * market.lot_atomic),
            "n": day.trades,
        }
    )
    return data


def kline(candle: Candle, market: MarketFormat, closed: bool, now_ns: int) -> dict[str, Any]:
    """A candle with `t` its start and `T` its end (naive UTC, as the REST klines print them)."""
    return {
        "e": "kline",
        "E": fmt.us(now_ns),
        "s": market.symbol,
        "t": fmt.kline_time(candle.start_s),
        "T": fmt.kline_time(candle.end_s),
        "o": market.price(candle.open_ticks),
        "c": market.price(candle.close_ticks),
        "h": market.price(candle.high_ticks),
        "l": market.price(candle.low_ticks),
        "v": market.quantity(candle.volume_steps),
        "n": candle.trades,
        "X": closed,
    }
