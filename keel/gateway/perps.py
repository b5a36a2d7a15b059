"""Perpetuals on the wire: positions, mark prices, funding rates, open interest, funding history.

Spec sections 6 and 9.1. Current figures (positions, marks, open interest) are copied
from the engine under the read lock and formatted outside it; every figure comes from
the core's own functions (keel.core.perps), the shell only divides for display.
Funding rates and payments come from the history views (funding_rounds,
funding_payments), so they survive restarts.

Display rules (inferred where the spec is silent):
- `netQuantity` and `netCost` are signed (long > 0); `netExposureQuantity` is the
  position's worst case with its open orders, max(|size + open buys|, |size - open sells|),
  as the initial margin counts it (spec notes 11: it includes open orders), unsigned.
- `entryPrice` is |cost| / |size|; `breakEvenPrice` is (cost - funding received) / size:
  the price at which closing would give back the funding as well. Both are exact
  quotients cut to 4 more decimals than the quote asset has.
- `estLiquidationPrice` is an estimate: the mark at which the account's equity would
  meet its maintenance requirement if only this market's mark moved and the maintenance
  fraction stayed what it is now; "0" when no such positive price exists.
- `imf`/`mmf` are the fractions at the position's current notional.
- A funding rate's `intervalEndTimestamp` is the funding time the round paid for: the
  interval boundary at or before the Tick that paid it.
- `fundingRate` on /markPrices is the rate of the market's last round ("0" before one).
- `positionId` is the account id and market id, "<account>-<market>": one position per
  account and market.

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from litestar import Request, Response, get

from keel.core.markets import MarketKind
from keel.core.money import format_decimal
from keel.core.perps import (
    equity_atomic,
    maintenance_requirement_atomic,
    margin_fraction_e9,
    unrealized_pnl_atomic,
)
from keel.core.state import ExchangeState
from keel.gateway import format as fmt
from keel.gateway.convert import bounded_int
from keel.gateway.format import MarketFormat
from keel.gateway.web import account_of, gateway_of, json_response

_PERP = int(MarketKind.PERP)
_EXTRA_DECIMALS: Final = 4  # display precision of derived prices beyond the quote asset's


@dataclass(frozen=True, slots=True)
class PositionFigures:
    """One position as copied under the read lock (integers only)."""

    market_id: int
    size_steps: int
    cost_atomic: int
    worst_steps: int
    realized_pnl_atomic: int
    funding_atomic: int
    unrealized_pnl_atomic: int
    mark_ticks: int
    imf_base_e9: int
    imf_factor_e9: int
    mmf_base_e9: int
    mmf_factor_e9: int
    equity_atomic: int  # the account's
    maintenance_atomic: int  # the account's


def _positions(state: ExchangeState, account_id: int) -> list[PositionFigures]:
    account = state.accounts.get(account_id)
    if account is None or not account.positions:
        return []
    equity = equity_atomic(state, account)
    maintenance = maintenance_requirement_atomic(state, account)
    figures = []
    for market_id in sorted(account.positions):
        position = account.positions[market_id]
        if not position.size_steps:
            continue
        market = state.markets[market_id]
        size = position.size_steps
        figures.append(
            PositionFigures(
                market_id=market_id,
                size_steps=size,
                cost_atomic=position.cost_atomic,
                worst_steps=max(abs(size + position.open_buy_steps), abs(size - position.open_sell_steps)),
                realized_pnl_atomic=position.realized_pnl_atomic,
                funding_atomic=position.funding_atomic,
                unrealized_pnl_atomic=unrealized_pnl_atomic(position, market),
                mark_ticks=market.mark_ticks,
                imf_base_e9=market.imf_base_e9,
                imf_factor_e9=market.imf_factor_e9,
                mmf_base_e9=market.mmf_base_e9,
                mmf_factor_e9=market.mmf_factor_e9,
                equity_atomic=equity,
                maintenance_atomic=maintenance,
            )
        )
    return figures


def _price_of(market: MarketFormat, amount_atomic: int, size_steps: int) -> str:
    """Return amount / (size x lot) ticks as a quote decimal: |cost| / |size| as a price."""
    if size_steps == 0:
        return "0"
    # price in quote atomic units = amount x tick / (size x lot); shown with extra decimals
    numerator = amount_atomic * market.tick_atomic
    denominator = size_steps * market.lot_atomic * 10**market.quote_decimals
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    return fmt.ratio(numerator, denominator, market.quote_decimals + _EXTRA_DECIMALS)


def _liquidation_price(market: MarketFormat, figures: PositionFigures) -> str:
    """The estimate of the module docstring, in quote units (0 when none)."""
    size, mark = figures.size_steps, figures.mark_ticks
    if mark <= 0:
        return "0"
    exposure = size * market.lot_atomic * mark  # signed notional at the mark
    # equity(p) = E + size x lot x (p - m); maintenance(p) = M x p / m; solve for p (ticks):
    # p = m x (size x lot x m - E) / (size x lot x m - M)
    numerator = mark * (exposure - figures.equity_atomic)
    denominator = exposure - figures.maintenance_atomic
    if denominator == 0 or (numerator > 0) != (denominator > 0) or numerator == 0:
        return "0"
    return fmt.ratio(
        abs(numerator) * market.tick_atomic,
        abs(denominator) * 10**market.quote_decimals,
        market.quote_decimals + _EXTRA_DECIMALS,
    )


def _function(base_e9: int, factor_e9: int) -> dict[str, str]:
    return {"type": "sqrt", "base": format_decimal(base_e9, 9), "factor": format_decimal(factor_e9, 9)}


def position_object(market: MarketFormat, figures: PositionFigures, account_id: int) -> dict[str, Any]:
    """The Position object of spec 9.1 (ccxt: side from the sign of netCost)."""
    notional_atomic = abs(figures.size_steps) * figures.mark_ticks * market.lot_atomic
    worst_notional_atomic = figures.worst_steps * figures.mark_ticks * market.lot_atomic
    return {
        "positionId": f"{account_id}-{market.market_id}",
        "symbol": market.symbol,
        "netQuantity": market.quantity(figures.size_steps),
        "netCost": market.quote(figures.cost_atomic),
        "netExposureQuantity": market.quantity(figures.worst_steps),
        "netExposureNotional": market.quote(worst_notional_atomic),
        "entryPrice": _price_of(market, abs(figures.cost_atomic), abs(figures.size_steps)),
        "breakEvenPrice": _price_of(market, figures.cost_atomic - figures.funding_atomic, figures.size_steps),
        "markPrice": market.price(figures.mark_ticks),
        "estLiquidationPrice": _liquidation_price(market, figures),
        "pnlRealized": market.quote(figures.realized_pnl_atomic),
        "pnlUnrealized": market.quote(figures.unrealized_pnl_atomic),
        "cumulativeFundingPayment": market.quote(figures.funding_atomic),
        "cumulativeInterest": "0",
        "imf": format_decimal(
            margin_fraction_e9(figures.imf_base_e9, figures.imf_factor_e9, notional_atomic, market.quote_decimals), 9
        ),
        "mmf": format_decimal(
            margin_fraction_e9(figures.mmf_base_e9, figures.mmf_factor_e9, notional_atomic, market.quote_decimals), 9
        ),
        "imfFunction": _function(figures.imf_base_e9, figures.imf_factor_e9),
        "mmfFunction": _function(figures.mmf_base_e9, figures.mmf_factor_e9),
        "userId": account_id,
        "subaccountId": None,
    }


@get(
    "/api/v1/position",
    opt={"instruction": "positionQuery"},
    tags=["perpetuals"],
    summary="Open perpetual positions of the account (symbol optional)",
)
async def positions(
    request: Request[Any, Any, Any], symbol: str | None = None, marketType: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    wanted = gateway.market(symbol).market_id if symbol is not None else None
    if marketType not in (None, "PERP"):
        return json_response([])
    markets = gateway.markets()
    found = gateway.read(lambda state: _positions(state, account_id))
    return json_response(
        [
            position_object(markets[one.market_id], one, account_id)
            for one in found
            if wanted is None or one.market_id == wanted
        ]
    )


def _perp_ids(request: Request[Any, Any, Any], symbol: str | None) -> list[int]:
    """Market ids of the perpetuals asked for: one symbol (a spot one gives none) or all."""
    gateway = gateway_of(request)
    if symbol is not None:
        market_id = gateway.market(symbol).market_id
        return gateway.read(lambda state: [market_id] if state.markets[market_id].kind == _PERP else [])
    return gateway.read(lambda state: [market.market_id for market in state.markets if market.kind == _PERP])


@get("/api/v1/markPrices", tags=["perpetuals"], summary="Mark and index prices, last funding rate, next funding time")
async def mark_prices(
    request: Request[Any, Any, Any], symbol: str | None = None, marketType: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    ids = _perp_ids(request, symbol)
    if marketType not in (None, "PERP"):
        return json_response([])

    def read(state: ExchangeState) -> list[tuple[int, int, int, int, int]]:
        return [
            (
                market_id,
                state.markets[market_id].mark_ticks,
                state.markets[market_id].index_ticks,
                state.markets[market_id].funding_rate_e9,
                state.markets[market_id].funding_next_ns,
            )
            for market_id in ids
        ]

    markets = gateway.markets()
    return json_response(
        [
            {
                "symbol": markets[market_id].symbol,
                "markPrice": markets[market_id].price(mark),
                "indexPrice": markets[market_id].price(index),
                "fundingRate": format_decimal(rate_e9, 9),
                "nextFundingTimestamp": fmt.ms(next_ns),
            }
            for market_id, mark, index, rate_e9, next_ns in gateway.read(read)
        ]
    )


@get("/api/v1/openInterest", tags=["perpetuals"], summary="Open interest (sum of long positions) per perpetual")
async def open_interest(request: Request[Any, Any, Any], symbol: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    ids = _perp_ids(request, symbol)
    values, timestamp_ns = gateway.read(
        lambda state: (
            [(market_id, state.markets[market_id].open_interest_steps) for market_id in ids],
            state.timestamp_ns_last,
        )
    )
    markets = gateway.markets()
    return json_response(
        [
            {
                "symbol": markets[market_id].symbol,
                "openInterest": markets[market_id].quantity(steps),
                "timestamp": fmt.ms(timestamp_ns),
            }
            for market_id, steps in values
        ]
    )


def _interval_end_ns(timestamp_ns: int, interval_ns: int) -> int:
    return timestamp_ns - timestamp_ns % interval_ns if interval_ns > 0 else timestamp_ns


def _funding_intervals(request: Request[Any, Any, Any]) -> list[int]:
    return gateway_of(request).read(lambda state: [market.funding_interval_ns for market in state.markets])


@get("/api/v1/fundingRates", tags=["perpetuals"], summary="Funding rate history of a perpetual, newest first")
async def funding_rates(
    request: Request[Any, Any, Any], symbol: str, limit: str | None = None, offset: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    market = gateway.market(symbol)
    count = bounded_int(limit, "limit", 100, 1, 1000)
    skip = bounded_int(offset, "offset", 0, 0, 2**62)
    interval_ns = _funding_intervals(request)[market.market_id]
    await gateway.history_caught_up()
    return json_response(
        [
            {
                "symbol": market.symbol,
                "fundingRate": format_decimal(one.rate_e9, 9),
                "intervalEndTimestamp": fmt.iso(_interval_end_ns(one.timestamp_ns, interval_ns)),
            }
            for one in gateway.history.funding_rounds(market.market_id, count, skip)
        ]
    )


@get(
    "/wapi/v1/history/funding",
    opt={"instruction": "fundingHistoryQueryAll"},
    tags=["perpetuals"],
    summary="The account's funding payments (received > 0, paid < 0), newest first",
)
async def funding_history(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    subaccountId: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    market_id = gateway.market(symbol).market_id if symbol is not None else None
    count = bounded_int(limit, "limit", 100, 1, 1000)
    skip = bounded_int(offset, "offset", 0, 0, 2**62)
    if subaccountId not in (None, "", "0"):
        return json_response([])  # Keel has no subaccounts
    intervals = _funding_intervals(request)
    markets = gateway.markets()
    await gateway.history_caught_up()
    return json_response(
        [
            {
                "userId": account_id,
                "subaccountId": None,
                "symbol": markets[one.market_id].symbol,
                "quantity": markets[one.market_id].quote(one.amount_atomic),
                "fundingRate": format_decimal(one.rate_e9, 9),
                "intervalEndTimestamp": fmt.iso(_interval_end_ns(one.timestamp_ns, intervals[one.market_id])),
            }
            for one in gateway.history.funding_payments(account_id, market_id, count, skip)
        ]
    )


HANDLERS: Final = [positions, mark_prices, open_interest, funding_rates, funding_history]
