"""Perpetuals, deposits, withdrawals, status and the operator API against a real `keel serve`.

One server for this module over a data directory made by `keel init --from-config`: the
default assets (each on its chain, with fees and limits) and markets, except that
SOL_USDC_PERP pays funding every second and the node ticks every 100 ms, so real funding
rounds happen while the test waits. Clients are the unmodified, pinned ccxt `backpack`
class, raw signed HTTP for the operator API, and `keel` commands run as subprocesses
against the served directory (so they go through the operator API, not the log).

Checked: positions (side from netCost, contracts, entry and mark prices), the funding
rate, its history and an account's funding payments with hand-computed amounts, open
interest, mark prices of every perpetual, markets' perp fields; currencies with their
networks; deposit history (a chain deposit reported with `keel deposit` beside operator
credits, and one rejected through the operator API), deposit addresses, a withdrawal
through ccxt's `withdraw` taken through sent and completed by `keel withdrawals`, with
the balances each step implies; the error
classes ccxt raises for a bad address, insufficient funds and frozen withdrawals; an
adjustment; and /api/v1/status announcing scheduled maintenance, showing Maintenance
while every market is closed, and the cautious reopening (a perpetual stays Closed until
its index is refreshed), with each CLI refusal printed with its code.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ccxt
import pytest
from gateway_support import Api, Key, Server, keel, start_server, stop_server

from keel.node.config import DEFAULT_MARKETS, Config, write_config

SOL_PERP = "SOL/USDC:USDC"
ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"  # a Solana address (base58)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's `keel serve` (overrides conftest's): SOL_USDC_PERP funds every second."""
    data_dir: Path = tmp_path_factory.mktemp("perps-transfers") / "data"
    data_dir.mkdir()
    markets = tuple(
        replace(market, funding_interval_s=1) if market.symbol == "SOL_USDC_PERP" else market
        for market in DEFAULT_MARKETS
    )
    write_config(data_dir, Config(tick_interval_ms=100, markets=markets))
    initialised = keel("init", "--data", str(data_dir), "--from-config")
    assert initialised.returncode == 0, initialised.stderr
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


def operator(api: Api, method: str, path: str, instruction: str, **params: Any) -> Any:
    answer = api.signed(api.operator, method, path, instruction, params or None)
    assert answer.status_code == 200, answer.text
    return answer.json()


