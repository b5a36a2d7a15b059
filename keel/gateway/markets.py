"""Public endpoints: system, assets, markets, order book, tickers, trades, klines (spec 5, 6, 7).

Current state (market states, the book) is read from the engine under the read lock;
trades, klines and tickers come from the history store (history.py).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

import heapq
from typing import Any, Final

from litestar import Request, Response, get

from keel.core.markets import MarketKind, MarketState
from keel.core.money import format_decimal
from keel.core.state import ExchangeState
from keel.gateway import format as fmt
from keel.gateway import shapes
from keel.gateway.convert import bounded_int
from keel.gateway.errors import ApiError, bad_request, not_implemented
from keel.gateway.format import MarketFormat
from keel.gateway.history import INTERVALS, NS_PER_S
from keel.gateway.streams import depth_update_id
from keel.gateway.web import TEXT, gateway_of, json_response

BOOK_STATES: Final = {
    MarketState.OPEN: "Open",
    MarketState.POST_ONLY: "PostOnly",
    MarketState.LIMIT_ONLY: "LimitOnly",
    MarketState.CANCEL_ONLY: "CancelOnly",
    MarketState.CLOSED: "Closed",
}
DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)


_HALTED = (MarketState.CANCEL_ONLY, MarketState.CLOSED)


def _status_parts(state: ExchangeState) -> tuple[bool, list[str], str]:
    """(every market halted, announcements of active maintenance schedules, freeze reason)."""
    halted = bool(state.markets) and all(market.state in _HALTED for market in state.markets)
    announcements = [schedule.announcement for schedule in state.maintenances if schedule.active]
    frozen = state.withdrawals_frozen_reason if state.withdrawals_frozen else ""
    return halted, announcements, frozen


@get("/api/v1/status", tags=["system"], summary="System status: Ok, or Maintenance with a message")
async def status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Spec 7: `Maintenance` while no market takes orders (every one Closed or CancelOnly) or
    the node stopped; the message carries the announcements of active maintenance schedules
    as soon as they are scheduled (status still Ok), and a withdrawal freeze."""
    gateway = gateway_of(request)
    failed = gateway.sequencer.failed
    if failed is not None:
        return json_response(
            {"status": "Maintenance", "message": "The exchange stopped accepting orders and must be restarted"}
        )
    halted, announcements, frozen = gateway.read(_status_parts)
    parts = list(announcements)
    if halted and not parts:
        parts.append("Trading is halted: every market is Closed or CancelOnly")
    if frozen:
        parts.append(f"Withdrawals are frozen: {frozen}")
    return json_response({"status": "Maintenance" if halted else "Ok", "message": "; ".join(parts) or None})


@get("/api/v1/ping", tags=["system"], summary="Liveness: the text pong")
async def ping() -> Response[bytes]:
    return Response(content=b"pong", media_type=TEXT)


