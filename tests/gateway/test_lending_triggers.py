"""Borrowing, lending, interest and trigger orders through a real `keel serve`.

One server for this module, over a data directory whose log was started by a real node
on a manual clock an hour in the past: account 1 lent 8,000 USDC, account 2 (100 SOL of
collateral) borrowed 2,000 USDC, and a Tick at the top of the current hour paid an hour
of interest (so interest history has a round to show without waiting an hour). The
default keel.toml makes every asset borrowable (USDC at 10% / 5% margins, the others at
20% / 10%; 5% + 15% up to 80% utilization, a 10% spread). Then `keel serve` recovers that
log and everything else goes through real HTTP, the pinned ccxt `backpack` class (its
implicit borrowLend methods, trigger orders through createOrder) and the WebSocket order
stream.

Checked: the interest round's exact figures in interest history, position history and
markets history; BorrowLend through REST (a lend, a borrow, a lend that repays a borrow
and lends the rest) with balances, positions, the pool's rates and utilization, the
collateral summary and movement history after each step, and its refusals; trigger
orders: accepted as TriggerPending (ccxt "open"), listed and cancelled with open orders,
fired by a trade into a fill, fired into a refusal (TriggerFailed, ccxt "rejected"), a
reduce-only stop on the mark of a perpetual fired by an index move, cancel-all by order
type, and the stream's orderAccepted / triggerPlaced / triggerFailed / orderCancelled
frames; marketType filters; a withdrawal's clientId; and 503 MAINTENANCE on every
mutating endpoint while every market is Closed (last: it closes the exchange).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ccxt
import pytest
from gateway_support import Api, Key, Server, error_of, keel, start_server, stop_server
from websockets.sync.client import ClientConnection, connect

from keel.core.commands import BorrowLend, CreateAccount, Credit, SetIndexPrices, Tick
from keel.core.lending import BorrowLendSide
from keel.gateway.client import sign_headers
from keel.gateway.keys import KeyStore, new_key_pair
from keel.node.config import Config, write_config
from keel.node.node import Node, init_data_dir
from keel.testing.clock import ManualClock

HOUR_NS = 3_600_000_000_000
USDC, SOL, ETH = 0, 1, 3
SOL_PERP = "SOL/USDC:USDC"
ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
# The prepared hour: 2,000 of 8,000 USDC borrowed (25%), so 5% + 15% x 25 / 80 = 9.6875% a
# year; the borrower's hour is ceil(2,000 USDC x 9.6875% / 8,760) = 0.022118 USDC; lenders
# get 90%, 0.019906, a yearly 0.019906 x 8,760 / 8,000 = 2.179707%; fees get 0.002212.
BORROW_RATE = "0.096875"
LEND_RATE = "0.02179707"
PREPARED: dict[str, Any] = {}


def _prepare(data_dir: Path) -> None:
    """Run the prepared hour on a real node with a manual clock, and register its accounts' keys."""
    now_ns = time.time_ns()
    top_of_hour = now_ns // HOUR_NS * HOUR_NS
    clock = ManualClock(top_of_hour - HOUR_NS + 60_000_000_000)
    quiet = Config(writer="thread", auditor_enabled=False, tick_interval_ms=10**9)
    data_dir.mkdir(parents=True)
    write_config(data_dir, quiet)
    init_data_dir(data_dir, quiet, clock=clock, from_existing_config=True)
    stamp: dict[str, int] = {"seq": 0, "timestamp_ns": 0}
    with Node.open(data_dir) as node:
        sequencer = node.start(clock)
        prices = ((SOL, 150_000_000), (2, 95_000_000_000), (ETH, 3_500_000_000))
        for command in (
            SetIndexPrices(**stamp, prices=prices),
            CreateAccount(**stamp),
            CreateAccount(**stamp),
            Credit(**stamp, account_id=1, asset_id=USDC, amount_atomic=8_000_000_000),
            Credit(**stamp, account_id=2, asset_id=SOL, amount_atomic=100_000_000_000),
            BorrowLend(
                **stamp, account_id=1, asset_id=USDC, side=int(BorrowLendSide.LEND), amount_atomic=8_000_000_000
            ),
            BorrowLend(
                **stamp, account_id=2, asset_id=USDC, side=int(BorrowLendSide.BORROW), amount_atomic=2_000_000_000
            ),
        ):
            assert type(sequencer.call(command).events[0]).__name__ != "CommandRejected", command
        clock.advance(1_000_000_000)
        sequencer.call(Tick(**stamp))  # the first Tick with lending schedules interest for the top of the hour
        clock.set_ns(top_of_hour)
        events = sequencer.call(Tick(**stamp)).events
        assert any(type(event).__name__ == "InterestAccrued" for event in events), events
    write_config(data_dir, Config())  # serve with the default settings (auditor, ticks)
    keys = KeyStore(data_dir)
    for account_id in (1, 2):
        api_key, secret = new_key_pair()
        keys.add(api_key, account_id)
        PREPARED[account_id] = Key(api_key, secret, account_id)
    PREPARED["interest_ns"] = top_of_hour


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's `keel serve` (overrides conftest's), over the prepared log."""
    data_dir: Path = tmp_path_factory.mktemp("lending-triggers") / "data"
    _prepare(data_dir)
    server = start_server(data_dir, "--key-rate=0", "--ip-rate=0")
    try:
        yield server
    finally:
        code, stdout, stderr = stop_server(server)
        assert code == 0, stderr
        assert "stopped" in stdout


def client(api: Api, key: Key) -> ccxt.backpack:
    exchange = ccxt.backpack(
        {"apiKey": key.api_key, "secret": key.secret, "urls": {"api": {"public": api.url, "private": api.url}}}
    )
    exchange.load_markets()
    return exchange


def signed(api: Api, key: Key, method: str, path: str, instruction: str, **params: Any) -> Any:
    answer = api.signed(key, method, path, instruction, params or None)
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else None


def operator(api: Api, method: str, path: str, instruction: str, **params: Any) -> Any:
    return signed(api, api.operator, method, path, instruction, **params)


def borrow_lend(api: Api, key: Key, symbol: str, side: str, quantity: str) -> Any:
    return api.signed(
        key, "POST", "/api/v1/borrowLend", "borrowLendExecute", {"symbol": symbol, "side": side, "quantity": quantity}
    )


def test_an_hour_of_interest_in_interest_position_and_market_history(api: Api) -> None:
    """The prepared hour's round, as each side's interest history and position history shows
    it, and as the USDC market's history."""
    lender, borrower = PREPARED[1], PREPARED[2]
    [paid] = [one for one in signed(api, borrower, "GET", "/wapi/v1/history/interest", "interestHistoryQueryAll")][-1:]
    assert paid == {
        "paymentType": "Borrow",
        "interestRate": BORROW_RATE,
        "interval": 3_600_000,
        "marketSymbol": "USDC",
        "positionId": paid["positionId"],
        "quantity": "-0.022118",
        "symbol": "USDC",
        "timestamp": paid["timestamp"],
    }
    earned = signed(api, lender, "GET", "/wapi/v1/history/interest", "interestHistoryQueryAll", symbol="USDC")[-1]
    assert (earned["paymentType"], earned["quantity"], earned["interestRate"]) == ("Lend", "0.019906", LEND_RATE)
    assert (
        signed(api, lender, "GET", "/wapi/v1/history/interest", "interestHistoryQueryAll", source="UnrealizedPnl") == []
    )
    [lend] = signed(api, lender, "GET", "/wapi/v1/history/borrowLend/positions", "borrowPositionHistoryQueryAll")
    assert (lend["side"], lend["symbol"], lend["source"], lend["positionId"]) == (
        "Lend",
        "USDC",
        "Manual",
        earned["positionId"],
    )
    rounds = len(signed(api, lender, "GET", "/wapi/v1/history/interest", "interestHistoryQueryAll"))
    if rounds == 1:  # another round would come at the next hour, should the test run across it
        assert (lend["quantity"], lend["cumulativeInterest"], lend["avgInterestRate"]) == (
            "8000.019906",
            "0.019906",
            LEND_RATE,
        )
    history = api.get("/api/v1/borrowLend/markets/history", interval="1d", symbol="USDC").json()
    assert history[-1]["borrowInterestRate"] == BORROW_RATE
    assert (history[-1]["borrowedQuantity"], history[-1]["lentQuantity"]) == ("2000", "8000")
    assert history[-1]["utilization"] == "0.25"
    assert error_of(api.get("/api/v1/borrowLend/markets/history", interval="2d")) == (400, "INVALID_CLIENT_REQUEST")


