"""Borrowing and lending on the wire (spec sections 2.5, 5.4 and 9).

`POST /api/v1/borrowLend` is one `BorrowLend` command (keel/core/lending.py): a Lend
first repays the account's borrow of that asset and lends the rest, a Borrow first
redeems its lend and borrows the rest; it answers 200 with an empty body once durable
(spec 9), a refusal with the engine's code (BORROW_LIMIT for an asset that cannot be
borrowed now, INSUFFICIENT_SUPPLY when the pool is short, INSUFFICIENT_MARGIN,
INSUFFICIENT_FUNDS). Current figures (positions, the markets' rates and totals) are
copied from the engine under the read lock; history (movements, interest, positions
opened and closed) comes from the history views.

Display rules (inferred where the spec is silent):
- A position is a run of an account's lend (or borrow) of one asset, from the command
  that opened it to the one that brought it back to zero; its `positionId` is
  "<account>-<asset id>-<seq of the command that opened it>" (history's opened_seq).
- `netQuantity` is + lent / - borrowed; `netExposureQuantity` is - borrowed (lends have
  no exposure, as upstream says); `netExposureNotional` is its value at the index price
  (the margin asset at face value); `markPrice` is that index price; `imf`/`mmf` are the
  asset's borrow margins (a lend needs none: "0"), as `sqrt` functions of factor 0.
- `cumulativeInterest` is what the position paid (< 0) or earned (> 0), from the views.
- `estLiquidationPrice` of a borrow of a non-margin asset the account is short of: the
  index price at which equity would meet the maintenance requirement if only that
  price moved (linear in the price); otherwise "0".
- Markets list every asset that can be borrowed: state Open, rates as yearly fractions
  (the lend rate is what lenders get now: borrow rate x utilization x (1 - fee)), `fee`
  the exchange's share (the interest spread), `maxUtilization` "1"; Keel has no
  borrow/lend limit or throttle, so `openBorrowLendLimit` and the `throttle*` fields are
  null.
- Interest payments are hourly: `interval` 3600000 (ms), `interestRate` the yearly rate
  of that side (history's rate_e9), `marketSymbol` the asset's spot market against the
  margin asset when there is one (else the asset), `quantity` < 0 paid, > 0 earned.

Imports: keel.core, keel.views, keel.gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post

from keel.core.commands import BorrowLend
from keel.core.lending import HOURS_PER_YEAR, BorrowLendSide, borrow_rate_e9
from keel.core.money import BPS, E9, div_toward_zero, format_decimal
from keel.core.perps import equity_atomic, maintenance_requirement_atomic
from keel.core.state import ExchangeState
from keel.gateway import convert
from keel.gateway import format as fmt
from keel.gateway.context import AssetFormat, Gateway
from keel.gateway.errors import bad_request, raise_if_refused
from keel.gateway.web import JSON, account_of, body_of, gateway_of, json_response, query
from keel.views import BorrowLendKind

SIDES_IN: Final = {"Borrow": int(BorrowLendSide.BORROW), "Lend": int(BorrowLendSide.LEND)}
SIDES_OUT: Final = {value: name for name, value in SIDES_IN.items()}
KINDS_OUT: Final = {
    int(BorrowLendKind.BORROW): "Borrow",
    int(BorrowLendKind.BORROW_REPAY): "BorrowRepay",
    int(BorrowLendKind.LEND): "Lend",
    int(BorrowLendKind.LEND_REDEEM): "LendRedeem",
}
KINDS_IN: Final = {name: value for value, name in KINDS_OUT.items()}
INTERVAL_MS: Final = 3_600_000  # interest is paid hourly (lending.py)
HISTORY_INTERVALS_S: Final = {"1d": 86_400, "1w": 7 * 86_400, "1month": 30 * 86_400, "1year": 365 * 86_400}
_RATE_DECIMALS: Final = 9  # rates are kept in 1e-9


class BorrowLendBody(msgspec.Struct, rename="camel", kw_only=True):
    """POST /api/v1/borrowLend (spec 9): unknown fields are ignored (they were still signed)."""

    symbol: str
    side: str
    quantity: str


@post(
    "/api/v1/borrowLend",
    opt={"instruction": "borrowLendExecute"},
    status_code=200,
    tags=["borrowLend"],
    summary="Borrow or lend an asset (a Lend repays a borrow first, a Borrow redeems a lend first)",
)
async def execute(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), BorrowLendBody, "borrowLend")
    asset = gateway.asset(body.symbol)
    side = SIDES_IN.get(body.side)
    if side is None:
        raise bad_request(f"side must be Borrow or Lend, got {body.side[:32]!r}")
    amount_atomic = convert.positive_amount(body.quantity, asset.decimals, "quantity")
    outcome = await gateway.submit(
        BorrowLend(
            seq=0,
            timestamp_ns=0,
            account_id=account_of(request),
            asset_id=asset.asset_id,
            side=side,
            amount_atomic=amount_atomic,
        )
    )
    raise_if_refused(outcome.events)
    return Response(content=b"", status_code=200, media_type=JSON)


def position_id(account_id: int, asset_id: int, opened_seq: int) -> str:
    return f"{account_id}-{asset_id}-{opened_seq}"


def _position_seq(account_id: int, value: str | None) -> int | None:
    """Return the opened seq a positionId names, -1 for one of another account or malformed."""
    if value is None:
        return None
    parts = value.split("-")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() and len(part) <= 19 for part in parts):
        return -1
    return int(parts[2]) if int(parts[0]) == account_id else -1


@dataclass(frozen=True, slots=True)
class _Held:
    """One asset the account lends or borrows, as copied under the read lock."""

    asset_id: int
    lent_atomic: int
    borrowed_atomic: int
    price_atomic: int  # margin-asset atomic units per whole unit (the index; face value for the margin asset)
    borrow_imf_bps: int
    borrow_mmf_bps: int
    liquidation_price_atomic: int  # 0: none


def _liquidation_price(state: ExchangeState, account_id: int, asset_id: int, equity: int, maintenance: int) -> int:
    """The estimate of the module docstring, in margin-asset atomic units per whole unit (0: none)."""
    account = state.accounts[account_id]
    asset = state.assets[asset_id]
    price = state.index_prices[asset_id]
    borrowed = account.borrowed[asset_id]
    if asset_id == state.margin_asset_id or price <= 0 or not borrowed:
        return 0
    net = account.balances[asset_id] - account.locked[asset_id] + account.lent[asset_id] - borrowed
    if net >= 0:  # it holds what it borrowed: that price alone cannot liquidate it
        return 0
    # equity(p) = E + net x (p - p0) / 10^d; maintenance(p) = M + borrowed x mmf x (p - p0) / 10^d:
    # they meet at p0 + (M - E) x 10^d x BPS / (net x BPS - borrowed x mmf).
    # net < 0, so the denominator is negative: both are negated (display only, toward zero).
    denominator: int = borrowed * asset.borrow_mmf_bps - net * BPS
    numerator: int = (equity - maintenance) * BPS * 10**asset.decimals
    return max(price + div_toward_zero(numerator, denominator), 0)


def _held(state: ExchangeState, account_id: int) -> list[_Held]:
    account = state.accounts.get(account_id)
    if account is None or account_id not in state.lending_accounts:
        return []
    equity = equity_atomic(state, account) if state.margin_asset_id >= 0 else 0
    maintenance = maintenance_requirement_atomic(state, account) if state.margin_asset_id >= 0 else 0
    held = []
    for asset_id, (lent, borrowed) in enumerate(zip(account.lent, account.borrowed, strict=True)):
        if not (lent or borrowed):
            continue
        asset = state.assets[asset_id]
        margin_decimals = state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0
        price = 10**margin_decimals if asset_id == state.margin_asset_id else state.index_prices[asset_id]
        held.append(
            _Held(
                asset_id,
                lent,
                borrowed,
                price,
                asset.borrow_imf_bps,
                asset.borrow_mmf_bps,
                _liquidation_price(state, account_id, asset_id, equity, maintenance),
            )
        )
    return held


def _margin_decimals(gateway: Gateway) -> int:
    return gateway.read(lambda state: state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0)


def _fraction(bps: int) -> str:
    return format_decimal(bps, 4)


@get(
    "/api/v1/borrowLend/positions",
    opt={"instruction": "borrowLendPositionQuery"},
    tags=["borrowLend"],
    summary="The account's open borrow and lend positions",
)
async def positions(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    held, seq = gateway.read(lambda state: (_held(state, account_id), state.seq_last))
    assets = gateway.assets()
    decimals = _margin_decimals(gateway)
    opened: dict[int, tuple[int, int]] = {}  # asset id -> (opened seq, interest paid or earned)
    if held:
        await gateway.history_caught_up(seq)
        for row in gateway.history.borrow_lend_positions(account_id, None, None, True, 1000, 0, False):
            opened[row.asset_id] = (row.opened_seq, row.interest_atomic)
    body = []
    for one in held:
        asset = assets[one.asset_id]
        opened_seq, interest = opened.get(one.asset_id, (0, 0))
        exposure = -one.borrowed_atomic
        notional = one.borrowed_atomic * one.price_atomic // 10**asset.decimals
        imf = one.borrow_imf_bps if one.borrowed_atomic else 0
        mmf = one.borrow_mmf_bps if one.borrowed_atomic else 0
        body.append(
            {
                "id": position_id(account_id, one.asset_id, opened_seq),
                "symbol": asset.symbol,
                "netQuantity": fmt.amount(one.lent_atomic - one.borrowed_atomic, asset.decimals),
                "netExposureQuantity": fmt.amount(exposure, asset.decimals),
                "netExposureNotional": fmt.amount(notional, decimals),
                "markPrice": fmt.amount(one.price_atomic, decimals),
                "imf": _fraction(imf),
                "imfFunction": {"type": "sqrt", "base": _fraction(imf), "factor": "0"},
                "mmf": _fraction(mmf),
                "mmfFunction": {"type": "sqrt", "base": _fraction(mmf), "factor": "0"},
                "cumulativeInterest": fmt.amount(-interest if one.borrowed_atomic else interest, asset.decimals),
                "estLiquidationPrice": fmt.amount(one.liquidation_price_atomic, decimals),
            }
        )
    return json_response(body)


@dataclass(frozen=True, slots=True)
class _Pool:
    """One borrowable asset's pool, as copied under the read lock."""

    asset_id: int
    borrowed_atomic: int
    lent_atomic: int
    rate_e9: int
    spread_bps: int
    optimal_bps: int
    price_atomic: int  # 0: no index price yet


