"""Orders through the REST API against a real `keel serve` (spec section 8).

Each test uses fresh accounts and checks the exact answer (status, executed quantities,
decimal strings) and the exact balances afterwards: a limit order rests, is queried and
cancelled with its hold released; IOC, FOK and market orders (by quantity and by quote
quantity) execute as the engine says; post-only taking, insufficient funds and a table
of malformed requests are refused with the spec's code and change nothing (balances,
open orders and the log position are read back); batches answer item by item.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_support import Api, Key, error_of

SOL = "SOL_USDC"
ETH = "ETH_USDC"


def _limit(side: str, price: str, quantity: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": SOL, "side": side, "orderType": "Limit", "price": price, "quantity": quantity, **extra}


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert not (isinstance(response.json(), dict) and "code" in response.json())
    return response.json()


def test_limit_order_rests_is_queried_and_cancelled(api: Api) -> None:
    key = api.account(USDC="1000")
    order = _ok(api.order(key, **_limit("Bid", "20.5", "3", clientId=42)))
    assert order["status"] == "New"
    assert (order["price"], order["quantity"], order["executedQuantity"], order["executedQuoteQuantity"]) == (
        "20.5",
        "3",
        "0",
        "0",
    )
    assert (order["clientId"], order["side"], order["orderType"], order["timeInForce"]) == (42, "Bid", "Limit", "GTC")
    assert isinstance(order["createdAt"], int)
    # Held: 61.5 USDC plus the maker fee bound (2 bps, rounded up to the atomic unit).
    assert api.balances(key)["USDC"] == {"available": "938.4877", "locked": "61.5123", "staked": "0"}
    by_id = _ok(api.signed(key, "GET", "/api/v1/order", "orderQuery", {"symbol": SOL, "orderId": order["id"]}))
    by_client = _ok(api.signed(key, "GET", "/api/v1/order", "orderQuery", {"symbol": SOL, "clientId": "42"}))
    assert by_id == by_client == order
    assert api.open_orders(key, SOL) == [order]
    cancelled = _ok(api.signed(key, "DELETE", "/api/v1/order", "orderCancel", {"symbol": SOL, "orderId": order["id"]}))
    assert cancelled == {**order, "status": "Cancelled"}
    assert api.balances(key)["USDC"] == {"available": "1000", "locked": "0", "staked": "0"}
    again = api.signed(key, "DELETE", "/api/v1/order", "orderCancel", {"symbol": SOL, "orderId": order["id"]})
    assert error_of(again) == (404, "RESOURCE_NOT_FOUND")
    gone = api.signed(key, "GET", "/api/v1/order", "orderQuery", {"symbol": SOL, "orderId": order["id"]})
    assert error_of(gone) == (404, "RESOURCE_NOT_FOUND")
    history = _ok(api.signed(key, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", {"symbol": SOL}))
    assert [(one["id"], one["status"]) for one in history] == [(order["id"], "Cancelled")]
    assert isinstance(history[0]["createdAt"], str)


def test_ioc_fok_and_market_orders_execute_against_the_book(api: Api) -> None:
    """On ETH_USDC (its own market, so the price band of SOL_USDC stays unset for the other tests)."""
    maker = api.account(ETH="10")
    taker = api.account(USDC="1000")
    eth = {"symbol": ETH}
    for price in ("10", "11", "12"):
        _ok(api.order(maker, **_limit("Ask", price, "1", **eth)))
    fok_unfillable = api.order(taker, **_limit("Bid", "11", "3", timeInForce="FOK", **eth))
    assert error_of(fok_unfillable) == (400, "INVALID_ORDER")
    assert api.balances(taker)["USDC"]["available"] == "1000"
    ioc = _ok(api.order(taker, **_limit("Bid", "10", "2", timeInForce="IOC", **eth)))
    assert (ioc["status"], ioc["executedQuantity"], ioc["executedQuoteQuantity"]) == ("Expired", "1", "10")
    fok = _ok(api.order(taker, **_limit("Bid", "11", "1", timeInForce="FOK", **eth)))
    assert (fok["status"], fok["executedQuantity"]) == ("Filled", "1")
    # 6 USDC buys 0.4997 ETH at 12 with the 5 bps taker fee (0.4998 would cost 6.000599).
    by_quote = _ok(api.order(taker, symbol=ETH, side="Bid", orderType="Market", quoteQuantity="6"))
    assert (by_quote["status"], by_quote["executedQuantity"], by_quote["executedQuoteQuantity"]) == (
        "Filled",
        "0.4997",
        "5.9964",
    )
    assert by_quote["quantity"] is None and by_quote["quoteQuantity"] == "6"
    assert "price" not in by_quote and "postOnly" not in by_quote
    by_quantity = _ok(api.order(taker, symbol=ETH, side="Bid", orderType="Market", quantity="0.5003"))
    assert (by_quantity["status"], by_quantity["executedQuantity"], by_quantity["executedQuoteQuantity"]) == (
        "Filled",
        "0.5003",
        "6.0036",
    )
    empty_book = _ok(api.order(taker, symbol=ETH, side="Bid", orderType="Market", quantity="1"))
    assert (empty_book["status"], empty_book["executedQuantity"]) == ("Expired", "0")
    # 33 USDC for 3 ETH plus 5 bps taker fees per order, each rounded up to the atomic
    # unit: 0.005 + 0.0055 + 0.002999 + 0.003002.
    balances = api.balances(taker)
    assert balances["ETH"] == {"available": "3", "locked": "0", "staked": "0"}
    assert balances["USDC"] == {"available": "966.983499", "locked": "0", "staked": "0"}
    fills = _ok(api.signed(taker, "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll", {"symbol": ETH}))
    assert [(fill["price"], fill["quantity"], fill["isMaker"], fill["side"]) for fill in fills] == [
        ("12", "0.5003", False, "Bid"),
        ("12", "0.4997", False, "Bid"),
        ("11", "1", False, "Bid"),
        ("10", "1", False, "Bid"),
    ]
    assert fills[-1]["fee"] == "0.005" and fills[-1]["feeSymbol"] == "USDC"
    maker_fills = _ok(api.signed(maker, "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll", {}))
    assert {(fill["isMaker"], fill["side"]) for fill in maker_fills} == {(True, "Ask")}
    assert api.open_orders(maker) == []
    history = _ok(api.signed(maker, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", {"symbol": ETH}))
    assert [order["status"] for order in history] == ["Filled", "Filled", "Filled"]


def test_post_only_that_would_take_is_refused_and_creates_nothing(api: Api) -> None:
    maker = api.account(SOL="1")
    taker = api.account(USDC="100")
    resting = _ok(api.order(maker, **_limit("Ask", "50", "1")))
    refused = api.order(taker, **_limit("Bid", "50", "1", postOnly=True))
    assert error_of(refused) == (400, "INVALID_ORDER")
    assert "Post-only" in refused.json()["message"] or "post-only" in refused.json()["message"]
    assert api.open_orders(taker) == []
    assert api.balances(taker)["USDC"] == {"available": "100", "locked": "0", "staked": "0"}
    rests = _ok(api.order(taker, **_limit("Bid", "49.99", "1", postOnly=True)))
    assert rests["status"] == "New" and rests["postOnly"] is True
    _ok(api.signed(maker, "DELETE", "/api/v1/order", "orderCancel", {"symbol": SOL, "orderId": resting["id"]}))


def test_insufficient_funds_changes_nothing(api: Api) -> None:
    key = api.account(USDC="10")
    refused = api.order(key, **_limit("Bid", "10", "1"))
    assert error_of(refused) == (400, "INSUFFICIENT_FUNDS")
    refused_sell = api.order(key, **_limit("Ask", "10", "1"))
    assert error_of(refused_sell) == (400, "INSUFFICIENT_FUNDS")
    assert api.balances(key) == {"USDC": {"available": "10", "locked": "0", "staked": "0"}}
    assert api.open_orders(key) == []


def test_batch_answers_each_item_and_cancel_all_answers_every_order(api: Api) -> None:
    key = api.account(USDC="100")
    batch = [
        _limit("Bid", "1", "1"),
        _limit("Bid", "1.001", "1"),  # off the tick: refused by the gateway
        _limit("Bid", "2", "1000"),  # insufficient funds: refused by the engine
        _limit("Bid", "3", "2", clientId=9),
    ]
    results = _ok(api.signed(key, "POST", "/api/v1/orders", "orderExecute", batch))
    assert [item["operation"] for item in results] == ["Ok", "Err", "Err", "Ok"]
    assert (results[1]["code"], results[2]["code"]) == ("INVALID_PRICE", "INSUFFICIENT_FUNDS")
    assert results[3]["clientId"] == 9
    assert {order["id"] for order in api.open_orders(key)} == {results[0]["id"], results[3]["id"]}
    too_many = api.signed(key, "POST", "/api/v1/orders", "orderExecute", [_limit("Bid", "1", "1")] * 21)
    assert error_of(too_many) == (400, "INVALID_CLIENT_REQUEST")
    cancelled = _ok(api.signed(key, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": SOL}))
    assert sorted(order["id"] for order in cancelled) == sorted([results[0]["id"], results[3]["id"]])
    assert {order["status"] for order in cancelled} == {"Cancelled"}
    assert api.open_orders(key) == []
    assert _ok(api.signed(key, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": SOL})) == []
    assert api.balances(key)["USDC"] == {"available": "100", "locked": "0", "staked": "0"}


MALFORMED: list[tuple[str, Any, int, str]] = [
    ("unknown symbol", _limit("Bid", "1", "1") | {"symbol": "DOGE_USDC"}, 400, "INVALID_MARKET"),
    ("price off the tick", _limit("Bid", "1.005", "1"), 400, "INVALID_PRICE"),
    ("price with too many decimals", _limit("Bid", "1.0000001", "1"), 400, "INVALID_PRICE"),
    ("quantity off the step", _limit("Bid", "1", "1.005"), 400, "INVALID_QUANTITY"),
    ("quantity with too many decimals", _limit("Bid", "1", "0.0000000001"), 400, "INVALID_QUANTITY"),
    ("zero quantity", _limit("Bid", "1", "0"), 400, "INVALID_QUANTITY"),
    ("negative quantity", _limit("Bid", "1", "-1"), 400, "INVALID_QUANTITY"),
    ("negative price", _limit("Bid", "-1", "1"), 400, "INVALID_PRICE"),
    ("zero price", _limit("Bid", "0", "1"), 400, "INVALID_PRICE"),
    ("exponent", _limit("Bid", "1e2", "1"), 400, "INVALID_PRICE"),
    ("huge price", _limit("Bid", "9" * 60, "1"), 400, "INVALID_PRICE"),
    ("huge quantity", _limit("Bid", "1", "9" * 60), 400, "INVALID_QUANTITY"),
    ("huge client id", _limit("Bid", "1", "1", clientId=2**64), 400, "INVALID_CLIENT_REQUEST"),
    ("negative client id", _limit("Bid", "1", "1", clientId=-5), 400, "INVALID_CLIENT_REQUEST"),
    ("number instead of a decimal string", _limit("Bid", 1.5, "1"), 400, "INVALID_CLIENT_REQUEST"),
    ("string client id", _limit("Bid", "1", "1", clientId="7"), 400, "INVALID_CLIENT_REQUEST"),
    ("unknown side", _limit("Buy", "1", "1"), 400, "INVALID_CLIENT_REQUEST"),
    ("unknown order type", _limit("Bid", "1", "1") | {"orderType": "Stop"}, 400, "INVALID_CLIENT_REQUEST"),
    ("unknown time in force", _limit("Bid", "1", "1", timeInForce="GTD"), 400, "INVALID_CLIENT_REQUEST"),
    (
        "self-trade prevention Allow",
        _limit("Bid", "1", "1", selfTradePrevention="Allow"),
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    (
        "limit without a price",
        {"symbol": SOL, "side": "Bid", "orderType": "Limit", "quantity": "1"},
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    (
        "market with a price",
        {"symbol": SOL, "side": "Bid", "orderType": "Market", "quantity": "1", "price": "1"},
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    (
        "market with both quantities",
        {"symbol": SOL, "side": "Bid", "orderType": "Market", "quantity": "1", "quoteQuantity": "1"},
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    ("post-only IOC", _limit("Bid", "1", "1", postOnly=True, timeInForce="IOC"), 400, "INVALID_CLIENT_REQUEST"),
    ("reduce-only on spot", _limit("Bid", "1", "1", reduceOnly=True), 400, "INVALID_CLIENT_REQUEST"),
    (
        "trigger price without trigger quantity",
        _limit("Bid", "1", "1", triggerPrice="2"),
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    (
        "take-profit attached on spot",
        _limit("Bid", "1", "1", takeProfitTriggerPrice="2"),
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    (
        "missing symbol",
        {"side": "Bid", "orderType": "Limit", "price": "1", "quantity": "1"},
        400,
        "INVALID_CLIENT_REQUEST",
    ),
    ("below the minimum quantity", _limit("Bid", "1000", "0.001"), 400, "INVALID_QUANTITY"),
    ("below the minimum value", _limit("Bid", "0.01", "1"), 400, "INVALID_ORDER"),
]


@pytest.mark.parametrize(("case", "body", "status", "code"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_orders_are_refused_and_change_nothing(
    api: Api, shared_key: Key, case: str, body: Any, status: int, code: str
) -> None:
    seq_before = api.status()["seq"]
    refused = api.order(shared_key, **body)
    assert error_of(refused) == (status, code), refused.text
    assert api.balances(shared_key) == {"USDC": {"available": "1000", "locked": "0", "staked": "0"}}
    assert api.open_orders(shared_key) == []
    # Refused at the gateway or by the engine: either way at most the rejection is logged.
    assert api.status()["seq"] - seq_before <= 2


@pytest.fixture(scope="module")
def shared_key(api: Api) -> Key:
    return api.account(USDC="1000")


def test_bodies_that_are_not_orders_are_refused(api: Api, shared_key: Key) -> None:
    from keel.gateway.client import sign_headers

    for raw in (b"{", b"[]", b"42", b'"text"', b"null"):
        headers = sign_headers(shared_key.api_key, shared_key.secret, "orderExecute", None)
        answer = api.http.post("/api/v1/order", content=raw, headers=headers)
        assert answer.status_code in (400, 401), (raw, answer.text)
        assert error_of(answer)[1] in ("INVALID_CLIENT_REQUEST", "INVALID_SIGNATURE")
    # A body whose JSON is fine but signed as it was: a wrong type names the field.
    body = _limit("Bid", "1", "1") | {"quantity": ["1"]}
    headers = sign_headers(
        shared_key.api_key, shared_key.secret, "orderExecute", {k: v for k, v in body.items() if k != "quantity"}
    )
    answer = api.http.post("/api/v1/order", content=json.dumps(body), headers=headers)
    assert error_of(answer) == (401, "INVALID_SIGNATURE")
    assert api.open_orders(shared_key) == []
