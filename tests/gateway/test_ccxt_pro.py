"""The real, pinned ccxt.pro `backpack` class (unmodified) against a real `keel serve`'s streams.

Pointed at Keel as spec 1.5 says (urls.api.public/private for REST, urls.api.ws for the
socket), ccxt.pro's own order-book sync (buffer ten deltas, fetch REST depth, splice by
`lastUpdateId`) must give exactly the book REST shows at the same nonce, after the first
eleven changes and again after two hundred more (spec 12, items 34 to 36); watch_trades,
watch_ticker, watch_bids_asks and watch_ohlcv see the trades the test makes; watch_orders
sees an order accepted, filled and closed, and none of another account's; watch_positions
sees a perpetual position opened, adjusted and closed. The data directory gets an index
price for SOL before serving (`keel index set`) so that the perpetual takes orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from collections.abc import Iterator
from typing import Any

import ccxt.pro
import pytest
from gateway_support import Api, Key, Server, keel, start_server, stop_server


@pytest.fixture(scope="module")
def perps_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `keel serve` over default markets with an index price for SOL (perpetuals trade)."""
    data_dir = tmp_path_factory.mktemp("pro") / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    indexed = keel("index", "set", "SOL=100", "--data", str(data_dir))
    assert indexed.returncode == 0, indexed.stderr
    server = start_server(data_dir, "--ip-rate=0", "--key-rate=0")
    try:
        yield server
    finally:
        code, _, stderr = stop_server(server)
        assert code == 0, stderr


@pytest.fixture(scope="module")
def api(perps_served: Server) -> Iterator[Api]:
    client = Api(perps_served)
    yield client
    client.http.close()


def _pro(api: Api, key: Key | None = None) -> Any:
    ws = api.url.replace("http://", "ws://") + "/ws"
    config: dict[str, Any] = {
        "urls": {"api": {"public": api.url, "private": api.url, "ws": {"public": ws, "private": ws}}}
    }
    if key is not None:
        config.update(apiKey=key.api_key, secret=key.secret)
    return ccxt.pro.backpack(config)


def _order(api: Api, key: Key, symbol: str, side: str, price: str, quantity: str, **extra: Any) -> dict[str, Any]:
    answer = api.order(key, symbol=symbol, side=side, orderType="Limit", price=price, quantity=quantity, **extra)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _in_thread(function: Any, *arguments: Any, **keywords: Any) -> Any:
    return await asyncio.to_thread(function, *arguments, **keywords)


async def _after(watch: Any, function: Any, *arguments: Any, **keywords: Any) -> Any:
    """Start watching, then act (a REST call in a thread), then return what the watch got:
    a message that arrives before ccxt waits for it would not resolve a later watch."""
    watching = asyncio.ensure_future(watch)
    await asyncio.sleep(0.05)
    await _in_thread(function, *arguments, **keywords)
    return copy.deepcopy(await asyncio.wait_for(watching, 10))  # ccxt updates its objects in place


def _rest_book(api: Api, symbol: str) -> tuple[list[list[float]], list[list[float]], int]:
    body = api.get("/api/v1/depth", symbol=symbol).json()
    bids = sorted(([float(price), float(quantity)] for price, quantity in body["bids"]), reverse=True)
    asks = sorted([float(price), float(quantity)] for price, quantity in body["asks"])
    return bids, asks, int(body["lastUpdateId"])


async def _book_at(exchange: Any, api: Api, symbol: str, market: str) -> None:
    """Watch until ccxt's book is at REST's current nonce; then the two must be equal."""
    bids, asks, nonce = await _in_thread(_rest_book, api, market)
    book = exchange.orderbooks[symbol]
    while book["nonce"] < nonce:  # deltas still on their way
        book = await asyncio.wait_for(exchange.watch_order_book(symbol), 10)
    assert book["nonce"] == nonce
    assert (book["bids"], book["asks"]) == (bids, asks)


