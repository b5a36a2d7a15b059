"""`keel index set` and `keel account show` as an operator runs them.

Each test runs the real `keel` program in a subprocess against a data directory made by
`keel init` (the default markets: SOL_USDC_PERP has tick 0.01, step 0.01 SOL, fees 2/5
bps, initial margin 2% and maintenance 1.25% at these sizes). The fixture drives a node
in this process to open two accounts and a position between them, then closes it:

    Alice: 10 USDC, buys 1 SOL-PERP at 100.00 as taker (fee 0.05 USDC): a long of 1.
    Bob: 1,000 USDC, sells it at 100.00 as maker (fee 0.02 USDC): a short of 1.

The expected figures below are computed by hand from those numbers. Checked: the index
command is logged once and moves the mark, a price drop that leaves Alice below
maintenance liquidates her (and says so), the account table's figures, every argument
error exits 2 without logging anything, and a locked directory is refused with a message
while `account show` still reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.core.commands import Command, CreateAccount, Credit, PlaceOrder, SetIndexPrices
from keel.core.events import CommandRejected
from keel.node.node import Node
from keel.sequencer.sequencer import Sequencer
from keel.testing import damage

USDC = 1_000_000
SOL_ASSET_ID = 1
SOL_PERP_MARKET_ID = 3  # after SOL_USDC, BTC_USDC, ETH_USDC in the default keel.toml
ALICE, BOB = 1, 2


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `keel ARGUMENTS` and return the finished process (text output, wide terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def keel_json(*arguments: str) -> dict[str, Any]:
    result = keel(*arguments)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _call(sequencer: Sequencer, command: Command) -> None:
    outcome = sequencer.call(command)
    assert not isinstance(outcome.events[0], CommandRejected), outcome.events[0]


@pytest.fixture
def traded(tmp_path: Path) -> Path:
    """A `keel init` directory where Alice is long and Bob short 1 SOL-PERP at 100.00."""
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    node = Node.open(data_dir)
    try:
        sequencer = node.start()
        for account_id, amount in ((ALICE, 10 * USDC), (BOB, 1_000 * USDC)):
            _call(sequencer, CreateAccount(seq=0, timestamp_ns=0))
            _call(sequencer, Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=0, amount_atomic=amount))
        _call(sequencer, SetIndexPrices(seq=0, timestamp_ns=0, prices=((SOL_ASSET_ID, 100 * USDC),)))
        for account_id, side in ((BOB, 1), (ALICE, 0)):
            _call(
                sequencer,
                PlaceOrder(
                    seq=0,
                    timestamp_ns=0,
                    account_id=account_id,
                    market_id=SOL_PERP_MARKET_ID,
                    side=side,
                    order_type=0,
                    price_ticks=10_000,
                    quantity_steps=100,
                ),
            )
    finally:
        node.close()
    return data_dir


def test_account_show_reports_balances_position_and_margin(traded: Path) -> None:
    """Alice's table: 9.95 USDC, a long of 1 at 100 marked at 100; equity 9.95, initial 2 (2% of 100),
    maintenance 1.25 (1.25%), margin fraction 9.95 / 100; the JSON holds the same figures."""
    report = keel_json("account", "show", "--data", str(traded), str(ALICE), "--json")
    assert report["account_id"] == ALICE
    assert report["balances"] == [{"asset": "USDC", "balance": "9.95", "locked": "0", "available": "9.95"}]
    assert report["positions"] == [
        {
            "market": "SOL_USDC_PERP",
            "side": "Long",
            "size": "1",
            "entry_price": "100",
            "mark": "100",
            "unrealized_pnl": "0",
            "realized_pnl": "0",
            "funding": "0",
            "open_buys": "0",
            "open_sells": "0",
        }
    ]
    assert report["margin"] == {
        "asset": "USDC",
        "equity": "9.95",
        "initial": "2",
        "maintenance": "1.25",
        "headroom": "7.95",
        "position_notional": "100",
        "margin_fraction": "0.0995",
        "initial_fraction": "0.02",
        "maintenance_fraction": "0.0125",
        "below_maintenance": False,
        "leverage_limit": None,
    }
    bob = keel_json("account", "show", "--data", str(traded), str(BOB), "--json")
    assert bob["positions"][0]["side"] == "Short"
    assert bob["positions"][0]["size"] == "-1"
    assert bob["balances"][0]["balance"] == "999.98"
    table = keel("account", "show", "--data", str(traded), str(ALICE))
    assert table.returncode == 0, table.stderr
    for text in ("Balances", "Positions", "Margin", "SOL_USDC_PERP", "Long", "9.95", "0.0995", "maintenance"):
        assert text in table.stdout, text


def test_index_set_logs_one_command_and_moves_the_mark(traded: Path) -> None:
    """SOL=92 is one logged SetIndexPrices of 92,000,000 atomic USDC; the perp's index and mark become 92
    (the book is empty, so the mark is the index); Alice, at equity 1.95 against maintenance 1.15, stays."""
    before = damage.last_stored_seq(traded)
    report = keel_json("index", "set", "--data", str(traded), "SOL=92", "--json")
    assert report["prices"] == {"SOL": "92"}
    assert report["markets"] == [{"symbol": "SOL_USDC_PERP", "index": "92", "mark": "92", "changed": True}]
    assert report["liquidations"] == []
    logged = [
        json.loads(line)
        for line in keel("log", "show", "--data", str(traded), "--from", str(before + 1), "--json").stdout.splitlines()
    ]
    index_commands = [record for record in logged if record["type"] == "SetIndexPrices"]
    assert len(index_commands) == 1
    assert index_commands[0]["seq"] == report["seq"]
    assert index_commands[0]["command"]["prices"] == [[SOL_ASSET_ID, 92 * USDC]]
    alice = keel_json("account", "show", "--data", str(traded), str(ALICE), "--json")
    assert alice["positions"][0]["mark"] == "92"
    assert alice["positions"][0]["unrealized_pnl"] == "-8"
    assert alice["margin"]["equity"] == "1.95"
    assert alice["margin"]["maintenance"] == "1.15"
    assert alice["margin"]["margin_fraction"] == "0.0211"  # 1.95 / 92, rounded down
    text = keel("index", "set", "--data", str(traded), "SOL=92")
    assert text.returncode == 0, text.stderr
    assert "SOL_USDC_PERP" in text.stdout
    assert "no account fell below its maintenance margin" in text.stdout


def test_index_set_reports_the_liquidation_it_causes(traded: Path) -> None:
    """SOL=90.5 leaves Alice at equity 9.95 - 9.5 = 0.45 against maintenance 1.25% x 90.5 = 1.13125: she is
    liquidated (the book is empty, so her long is deleveraged to Bob at the mark) and keeps 0.45 USDC."""
    report = keel_json("index", "set", "--data", str(traded), "SOL=90.5", "--json")
    assert report["liquidations"] == [{"account_id": ALICE, "equity": "0.45", "maintenance": "1.13125"}]
    alice = keel_json("account", "show", "--data", str(traded), str(ALICE), "--json")
    assert alice["positions"] == []
    assert alice["balances"][0]["balance"] == "0.45"
    assert alice["margin"]["margin_fraction"] is None
    bob = keel_json("account", "show", "--data", str(traded), str(BOB), "--json")
    assert bob["positions"] == []
    assert bob["balances"][0]["balance"] == "1009.48"  # 999.98 + 9.5 realized from the deleveraging


def test_index_set_text_names_liquidated_accounts(traded: Path) -> None:
    """The text output counts the liquidations and shows each account's equity at the start."""
    result = keel("index", "set", "--data", str(traded), "SOL=80")
    assert result.returncode == 0, result.stderr
    assert "1 liquidation(s) started" in result.stdout
    assert "-10.05" in result.stdout  # at 80 Alice's equity is 9.95 - 20


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("DOGE=1", "unknown asset DOGE"),
        ("SOL=abc", "is not a decimal number"),
        ("SOL=1.0000001", "more than 6 decimal places"),
        ("SOL=0", "must be positive"),
        ("SOL=-3", "is not a decimal number"),
        ("SOL", "expected SYMBOL=PRICE"),
        ("USDC=1", "is the margin asset"),
    ],
)
def test_index_set_refuses_bad_arguments_and_logs_nothing(traded: Path, argument: str, message: str) -> None:
    before = damage.last_stored_seq(traded)
    result = keel("index", "set", "--data", str(traded), argument)
    assert result.returncode == 2
    assert message in result.stderr
    assert damage.last_stored_seq(traded) == before


