"""The real, pinned ccxt `backpack` class (unmodified) against a real `keel serve`: the full surface.

One server for this module, over a data directory made by `keel init` whose index prices
were set with `keel index set` before serving (so the perpetuals have a mark price and
accept orders). Every test makes fresh accounts through the operator API and works in a
market of its own, so its figures are exact: markets and currencies; ticker, tickers,
order book, public trades and candles after a known trade; balances; limit orders GTC,
IOC, FOK and post-only (by flag and by timeInForce PO); market orders by amount and by
cost, both sides; a batch; open, closed and cancelled orders through every query ccxt
has; my trades with their maker and taker fees; perpetual orders including reduce-only;
and the errors a client must be able to tell apart: insufficient funds and margin,
post-only taking, fill-or-kill unfillable, an unknown order, a bad signature, an
off-grid quantity and an unknown symbol.

Not here because the server does not have them yet (named, not skipped): positions,
funding, mark and index prices, open interest, deposits, withdrawals and deposit
addresses (their endpoints answer `[]` or NOT_IMPLEMENTED, docs/api.md "Pending").

Two answers differ from what a Backpack-unaware reader might expect and are asserted as
they are, because ccxt 4.5.90's `backpack` has no code that maps to them: an unknown
order raises ExchangeNotAvailable (RESOURCE_NOT_FOUND; no Backpack code gives
OrderNotFound), and post-only taking raises InvalidOrder itself (INVALID_ORDER; no
Backpack code gives OrderImmediatelyFillable).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest
from gateway_support import Api, Key, Server, keel, past_a_minutes_first_second, start_server, stop_server

INDEX_PRICES = ("SOL=150", "BTC=95000", "ETH=3500")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's `keel serve` (overrides conftest's): default markets, index prices set first."""
    data_dir: Path = tmp_path_factory.mktemp("ccxt-full") / "data"
    initialised = keel("init", "--data", str(data_dir))
    assert initialised.returncode == 0, initialised.stderr
    indexed = keel("index", "set", "--data", str(data_dir), *INDEX_PRICES)
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    server = start_server(data_dir, "--key-rate=50", "--key-burst=100", "--ip-rate=0")
    try:
        yield server
    finally:
        code, stdout, stderr = stop_server(server)
        assert code == 0, stderr
        assert "stopped" in stdout


def client(api: Api, key: Key) -> ccxt.backpack:
    """ccxt pointed at Keel exactly as spec 1.5 says; nothing else configured."""
    exchange = ccxt.backpack(
        {"apiKey": key.api_key, "secret": key.secret, "urls": {"api": {"public": api.url, "private": api.url}}}
    )
    exchange.load_markets()
    return exchange


def trader(api: Api, **deposits: str) -> ccxt.backpack:
    return client(api, api.account(**deposits))


def test_markets_currencies_time_and_status(api: Api) -> None:
    exchange = trader(api)
    markets = exchange.markets
    assert set(markets) == {
        "SOL/USDC",
        "BTC/USDC",
        "ETH/USDC",
        "SOL/USDC:USDC",
        "BTC/USDC:USDC",
        "ETH/USDC:USDC",
    }
    spot = markets["BTC/USDC"]
    assert (spot["id"], spot["type"], spot["spot"], spot["swap"], spot["active"]) == (
        "BTC_USDC",
        "spot",
        True,
        False,
        True,
    )
    assert (spot["base"], spot["quote"], spot["settle"]) == ("BTC", "USDC", None)
    assert (spot["precision"]["price"], spot["precision"]["amount"]) == (0.1, 0.00001)
    assert (spot["limits"]["amount"]["min"], spot["limits"]["price"]["min"]) == (0.00001, 0.1)
    perp = markets["SOL/USDC:USDC"]
    assert (perp["id"], perp["type"], perp["swap"], perp["contract"], perp["linear"]) == (
        "SOL_USDC_PERP",
        "swap",
        True,
        True,
        True,
    )
    assert (perp["settle"], perp["contractSize"], perp["active"]) == ("USDC", 1, True)
    assert {market["type"] for market in exchange.fetch_markets()} == {"spot", "swap"}

    currencies = exchange.fetch_currencies()
    assert {"USDC", "SOL", "BTC", "ETH"} <= set(currencies)
    assert (currencies["SOL"]["id"], currencies["SOL"]["code"], currencies["SOL"]["name"]) == ("SOL", "SOL", "SOL")
    assert isinstance(currencies["SOL"]["networks"], dict)  # one per chain the asset is listed on

    # Server time through raw HTTP: ccxt's fetchTime reads element 0 of the bare-integer text
    # body that Backpack (and so Keel) answers, so it returns the first digit (spec section 11).
    server_ms = int(api.get("/api/v1/time").text)
    assert abs(server_ms - time.time() * 1000) < 5_000
    assert exchange.fetch_time() == int(str(server_ms)[0])
    assert exchange.fetch_status()["status"] == "ok"


