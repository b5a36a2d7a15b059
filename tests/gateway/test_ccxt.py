"""The real, pinned ccxt `backpack` class (unmodified) against a real `keel serve`.

Pointed at Keel as spec 1.5 says (urls.api.public and private), it loads markets and
currencies, reads balances, places a limit order, sees it among open orders and in the
order book, cancels it, trades against another account and reads its fills, and gets
InsufficientFunds, InvalidOrder (post-only taking) and BadSymbol where Backpack would
give them. A smoke test; the full compatibility suite is separate.
"""

from __future__ import annotations

import ccxt
import pytest
from gateway_support import Api, Key, past_a_minutes_first_second


def _client(api: Api, key: Key) -> ccxt.backpack:
    exchange = ccxt.backpack(
        {"apiKey": key.api_key, "secret": key.secret, "urls": {"api": {"public": api.url, "private": api.url}}}
    )
    exchange.load_markets()
    return exchange


def test_ccxt_drives_the_exchange(api: Api) -> None:
    alice = _client(api, api.account(USDC="1000", SOL="2"))
    bob = _client(api, api.account(USDC="1000", SOL="2"))
    markets = alice.markets
    assert {"SOL/USDC", "BTC/USDC", "ETH/USDC"} <= set(markets)
    sol = markets["SOL/USDC"]
    assert (sol["type"], sol["spot"], sol["active"]) == ("spot", True, True)
    assert (sol["precision"]["price"], sol["precision"]["amount"], sol["limits"]["amount"]["min"]) == (0.01, 0.01, 0.01)
    assert {"USDC", "SOL"} <= set(alice.currencies)
    balance = alice.fetch_balance()
    assert (balance["USDC"]["free"], balance["USDC"]["used"], balance["SOL"]["total"]) == (1000.0, 0.0, 2.0)
    assert alice.fetch_status()["status"] == "ok"

    order = alice.create_order("SOL/USDC", "limit", "buy", 1, 95, {"clientOrderId": 5})
    assert (order["status"], order["clientOrderId"], order["price"], order["amount"]) == ("open", "5", 95.0, 1.0)
    assert [one["id"] for one in alice.fetch_open_orders("SOL/USDC")] == [order["id"]]
    assert alice.fetch_open_order(order["id"], "SOL/USDC")["id"] == order["id"]
    assert alice.fetch_balance()["USDC"]["used"] == pytest.approx(95.019)
    book = bob.fetch_order_book("SOL/USDC")
    assert book["bids"] == [[95.0, 1.0]] and book["asks"] == []
    assert isinstance(book["nonce"], int) and isinstance(book["timestamp"], int)
    cancelled = alice.cancel_order(order["id"], "SOL/USDC")
    assert cancelled["status"] == "canceled"
    assert alice.fetch_open_orders("SOL/USDC") == []
    assert alice.fetch_balance()["USDC"]["used"] == 0.0
    with pytest.raises(ccxt.ExchangeNotAvailable):  # RESOURCE_NOT_FOUND: what Backpack gives too
        alice.cancel_order(order["id"], "SOL/USDC")

    with pytest.raises(ccxt.InsufficientFunds):
        alice.create_order("SOL/USDC", "limit", "buy", 100, 95)
    assert alice.fetch_balance()["USDC"]["free"] == 1000.0

    ask = bob.create_order("SOL/USDC", "limit", "sell", 1, 100)
    with pytest.raises(ccxt.InvalidOrder):
        alice.create_order("SOL/USDC", "limit", "buy", 1, 100, {"postOnly": True})
    bought = alice.create_order("SOL/USDC", "market", "buy", 0.4)
    assert (bought["status"], bought["filled"], bought["cost"]) == ("closed", 0.4, 40.0)
    mine = alice.fetch_my_trades("SOL/USDC")
    assert [(trade["side"], trade["takerOrMaker"], trade["amount"], trade["price"]) for trade in mine] == [
        ("buy", "taker", 0.4, 100.0)
    ]
    assert mine[0]["fee"] == {"cost": 0.02, "currency": "USDC"} or mine[0]["fee"]["cost"] == 0.02
    theirs = bob.fetch_my_trades("SOL/USDC")
    assert [(trade["side"], trade["takerOrMaker"]) for trade in theirs] == [("sell", "maker")]
    public = bob.fetch_trades("SOL/USDC")
    assert [(trade["side"], trade["amount"]) for trade in public] == [("buy", 0.4)]
    ticker = bob.fetch_ticker("SOL/USDC")
    assert (ticker["last"], ticker["baseVolume"], ticker["quoteVolume"]) == (100.0, 0.4, 40.0)
    past_a_minutes_first_second()
    assert bob.fetch_ohlcv("SOL/USDC", "1m")[-1][1:] == [100.0, 100.0, 100.0, 100.0, 0.4]
    assert [one["status"] for one in bob.fetch_orders("SOL/USDC")] == ["open"]
    assert bob.cancel_all_orders("SOL/USDC")[0]["id"] == ask["id"]

    with pytest.raises(ccxt.BadSymbol):
        alice.privatePostApiV1Order(
            {"symbol": "NOPE_USDC", "side": "Bid", "orderType": "Limit", "price": "1", "quantity": "1"}
        )
    with pytest.raises(ccxt.InvalidOrder):  # off the tick, sent raw (ccxt would round it)
        alice.privatePostApiV1Order(
            {"symbol": "SOL_USDC", "side": "Bid", "orderType": "Limit", "price": "95.001", "quantity": "1"}
        )


def test_ccxt_with_a_wrong_secret_raises_authentication_error(api: Api) -> None:
    key = api.account(USDC="1")
    stranger = api.account()
    exchange = _client(api, Key(key.api_key, stranger.secret, 0))
    with pytest.raises(ccxt.AuthenticationError):
        exchange.fetch_balance()