def _pools(state: ExchangeState) -> list[_Pool]:
    borrowed = [0] * len(state.assets)
    lent = [0] * len(state.assets)
    for account_id in state.lending_accounts:  # every account that ever lent or borrowed
        account = state.accounts[account_id]
        for asset_id in range(len(state.assets)):
            borrowed[asset_id] += account.borrowed[asset_id]
            lent[asset_id] += account.lent[asset_id]
    margin_decimals = state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0
    pools = []
    for asset in state.assets:
        if not asset.borrow_imf_bps:
            continue
        asset_id = asset.asset_id
        price = 10**margin_decimals if asset_id == state.margin_asset_id else state.index_prices[asset_id]
        pools.append(
            _Pool(
                asset_id,
                borrowed[asset_id],
                lent[asset_id],
                borrow_rate_e9(state, asset_id, borrowed[asset_id], lent[asset_id]),
                asset.interest_spread_bps,
                asset.optimal_utilization_bps,
                price,
            )
        )
    return pools


def _lend_rate_e9(rate_e9: int, borrowed: int, lent: int, spread_bps: int) -> int:
    """What lenders get now as a yearly rate: borrow rate x utilization x (1 - spread), rounded down."""
    if lent <= 0:
        return 0
    return rate_e9 * borrowed * (BPS - spread_bps) // (lent * BPS)