def test_ticker_tickers_order_book_trades_and_candles(api: Api) -> None:
    seller = trader(api, ETH="5")
    buyer = trader(api, USDC="10000")
    seller.create_order("ETH/USDC", "limit", "sell", 1, 3500)
    seller.create_order("ETH/USDC", "limit", "sell", 1, 3510)
    buyer.create_order("ETH/USDC", "limit", "buy", 0.5, 3490)
    before_ms = buyer.milliseconds()
    taken = buyer.create_order("ETH/USDC", "market", "buy", 0.4)
    assert (taken["status"], taken["filled"], taken["average"]) == ("closed", 0.4, 3500.0)

    book = buyer.fetch_order_book("ETH/USDC", 5)
    assert book["bids"] == [[3490.0, 0.5]]
    assert book["asks"] == [[3500.0, 0.6], [3510.0, 1.0]]
    assert book["symbol"] == "ETH/USDC"
    assert isinstance(book["nonce"], int) and isinstance(book["timestamp"], int)

    trades = buyer.fetch_trades("ETH/USDC")
    assert [(trade["side"], trade["price"], trade["amount"], trade["cost"]) for trade in trades] == [
        ("buy", 3500.0, 0.4, 1400.0)
    ]
    assert trades[0]["timestamp"] >= before_ms - 1_000
    assert buyer.fetch_trades("ETH/USDC", limit=1)[0]["id"] == trades[0]["id"]

    ticker = buyer.fetch_ticker("ETH/USDC")
    assert (ticker["symbol"], ticker["last"], ticker["open"], ticker["high"], ticker["low"]) == (
        "ETH/USDC",
        3500.0,
        3500.0,
        3500.0,
        3500.0,
    )
    assert (ticker["baseVolume"], ticker["quoteVolume"]) == (0.4, 1400.0)
    tickers = buyer.fetch_tickers(["ETH/USDC", "BTC/USDC"])
    assert set(tickers) == {"ETH/USDC", "BTC/USDC"}
    assert tickers["ETH/USDC"]["last"] == 3500.0
    assert set(buyer.fetch_tickers()) == set(buyer.markets)

    past_a_minutes_first_second()
    for timeframe in ("1m", "1h", "1d"):
        candles = buyer.fetch_ohlcv("ETH/USDC", timeframe)
        assert candles[-1][1:] == [3500.0, 3500.0, 3500.0, 3500.0, 0.4], timeframe
    minute = buyer.fetch_ohlcv("ETH/USDC", "1m", since=before_ms - 120_000)
    assert len(minute) == 1
    assert minute[0][0] <= before_ms < minute[0][0] + 60_000 + 1_000


def test_balance_free_used_total(api: Api) -> None:
    exchange = trader(api, USDC="1000", SOL="2.5")
    balance = exchange.fetch_balance()
    assert (balance["USDC"]["free"], balance["USDC"]["used"], balance["USDC"]["total"]) == (1000.0, 0.0, 1000.0)
    assert (balance["SOL"]["free"], balance["SOL"]["total"]) == (2.5, 2.5)
    exchange.create_order("SOL/USDC", "limit", "sell", 1, 180)
    balance = exchange.fetch_balance()
    assert (balance["SOL"]["free"], balance["SOL"]["used"], balance["SOL"]["total"]) == (1.5, 1.0, 2.5)
    assert balance["free"]["SOL"] == 1.5  # the per-kind dictionaries agree
    exchange.cancel_all_orders("SOL/USDC")