@get("/api/v1/time", tags=["system"], summary="Server time: a bare integer of milliseconds")
async def server_time(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(content=str(gateway_of(request).now_ms()).encode(), media_type=TEXT)


def _tokens(state: ExchangeState) -> list[tuple[str, int, int, int, bool, int, int]]:
    return [
        (
            asset.chain,
            asset.decimals,
            asset.withdrawal_fee_atomic,
            asset.withdrawal_daily_limit_atomic,
            state.withdrawals_frozen,
            asset.deposit_min_atomic,
            asset.withdrawal_min_atomic,
        )
        for asset in state.assets
    ]


@get("/api/v1/assets", tags=["markets"], summary="Listed assets, each with its chain (tokens) if it has one")
async def assets(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Spec 5.2. An asset with a chain has one token: deposits always enabled (a deposit is
    credited whatever happens), withdrawals disabled while frozen; the fee is the asset's
    withdrawal fee; the maximum is its daily limit per account (null: none); the minimums
    are the asset's minimum deposit and withdrawal (one atomic unit where none is set)."""
    gateway = gateway_of(request)
    tokens = gateway.read(_tokens)
    body = []
    for asset in gateway.assets():
        chain, decimals, fee, daily_limit, frozen, deposit_min, withdrawal_min = tokens[asset.asset_id]
        token = {
            "blockchain": chain,
            "displayName": asset.symbol,
            "contractAddress": None,
            "depositEnabled": True,
            "withdrawEnabled": not frozen,
            "minimumDeposit": fmt.amount(max(deposit_min, 1), decimals),
            "minimumWithdrawal": fmt.amount(max(withdrawal_min, 1), decimals),
            "maximumWithdrawal": fmt.amount(daily_limit, decimals) if daily_limit else None,
            "withdrawalFee": fmt.amount(fee, decimals),
            "nativeDecimals": decimals,
        }
        body.append(
            {
                "symbol": asset.symbol,
                "displayName": asset.symbol,
                "coingeckoId": None,
                "tokens": [token] if chain else [],
            }
        )
    return json_response(body)


def _margin_function(base_e9: int, factor_e9: int) -> dict[str, str]:
    return {"type": "sqrt", "base": format_decimal(base_e9, 9), "factor": format_decimal(factor_e9, 9)}


def _market_object(market: MarketFormat, values: tuple[int, ...], listed_ns: int | None) -> dict[str, Any]:
    (
        state,
        quantity_min,
        quantity_max,
        band_low,
        band_high,
        impact_low,
        impact_high,
        kind,
        imf_base,
        imf_factor,
        mmf_base,
        mmf_factor,
        funding_interval_ns,
        funding_cap_bps,
        open_interest_max,
        index_move_cap_bps,
    ) = values
    perp = kind == MarketKind.PERP
    return {
        "symbol": market.symbol,
        "baseSymbol": market.base_symbol,
        "quoteSymbol": market.quote_symbol,
        "marketType": "PERP" if perp else "SPOT",
        "orderBookState": BOOK_STATES[MarketState(state)],
        "visible": True,
        "createdAt": fmt.iso(listed_ns) if listed_ns is not None else None,
        "filters": {
            "price": {
                "tickSize": market.price(1),
                "minPrice": market.price(1),
                "maxPrice": None,
                "minMultiplier": format_decimal(band_low, 4),
                "maxMultiplier": format_decimal(band_high, 4),
                "minImpactMultiplier": format_decimal(impact_low, 4),
                "maxImpactMultiplier": format_decimal(impact_high, 4),
                "meanMarkPriceBand": None,
                "meanPremiumBand": None,
                "borrowEntryFeeMinMultiplier": None,
                "borrowEntryFeeMaxMultiplier": None,
                # An index update may move a perpetual's index by at most its cap (perps.py).
                "minPriceUpdateMultiplier": format_decimal(10_000 - index_move_cap_bps, 4)
                if index_move_cap_bps
                else None,
                "maxPriceUpdateMultiplier": format_decimal(10_000 + index_move_cap_bps, 4)
                if index_move_cap_bps
                else None,
            },
            "quantity": {
                "stepSize": market.quantity(1),
                "minQuantity": market.quantity(quantity_min),
                "maxQuantity": market.quantity(quantity_max) if quantity_max else None,
            },
        },
        "fundingInterval": funding_interval_ns // 1_000_000 if perp else None,
        "fundingRateLowerBound": f"-{funding_cap_bps}" if perp else None,
        "fundingRateUpperBound": str(funding_cap_bps) if perp else None,
        "imfFunction": _margin_function(imf_base, imf_factor) if perp else None,
        "mmfFunction": _margin_function(mmf_base, mmf_factor) if perp else None,
        "openInterestLimit": market.quantity(open_interest_max) if perp and open_interest_max else "0",
        "positionLimitWeight": None,
    }


def _market_values(state: ExchangeState, market_ids: list[int]) -> list[tuple[int, ...]]:
    values: list[tuple[int, ...]] = []
    for market_id in market_ids:
        market = state.markets[market_id]
        values.append(
            (
                int(market.state),
                market.quantity_min_steps,
                market.quantity_max_steps,
                market.band_low_bps,
                market.band_high_bps,
                market.impact_low_bps,
                market.impact_high_bps,
                int(market.kind),
                market.imf_base_e9,
                market.imf_factor_e9,
                market.mmf_base_e9,
                market.mmf_factor_e9,
                market.funding_interval_ns,
                market.funding_cap_bps,
                market.open_interest_max_steps,
                market.index_move_cap_bps,
            )
        )
    return values


def _markets_body(request: Request[Any, Any, Any], chosen: list[MarketFormat]) -> list[dict[str, Any]]:
    gateway = gateway_of(request)
    ids = [market.market_id for market in chosen]
    values = gateway.read(lambda state: _market_values(state, ids))
    return [
        _market_object(market, one, gateway.listed_ns.get(market.symbol))
        for market, one in zip(chosen, values, strict=True)
    ]


@get("/api/v1/markets", tags=["markets"], summary="All markets (marketType filter: SPOT, PERP)")
async def markets(request: Request[Any, Any, Any]) -> Response[bytes]:
    wanted = request.query_params.getall("marketType", [])
    body = _markets_body(request, list(gateway_of(request).markets()))
    return json_response([one for one in body if not wanted or one["marketType"] in wanted])


@get("/api/v1/market", tags=["markets"], summary="One market by symbol")
async def market(request: Request[Any, Any, Any], symbol: str) -> Response[bytes]:
    return json_response(_markets_body(request, [gateway_of(request).market(symbol)])[0])


@get("/api/v1/markets/{symbol:str}", tags=["markets"], summary="One market by symbol (bpx-py's path)")
async def market_by_path(request: Request[Any, Any, Any], symbol: str) -> Response[bytes]:
    return json_response(_markets_body(request, [gateway_of(request).market(symbol)])[0])


@get("/api/v1/collateral", tags=["markets"], summary="Collateral parameters (none yet: spot only)")
async def collateral() -> Response[bytes]:
    return json_response([])


def _depth_levels(
    state: ExchangeState, market_id: int, limit: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int, int]:
    book = state.books[market_id]
    bid_prices = heapq.nlargest(limit, book.bids)
    ask_prices = heapq.nsmallest(limit, book.asks)
    bids = [(price, book.bids[price].open_steps) for price in reversed(bid_prices)]
    asks = [(price, book.asks[price].open_steps) for price in ask_prices]
    return bids, asks, state.seq_last, state.timestamp_ns_last


@get("/api/v1/depth", tags=["markets"], summary="Order book: both sides ascending, lastUpdateId, µs timestamp")
async def depth(request: Request[Any, Any, Any], symbol: str, limit: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    levels = bounded_int(limit, "limit", 1000, 1, 1000)
    if levels not in DEPTH_LIMITS:
        raise bad_request(f"limit must be one of {', '.join(map(str, DEPTH_LIMITS))}")
    bids, asks, seq, timestamp_ns = gateway.read(lambda state: _depth_levels(state, market.market_id, levels))
    # The market's depth update id as of that seq: the WebSocket depth stream's U/u sequence.
    update_id = await depth_update_id(request.app.state, market.market_id, seq)
    return json_response(
        {
            "asks": [[market.price(price), market.quantity(steps)] for price, steps in asks],
            "bids": [[market.price(price), market.quantity(steps)] for price, steps in bids],
            "lastUpdateId": str(update_id),
            "timestamp": fmt.us(timestamp_ns),
        }
    )


def _interval_1d(interval: str | None) -> None:
    if interval not in (None, "1d"):
        if interval == "1w":
            raise not_implemented("The 1w ticker interval")
        raise bad_request("interval must be 1d or 1w")


@get("/api/v1/ticker", tags=["markets"], summary="Rolling 24 h statistics of one market")
async def ticker(request: Request[Any, Any, Any], symbol: str, interval: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    _interval_1d(interval)
    await gateway.history_caught_up()
    return json_response(shapes.ticker(gateway.history.day(market.market_id, gateway.clock_ns()), market))


@get("/api/v1/tickers", tags=["markets"], summary="Rolling 24 h statistics of every market")
async def tickers(request: Request[Any, Any, Any], interval: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    _interval_1d(interval)
    await gateway.history_caught_up()
    now_ns = gateway.clock_ns()
    return json_response(
        [shapes.ticker(gateway.history.day(market.market_id, now_ns), market) for market in gateway.markets()]
    )


@get("/api/v1/trades", tags=["markets"], summary="Recent public trades, newest first")
async def trades(request: Request[Any, Any, Any], symbol: str, limit: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    count = bounded_int(limit, "limit", 100, 1, 1000)
    await gateway.history_caught_up()
    return json_response([shapes.trade(one, market) for one in gateway.history.trades(market.market_id, count, 0)])


@get("/api/v1/trades/history", tags=["markets"], summary="Public trades, newest first, with offset paging")
async def trades_history(
    request: Request[Any, Any, Any], symbol: str, limit: str | None = None, offset: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    count = bounded_int(limit, "limit", 100, 1, 1000)
    skip = bounded_int(offset, "offset", 0, 0, 2**62)
    await gateway.history_caught_up()
    return json_response([shapes.trade(one, market) for one in gateway.history.trades(market.market_id, count, skip)])


@get("/api/v1/klines", tags=["markets"], summary="Candles with a trade, startTime/endTime in seconds")
async def klines(
    request: Request[Any, Any, Any],
    symbol: str,
    interval: str,
    startTime: str,
    endTime: str | None = None,
    priceType: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    if interval not in INTERVALS:
        raise bad_request(f"interval must be one of {', '.join(INTERVALS)}, got {interval[:16]!r}")
    now_s = gateway.clock_ns() // NS_PER_S
    start_s = bounded_int(startTime, "startTime", 0, 0, 2**40)
    end_s = bounded_int(endTime, "endTime", now_s, 0, 2**40)
    if priceType not in (None, "Last", "Mark", "Index"):
        raise bad_request("priceType must be Last, Mark or Index")
    if priceType in ("Mark", "Index"):
        return json_response([])  # mark and index prices arrive with perpetuals
    if end_s < start_s:
        raise ApiError(400, "INVALID_RANGE", "endTime is before startTime")
    await gateway.history_caught_up()
    candles = gateway.history.candles(market.market_id, interval, start_s, end_s)
    return json_response([shapes.kline(candle, market) for candle in candles])


HANDLERS: Final = [
    status,
    ping,
    server_time,
    assets,
    markets,
    market,
    market_by_path,
    collateral,
    depth,
    ticker,
    tickers,
    trades,
    trades_history,
    klines,
]
