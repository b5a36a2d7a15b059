"""`keel serve` and `keel account create` as an operator runs them, plus what every client
meets first: system endpoints, the OpenAPI document, error shapes, pending endpoints,
rate limits.

Checked: `keel serve` refuses a data directory whose log was damaged, naming the first
bad seq, and serves nothing; `keel account create` works with no node running (it opens
the directory) and through a serving node's operator API, and its key works; a restart
keeps balances and open orders (recovery, not the gateway, is the truth); a burst beyond
the per-key limit is answered 429 with Retry-After.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from gateway_support import Api, Key, error_of, keel, start_server, stop_server

from keel.testing import damage


def _account(data_dir: Path, *deposits: str) -> dict[str, object]:
    created = keel("account", "create", "--data", str(data_dir), *(f"--deposit={one}" for one in deposits), "--json")
    assert created.returncode == 0, created.stderr
    parsed: dict[str, object] = json.loads(created.stdout)
    return parsed


def test_serve_refuses_a_damaged_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    for _ in range(3):
        _account(data_dir, "USDC=5")
    last = damage.last_stored_seq(data_dir)
    middle = last - 3
    damage.flip_record_byte(data_dir, middle, 30)
    refused = keel("serve", "--data", str(data_dir), "--port", "0", timeout=60)
    assert refused.returncode == 1
    assert f"first bad sequence number {middle}" in refused.stderr
    assert not (data_dir / "serve.json").exists()


def test_account_create_offline_then_through_the_running_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    offline = _account(data_dir, "USDC=1000.5", "SOL=2")
    assert offline["account_id"] == 1
    assert offline["deposits"] == {"USDC": "1000.5", "SOL": "2"}
    bad = keel("account", "create", "--data", str(data_dir), "--deposit", "XYZ=1")
    assert bad.returncode == 1 and "XYZ" in bad.stderr
    text = keel("account", "create", "--data", str(data_dir))
    assert text.returncode == 0 and "API secret" in text.stdout
    server = start_server(data_dir)
    try:
        api = Api(server)
        online = _account(data_dir, "USDC=7")
        assert online["account_id"] == 3
        first = Key(str(offline["api_key"]), str(offline["api_secret"]), 1)
        second = Key(str(online["api_key"]), str(online["api_secret"]), 3)
        assert api.balances(first) == {
            "USDC": {"available": "1000.5", "locked": "0", "staked": "0"},
            "SOL": {"available": "2", "locked": "0", "staked": "0"},
        }
        assert api.balances(second) == {"USDC": {"available": "7", "locked": "0", "staked": "0"}}
        order = api.order(first, symbol="SOL_USDC", side="Ask", orderType="Limit", price="30", quantity="1.5")
        assert order.status_code == 200, order.text
        taken = api.order(second, symbol="SOL_USDC", side="Bid", orderType="Limit", price="30", quantity="0.2")
        assert taken.status_code == 200 and taken.json()["status"] == "Filled", taken.text
        history_before = api.signed(first, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll").json()
        fills_before = api.signed(first, "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll").json()
        trades_before = api.get("/api/v1/trades", symbol="SOL_USDC").json()
    finally:
        code, _, stderr = stop_server(server)
    assert code == 0, stderr
    # A restart recovers the same state from the log (balances, holds, the open order) and
    # the same history from the views.
    server = start_server(data_dir)
    try:
        api = Api(server)
        assert api.balances(first)["SOL"] == {"available": "0.5", "locked": "1.3", "staked": "0"}
        assert [one["id"] for one in api.open_orders(first)] == [order.json()["id"]]
        assert api.signed(first, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll").json() == history_before
        assert api.signed(first, "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll").json() == fills_before
        assert api.get("/api/v1/trades", symbol="SOL_USDC").json() == trades_before
        assert [(one["status"], one["executedQuantity"]) for one in history_before] == [("PartiallyFilled", "0.2")]
        assert [(fill["isMaker"], fill["quantity"]) for fill in fills_before] == [(True, "0.2")]
    finally:
        stop_server(server)


def test_system_endpoints_and_openapi(api: Api) -> None:
    assert api.get("/api/v1/ping").text == "pong"
    server_ms = int(api.get("/api/v1/time").text)
    assert abs(server_ms - time.time_ns() // 1_000_000) < 5_000
    assert api.get("/api/v1/status").json() == {"status": "Ok", "message": None}
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/order", "/api/v1/depth", "/api/v1/markets", "/operator/v1/accounts"):
        assert path in document["paths"], path
    assert "requestBody" in document["paths"]["/api/v1/order"]["post"]
    markets = api.get("/api/v1/markets").json()
    spot = [market["symbol"] for market in markets if market["marketType"] == "SPOT"]
    assert spot == ["SOL_USDC", "BTC_USDC", "ETH_USDC"]
    for perp in (market for market in markets if market["marketType"] == "PERP"):
        assert perp["symbol"].endswith("_PERP") and perp["imfFunction"]["type"] == "sqrt"
    sol = api.get("/api/v1/market", symbol="SOL_USDC").json()
    assert sol == markets[0] == api.get("/api/v1/markets/SOL_USDC").json()
    assert sol["filters"]["price"]["tickSize"] == "0.01" and sol["filters"]["quantity"]["minQuantity"] == "0.01"
    assert isinstance(sol["createdAt"], str)
    assert [asset["symbol"] for asset in api.get("/api/v1/assets").json()][:4] == ["USDC", "SOL", "BTC", "ETH"]
    assert error_of(api.get("/api/v1/market", symbol="NOPE")) == (400, "INVALID_MARKET")
    assert error_of(api.get("/api/v1/depth")) == (400, "INVALID_CLIENT_REQUEST")
    assert error_of(api.get("/api/v1/depth", symbol="SOL_USDC", limit="7")) == (400, "INVALID_CLIENT_REQUEST")
    assert error_of(api.get("/api/v1/nothing/here")) == (404, "RESOURCE_NOT_FOUND")
    assert error_of(api.http.put("/api/v1/order")) == (405, "INVALID_CLIENT_REQUEST")
    klines = api.get("/api/v1/klines", symbol="SOL_USDC", interval="1m", startTime="0")
    assert klines.status_code == 200 and klines.json() == []
    assert error_of(api.get("/api/v1/klines", symbol="SOL_USDC", interval="2m", startTime="0")) == (
        400,
        "INVALID_CLIENT_REQUEST",
    )
    assert api.get("/api/v1/ticker", symbol="BTC_USDC").json()["lastPrice"] == "0"


def test_pending_features_answer_empty_lists_or_not_implemented(api: Api) -> None:
    key = api.account()
    assert api.get("/api/v1/securities").json() == []
    assert api.signed(key, "GET", "/wapi/v1/history/pnl", "pnlHistoryQueryAll").json() == []  # removed upstream
    # Served now (tests/gateway/test_perps_transfers.py, test_position_history.py); a new account has none.
    assert api.signed(key, "GET", "/wapi/v1/history/position", "positionHistoryQueryAll").json() == []
    assert api.signed(key, "GET", "/wapi/v1/history/settlement", "settlementHistoryQueryAll").json() == []
    assert api.signed(key, "GET", "/api/v1/position", "positionQuery").json() == []
    assert api.signed(key, "GET", "/wapi/v1/capital/deposits", "depositQueryAll").json() == []
    assert api.signed(key, "GET", "/wapi/v1/capital/withdrawals", "withdrawalQueryAll").json() == []
    unauthenticated = api.get("/wapi/v1/history/funding")
    assert error_of(unauthenticated) == (401, "UNAUTHORIZED")
    dust = api.signed(key, "POST", "/api/v1/account/convertDust", "convertDust", {"symbol": "USDC"})
    assert error_of(dust) == (400, "NOT_IMPLEMENTED")
    assert error_of(api.http.patch("/api/v1/account", content=b"{}")) == (401, "UNAUTHORIZED")  # served: signed
    account = api.signed(key, "GET", "/api/v1/account", "accountQuery").json()
    assert (account["spotMakerFee"], account["spotTakerFee"], account["limitOrders"]) == ("2", "5", 2000)


def test_a_burst_beyond_the_key_limit_gets_429_with_retry_after(api: Api) -> None:
    """The module's server allows 50 requests/s per key in bursts of 100 (conftest)."""
    key = api.account()
    answers = []
    for _ in range(1_000):  # stop at the first 429: a slow machine needs more requests to empty the bucket
        answers.append(api.signed(key, "GET", "/api/v1/capital", "balanceQuery"))
        if answers[-1].status_code == 429:
            break
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited, "no request was rate limited"
    assert error_of(limited[0]) == (429, "TOO_MANY_REQUESTS")
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert {answer.status_code for answer in answers} <= {200, 429}
    # Another key is not affected.
    assert api.signed(api.account(), "GET", "/api/v1/capital", "balanceQuery").status_code == 200