def test_limit_orders_gtc_ioc_fok_and_post_only(api: Api) -> None:
    seller = trader(api, SOL="10")
    buyer = trader(api, USDC="5000")
    seller.create_order("SOL/USDC", "limit", "sell", 2, 150)
    seller.create_order("SOL/USDC", "limit", "sell", 1, 151)

    gtc = buyer.create_order("SOL/USDC", "limit", "buy", 1, 140, {"clientOrderId": 7})
    assert (gtc["status"], gtc["timeInForce"], gtc["clientOrderId"], gtc["filled"]) == ("open", "GTC", "7", 0.0)

    ioc = buyer.create_order("SOL/USDC", "limit", "buy", 3, 150, {"timeInForce": "IOC"})
    assert (ioc["timeInForce"], ioc["filled"], ioc["remaining"], ioc["cost"]) == ("IOC", 2.0, 1.0, 300.0)
    assert ioc["status"] == "canceled"  # Backpack "Expired": the unfilled rest of an IOC

    free = buyer.fetch_balance()["USDC"]["free"]
    with pytest.raises(ccxt.InvalidOrder, match="fill-or-kill"):
        buyer.create_order("SOL/USDC", "limit", "buy", 5, 151, {"timeInForce": "FOK"})
    assert buyer.fetch_balance()["USDC"]["free"] == free  # refused: nothing changed
    fok = buyer.create_order("SOL/USDC", "limit", "buy", 1, 151, {"timeInForce": "FOK"})
    assert (fok["timeInForce"], fok["status"], fok["filled"], fok["average"]) == ("FOK", "closed", 1.0, 151.0)

    post = buyer.create_order("SOL/USDC", "limit", "buy", 1, 141, {"postOnly": True})
    assert (post["status"], post["postOnly"]) == ("open", True)
    by_tif = buyer.create_order("SOL/USDC", "limit", "buy", 1, 142, {"timeInForce": "PO"})
    assert (by_tif["status"], by_tif["postOnly"]) == ("open", True)
    seller.create_order("SOL/USDC", "limit", "sell", 1, 152)
    with pytest.raises(ccxt.InvalidOrder) as taking:
        buyer.create_order("SOL/USDC", "limit", "buy", 1, 152, {"postOnly": True})
    # ccxt 4.5.90 maps INVALID_ORDER to InvalidOrder itself: there is no Backpack code for
    # OrderImmediatelyFillable (module docstring). The message says why.
    assert type(taking.value) is ccxt.InvalidOrder
    assert "INVALID_ORDER" in str(taking.value) and "post-only" in str(taking.value).lower()
    open_ids = {order["id"] for order in buyer.fetch_open_orders("SOL/USDC")}
    assert open_ids == {gtc["id"], post["id"], by_tif["id"]}
    buyer.cancel_all_orders("SOL/USDC")
    seller.cancel_all_orders("SOL/USDC")


def test_market_orders_by_amount_and_by_cost_on_both_sides(api: Api) -> None:
    maker = trader(api, USDC="100000", BTC="1")
    taker = trader(api, USDC="10000", BTC="0.1")
    maker.create_order("BTC/USDC", "limit", "sell", 0.01, 95000)
    maker.create_order("BTC/USDC", "limit", "sell", 0.01, 95100)
    maker.create_order("BTC/USDC", "limit", "buy", 0.01, 94000)
    maker.create_order("BTC/USDC", "limit", "buy", 0.01, 93900)

    by_amount = taker.create_order("BTC/USDC", "market", "buy", 0.005)
    assert (by_amount["type"], by_amount["status"], by_amount["filled"], by_amount["average"]) == (
        "market",
        "closed",
        0.005,
        95000.0,
    )
    by_cost = taker.create_order("BTC/USDC", "market", "buy", None, None, {"cost": 1000})
    assert by_cost["status"] == "closed"
    # The budget pays the trades and the 5 bps taker fee; what is left is under one step.
    assert 1000 - 0.5 - 2 * 0.951 <= by_cost["cost"] <= 1000

    sold = taker.create_order("BTC/USDC", "market", "sell", 0.002)
    assert (sold["side"], sold["status"], sold["filled"], sold["average"]) == ("sell", "closed", 0.002, 94000.0)
    sold_for = taker.create_order("BTC/USDC", "market", "sell", None, None, {"cost": 200})
    assert sold_for["side"] == "sell" and sold_for["status"] == "closed"
    assert 199 <= sold_for["cost"] <= 200
    maker.cancel_all_orders("BTC/USDC")


def test_batch_of_orders_and_cancel_all(api: Api) -> None:
    exchange = trader(api, USDC="1000")
    placed = exchange.create_orders(
        [
            {"symbol": "SOL/USDC", "type": "limit", "side": "buy", "amount": 1, "price": 140},
            {
                "symbol": "SOL/USDC",
                "type": "limit",
                "side": "buy",
                "amount": 2,
                "price": 141,
                "params": {"postOnly": True},
            },
        ]
    )
    assert [(order["price"], order["amount"], order["status"]) for order in placed] == [
        (140.0, 1.0, "open"),
        (141.0, 2.0, "open"),
    ]
    assert placed[1]["postOnly"] is True
    cancelled = exchange.cancel_all_orders("SOL/USDC")
    assert {order["id"] for order in cancelled} == {order["id"] for order in placed}
    assert {order["status"] for order in cancelled} == {"canceled"}
    assert exchange.fetch_open_orders("SOL/USDC") == []