def cli(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `keel ARGUMENTS --data DIR` against the served directory."""
    return keel(*arguments, "--data", str(data_dir))


def cli_json(data_dir: Path, *arguments: str) -> Any:
    result = cli(data_dir, *arguments, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def wait_for(condition: Callable[[], Any], seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_positions_funding_and_open_interest_through_ccxt(api: Api) -> None:
    """Bob buys 1 SOL perpetual at 101 from Alice; Carol quotes 100.50 / 101.50; the index is
    100. Mark = median(100, mid 101, last 101) = 101, so funding is (101 - 100) / 100 = 1%
    (the cap): each second the long pays 1 SOL x 101 x 1% = 1.01 USDC to the short."""
    answer = operator(api, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", prices="SOL=100")
    assert answer["prices"] == {"SOL": "100"}
    assert answer["markets"] == [{"symbol": "SOL_USDC_PERP", "indexPrice": "100", "markPrice": "100"}]
    alice, bob, carol = (client(api, api.account(USDC="1000")) for _ in range(3))
    alice.create_order(SOL_PERP, "limit", "sell", 1, 101)
    bought = bob.create_order(SOL_PERP, "limit", "buy", 1, 101)
    assert (bought["status"], bought["filled"]) == ("closed", 1.0)
    carol.create_order(SOL_PERP, "limit", "buy", 1, 100.5)
    carol.create_order(SOL_PERP, "limit", "sell", 1, 101.5)

    def paid() -> list[Any]:
        return [one for one in bob.fetch_funding_history(SOL_PERP) if one["rate"] == 0.01]

    payments = wait_for(paid)
    assert payments, "no funding round at 1% within 5 s"
    assert (payments[0]["symbol"], payments[0]["amount"]) == (SOL_PERP, -1.01)
    assert isinstance(payments[0]["timestamp"], int)
    received = [one for one in alice.fetch_funding_history(SOL_PERP) if one["rate"] == 0.01]
    assert received and received[0]["amount"] == 1.01

    [position] = bob.fetch_positions([SOL_PERP])  # ccxt 4.5.90 keeps these fields as the strings sent
    assert (position["symbol"], position["side"], position["contracts"]) == (SOL_PERP, "long", "1")
    assert (position["entryPrice"], position["markPrice"], position["notional"]) == ("101", "101", "101")
    assert (position["unrealizedPnl"], position["initialMarginPercentage"]) == ("0", "0.02")
    assert (position["initialMargin"], position["maintenanceMargin"]) == (2.02, 1.2625)
    info = position["info"]
    assert (info["netQuantity"], info["netCost"], info["netExposureQuantity"]) == ("1", "101", "1")
    assert float(info["cumulativeFundingPayment"]) <= -1.01
    assert info["imfFunction"] == {"type": "sqrt", "base": "0.02", "factor": "0.0001275"}
    [short] = alice.fetch_positions()
    assert (short["side"], short["contracts"], short["info"]["netQuantity"]) == ("short", "1", "-1")
    assert carol.fetch_positions() == []  # open orders only: no position

    rate = bob.fetch_funding_rate(SOL_PERP)
    assert (rate["markPrice"], rate["indexPrice"], rate["fundingRate"]) == (101.0, 100.0, 0.01)
    assert rate["nextFundingTimestamp"] > time.time() * 1000 - 1000
    history = bob.fetch_funding_rate_history(SOL_PERP)
    assert history[-1]["fundingRate"] == 0.01
    assert all(one["timestamp"] % 1000 == 0 for one in history)  # each round's interval boundary
    assert bob.fetch_open_interest(SOL_PERP)["openInterestValue"] == 1.0
    marks = api.get("/api/v1/markPrices").json()
    assert [mark["symbol"] for mark in marks] == ["SOL_USDC_PERP", "BTC_USDC_PERP", "ETH_USDC_PERP"]
    assert api.get("/api/v1/markPrices", symbol="SOL_USDC").json() == []  # a spot market has none
    market = bob.markets[SOL_PERP]
    assert (market["type"], market["info"]["fundingInterval"], market["info"]["orderBookState"]) == (
        "swap",
        1000,
        "Open",
    )


def test_deposits_and_withdrawals_through_ccxt_and_the_cli(api: Api, served: Server) -> None:
    """A funded account (an operator credit of 100 USDC) gets a chain deposit of 25 reported by
    `keel deposit`, withdraws 20 (fee 1, auto-approved), which `keel withdrawals` marks sent and
    completed: 100 + 25 - 21 = 104 USDC. Then the refusals, a freeze, and an adjustment of -4."""
    key = api.account(USDC="100")
    alice = client(api, key)
    data_dir = served.data_dir
    usdc = alice.fetch_currencies()["USDC"]
    solana = usdc["networks"]["SOL"]
    assert (solana["id"], solana["deposit"], solana["withdraw"], solana["fee"]) == ("Solana", True, True, 1.0)
    assert solana["limits"]["withdraw"]["max"] == 1_000_000
    assert (solana["limits"]["withdraw"]["min"], solana["limits"]["deposit"]["min"]) == (2, 1)  # the minimums
    assert set(alice.currencies["BTC"]["networks"]) == {"BTC"}
    assert set(alice.currencies["ETH"]["networks"]) == {"ERC20"}

    reported = cli_json(
        data_dir, "deposit", "--account", str(key.account_id), "--asset", "USDC", "--amount", "25", "--tx", "tx-25"
    )
    assert (reported["through"], reported["status"], reported["deposit_id"]) == (api.url, "credited", 1)
    again = cli_json(
        data_dir, "deposit", "--account", str(key.account_id), "--asset", "USDC", "--amount", "25", "--tx", "tx-25"
    )
    assert (again["changed"], again["deposit_id"]) == (False, 1)  # credited at most once
    seen = operator(
        api,
        "POST",
        "/operator/v1/deposits",
        "operatorDepositReport",
        accountId=key.account_id,
        symbol="USDC",
        quantity="7",
        txId="tx-7",
        confirmations=1,
    )
    assert (seen["status"], seen["confirmations"], seen["entryId"]) == ("confirming", 1, None)  # 32 are required
    rejected = operator(
        api,
        "POST",
        "/operator/v1/deposits/reject",
        "operatorDepositReject",
        depositId=seen["depositId"],
        reason="not ours",
        operator="ops",
    )
    assert rejected["status"] == "rejected"
    deposits = alice.fetch_deposits()
    assert [(one["amount"], one["status"], one["network"], one["txid"]) for one in deposits] == [
        (100.0, "ok", "administrator", None),  # the operator credit (ccxt sorts oldest first)
        (25.0, "ok", "SOL", "tx-25"),
        (7.0, "declined", "SOL", "tx-7"),
    ]
    address = alice.fetch_deposit_address("USDC", {"network": "SOL"})["address"]
    assert address == alice.fetch_deposit_address("SOL", {"network": "SOL"})["address"]
    assert 32 <= len(address) <= 44 and deposits[1]["addressTo"] == address

    sent = alice.withdraw("USDC", 20, ADDRESS, {"network": "SOL"})
    assert (sent["status"], sent["amount"], sent["fee"], sent["network"]) == (
        "pending",
        20.0,
        {"cost": 1.0, "currency": "USDC"},
        "SOL",
    )
    assert alice.fetch_balance()["USDC"]["used"] == 21.0
    listed = cli_json(data_dir, "withdrawals", "list", "--status", "approved", "--account", str(key.account_id))
    assert [(one["id"], one["amount"], one["approvals"]) for one in listed] == [(int(sent["id"]), "20", ["auto"])]
    marked = cli_json(data_dir, "withdrawals", "mark-sent", sent["id"], "--tx", "sig-20")
    assert (marked["status"], marked["tx"]) == ("sent", "sig-20")
    again_marked = cli(data_dir, "withdrawals", "mark-sent", sent["id"], "--tx", "sig-20")
    assert again_marked.returncode == 1
    assert "WITHDRAWAL_STATE (5007)" in again_marked.stderr
    completed = cli_json(data_dir, "withdrawals", "mark-completed", sent["id"])
    assert completed["status"] == "completed" and completed["entry_id"] is not None
    [done] = alice.fetch_withdrawals()
    assert (done["id"], done["status"], done["txid"], done["addressTo"]) == (sent["id"], "ok", "sig-20", ADDRESS)
    assert alice.fetch_balance()["USDC"] == {"free": 104.0, "used": 0.0, "total": 104.0}

    with pytest.raises(ccxt.BadRequest, match="Solana address"):
        alice.withdraw("USDC", 1, "0xnot-solana", {"network": "SOL"})
    with pytest.raises(ccxt.InsufficientFunds):
        alice.withdraw("USDC", 104, ADDRESS, {"network": "SOL"})  # 104 + the fee of 1
    with pytest.raises(ccxt.BadRequest, match="the minimum withdrawal is 2 USDC"):
        alice.withdraw("USDC", 1.5, ADDRESS, {"network": "SOL"})
    dust = cli_json(
        data_dir, "deposit", "--account", str(key.account_id), "--asset", "USDC", "--amount", "0.5", "--tx", "tx-dust"
    )
    assert dust["status"] == "rejected"  # below the minimum deposit of 1 USDC: recorded, never credited
    assert alice.fetch_deposits()[-1]["status"] == "declined"
    frozen = cli(data_dir, "withdrawals", "freeze", "--reason", "audit")
    assert frozen.returncode == 0 and "withdrawals frozen (audit)" in frozen.stdout
    assert alice.fetch_currencies()["USDC"]["networks"]["SOL"]["withdraw"] is False
    assert "Withdrawals are frozen: audit" in alice.fetch_status()["info"]["message"]
    with pytest.raises(ccxt.OperationFailed, match="frozen"):
        alice.withdraw("USDC", 1, ADDRESS, {"network": "SOL"})
    assert cli(data_dir, "withdrawals", "unfreeze", "--reason", "checked").returncode == 0
    adjusted = cli_json(
        data_dir, "adjust", "--account", str(key.account_id), "--asset", "USDC", "--amount=-4", "--incident", "INC-7"
    )
    assert (adjusted["amount"], adjusted["through"]) == ("-4", api.url)
    assert alice.fetch_balance()["USDC"]["total"] == 100.0
    # The correction is in the user's own history (settlements), not only the operator's.
    settled = api.signed(
        key, "GET", "/wapi/v1/history/settlement", "settlementHistoryQueryAll", {"source": "Adjustment"}
    ).json()
    assert [(one["quantity"], one["symbol"], one["source"]) for one in settled] == [("-4", "USDC", "Adjustment")]


def test_status_maintenance_and_cautious_reopening_through_the_cli(api: Api, served: Server) -> None:
    """A schedule's announcement is in /api/v1/status while it is pending (status Ok); every
    market Closed is Maintenance and refuses orders; a perpetual reopens only through
    PostOnly and only once its index was refreshed after the close."""
    data_dir = served.data_dir
    exchange = client(api, api.account(USDC="100"))
    tomorrow = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).date().isoformat()
    scheduled = cli_json(
        data_dir,
        "maintenance",
        "schedule",
        "--date",
        tomorrow,
        "--step",
        "10:00=Closed",
        "--step",
        "12:00=PostOnly",
        "--step",
        "12:10=Open",
        "--announcement",
        "Maintenance 10:00-12:00 UTC; post-only 12:00-12:10",
        "--market",
        "ETH_USDC",
    )
    assert [step["state"] for step in scheduled["steps"]] == ["Closed", "PostOnly", "Open"]
    status = exchange.fetch_status()
    assert (status["status"], status["info"]["message"]) == ("ok", "Maintenance 10:00-12:00 UTC; post-only 12:00-12:10")
    [listed] = cli_json(data_dir, "maintenance", "list")
    assert (listed["schedule_id"], listed["status"]) == (scheduled["schedule_id"], "active")
    assert (
        cli(data_dir, "maintenance", "cancel", str(scheduled["schedule_id"]), "--reason", "postponed").returncode == 0
    )
    assert exchange.fetch_status()["info"]["message"] is None

    closed = cli_json(data_dir, "market", "state", "--all", "Closed", "--reason", "drill")
    assert len(closed["changes"]) == 6
    assert exchange.fetch_status()["status"] == "maintenance"
    with pytest.raises(ccxt.ExchangeError, match="MAINTENANCE"):  # spec 7: 503 while every market is Closed
        exchange.create_order("SOL/USDC", "limit", "buy", 1, 90)
    refused = cli(data_dir, "market", "state", "--all", "Open", "--reason", "too soon")
    assert refused.returncode == 1 and "MARKET_STATE_TRANSITION (2021)" in refused.stderr
    stale = cli(data_dir, "market", "state", "--all", "PostOnly", "--reason", "reopen")
    assert stale.returncode == 1 and "index price has not been refreshed" in stale.stderr
    operator(api, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", prices="SOL=100,BTC=90000,ETH=3000")
    assert cli(data_dir, "market", "state", "--all", "PostOnly", "--reason", "reopen").returncode == 0
    assert exchange.fetch_status()["status"] == "ok"
    assert exchange.load_markets(True)["SOL/USDC"]["active"] is False
    reopened = cli_json(data_dir, "market", "state", "--all", "Open", "--reason", "done")
    assert {change["state"] for change in reopened["changes"]} == {"Open"}
    assert exchange.load_markets(True)["SOL/USDC"]["active"] is True
    states = cli_json(data_dir, "market", "list")
    assert {row["orderBookState"] for row in states} == {"Open"}
