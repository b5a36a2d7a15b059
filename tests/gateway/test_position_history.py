"""Position and settlement history (spec 9) against a real `keel serve`, over real HTTP.

One server for this module over a data directory made by `keel init --from-config` with
the default markets and Ticks an hour apart (so no funding round moves a figure while
the test reads). SOL_USDC_PERP: tick 0.01 USDC, step 0.01 SOL, maker 2 bps, taker 5 bps.

Alice buys 1 SOL at 100.00 from Bob (taker fee 0.05 USDC), sells 0.4 to Carol at 105.00
(+2 USDC realized, fee 0.021), then sells 1 to Carol at 103.00: that closes the 0.6 left
(+1.8 USDC, fee 0.0515) and opens a 0.4 short at 103.00. Checked: the two runs of her
position (the long closed, the short open) and her two realized-PnL settlements with
exact amounts, prices and ids; that Bob and Carol see only theirs; paging, sorting and
filters; the bad parameters (400s, never a 500); that the history is signed; and that
/wapi/v1/history/pnl (removed upstream) still answers [].
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gateway_support import Api, Key, Server, error_of, keel, start_server, stop_server

from keel.node.config import Config, write_config

PERP = "SOL_USDC_PERP"
POSITIONS = ("/wapi/v1/history/position", "positionHistoryQueryAll")
SETTLEMENTS = ("/wapi/v1/history/settlement", "settlementHistoryQueryAll")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's `keel serve` (overrides conftest's): the default markets, no Tick for an hour."""
    data_dir: Path = tmp_path_factory.mktemp("position-history") / "data"
    data_dir.mkdir()
    write_config(data_dir, Config(tick_interval_ms=3_600_000))
    initialised = keel("init", "--data", str(data_dir), "--from-config")
    assert initialised.returncode == 0, initialised.stderr
    server = start_server(data_dir, "--key-rate=0", "--ip-rate=0")
    try:
        yield server
    finally:
        code, stdout, stderr = stop_server(server)
        assert code == 0, stderr
        assert "stopped" in stdout


def read(api: Api, key: Key, endpoint: tuple[str, str], **params: Any) -> Any:
    answer = api.signed(key, "GET", *endpoint, {name: str(value) for name, value in params.items()} or None)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(api: Api, key: Key, endpoint: tuple[str, str], **params: Any) -> tuple[int, str]:
    return error_of(api.signed(key, "GET", *endpoint, {name: str(value) for name, value in params.items()}))


def trade(api: Api, maker: Key, taker: Key, side: str, price: str, quantity: str) -> None:
    """`maker` rests an order at `price`, `taker` takes it on `side` (Bid or Ask)."""
    other = "Ask" if side == "Bid" else "Bid"
    for key, order_side, tif in ((maker, other, "GTC"), (taker, side, "IOC")):
        answer = api.order(
            key, symbol=PERP, side=order_side, orderType="Limit", price=price, quantity=quantity, timeInForce=tif
        )
        assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Filled", answer.text