def test_index_set_refuses_a_repeated_asset(traded: Path) -> None:
    result = keel("index", "set", "--data", str(traded), "SOL=100", "SOL=101")
    assert result.returncode == 2
    assert "SOL is priced twice" in result.stderr


def test_index_set_on_a_locked_directory_says_so_and_account_show_still_reads(traded: Path) -> None:
    """While another process holds the directory (as `keel serve` does), index set exits 1 naming the lock
    and logs nothing; account show, being read-only, still answers."""
    node = Node.open(traded)
    try:
        before = damage.last_stored_seq(traded)
        refused = keel("index", "set", "--data", str(traded), "SOL=95")
        assert refused.returncode == 1
        assert "in use by another keel process" in refused.stderr
        assert "node.lock" in refused.stderr
        assert damage.last_stored_seq(traded) == before
        shown = keel_json("account", "show", "--data", str(traded), str(ALICE), "--json")
        assert shown["margin"]["equity"] == "9.95"
    finally:
        node.close()


def test_account_show_unknown_account_and_missing_directory(traded: Path, tmp_path: Path) -> None:
    unknown = keel("account", "show", "--data", str(traded), "99")
    assert unknown.returncode == 2
    assert "no account 99" in unknown.stderr
    missing = keel("account", "show", "--data", str(tmp_path / "nowhere"), "1")
    assert missing.returncode == 1
    assert "is not a directory" in missing.stderr


def test_account_show_names_a_system_account(traded: Path) -> None:
    """The fee account (-2) holds Alice's and Bob's fees: 0.05 + 0.02 USDC."""
    report = keel_json("account", "show", "--data", str(traded), "--json", "--", "-2")
    assert report["name"] == "fees"
    assert report["balances"][0]["balance"] == "0.07"
