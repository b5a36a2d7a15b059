"""Perpetuals on the wire: positions, mark prices, funding rates, open interest, funding,
position and settlement history.

Spec sections 6, 9 and 9.1. Current figures (positions, marks, open interest) are copied
from the engine under the read lock and formatted outside it; every figure comes from
the core's own functions (keel.core.perps), the shell only divides for display.
Funding rates and payments, positions past and present, and settlements come from the
history views (funding_rounds, funding_payments, perp_positions, settlements), so they
survive restarts.

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

Position history (`/wapi/v1/history/position`, Backpack's PositionHistoryRow; the spec
names the row only, its fields follow Backpack's published schema):
- A row is one run of a position from flat to flat; a fill through zero closes one and
  opens the next. Its `id` is "<account>-<market>-<seq>-<event index>" of the change that
  opened it (one command can open several runs); settlements name it as `positionId`.
- `entryPrice` is the average price of everything that opened or added to it, and
  `closingPrice` of everything that reduced or closed it (null before anything did);
  `closedVolume` and `liquidated` (closed by its account's liquidation: close-out trades
  and auto-deleveraging) are base quantities.
- `cumulativePnlRealized` is before fees; `fees` are its fills' fees (a flip's fill
  counts for the run it closed); `fundingQuantity` received > 0, paid < 0.
- `netQuantity`, `netCost` are now (0 once closed); `netExposureQuantity` is |netQuantity|
  (open orders are not counted, unlike /api/v1/position); `markPrice` is the market's mark
  now, and `netExposureNotional`, `unrealizedPnl` and `imf` are at it.
- `interest` and `liquidationFees` are "0" (Keel charges neither on positions);
  `accountLeverage` is null (no account leverage setting); `openedAt`, `closedAt` ISO.

Settlement history (`/wapi/v1/history/settlement`): every balance change appears in
exactly one history endpoint (spec 9), so settlements are what no other shows: realized
PnL (`RealizePnl`, a trade's, before fees: the fee is in the fill), auto-deleveraging
(`BackstopAdlLiquidation`: a transfer's realized PnL, or a share of a liquidated account's
deficit) and the insurance fund covering a deficit (`BackstopLiquidityFundProceeds`).
Funding (`FundingPayment`) is in the funding history and fees (`TradingFees`) in fills, so
those source filters, and the `Culled*` ones Keel has no counterpart of, answer [].
`engineSequence` is the log seq of the command; `positionId` the run it settled (null for
a deficit's cover).

Imports: keel.core, keel.views, keel.gateway.
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
from keel.gateway.borrow_lend import page
from keel.gateway.convert import bounded_int
from keel.gateway.errors import bad_request
from keel.gateway.format import MarketFormat
from keel.gateway.web import account_of, gateway_of, json_response, query
from keel.views import NO_POSITION, PerpPosition, SettlementSource

_PERP = int(MarketKind.PERP)
_EXTRA_DECIMALS: Final = 4  # display precision of derived prices beyond the quote asset's
# Backpack's market types (spec 3): positions exist in perpetuals only.
BACKPACK_MARKET_TYPES: Final = ("SPOT", "PERP", "IPERP", "DATED", "PREDICTION", "RFQ")
POSITION_STATES: Final = {"Open": True, "Closed": False}
SETTLEMENT_SOURCES_OUT: Final = {
    int(SettlementSource.REALIZED_PNL): "RealizePnl",
    int(SettlementSource.ADL): "BackstopAdlLiquidation",
    int(SettlementSource.INSURANCE): "BackstopLiquidityFundProceeds",
    int(SettlementSource.COLLATERAL): "CollateralConversion",  # Keel's name (docs/api.md)
    int(SettlementSource.ADJUSTMENT): "Adjustment",  # Keel's name (docs/api.md)
}
# Backpack's source filters and the sources each selects (module docstring).
SETTLEMENT_FILTERS: Final[dict[str, tuple[int, ...]]] = {
    "RealizePnl": (int(SettlementSource.REALIZED_PNL),),
    "BackstopLiquidation": (
        int(SettlementSource.ADL),
        int(SettlementSource.INSURANCE),
        int(SettlementSource.COLLATERAL),
    ),
    "CollateralConversion": (int(SettlementSource.COLLATERAL),),
    "Adjustment": (int(SettlementSource.ADJUSTMENT),),
    "CulledBorrowInterest": (),
    "CulledRealizePnl": (),
    "CulledRealizePnlBookUtilization": (),
    "FundingPayment": (),  # in /wapi/v1/history/funding
    "TradingFees": (),  # in /wapi/v1/history/fills
    "TradingFeesSystem": (),
}


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


def history_position_id(account_id: int, market_id: int, opened_seq: int, opened_index: int) -> str:
    """The id of one run of a position (module docstring)."""
    return f"{account_id}-{market_id}-{opened_seq}-{opened_index}"


def _history_row(market: MarketFormat, one: PerpPosition, figures: tuple[int, int, int]) -> dict[str, Any]:
    """A PositionHistoryRow (module docstring); `figures` are the market's mark, imf base and factor."""
    mark, imf_base_e9, imf_factor_e9 = figures
    size = one.size_steps
    notional_atomic = abs(size) * mark * market.lot_atomic
    is_open = one.closed_seq == NO_POSITION
    return {
        "id": history_position_id(one.account_id, one.market_id, one.opened_seq, one.opened_index),
        "symbol": market.symbol,
        "netQuantity": market.quantity(size),
        "netExposureQuantity": market.quantity(abs(size)),
        "netExposureNotional": market.quote(notional_atomic),
        "netCost": market.quote(one.cost_atomic),
        "markPrice": market.price(mark),
        "entryPrice": _price_of(market, one.opened_notional_atomic, one.opened_steps),
        "cumulativePnlRealized": market.quote(one.realized_pnl_atomic),
        "unrealizedPnl": market.quote(size * mark * market.lot_atomic - one.cost_atomic),
        "fundingQuantity": market.quote(one.funding_atomic),
        "interest": "0",
        "liquidated": market.quantity(one.liquidated_steps),
        "imf": format_decimal(
            margin_fraction_e9(imf_base_e9, imf_factor_e9, notional_atomic, market.quote_decimals), 9
        ),
        "fees": market.quote(one.fees_atomic),
        "state": "Open" if is_open else "Closed",
        "closedVolume": market.quantity(one.closed_steps),
        "liquidationFees": "0",
        "closingPrice": _price_of(market, one.closed_notional_atomic, one.closed_steps) if one.closed_steps else None,
        "accountLeverage": None,
        "openedAt": fmt.iso(one.opened_ns),
        "closedAt": None if is_open else fmt.iso(one.closed_ns),
    }