def test_open_closed_and_cancelled_orders_through_every_query(api: Api) -> None:
    seller = trader(api, SOL="10")
    buyer = trader(api, USDC="5000")
    resting = seller.create_order("SOL/USDC", "limit", "sell", 1, 160)
    filled = buyer.create_order("SOL/USDC", "limit", "buy", 1, 160)
    assert filled["status"] == "closed"
    cancelled = buyer.create_order("SOL/USDC", "limit", "buy", 1, 130)
    buyer.cancel_order(cancelled["id"], "SOL/USDC")
    still_open = buyer.create_order("SOL/USDC", "limit", "buy", 1, 131, {"clientOrderId": 42})

    assert [order["id"] for order in buyer.fetch_open_orders("SOL/USDC")] == [still_open["id"]]
    assert [order["id"] for order in buyer.fetch_open_orders()] == [still_open["id"]]
    one = buyer.fetch_open_order(still_open["id"], "SOL/USDC")
    assert (one["id"], one["clientOrderId"], one["status"], one["price"]) == (still_open["id"], "42", "open", 131.0)

    statuses = {order["id"]: order["status"] for order in buyer.fetch_orders("SOL/USDC")}
    assert statuses == {filled["id"]: "closed", cancelled["id"]: "canceled", still_open["id"]: "open"}
    closed = [order for order in buyer.fetch_orders("SOL/USDC") if order["status"] == "closed"]
    assert [(order["id"], order["filled"], order["average"]) for order in closed] == [(filled["id"], 1.0, 160.0)]
    assert len(buyer.fetch_orders("SOL/USDC", limit=2)) == 2

    assert buyer.fetch_order(filled["id"], "SOL/USDC")["status"] == "closed"
    assert buyer.fetch_order(cancelled["id"], "SOL/USDC")["status"] == "canceled"
    assert buyer.fetch_order(still_open["id"], "SOL/USDC")["status"] == "open"
    assert seller.fetch_order(resting["id"], "SOL/USDC")["status"] == "closed"  # the maker's side of it
    buyer.cancel_order(still_open["id"], "SOL/USDC")


def test_my_trades_carry_maker_and_taker_fees(api: Api) -> None:
    seller = trader(api, SOL="10")
    buyer = trader(api, USDC="5000")
    ask = seller.create_order("SOL/USDC", "limit", "sell", 2, 170)
    since = buyer.milliseconds()
    bid = buyer.create_order("SOL/USDC", "limit", "buy", 2, 170)

    mine = buyer.fetch_my_trades("SOL/USDC")
    assert [(t["side"], t["takerOrMaker"], t["price"], t["amount"], t["cost"]) for t in mine] == [
        ("buy", "taker", 170.0, 2.0, 340.0)
    ]
    assert mine[0]["order"] == bid["id"]
    assert mine[0]["fee"] == {"currency": "USDC", "cost": 0.17}  # 340 x 5 bps
    theirs = seller.fetch_my_trades("SOL/USDC")
    assert [(t["side"], t["takerOrMaker"], t["order"]) for t in theirs] == [("sell", "maker", ask["id"])]
    assert theirs[0]["fee"] == {"currency": "USDC", "cost": 0.068}  # 340 x 2 bps, in the quote asset
    assert [t["id"] for t in buyer.fetch_my_trades("SOL/USDC", since=since - 1_000)] == [mine[0]["id"]]
    assert buyer.fetch_my_trades("SOL/USDC", since=buyer.milliseconds() + 60_000) == []
    assert [t["id"] for t in buyer.fetch_my_trades()] == [mine[0]["id"]]
    balance = buyer.fetch_balance()
    assert (balance["SOL"]["total"], balance["USDC"]["total"]) == (2.0, 5000 - 340 - 0.17)


