"""Signed account endpoints: balances, account settings, collateral (spec sections 6, 9).

Balances are read from the engine under the read lock: available = balance - locked,
locked = what open orders hold, staked is always "0" (ccxt requires the key). Lent
amounts are not in the balance (they are in the lending pool) and borrowed amounts are
(the pool paid them out), as in the ledger.

Collateral (spec 9, inferred where silent) shows the margin rule of keel/core/perps.py:
per asset, `totalQuantity` is balance + lent - borrowed, `lendQuantity` what is lent,
`openOrderQuantity` what orders lock, `availableQuantity` balance - locked;
`collateralValue` is (balance - locked + lent - borrowed) at the index price, weighted
by the asset's `collateralWeight` when positive (perps.collateral_atomic, whose sum it
is); `assetMarkPrice` the index price (the margin asset: 1), null without one.
`netEquity` is the account's equity (collateral plus unrealized PnL), `netEquityLocked`
its initial margin requirement (positions, open orders, borrows), `netEquityAvailable`
the difference; `borrowLiability` and `liabilitiesValue` the value of its borrows;
`netExposureFutures` its perpetual positions' notional at the mark; `imf` and `mmf` its
initial and maintenance requirements as fractions of that exposure plus the borrows'
value, and `marginFraction` equity over it (null without exposure).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, patch

from keel.core import limits
from keel.core.commands import SetLeverageLimit
from keel.core.money import BPS, E9, div_floor
from keel.core.perps import (
    collateral_atomic,
    equity_atomic,
    initial_requirement_atomic,
    maintenance_requirement_atomic,
    unrealized_pnl_atomic,
)
from keel.core.state import ExchangeState
from keel.gateway import convert
from keel.gateway import format as fmt
from keel.gateway.errors import bad_request, raise_if_refused
from keel.gateway.web import JSON, account_of, body_of, gateway_of, json_response


def _balances(state: ExchangeState, account_id: int) -> list[tuple[int, int, int]]:
    account = state.accounts.get(account_id)
    if account is None:
        return []
    return [
        (asset_id, balance, locked)
        for asset_id, (balance, locked) in enumerate(zip(account.balances, account.locked, strict=True))
    ]


@get("/api/v1/capital", opt={"instruction": "balanceQuery"}, tags=["account"], summary="Balances by asset")
async def capital(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    rows = gateway.read(lambda state: _balances(state, account_id))
    assets = gateway.assets()
    body = {}
    for asset_id, balance, locked in rows:
        if balance or locked:
            decimals = assets[asset_id].decimals
            body[assets[asset_id].symbol] = {
                "available": fmt.amount(balance - locked, decimals),
                "locked": fmt.amount(locked, decimals),
                "staked": "0",
            }
    return json_response(body)


@dataclass(frozen=True, slots=True)
class _AssetFigures:
    asset_id: int
    balance_atomic: int
    locked_atomic: int
    lent_atomic: int
    borrowed_atomic: int
    price_atomic: int  # margin-asset atomic units per whole unit; 0: no index price
    weight_bps: int
    value_atomic: int  # its part of the collateral (perps.collateral_atomic)


@dataclass(frozen=True, slots=True)
class _Collateral:
    assets: list[_AssetFigures]
    margin_decimals: int
    equity_atomic: int
    initial_atomic: int
    maintenance_atomic: int
    unrealized_atomic: int
    futures_atomic: int  # perpetual notional at the mark
    borrows_atomic: int  # the borrows' value


def _collateral(state: ExchangeState, account_id: int) -> _Collateral | None:
    account = state.accounts.get(account_id)
    margin = state.margin_asset_id
    if account is None:
        return None
    margin_decimals = state.assets[margin].decimals if margin >= 0 else 0
    figures = []
    borrows = 0
    for asset in state.assets:
        asset_id = asset.asset_id
        balance, locked = account.balances[asset_id], account.locked[asset_id]
        lent, borrowed = account.lent[asset_id], account.borrowed[asset_id]
        if not (balance or locked or lent or borrowed):
            continue
        price = 10**margin_decimals if asset_id == margin else state.index_prices[asset_id]
        amount = balance - locked + lent - borrowed
        # As perps.collateral_atomic: at the index, weighted when positive, nothing without a price.
        value = div_floor(amount * price, 10**asset.decimals) if price and margin >= 0 else 0
        if value > 0:
            value = value * asset.collateral_weight_bps // BPS
        borrows += borrowed * price // 10**asset.decimals
        figures.append(
            _AssetFigures(asset_id, balance, locked, lent, borrowed, price, asset.collateral_weight_bps, value)
        )
    if margin < 0:  # no perpetual listed: nothing is collateral yet
        return _Collateral(figures, margin_decimals, 0, 0, 0, 0, 0, borrows)
    assert sum(one.value_atomic for one in figures) == collateral_atomic(state, account)
    unrealized = futures = 0
    for market_id, position in account.positions.items():
        if position.size_steps:
            market = state.markets[market_id]
            unrealized += unrealized_pnl_atomic(position, market)
            futures += abs(position.size_steps) * market.mark_ticks * market.lot_atomic
    return _Collateral(
        figures,
        margin_decimals,
        equity_atomic(state, account),
        initial_requirement_atomic(state, account),
        maintenance_requirement_atomic(state, account),
        unrealized,
        futures,
        borrows,
    )


@get(
    "/api/v1/capital/collateral",
    opt={"instruction": "collateralQuery"},
    tags=["account"],
    summary="Collateral: each asset's value as margin (lends and borrows included), equity and requirements",
)
async def capital_collateral(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    found = gateway.read(lambda state: _collateral(state, account_id))
    assets = gateway.assets()
    zero = "0"
    if found is None:
        found = _Collateral([], 0, 0, 0, 0, 0, 0, 0)
    decimals = found.margin_decimals
    entries = []
    for one in found.assets:
        asset_decimals = assets[one.asset_id].decimals
        total = one.balance_atomic + one.lent_atomic - one.borrowed_atomic
        entries.append(
            {
                "symbol": assets[one.asset_id].symbol,
                "assetMarkPrice": fmt.amount(one.price_atomic, decimals) if one.price_atomic else None,
                "totalQuantity": fmt.amount(total, asset_decimals),
                "balanceNotional": fmt.amount(total * one.price_atomic // 10**asset_decimals, decimals)
                if one.price_atomic
                else None,
                "collateralWeight": fmt.amount(one.weight_bps, 4),
                "collateralValue": fmt.amount(one.value_atomic, decimals),
                "openOrderQuantity": fmt.amount(one.locked_atomic, asset_decimals),
                "lendQuantity": fmt.amount(one.lent_atomic, asset_decimals),
                "availableQuantity": fmt.amount(one.balance_atomic - one.locked_atomic, asset_decimals),
            }
        )
    exposure = found.futures_atomic + found.borrows_atomic
    assets_value = sum(one.value_atomic for one in found.assets if one.value_atomic > 0)
    return json_response(
        {
            "assetsValue": fmt.amount(assets_value, decimals),
            "borrowLiability": fmt.amount(found.borrows_atomic, decimals),
            "collateral": entries,
            "imf": fmt.ratio(found.initial_atomic, exposure) if exposure else zero,
            "mmf": fmt.ratio(found.maintenance_atomic, exposure) if exposure else zero,
            "marginFraction": fmt.ratio(found.equity_atomic, exposure) if exposure else None,
            "netEquity": fmt.amount(found.equity_atomic, decimals),
            "netEquityAvailable": fmt.amount(found.equity_atomic - found.initial_atomic, decimals),
            "netEquityLocked": fmt.amount(found.initial_atomic, decimals),
            "netExposureFutures": fmt.amount(found.futures_atomic, decimals),
            "pnlUnrealized": fmt.amount(found.unrealized_atomic, decimals),
            "liabilitiesValue": fmt.amount(found.borrows_atomic, decimals),
            "unsettledEquity": zero,
        }
    )


def _settings(state: ExchangeState, account_id: int) -> tuple[int, int, int]:
    """(maker fee bps, taker fee bps, leverage limit): the account's own limit, or with none
    the most the perpetuals' initial margin allows (1 / the smallest base fraction)."""
    markets = state.markets
    if not markets:
        return 0, 0, 1
    account = state.accounts.get(account_id)
    leverage = account.leverage_limit if account is not None else 0
    if not leverage:
        fractions = [market.imf_base_e9 for market in markets if market.imf_base_e9 > 0]
        leverage = min(E9 // min(fractions), limits.leverage_limit_max) if fractions else 1
    maker = max(market.fee_maker_bps for market in markets)
    taker = max(market.fee_taker_bps for market in markets)
    return maker, taker, leverage


@get("/api/v1/account", opt={"instruction": "accountQuery"}, tags=["account"], summary="Account settings and fees")
async def account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """`leverageLimit` is the account's own limit (PATCH), or with none the most that the
    perpetuals' initial margin allows."""
    account_id = account_of(request)
    maker_bps, taker_bps, leverage = gateway_of(request).read(lambda state: _settings(state, account_id))
    return json_response(
        {
            "autoBorrowSettlements": False,
            "autoLend": False,
            "autoRealizePnl": False,
            "autoRepayBorrows": False,
            "borrowLimit": "0",
            "futuresMakerFee": str(maker_bps),
            "futuresTakerFee": str(taker_bps),
            "leverageLimit": str(leverage),
            "limitOrders": limits.orders_open_per_account_max,
            "liquidating": False,
            "positionLimit": "0",
            "spotMakerFee": str(maker_bps),
            "spotTakerFee": str(taker_bps),
            "triggerOrders": limits.triggers_per_account_max,
        }
    )


class AccountUpdateBody(msgspec.Struct, rename="camel", kw_only=True):
    """PATCH /api/v1/account (spec 9): any of the settings; unknown fields are ignored."""

    auto_borrow_settlements: bool | None = None
    auto_lend: bool | None = None
    auto_repay_borrows: bool | None = None
    leverage_limit: str | None = None


@patch(
    "/api/v1/account",
    opt={"instruction": "accountUpdate"},
    status_code=200,
    tags=["account"],
    summary="Update account settings: the leverage limit (a whole number from 1 to 100)",
)
async def account_update(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Only `leverageLimit` is a setting Keel has; turning on automatic borrowing, lending or
    repayment is refused with a clear message (false is accepted: it is how Keel works)."""
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), AccountUpdateBody, "account update")
    for name, value in (
        ("autoBorrowSettlements", body.auto_borrow_settlements),
        ("autoLend", body.auto_lend),
        ("autoRepayBorrows", body.auto_repay_borrows),
    ):
        if value:
            raise bad_request(f"{name} is not available on this exchange: borrow and lend with POST /api/v1/borrowLend")
    if body.leverage_limit is None:
        return Response(content=b"", status_code=200, media_type=JSON)
    text = body.leverage_limit.strip()
    whole, _, fraction = text.partition(".")
    wrong = f"leverageLimit must be a whole number from 1 to {limits.leverage_limit_max}, not {text[:32]!r}"
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 3) or fraction.strip("0"):
        raise bad_request(wrong)
    leverage = int(whole)
    if not 1 <= leverage <= limits.leverage_limit_max:
        raise bad_request(wrong)
    outcome = await gateway.submit(
        SetLeverageLimit(seq=0, timestamp_ns=0, account_id=account_of(request), leverage_limit=leverage)
    )
    raise_if_refused(outcome.events)
    return Response(content=b"", status_code=200, media_type=JSON)


HANDLERS: Final = [capital, capital_collateral, account, account_update]