def test_borrow_and_lend_through_rest_and_ccxt(api: Api) -> None:
    """ETH, untouched by the prepared hour: Alice lends 2 ETH with ccxt's implicit method,
    Bob (30,000 USDC) borrows 0.5 ETH; then Bob lends 0.8 ETH, which repays his 0.5 and lends
    0.3. Balances, positions, the pool and the collateral summary after each step."""
    alice = api.account(ETH="3")
    bob = api.account(USDC="30000")
    assert client(api, alice).privatePostApiV1BorrowLend({"symbol": "ETH", "side": "Lend", "quantity": "2"}) in (
        "",
        None,
    )
    assert api.balances(alice)["ETH"]["available"] == "1"
    assert borrow_lend(api, bob, "ETH", "Borrow", "0.5").status_code == 200
    assert api.balances(bob)["ETH"]["available"] == "0.5"
    [position] = signed(api, bob, "GET", "/api/v1/borrowLend/positions", "borrowLendPositionQuery")
    assert {key: position[key] for key in ("symbol", "netQuantity", "netExposureQuantity", "netExposureNotional")} == {
        "symbol": "ETH",
        "netQuantity": "-0.5",
        "netExposureQuantity": "-0.5",
        "netExposureNotional": "1750",
    }
    assert (position["markPrice"], position["imf"], position["mmf"]) == ("3500", "0.2", "0.1")
    # Bob holds the 0.5 ETH he borrowed, so the ETH price alone cannot liquidate him.
    assert (position["cumulativeInterest"], position["estLiquidationPrice"]) == ("0", "0")
    [market] = [one for one in api.get("/api/v1/borrowLend/markets").json() if one["symbol"] == "ETH"]
    # 25% utilization: 5% + 15% x 25 / 80 = 9.6875% to borrowers, x 25% x 90% = 2.1796875% to lenders
    assert {key: market[key] for key in ("borrowedQuantity", "lentQuantity", "utilization", "borrowInterestRate")} == {
        "borrowedQuantity": "0.5",
        "lentQuantity": "2",
        "utilization": "0.25",
        "borrowInterestRate": BORROW_RATE,
    }
    assert (market["lendInterestRate"], market["fee"], market["optimalUtilization"]) == ("0.021796875", "0.1", "0.8")
    assert (market["state"], market["assetMarkPrice"], market["stepSize"]) == ("Open", "3500", "0.00000001")
    collateral = signed(api, bob, "GET", "/api/v1/capital/collateral", "collateralQuery")
    eth = next(one for one in collateral["collateral"] if one["symbol"] == "ETH")
    assert (eth["totalQuantity"], eth["availableQuantity"], eth["collateralValue"]) == ("0", "0.5", "0")
    # equity 30,000 USDC; the borrow's initial margin is 20% of 0.5 x 3,500
    assert (collateral["netEquity"], collateral["netEquityLocked"], collateral["borrowLiability"]) == (
        "30000",
        "350",
        "1750",
    )
    alice_lend = signed(api, alice, "GET", "/api/v1/capital/collateral", "collateralQuery")
    eth = next(one for one in alice_lend["collateral"] if one["symbol"] == "ETH")
    # 3 ETH, 2 of them lent, all at 3,500 x the 0.9 weight
    assert (eth["totalQuantity"], eth["lendQuantity"], eth["collateralValue"]) == ("3", "2", "9450")

    assert borrow_lend(api, bob, "ETH", "Lend", "0.8").status_code == 400  # he has only 0.5 ETH
    bob_client = client(api, bob)
    bob_client.create_order("ETH/USDC", "limit", "buy", 0.3, 3600)
    alice_client = client(api, alice)
    alice_client.create_order("ETH/USDC", "market", "sell", 0.3)
    assert borrow_lend(api, bob, "ETH", "Lend", "0.8").status_code == 200
    [position] = signed(api, bob, "GET", "/api/v1/borrowLend/positions", "borrowLendPositionQuery")
    assert (position["netQuantity"], position["netExposureQuantity"], position["imf"]) == ("0.3", "0", "0")
    moves = bob_client.privateGetWapiV1HistoryBorrowLend({"symbol": "ETH"})
    assert [(one["eventType"], one["quantity"], one["positionQuantity"]) for one in moves] == [
        ("Lend", "0.3", "0.3"),
        ("BorrowRepay", "0.5", "0"),
        ("Borrow", "0.5", "0.5"),
    ]
    assert moves[1]["positionId"] == moves[2]["positionId"] != moves[0]["positionId"]
    only = bob_client.privateGetWapiV1HistoryBorrowLend({"type": "BorrowRepay"})
    assert [one["eventType"] for one in only] == ["BorrowRepay"]
    positions = signed(api, bob, "GET", "/wapi/v1/history/borrowLend/positions", "borrowPositionHistoryQueryAll")
    assert [(one["side"], one["quantity"]) for one in positions] == [("Lend", "0.3"), ("Borrow", "0")]
    closed = signed(
        api, bob, "GET", "/wapi/v1/history/borrowLend/positions", "borrowPositionHistoryQueryAll", state="Closed"
    )
    assert [one["side"] for one in closed] == ["Borrow"]

    with pytest.raises(ccxt.InsufficientFunds):  # INSUFFICIENT_SUPPLY: the pool holds 2.3 ETH
        alice_client.privatePostApiV1BorrowLend({"symbol": "ETH", "side": "Borrow", "quantity": "5"})
    poor = api.account(USDC="10")
    refused = borrow_lend(api, poor, "USDC", "Borrow", "1000")  # 10% of 1,000 is more than 10 USDC
    assert error_of(refused) == (400, "INSUFFICIENT_MARGIN")
    assert error_of(borrow_lend(api, poor, "USDC", "Repay", "1")) == (400, "INVALID_CLIENT_REQUEST")
    assert error_of(borrow_lend(api, poor, "DOGE", "Lend", "1")) == (400, "INVALID_ASSET")
    assert signed(api, poor, "GET", "/api/v1/borrowLend/positions", "borrowLendPositionQuery") == []