def test_perpetual_orders_and_reduce_only(api: Api) -> None:
    long = trader(api, USDC="10000")
    short = trader(api, USDC="10000")
    bid = long.create_order("SOL/USDC:USDC", "limit", "buy", 1, 149)
    assert (bid["symbol"], bid["status"], bid["price"]) == ("SOL/USDC:USDC", "open", 149.0)
    assert [order["id"] for order in long.fetch_open_orders("SOL/USDC:USDC")] == [bid["id"]]
    sold = short.create_order("SOL/USDC:USDC", "market", "sell", 1)
    assert (sold["status"], sold["filled"], sold["average"]) == ("closed", 1.0, 149.0)
    fills = short.fetch_my_trades("SOL/USDC:USDC")
    assert [(t["symbol"], t["side"], t["takerOrMaker"], t["amount"]) for t in fills] == [
        ("SOL/USDC:USDC", "sell", "taker", 1.0)
    ]
    assert fills[0]["fee"]["currency"] == "USDC" and fills[0]["fee"]["cost"] == pytest.approx(0.0745)

    # Short 1: a reduce-only buy may close at most that; a larger one would increase the position.
    with pytest.raises(ccxt.InvalidOrder):
        short.create_order("SOL/USDC:USDC", "limit", "buy", 2, 151, {"reduceOnly": True})
    closing = short.create_order("SOL/USDC:USDC", "limit", "buy", 1, 148, {"reduceOnly": True})
    assert closing["status"] == "open"
    assert short.cancel_order(closing["id"], "SOL/USDC:USDC")["status"] == "canceled"
    with pytest.raises(ccxt.InvalidOrder):  # no position in BTC: nothing to reduce
        short.create_order("BTC/USDC:USDC", "limit", "buy", 0.001, 90000, {"reduceOnly": True})


def test_a_reduce_only_order_says_so(api: Api) -> None:
    """reduceOnly is the order's own flag in every answer: execute, the open order, the
    cancel, and the order history (where the opening orders say false)."""
    long = trader(api, USDC="10000")
    short = trader(api, USDC="10000")
    long.create_order("ETH/USDC:USDC", "limit", "buy", 0.1, 3490)
    opened = short.create_order("ETH/USDC:USDC", "market", "sell", 0.1)
    assert opened["reduceOnly"] is False
    closing = short.create_order("ETH/USDC:USDC", "limit", "buy", 0.1, 3480, {"reduceOnly": True})
    try:
        assert closing["reduceOnly"] is True
        assert short.fetch_open_order(closing["id"], "ETH/USDC:USDC")["reduceOnly"] is True
    finally:
        assert short.cancel_order(closing["id"], "ETH/USDC:USDC")["reduceOnly"] is True
    history = {order["id"]: order["reduceOnly"] for order in short.fetch_orders("ETH/USDC:USDC")}
    assert history == {opened["id"]: False, closing["id"]: True}


def test_errors_map_to_the_exceptions_clients_catch(api: Api) -> None:
    poor = trader(api, USDC="100", SOL="1")
    free = poor.fetch_balance()["USDC"]["free"]
    with pytest.raises(ccxt.InsufficientFunds):
        poor.create_order("SOL/USDC", "limit", "buy", 10, 150)
    with pytest.raises(ccxt.InsufficientFunds):
        poor.create_order("SOL/USDC", "limit", "sell", 2, 150)
    with pytest.raises(ccxt.InsufficientFunds):  # INSUFFICIENT_MARGIN on a perpetual
        poor.create_order("SOL/USDC:USDC", "limit", "buy", 100, 150)
    assert poor.fetch_balance()["USDC"]["free"] == free
    assert poor.fetch_open_orders() == []

    # An unknown order: RESOURCE_NOT_FOUND, which ccxt's backpack maps to ExchangeNotAvailable.
    with pytest.raises(ccxt.ExchangeNotAvailable):
        poor.cancel_order("987654321", "SOL/USDC")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        poor.fetch_open_order("987654321", "SOL/USDC")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        poor.fetch_order("987654321", "SOL/USDC")

    stranger = api.account()
    forged = client(api, Key(api.account().api_key, stranger.secret, 0))  # a registered key, the wrong secret
    with pytest.raises(ccxt.AuthenticationError):
        forged.fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        forged.create_order("SOL/USDC", "limit", "buy", 0.1, 100)
    unknown_key = ccxt.backpack(
        {
            "apiKey": "A" * 43 + "=",
            "secret": stranger.secret,
            "urls": {"api": {"public": api.url, "private": api.url}},
        }
    )
    with pytest.raises(ccxt.AuthenticationError):
        unknown_key.fetch_balance()

    with pytest.raises(ccxt.BadRequest):  # off the step, sent raw (ccxt would round it): INVALID_QUANTITY
        poor.privatePostApiV1Order(
            {"symbol": "SOL_USDC", "side": "Bid", "orderType": "Limit", "price": "150", "quantity": "0.001"}
        )
    with pytest.raises(ccxt.BadSymbol):  # unknown to ccxt's own market list
        poor.fetch_order_book("NOPE/USDC")
    with pytest.raises(ccxt.BadSymbol):  # unknown to the server: INVALID_MARKET
        poor.publicGetApiV1Depth({"symbol": "NOPE_USDC"})
