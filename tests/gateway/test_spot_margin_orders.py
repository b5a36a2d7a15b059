"""Automatic borrowing of spot orders through a real `keel serve`: ccxt's backpack class
passes `autoBorrow` and `autoBorrowRepay` through createOrder's params unchanged; the
borrow they make shows in GET /api/v1/borrowLend/positions, and a perpetual order with
autoBorrow is a 400 that changes nothing.

Default keel.toml: USDC is borrowable; SOL_USDC charges 2 bps to makers and 5 to takers;
a perpetual makes USDC the margin asset. Amounts are hand-computed from those fees."""

from __future__ import annotations

from typing import Any

import ccxt
from gateway_support import Api, Key, error_of


def signed(api: Api, key: Key, method: str, path: str, instruction: str, **params: Any) -> Any:
    answer = api.signed(key, method, path, instruction, params or None)
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else None


def client(api: Api, key: Key) -> ccxt.backpack:
    exchange = ccxt.backpack(
        {"apiKey": key.api_key, "secret": key.secret, "urls": {"api": {"public": api.url, "private": api.url}}}
    )
    exchange.load_markets()
    return exchange


def positions(api: Api, key: Key) -> list[tuple[str, str]]:
    found = signed(api, key, "GET", "/api/v1/borrowLend/positions", "borrowLendPositionQuery")
    return [(one["symbol"], one["netQuantity"]) for one in found]


def test_a_spot_buy_with_auto_borrow_through_ccxt_borrows_and_a_sell_with_auto_borrow_repay_repays(api: Api) -> None:
    signed(api, api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", prices="SOL=100")
    lender = api.account(USDC="10000")
    seller = api.account(SOL="10")
    bidder = api.account(USDC="1000")
    buyer = api.account(USDC="100")
    lent = api.signed(
        lender,
        "POST",
        "/api/v1/borrowLend",
        "borrowLendExecute",
        {"symbol": "USDC", "side": "Lend", "quantity": "10000"},
    )
    assert lent.status_code == 200, lent.text
    offered = api.order(seller, symbol="SOL_USDC", side="Ask", orderType="Limit", price="100", quantity="5")
    assert offered.status_code == 200, offered.text

    buyer_client = client(api, buyer)
    bought = buyer_client.create_order("SOL/USDC", "limit", "buy", 5, 100, {"autoBorrow": True})
    assert bought["status"] == "closed" and bought["filled"] == 5
    # The hold is 500 USDC plus the taker fee bound 0.25 and one atomic unit (an order that
    # may rest after taking pays two roundings): 500.250001. 100 are the buyer's own, so
    # 400.250001 are borrowed; the fee is 0.25, and 0.000001 is left.
    assert positions(api, buyer) == [("USDC", "-400.250001")]
    balances = api.balances(buyer)
    assert (balances["SOL"]["available"], balances["USDC"]["available"]) == ("5", "0.000001")

    bid = api.order(bidder, symbol="SOL_USDC", side="Bid", orderType="Limit", price="110", quantity="2")
    assert bid.status_code == 200, bid.text
    sold = buyer_client.create_order("SOL/USDC", "limit", "sell", 2, 110, {"autoBorrowRepay": True})
    assert sold["status"] == "closed"
    # 220 USDC less the 0.11 taker fee come in and repay 219.89 of the borrow
    assert positions(api, buyer) == [("USDC", "-180.360001")]
    assert api.balances(buyer)["USDC"]["available"] == "0.000001"


def test_auto_borrow_on_a_perpetual_is_refused_and_changes_nothing(api: Api) -> None:
    key = api.account(USDC="100")
    before = api.balances(key)
    refused = api.order(
        key, symbol="SOL_USDC_PERP", side="Bid", orderType="Limit", price="99", quantity="1", autoBorrow=True
    )
    assert error_of(refused) == (400, "INVALID_CLIENT_REQUEST"), refused.text
    assert "is a perpetual" in refused.json()["message"]
    assert api.balances(key) == before
    assert api.open_orders(key) == []
    assert positions(api, key) == []