def test_watch_order_book_matches_rest_depth(api: Api) -> None:
    """ccxt.pro's sync (ten buffered deltas, then REST depth spliced in by lastUpdateId)
    gives exactly REST's book at the same nonce; two hundred random changes later (rests,
    trades, cancels) it still does."""
    alice = api.account(USDC="1000000", SOL="10000")
    bob = api.account(USDC="1000000", SOL="10000")
    market = "SOL_USDC"

    async def run() -> None:
        exchange = _pro(api)
        try:
            await exchange.load_markets()
            watching = asyncio.ensure_future(exchange.watch_order_book("SOL/USDC"))
            await asyncio.sleep(0.3)  # the subscription is in before the changes start
            for step in range(12):  # eleven changes or more (notes item 18)
                await _in_thread(_order, api, alice, market, "Bid", f"{90 + step}", "1")
            first = await asyncio.wait_for(watching, 10)
            assert first["nonce"] is not None
            await _book_at(exchange, api, "SOL/USDC", market)
            rng = random.Random(34)
            placed: list[tuple[Key, str]] = []
            for _ in range(200):
                roll = rng.random()
                if roll < 0.25 and placed:
                    key, order_id = placed.pop(rng.randrange(len(placed)))
                    await _in_thread(
                        api.signed,
                        key,
                        "DELETE",
                        "/api/v1/order",
                        "orderCancel",
                        {"symbol": market, "orderId": order_id},
                    )
                    continue
                key = alice if roll < 0.6 else bob
                side = "Bid" if key is alice else "Ask"
                price = f"{rng.randrange(9_500, 10_500) / 100:.2f}"
                answer = await _in_thread(
                    api.order,
                    key,
                    symbol=market,
                    side=side,
                    orderType="Limit",
                    price=price,
                    quantity=f"{rng.randrange(1, 50) / 10}",
                )
                assert answer.status_code == 200, answer.text
                if answer.json()["status"] in ("New", "PartiallyFilled"):
                    placed.append((key, answer.json()["id"]))
            await _book_at(exchange, api, "SOL/USDC", market)
        finally:
            await exchange.close()

    asyncio.run(run())


def test_watch_trades_ticker_bids_asks_and_ohlcv(api: Api) -> None:
    """Trades made by the test arrive on watch_trades (side, price, amount, order id), and
    the ticker, the best bid and ask and the 1m candle follow them."""
    maker = api.account(USDC="1000000", ETH="100")
    taker = api.account(USDC="1000000", ETH="100")
    market = "ETH_USDC"

    async def run() -> None:
        exchange = _pro(api)
        try:
            await exchange.load_markets()
            # The 1m candle is watched last, seconds after the trade: a minute boundary in
            # between would make that trade's candle closed history, not news, and nothing
            # would be pushed (as on Backpack). So the trade is made well inside a minute.
            into_minute = time.time() % 60
            if into_minute > 40:
                await asyncio.sleep(61 - into_minute)
            trades = asyncio.ensure_future(exchange.watch_trades("ETH/USDC"))
            await asyncio.sleep(0.3)
            await _in_thread(_order, api, maker, market, "Ask", "101.5", "2")
            bought = await _in_thread(_order, api, taker, market, "Bid", "101.5", "0.5", timeInForce="IOC")
            (trade,) = await asyncio.wait_for(trades, 10)
            assert (trade["side"], trade["price"], trade["amount"], trade["order"]) == ("buy", 101.5, 0.5, bought["id"])
            assert trade["timestamp"] > 0 and trade["takerOrMaker"] == "taker"
            bids_asks = await asyncio.wait_for(exchange.watch_bids_asks(["ETH/USDC"]), 10)
            assert bids_asks["ETH/USDC"]["ask"] == 101.5 and bids_asks["ETH/USDC"]["askVolume"] == 1.5
            ticker = await asyncio.wait_for(exchange.watch_ticker("ETH/USDC"), 10)
            assert ticker["last"] == 101.5 and ticker["baseVolume"] >= 0.5 and ticker["timestamp"] > 0
            # The current candle comes with the next second's push.
            candles = await asyncio.wait_for(exchange.watch_ohlcv("ETH/USDC", "1m"), 10)
            assert candles[-1][1:] == [101.5, 101.5, 101.5, 101.5, 0.5]
        finally:
            await exchange.close()

    asyncio.run(run())