@get(
    "/wapi/v1/history/position",
    opt={"instruction": "positionHistoryQueryAll"},
    tags=["perpetuals"],
    summary="The account's perpetual positions, open and closed, one row per run from flat to flat, newest first",
)
async def position_history(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    marketType: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    state = query(request, "state")  # (`state` is a name Litestar keeps for itself)
    count, skip, ascending = page(limit, offset, sortDirection)
    if state is not None and state not in POSITION_STATES:
        raise bad_request("state must be Open or Closed")
    if marketType is not None and marketType not in BACKPACK_MARKET_TYPES:
        raise bad_request(f"marketType must be one of {', '.join(BACKPACK_MARKET_TYPES)}")
    market_id = gateway.market(symbol).market_id if symbol is not None else None
    if marketType not in (None, "PERP"):
        return json_response([])
    is_open = POSITION_STATES[state] if state is not None else None
    markets = gateway.markets()
    figures = gateway.read(
        lambda state: [(market.mark_ticks, market.imf_base_e9, market.imf_factor_e9) for market in state.markets]
    )
    await gateway.history_caught_up()
    found = gateway.history.perp_positions(account_id, market_id, is_open, count, skip, ascending)
    return json_response([_history_row(markets[one.market_id], one, figures[one.market_id]) for one in found])


@get(
    "/wapi/v1/history/settlement",
    opt={"instruction": "settlementHistoryQueryAll"},
    tags=["perpetuals"],
    summary="The account's settlements: realized PnL and liquidation deficits covered, newest first",
)
async def settlement_history(
    request: Request[Any, Any, Any],
    source: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count, skip, ascending = page(limit, offset, sortDirection)
    sources = None
    if source is not None:
        sources = SETTLEMENT_FILTERS.get(source)
        if sources is None:
            raise bad_request(f"source must be one of {', '.join(SETTLEMENT_FILTERS)}")
        if not sources:
            return json_response([])  # shown by another endpoint, or not a Keel settlement
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.settlements(account_id, sources, count, skip, ascending)
    return json_response(
        [
            {
                "quantity": fmt.amount(one.amount_atomic, assets[one.asset_id].decimals),
                "symbol": assets[one.asset_id].symbol,  # Keel addition: not every settlement is USDC
                "source": SETTLEMENT_SOURCES_OUT[one.source],
                "timestamp": fmt.iso(one.timestamp_ns),
                "userId": account_id,
                "subaccountId": None,
                "positionId": (
                    history_position_id(account_id, one.market_id, one.position_seq, one.position_index)
                    if one.position_seq != NO_POSITION
                    else None
                ),
                "engineSequence": one.seq,
            }
            for one in found
        ]
    )


HANDLERS: Final = [
    positions,
    mark_prices,
    open_interest,
    funding_rates,
    funding_history,
    position_history,
    settlement_history,
]