@get("/api/v1/borrowLend/markets", tags=["borrowLend"], summary="Every borrowable asset's pool, rates and utilization")
async def markets(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    pools, timestamp_ns = gateway.read(lambda state: (_pools(state), state.timestamp_ns_last))
    assets = gateway.assets()
    decimals = _margin_decimals(gateway)
    body = []
    for pool in pools:
        asset = assets[pool.asset_id]
        lent, borrowed = pool.lent_atomic, pool.borrowed_atomic
        body.append(
            {
                "symbol": asset.symbol,
                "state": "Open",
                "assetMarkPrice": fmt.amount(pool.price_atomic, decimals) if pool.price_atomic else None,
                "borrowInterestRate": format_decimal(pool.rate_e9, _RATE_DECIMALS),
                "lendInterestRate": format_decimal(
                    _lend_rate_e9(pool.rate_e9, borrowed, lent, pool.spread_bps), _RATE_DECIMALS
                ),
                "borrowedQuantity": fmt.amount(borrowed, asset.decimals),
                "lentQuantity": fmt.amount(lent, asset.decimals),
                "utilization": fmt.ratio(borrowed, lent) if lent else "0",
                "optimalUtilization": _fraction(pool.optimal_bps),
                "maxUtilization": "1",
                "openBorrowLendLimit": None,
                "throttleUtilizationThreshold": None,
                "throttleUtilizationBound": None,
                "throttleUpdateFraction": None,
                "fee": _fraction(pool.spread_bps),
                "stepSize": fmt.amount(1, asset.decimals),
                "timestamp": fmt.iso(timestamp_ns),
            }
        )
    return json_response(body)


@get(
    "/api/v1/borrowLend/markets/history",
    tags=["borrowLend"],
    summary="Hourly rates and totals of borrowable assets over a day, week, month or year, newest first",
)
async def markets_history(
    request: Request[Any, Any, Any], interval: str | None = None, symbol: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    if interval not in HISTORY_INTERVALS_S:
        raise bad_request(f"interval must be one of {', '.join(HISTORY_INTERVALS_S)}")
    chosen = [gateway.asset(symbol)] if symbol is not None else gateway.assets()
    spreads = gateway.read(lambda state: [asset.interest_spread_bps for asset in state.assets])
    since_ns = gateway.clock_ns() - HISTORY_INTERVALS_S[interval] * 1_000_000_000
    await gateway.history_caught_up()
    body = []
    for asset in chosen:
        for one in gateway.history.interest_rounds(asset.asset_id, since_ns, 1000):
            body.append(
                {
                    "symbol": asset.symbol,
                    "borrowInterestRate": format_decimal(one.rate_e9, _RATE_DECIMALS),
                    "lendInterestRate": format_decimal(
                        _lend_rate_e9(one.rate_e9, one.borrowed_atomic, one.lent_atomic, spreads[asset.asset_id]),
                        _RATE_DECIMALS,
                    ),
                    "borrowedQuantity": fmt.amount(one.borrowed_atomic, asset.decimals),
                    "lentQuantity": fmt.amount(one.lent_atomic, asset.decimals),
                    "utilization": fmt.ratio(one.borrowed_atomic, one.lent_atomic) if one.lent_atomic else "0",
                    "timestamp": fmt.iso(one.timestamp_ns),
                }
            )
    return json_response(body)


def page(limit: str | None, offset: str | None, sort_direction: str | None) -> tuple[int, int, bool]:
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, 2**62)
    if sort_direction not in (None, "Asc", "Desc"):
        raise bad_request("sortDirection must be Asc or Desc")
    return count, skip, sort_direction == "Asc"


def _asset_id(gateway: Gateway, symbol: str | None) -> int | None:
    return gateway.asset(symbol).asset_id if symbol is not None else None


@get(
    "/wapi/v1/history/borrowLend",
    opt={"instruction": "borrowHistoryQueryAll"},
    tags=["borrowLend"],
    summary="The account's borrows, repayments, lends and redemptions, newest first",
)
async def movement_history(
    request: Request[Any, Any, Any],
    type: str | None = None,
    sources: str | None = None,
    positionId: str | None = None,
    symbol: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count, skip, ascending = page(limit, offset, sortDirection)
    kind = None
    if type is not None:
        kind = KINDS_IN.get(type)
        if kind is None:
            raise bad_request(f"type must be one of {', '.join(KINDS_IN)}")
    asset_id = _asset_id(gateway, symbol)
    position_seq = _position_seq(account_id, positionId)
    if position_seq == -1 or (sources is not None and "Manual" not in sources.split(",")):
        return json_response([])  # another account's position, or a source Keel never has
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.borrow_lend_moves(account_id, asset_id, kind, position_seq, count, skip, ascending)
    return json_response(
        [
            {
                "eventType": KINDS_OUT[one.kind],
                "positionId": position_id(account_id, one.asset_id, one.position_seq),
                "positionQuantity": fmt.amount(one.quantity_after_atomic, assets[one.asset_id].decimals),
                "quantity": fmt.amount(one.amount_atomic, assets[one.asset_id].decimals),
                "source": "Manual",
                "symbol": assets[one.asset_id].symbol,
                "timestamp": fmt.iso(one.timestamp_ns),
                "spotMarginOrderId": None,
            }
            for one in found
        ]
    )


def _market_symbol(gateway: Gateway, asset: AssetFormat) -> str:
    """The asset's spot market against the margin asset, else the asset (module docstring)."""
    margin = gateway.read(lambda state: state.margin_asset_id)
    for market in gateway.markets():
        if market.base_asset_id == asset.asset_id and market.quote_asset_id == margin and "PERP" not in market.symbol:
            return market.symbol
    return asset.symbol


@get(
    "/wapi/v1/history/interest",
    opt={"instruction": "interestHistoryQueryAll"},
    tags=["borrowLend"],
    summary="The account's hourly interest: paid on borrows (< 0), earned on lends (> 0), newest first",
)
async def interest_history(
    request: Request[Any, Any, Any],
    asset: str | None = None,
    symbol: str | None = None,
    positionId: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    source: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count, skip, ascending = page(limit, offset, sortDirection)
    if source not in (None, "BorrowLend", "UnrealizedPnl"):
        raise bad_request("source must be BorrowLend or UnrealizedPnl")
    asset_id = _asset_id(gateway, asset if asset is not None else symbol)
    position_seq = _position_seq(account_id, positionId)
    if position_seq == -1 or source == "UnrealizedPnl":
        return json_response([])  # Keel pays no interest on unrealized PnL
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.interest_payments(account_id, asset_id, position_seq, count, skip, ascending)
    return json_response(
        [
            {
                "paymentType": "Borrow" if one.amount_atomic < 0 else "Lend",
                "interestRate": format_decimal(one.rate_e9, _RATE_DECIMALS),
                "interval": INTERVAL_MS,
                "marketSymbol": _market_symbol(gateway, assets[one.asset_id]),
                "positionId": position_id(account_id, one.asset_id, one.position_seq),
                "quantity": fmt.amount(one.amount_atomic, assets[one.asset_id].decimals),
                "symbol": assets[one.asset_id].symbol,
                "timestamp": fmt.iso(one.timestamp_ns),
            }
            for one in found
        ]
    )


@get(
    "/wapi/v1/history/borrowLend/positions",
    opt={"instruction": "borrowPositionHistoryQueryAll"},
    tags=["borrowLend"],
    summary="The account's borrow and lend positions, open and closed, newest first",
)
async def position_history(
    request: Request[Any, Any, Any],
    symbol: str | None = None,
    side: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    sortDirection: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    state = query(request, "state")  # (`state` is a name Litestar keeps for itself)
    count, skip, ascending = page(limit, offset, sortDirection)
    side_number = None
    if side is not None:
        side_number = SIDES_IN.get(side)
        if side_number is None:
            raise bad_request("side must be Borrow or Lend")
    if state not in (None, "Open", "Closed"):
        raise bad_request("state must be Open or Closed")
    is_open = None if state is None else state == "Open"
    asset_id = _asset_id(gateway, symbol)
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.borrow_lend_positions(account_id, asset_id, side_number, is_open, count, skip, ascending)
    return json_response(
        [
            {
                "positionId": position_id(account_id, one.asset_id, one.opened_seq),
                "quantity": fmt.amount(one.quantity_atomic, assets[one.asset_id].decimals),
                "symbol": assets[one.asset_id].symbol,
                "source": "Manual",
                "cumulativeInterest": fmt.amount(
                    -one.interest_atomic if one.side == BorrowLendSide.BORROW else one.interest_atomic,
                    assets[one.asset_id].decimals,
                ),
                "avgInterestRate": format_decimal(
                    one.rate_e9_sum // one.interest_rounds if one.interest_rounds else 0, _RATE_DECIMALS
                ),
                "side": SIDES_OUT[one.side],
                "createdAt": fmt.iso(one.opened_ns),
            }
            for one in found
        ]
    )


assert E9 == 10**_RATE_DECIMALS
assert HOURS_PER_YEAR * INTERVAL_MS == 365 * 86_400_000
HANDLERS: Final = [execute, positions, markets, markets_history, movement_history, interest_history, position_history]
BODIES: Final = {("/api/v1/borrowLend", "post"): BorrowLendBody}