@pytest.fixture(scope="module")
def session(api: Api) -> dict[str, Key]:
    answer = api.signed(api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": "SOL=100"})
    assert answer.status_code == 200, answer.text
    alice, bob, carol = (api.account(USDC="1000") for _ in range(3))
    trade(api, bob, alice, "Bid", "100", "1")
    trade(api, carol, alice, "Ask", "105", "0.4")
    trade(api, carol, alice, "Ask", "103", "1")
    return {"alice": alice, "bob": bob, "carol": carol}


def plain(value: Decimal) -> str:
    """A decimal as the API writes it: no exponent, no trailing zeros."""
    return f"{value.normalize():f}"


def mark_of(api: Api) -> Decimal:
    [mark] = api.get("/api/v1/markPrices", symbol=PERP).json()
    return Decimal(mark["markPrice"])


def test_a_partial_close_and_a_flip_are_two_runs_and_two_settlements(api: Api, session: dict[str, Key]) -> None:
    alice = session["alice"]
    mark = mark_of(api)
    assert api.balances(alice)["USDC"]["available"] == "1003.6775"  # 1000 + 2 + 1.8 - 0.05 - 0.021 - 0.0515
    short, long_ = read(api, alice, POSITIONS)
    account = alice.account_id
    assert long_["id"].startswith(f"{account}-") and short["id"].startswith(f"{account}-")
    assert long_["id"] != short["id"]
    assert long_ == {
        "id": long_["id"],
        "symbol": PERP,
        "netQuantity": "0",
        "netExposureQuantity": "0",
        "netExposureNotional": "0",
        "netCost": "0",
        "markPrice": str(mark),
        "entryPrice": "100",
        "cumulativePnlRealized": "3.8",
        "unrealizedPnl": "0",
        "fundingQuantity": "0",
        "interest": "0",
        "liquidated": "0",
        "imf": "0.02",
        "fees": "0.1225",  # 0.05 + 0.021 + 0.0515: the flip's whole fee counts for the run it closed
        "state": "Closed",
        "closedVolume": "1",
        "liquidationFees": "0",
        "closingPrice": "103.8",  # (0.4 x 105 + 0.6 x 103) / 1
        "accountLeverage": None,
        "openedAt": long_["openedAt"],
        "closedAt": short["openedAt"],
    }
    notional = Decimal("0.4") * mark
    assert short == {
        "id": short["id"],
        "symbol": PERP,
        "netQuantity": "-0.4",
        "netExposureQuantity": "0.4",
        "netExposureNotional": plain(notional),
        "netCost": "-41.2",
        "markPrice": str(mark),
        "entryPrice": "103",
        "cumulativePnlRealized": "0",
        "unrealizedPnl": plain(Decimal("41.2") - notional),
        "fundingQuantity": "0",
        "interest": "0",
        "liquidated": "0",
        "imf": "0.02",
        "fees": "0",
        "state": "Open",
        "closedVolume": "0",
        "liquidationFees": "0",
        "closingPrice": None,
        "accountLeverage": None,
        "openedAt": short["openedAt"],
        "closedAt": None,
    }
    assert long_["openedAt"] < short["openedAt"]

    latest, first = read(api, alice, SETTLEMENTS)
    assert first["engineSequence"] < latest["engineSequence"]
    assert latest == {
        "quantity": "1.8",
        "symbol": "USDC",
        "source": "RealizePnl",
        "timestamp": short["openedAt"],  # the flip settled the long and opened the short
        "userId": account,
        "subaccountId": None,
        "positionId": long_["id"],
        "engineSequence": latest["engineSequence"],
    }
    moments = {"timestamp": first["timestamp"], "engineSequence": first["engineSequence"]}
    assert first == {**latest, "quantity": "2", **moments}
    assert long_["openedAt"] < first["timestamp"] < latest["timestamp"]


def test_each_account_sees_only_its_own(api: Api, session: dict[str, Key]) -> None:
    bob, carol = session["bob"], session["carol"]
    [bobs] = read(api, bob, POSITIONS)
    assert (bobs["netQuantity"], bobs["entryPrice"], bobs["fees"], bobs["state"]) == ("-1", "100", "0.02", "Open")
    assert bobs["id"].startswith(f"{bob.account_id}-")
    # Carol bought 0.4 at 105 and 1 at 103 as maker: 0.0084 + 0.0206 in fees, one open run
    [carols] = read(api, carol, POSITIONS)
    assert (carols["netQuantity"], carols["netCost"], carols["fees"]) == ("1.4", "145", "0.029")
    assert carols["entryPrice"] == "103.5714285714"  # 145 / 1.4, cut to 10 decimals
    assert read(api, bob, SETTLEMENTS) == [] and read(api, carol, SETTLEMENTS) == []
    ids = {row["id"] for row in read(api, session["alice"], POSITIONS)}
    assert bobs["id"] not in ids and carols["id"] not in ids


def test_paging_sorting_and_filters(api: Api, session: dict[str, Key]) -> None:
    alice = session["alice"]
    short, long_ = read(api, alice, POSITIONS)
    assert read(api, alice, POSITIONS, limit=1) == [short]
    assert read(api, alice, POSITIONS, limit=1, offset=1) == [long_]
    assert read(api, alice, POSITIONS, offset=2) == []
    assert read(api, alice, POSITIONS, sortDirection="Asc") == [long_, short]
    assert read(api, alice, POSITIONS, sortDirection="Desc", limit=1000) == [short, long_]
    assert read(api, alice, POSITIONS, state="Closed") == [long_]
    assert read(api, alice, POSITIONS, state="Open") == [short]
    assert read(api, alice, POSITIONS, symbol=PERP, marketType="PERP") == [short, long_]
    assert read(api, alice, POSITIONS, symbol="SOL_USDC") == []  # a spot market has no positions
    assert read(api, alice, POSITIONS, marketType="SPOT") == []
    assert read(api, alice, POSITIONS, symbol="BTC_USDC_PERP") == []

    latest, first = read(api, alice, SETTLEMENTS)
    assert read(api, alice, SETTLEMENTS, limit=1) == [latest]
    assert read(api, alice, SETTLEMENTS, limit=1, offset=1) == [first]
    assert read(api, alice, SETTLEMENTS, sortDirection="Asc") == [first, latest]
    assert read(api, alice, SETTLEMENTS, source="RealizePnl") == [latest, first]
    for elsewhere in ("BackstopLiquidation", "FundingPayment", "TradingFees", "CulledRealizePnl"):
        assert read(api, alice, SETTLEMENTS, source=elsewhere) == [], elsewhere


def test_bad_parameters_are_refused_with_400s(api: Api, session: dict[str, Key]) -> None:
    alice = session["alice"]
    bad = "INVALID_CLIENT_REQUEST"
    for endpoint in (POSITIONS, SETTLEMENTS):
        for params in (
            {"limit": 0},
            {"limit": -1},
            {"limit": 1001},
            {"limit": "ten"},
            {"offset": -1},
            {"offset": "1.5"},
            {"sortDirection": "Up"},
        ):
            assert refused(api, alice, endpoint, **params) == (400, bad), (endpoint, params)
    assert refused(api, alice, POSITIONS, symbol="NOPE_USDC_PERP") == (400, "INVALID_MARKET")
    assert refused(api, alice, POSITIONS, state="Liquidated") == (400, bad)
    assert refused(api, alice, POSITIONS, marketType="FUTURES") == (400, bad)
    assert refused(api, alice, SETTLEMENTS, source="Nope") == (400, bad)
    for path, _ in (POSITIONS, SETTLEMENTS):
        status, code = error_of(api.get(path))  # unsigned
        assert (status, code) == (401, "UNAUTHORIZED")
    # signed with another endpoint's instruction
    assert error_of(api.signed(alice, "GET", POSITIONS[0], SETTLEMENTS[1]))[0] == 401


def test_pnl_history_is_still_empty(api: Api, session: dict[str, Key]) -> None:
    assert read(api, session["alice"], ("/wapi/v1/history/pnl", "pnlHistoryQueryAll")) == []