@contextmanager
def order_stream(api: Api, key: Key) -> Iterator[ClientConnection]:
    with connect(api.url.replace("http://", "ws://") + "/ws", open_timeout=5) as connection:
        headers = sign_headers(key.api_key, key.secret, "subscribe", None)
        signature = [headers[name] for name in ("X-API-Key", "X-Signature", "X-Timestamp", "X-Window")]
        connection.send(json.dumps({"method": "SUBSCRIBE", "params": ["account.orderUpdate"], "signature": signature}))
        time.sleep(0.2)  # subscribes are not acknowledged
        yield connection


def frames(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    found = []
    while len(found) < count:
        frame = json.loads(connection.recv(timeout=5))
        if frame.get("stream") == "account.orderUpdate":
            found.append(frame["data"])
    return found


def test_trigger_orders_through_ccxt_rest_and_the_order_stream(api: Api) -> None:
    """On BTC_USDC (no trade yet, so the first one sets the last price): Carol places a stop
    (market sell 0.01 when the last price falls to 94,000), a take-profit she cancels, and a
    buy she cannot pay for; Dave's and Gil's trades move the last price and fire them."""
    carol_key = api.account(BTC="1", USDC="100")
    dave_key = api.account(USDC="100000", BTC="1")
    carol, dave = client(api, carol_key), client(api, dave_key)
    assert signed(api, carol_key, "GET", "/api/v1/account", "accountQuery")["triggerOrders"] == 100  # the most pending
    dave.create_order("BTC/USDC", "limit", "sell", 0.001, 95_000)
    gil = client(api, api.account(USDC="1000", BTC="1"))
    first = gil.create_order("BTC/USDC", "limit", "buy", 0.001, 95_000)
    assert first["status"] == "closed"  # the market's first trade: the last price is 95,000
    with order_stream(api, carol_key) as stream:
        stop = carol.create_order("BTC/USDC", "market", "sell", 0.01, None, {"triggerPrice": 94_000})
        assert (stop["status"], stop["info"]["status"], stop["triggerPrice"], stop["amount"]) == (
            "open",
            "TriggerPending",
            94_000.0,
            0.01,
        )
        assert (stop["info"]["triggerQuantity"], stop["info"]["triggerBy"]) == ("0.01", "LastPrice")
        accepted = frames(stream, 1)[0]
        assert (accepted["e"], accepted["X"], accepted["i"]) == ("orderAccepted", "TriggerPending", stop["id"])
        assert (accepted["P"], accepted["B"], accepted["Y"], accepted["o"]) == ("94000", "LastPrice", "0.01", "MARKET")
        # bpx's spelling of triggerBy, on a raw request
        take = api.order(
            carol_key,
            symbol="BTC_USDC",
            side="Ask",
            orderType="Limit",
            price="99000",
            triggerPrice="98000",
            triggerQuantity="0.002",
            triggeredBy="LastPrice",
            clientId=77,
        )
        assert take.status_code == 200, take.text
        assert (take.json()["status"], take.json()["clientId"]) == ("TriggerPending", 77)
        broke = carol.create_order("BTC/USDC", "limit", "buy", 0.1, 94_000, {"triggerPrice": 94_000})
        assert frames(stream, 2)[1]["X"] == "TriggerPending"
        opened = {order["id"]: order["status"] for order in carol.fetch_open_orders("BTC/USDC")}
        assert opened == {stop["id"]: "open", take.json()["id"]: "open", broke["id"]: "open"}
        assert carol.fetch_open_order(stop["id"], "BTC/USDC")["triggerPrice"] == 94_000.0
        cancelled = api.signed(
            carol_key, "DELETE", "/api/v1/order", "orderCancel", {"symbol": "BTC_USDC", "clientId": 77}
        )
        assert (cancelled.json()["status"], cancelled.json()["triggerPrice"]) == ("Cancelled", "98000")
        assert frames(stream, 1)[0]["e"] == "orderCancelled"

        dave.create_order("BTC/USDC", "limit", "buy", 0.011, 94_000)  # 0.001 for Gil, 0.01 for the stop
        gil.create_order("BTC/USDC", "limit", "sell", 0.001, 94_000)  # trades at 94,000: both triggers fire
        fired = frames(stream, 3)
        assert [(one["e"], one["X"]) for one in fired] == [
            ("triggerPlaced", "New"),
            ("orderFill", "Filled"),
            ("triggerFailed", "TriggerFailed"),
        ]
        assert (fired[0]["i"], fired[2]["i"], fired[1]["l"], fired[1]["L"]) == (
            stop["id"],
            broke["id"],
            "0.01",
            "94000",
        )
    history = {order["id"]: order for order in carol.fetch_orders("BTC/USDC")}
    assert (history[stop["id"]]["status"], history[broke["id"]]["status"]) == ("closed", "rejected")
    assert history[stop["id"]]["filled"] == 0.01
    assert history[stop["id"]]["info"]["triggeredAt"] is not None
    assert history[take.json()["id"]]["status"] == "canceled"
    assert carol.fetch_open_orders("BTC/USDC") == []

    # Validation: both or neither of triggerPrice and triggerQuantity; attached TP/SL only on perpetuals.
    missing = api.order(
        carol_key, symbol="BTC_USDC", side="Ask", orderType="Market", triggerPrice="90000", quantity="0.001"
    )
    assert error_of(missing) == (400, "INVALID_CLIENT_REQUEST")
    assert "triggerQuantity" in missing.json()["message"]
    attached = api.order(
        carol_key,
        symbol="BTC_USDC",
        side="Ask",
        orderType="Limit",
        price="96000",
        quantity="0.001",
        stopLossTriggerPrice="90000",
    )
    assert error_of(attached) == (400, "INVALID_CLIENT_REQUEST")  # on a spot market (test_attached_tpsl_ccxt.py)
    assert "perpetual markets" in attached.json()["message"]


def test_a_reduce_only_stop_on_the_mark_and_cancel_all_by_type(api: Api) -> None:
    """Erin is long 0.1 SOL perp; her reduce-only stop on the mark price fires when the index
    drops and closes the position. Cancel-all narrowed by orderType cancels one kind only;
    marketType narrows open orders, order history and fills."""
    erin_key = api.account(USDC="1000")
    frank_key = api.account(USDC="1000")
    erin, frank = client(api, erin_key), client(api, frank_key)
    frank.create_order(SOL_PERP, "limit", "sell", 0.1, 150)
    bought = erin.create_order(SOL_PERP, "limit", "buy", 0.1, 150)
    frank.create_order(SOL_PERP, "limit", "buy", 0.1, 140)  # the book the stop sells into
    stop = erin.create_order(
        SOL_PERP, "market", "sell", 0.1, None, {"triggerPrice": 145, "triggerBy": "MarkPrice", "reduceOnly": True}
    )
    assert (stop["reduceOnly"], stop["info"]["triggerBy"], stop["info"]["status"]) == (
        True,
        "MarkPrice",
        "TriggerPending",
    )
    resting = erin.create_order(SOL_PERP, "limit", "buy", 0.1, 130)
    other = erin.create_order(SOL_PERP, "limit", "buy", 0.1, 131, {"triggerPrice": 160})
    perp_orders = erin.fetch_open_orders(None, None, None, {"marketType": "PERP"})
    assert {order["id"] for order in perp_orders} == {stop["id"], resting["id"], other["id"]}
    assert erin.fetch_open_orders(None, None, None, {"marketType": "SPOT"}) == []

    def cancel_all(order_type: str) -> list[str]:
        answer = api.signed(
            erin_key, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": "SOL_USDC_PERP", "orderType": order_type}
        )
        assert answer.status_code == 200, answer.text
        return [order["id"] for order in answer.json()]

    assert cancel_all("RestingLimitOrder") == [resting["id"]]
    assert erin.cancel_order(other["id"], SOL_PERP)["status"] == "canceled"
    assert {order["id"] for order in erin.fetch_open_orders(SOL_PERP)} == {stop["id"]}

    operator(api, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", prices="SOL=144")
    time.sleep(0.2)
    assert erin.fetch_positions([SOL_PERP]) == []
    [closed] = [order for order in erin.fetch_orders(SOL_PERP) if order["id"] == stop["id"]]
    assert (closed["status"], closed["filled"], closed["reduceOnly"]) == ("closed", 0.1, True)
    perp_fills = erin.fetch_my_trades(None, None, None, {"marketType": "PERP"})
    assert sorted(fill["order"] for fill in perp_fills) == sorted([bought["id"], stop["id"]])
    assert erin.fetch_my_trades(None, None, None, {"marketType": "SPOT"}) == []
    history = signed(api, erin_key, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", marketType="PERP")
    assert len(history) == 4
    assert signed(api, erin_key, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", marketType="IPERP") == []

    later = erin.create_order(SOL_PERP, "limit", "buy", 0.1, 131, {"triggerPrice": 160})
    rest = erin.create_order(SOL_PERP, "limit", "buy", 0.1, 130)
    assert cancel_all("ConditionalOrder") == [later["id"]]
    assert [order["id"] for order in erin.cancel_all_orders(SOL_PERP)] == [rest["id"]]


def test_a_withdrawals_client_id_is_kept(api: Api) -> None:
    """ccxt's withdraw tag is Backpack's clientId: kept as an unsigned 32-bit integer."""
    key = api.account(USDC="100")
    exchange = client(api, key)
    made = exchange.withdraw("USDC", 5, ADDRESS, {"tag": "4242", "network": "SOL"})
    assert made["info"]["clientId"] == "4242"
    [listed] = exchange.fetch_withdrawals("USDC")
    assert listed["info"]["clientId"] == "4242"
    refused = api.signed(
        key,
        "POST",
        "/wapi/v1/capital/withdrawals",
        "withdraw",
        {"symbol": "USDC", "quantity": "1", "address": ADDRESS, "blockchain": "Solana", "clientId": "memo-1"},
    )
    assert error_of(refused) == (400, "INVALID_CLIENT_REQUEST")


def test_every_mutating_endpoint_answers_maintenance_while_every_market_is_closed(api: Api, served: Server) -> None:
    """Spec 7 (last in this module: it closes the exchange): 503 MAINTENANCE, ccxt
    ExchangeError, for orders, cancels, withdrawals and borrow/lend; reads still answer."""
    key = api.account(USDC="100")
    exchange = client(api, key)
    closed = keel("market", "state", "--all", "Closed", "--reason", "drill", "--data", str(served.data_dir))
    assert closed.returncode == 0, closed.stderr
    with pytest.raises(ccxt.ExchangeError, match="MAINTENANCE"):
        exchange.create_order("SOL/USDC", "limit", "buy", 1, 90)
    for method, path, instruction, params in (
        ("DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": "SOL_USDC"}),
        ("POST", "/api/v1/borrowLend", "borrowLendExecute", {"symbol": "USDC", "side": "Lend", "quantity": "1"}),
        (
            "POST",
            "/wapi/v1/capital/withdrawals",
            "withdraw",
            {"symbol": "USDC", "quantity": "1", "address": ADDRESS, "blockchain": "Solana"},
        ),
    ):
        answer = api.signed(key, method, path, instruction, params)
        assert error_of(answer) == (503, "MAINTENANCE"), (path, answer.text)
    assert api.balances(key)["USDC"]["available"] == "100"
    assert api.get("/api/v1/status").json()["status"] == "Maintenance"
