"""Signed account endpoints: balances, account settings, collateral (spec sections 6, 9).

Balances are read from the engine under the read lock: available = balance - locked,
locked = what open orders hold, staked is always "0" (ccxt requires the key).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get

from keel.core import limits
from keel.core.state import ExchangeState
from keel.gateway import format as fmt
from keel.gateway.web import account_of, gateway_of, json_response


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


@get(
    "/api/v1/capital/collateral",
    opt={"instruction": "collateralQuery"},
    tags=["account"],
    summary="Collateral summary: spot only, so nothing counts as collateral yet",
)
async def capital_collateral(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    rows = gateway.read(lambda state: _balances(state, account_id))
    assets = gateway.assets()
    entries = []
    for asset_id, balance, locked in rows:
        if not (balance or locked):
            continue
        decimals = assets[asset_id].decimals
        entries.append(
            {
                "symbol": assets[asset_id].symbol,
                "assetMarkPrice": None,
                "totalQuantity": fmt.amount(balance, decimals),
                "balanceNotional": None,
                "collateralWeight": "0",
                "collateralValue": "0",
                "openOrderQuantity": fmt.amount(locked, decimals),
                "lendQuantity": "0",
                "availableQuantity": fmt.amount(balance - locked, decimals),
            }
        )
    zero = "0"
    return json_response(
        {
            "assetsValue": zero,
            "borrowLiability": zero,
            "collateral": entries,
            "imf": zero,
            "mmf": zero,
            "marginFraction": None,
            "netEquity": zero,
            "netEquityAvailable": zero,
            "netEquityLocked": zero,
            "netExposureFutures": zero,
            "pnlUnrealized": zero,
            "liabilitiesValue": zero,
            "unsettledEquity": zero,
        }
    )


def _fees(state: ExchangeState) -> tuple[int, int]:
    markets = state.markets
    if not markets:
        return 0, 0
    return max(market.fee_maker_bps for market in markets), max(market.fee_taker_bps for market in markets)


@get("/api/v1/account", opt={"instruction": "accountQuery"}, tags=["account"], summary="Account settings and fees")
async def account(request: Request[Any, Any, Any]) -> Response[bytes]:
    maker_bps, taker_bps = gateway_of(request).read(_fees)
    return json_response(
        {
            "autoBorrowSettlements": False,
            "autoLend": False,
            "autoRealizePnl": False,
            "autoRepayBorrows": False,
            "borrowLimit": "0",
            "futuresMakerFee": str(maker_bps),
            "futuresTakerFee": str(taker_bps),
            "leverageLimit": "1",
            "limitOrders": limits.orders_open_per_account_max,
            "liquidating": False,
            "positionLimit": "0",
            "spotMakerFee": str(maker_bps),
            "spotTakerFee": str(taker_bps),
            "triggerOrders": 0,
        }
    )


HANDLERS: Final = [capital, capital_collateral, account]