def test_watch_orders_sees_its_own_orders_only(api: Api) -> None:
    """A signed watch_orders sees its order accepted (open), filled and closed; another
    account's orders never reach it."""
    alice = api.account(USDC="100000", BTC="1")
    bob = api.account(USDC="100000", BTC="5")
    market = "BTC_USDC"

    async def run() -> None:
        exchange = _pro(api, alice)
        try:
            await exchange.load_markets()
            # The signed subscription is in once one of alice's own orders comes back on it:
            # a far-off probe order, placed again until one does (a busy machine can take
            # longer than any fixed sleep to subscribe).
            probes: set[str] = set()
            for _attempt in range(20):
                watching = asyncio.ensure_future(exchange.watch_orders("BTC/USDC"))
                await asyncio.sleep(0.05)
                probe = await _in_thread(_order, api, alice, market, "Bid", "50", "0.1")
                probes.add(probe["id"])
                try:
                    await asyncio.wait_for(watching, 1)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("watch_orders never delivered alice's own probe orders")
            bobs = await _in_thread(_order, api, bob, market, "Bid", "80", "1")  # not alice's
            watching = asyncio.ensure_future(exchange.watch_orders("BTC/USDC"))
            mine = await _in_thread(_order, api, alice, market, "Bid", "99", "2", clientId=42)
            await asyncio.wait_for(watching, 10)
            await _in_thread(_order, api, bob, market, "Ask", "99", "2")
            # The fill may arrive between two watch_orders calls, and a call waits for the
            # next message: look for it in what the stream delivered (ccxt's order cache).
            for _attempt in range(40):
                if [order for order in exchange.orders if order["id"] == mine["id"] and order["status"] == "closed"]:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(exchange.watch_orders("BTC/USDC"), 0.25)
            else:
                raise AssertionError(f"the fill of alice's order never came: {list(exchange.orders)}")
            ids = {order["id"] for order in exchange.orders}
            assert bobs["id"] not in ids
            assert mine["id"] in ids and ids <= {mine["id"], *probes}
            (order,) = [one for one in exchange.orders if one["id"] == mine["id"]]
            assert (order["status"], order["side"], order["price"], order["amount"]) == ("closed", "buy", 99.0, 2.0)
            assert (order["clientOrderId"], order["type"], order["cost"]) == ("42", "limit", 198.0)
        finally:
            await exchange.close()

    asyncio.run(run())


def test_watch_positions_sees_open_adjust_close(api: Api) -> None:
    """A perpetual position opened, grown and closed reaches watch_positions as such, with
    the signed size, entry price and mark."""
    alice = api.account(USDC="100000")
    bob = api.account(USDC="100000")
    market = "SOL_USDC_PERP"

    async def run() -> None:
        exchange = _pro(api, alice)
        try:
            await exchange.load_markets()
            symbols = ["SOL/USDC:USDC"]
            await _in_thread(_order, api, bob, market, "Ask", "100", "3")
            (opened,) = await _after(exchange.watch_positions(symbols), _order, api, alice, market, "Bid", "100", "1")
            (adjusted,) = await _after(exchange.watch_positions(symbols), _order, api, alice, market, "Bid", "100", "2")
            await _in_thread(_order, api, bob, market, "Bid", "99", "3")
            (closed,) = await _after(exchange.watch_positions(symbols), _order, api, alice, market, "Ask", "99", "3")
            assert [one["info"]["e"] for one in (opened, adjusted, closed)] == [
                "positionOpened",
                "positionAdjusted",
                "positionClosed",
            ]
            # ccxt.pro passes these through as the strings it got (its REST parser makes numbers).
            assert (opened["symbol"], opened["side"], opened["contracts"], opened["entryPrice"]) == (
                "SOL/USDC:USDC",
                "long",
                "1",
                "100",
            )
            assert (opened["info"]["q"], opened["info"]["B"], opened["info"]["M"]) == ("1", "100", "100")
            assert (adjusted["contracts"], adjusted["notional"], adjusted["markPrice"]) == ("3", "300", "100")
            assert (closed["contracts"], closed["info"]["q"], closed["realizedPnl"]) == ("0", "0", "-3")
        finally:
            await exchange.close()

    asyncio.run(run())
