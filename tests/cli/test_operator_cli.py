"""`keel market`, `keel maintenance`, `keel deposit`, `keel withdrawals` and `keel adjust` on an idle data directory.

Each test runs the real `keel` program in a subprocess against a directory made by `keel
init` (default assets: USDC on Solana with 32 confirmations, a 1 USDC withdrawal fee,
auto-approval up to 10,000 and two operators from 100,000). No node serves it, so each
command opens the directory's node itself, logs one command and closes it (the served
path is tests/gateway/test_perps_transfers.py). A fixture drives a node in this process
to make two funded accounts and three withdrawals to act on. After the commands, the
state recovered from the log is checked, so what was printed is what was logged.

Checked: every command's output and --json, the refusals the engine makes (printed with
their code, exit 1, nothing changed), bad arguments (unknown symbol or asset, bad state
name, bad or past time, a malformed amount: exit 2, nothing logged), and a directory
held by another process with no node serving it (exit 1 with what to do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.core.commands import Command, CreateAccount, Credit, RequestWithdrawal
from keel.core.events import CommandRejected
from keel.core.markets import MarketState
from keel.core.transfers import DepositStatus, WithdrawalStatus
from keel.node.node import Node
from keel.sequencer.sequencer import Sequencer

USDC = 1_000_000
ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
ALICE, BOB = 1, 2


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def keel_json(*arguments: str) -> Any:
    result = keel(*arguments, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _call(sequencer: Sequencer, command: Command) -> None:
    outcome = sequencer.call(command)
    assert not isinstance(outcome.events[0], CommandRejected), outcome.events


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Alice (1,000 USDC) and Bob (500,000 USDC); withdrawals 1 (Alice, 50: auto-approved),
    2 (Alice, 20: auto-approved) and 3 (Bob, 200,000: waits for two operators)."""
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    with Node.open(data_dir) as node:
        sequencer = node.start()
        for account_id, amount in ((ALICE, 1_000), (BOB, 500_000)):
            _call(sequencer, CreateAccount(seq=0, timestamp_ns=0))
            _call(
                sequencer, Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=0, amount_atomic=amount * USDC)
            )
        for account_id, amount in ((ALICE, 50), (ALICE, 20), (BOB, 200_000)):
            _call(
                sequencer,
                RequestWithdrawal(
                    seq=0,
                    timestamp_ns=0,
                    account_id=account_id,
                    asset_id=0,
                    amount_atomic=amount * USDC,
                    address=ADDRESS,
                ),
            )
    return data_dir


def recovered(data_dir: Path) -> Any:
    node = Node.open(data_dir, read_only=True)
    try:
        return node.engine.state
    finally:
        node.close()


def test_market_states_and_maintenance(data: Path) -> None:
    directory = str(data)
    changed = keel("market", "state", "--data", directory, "SOL_USDC", "closed", "--reason", "incident 9")
    assert changed.returncode == 0, changed.stderr
    assert "SOL_USDC │ Open   │ Closed" in changed.stdout
    refused = keel("market", "state", "--data", directory, "SOL_USDC", "Open", "--reason", "too soon")
    assert refused.returncode == 1
    assert "refused: MARKET_STATE_TRANSITION (2021): SOL_USDC is Closed: it reopens through PostOnly" in refused.stderr
    reopened = keel_json(
        "market", "state", "--data", directory, "sol_usdc", "PostOnly", "--reason", "reopen", "--operator", "bob"
    )
    assert reopened["changes"] == [{"symbol": "SOL_USDC", "before": "Closed", "state": "PostOnly"}]
    for arguments, message in (
        (("NOPE_USDC", "Closed"), "unknown market NOPE_USDC (listed: SOL_USDC, BTC_USDC, ETH_USDC, SOL_USDC_PERP"),
        (("SOL_USDC", "Shut"), "unknown state 'Shut': expected one of Open, PostOnly, LimitOnly, CancelOnly, Closed"),
        (("SOL_USDC",), "expected SYMBOL STATE (or --all STATE)"),
    ):
        wrong = keel("market", "state", "--data", directory, *arguments, "--reason", "x")
        assert (wrong.returncode, message in wrong.stderr) == (2, True), wrong.stderr
    everything = keel_json("market", "state", "--data", directory, "--all", "CancelOnly", "--reason", "audit")
    assert len(everything["changes"]) == 6

    scheduled = keel_json(
        "maintenance",
        "schedule",
        "--data",
        directory,
        "--date",
        "2099-01-05",
        "--step",
        "10:00=Closed+cancel",
        "--step",
        "12:00=PostOnly",
        "--step",
        "2099-01-05T12:10=Open",
        "--announcement",
        "ETH maintenance 10:00-12:00 UTC",
        "--market",
        "ETH_USDC",
    )
    assert scheduled["steps"] == [
        {"time": "2099-01-05 10:00:00 UTC", "state": "Closed", "markets": ["ETH_USDC"], "cancel_orders": True},
        {"time": "2099-01-05 12:00:00 UTC", "state": "PostOnly", "markets": ["ETH_USDC"], "cancel_orders": False},
        {"time": "2099-01-05 12:10:00 UTC", "state": "Open", "markets": ["ETH_USDC"], "cancel_orders": False},
    ]
    for steps, message in (
        (("--step", "10:00=Closed"), "step time '10:00' has no date: give --date YYYY-MM-DD (UTC)"),
        (("--date", "2020-01-05", "--step", "10:00=Closed"), "is in the past (2020-01-05 10:00:00 UTC)"),
        (("--date", "2099-01-05", "--step", "12:00=Closed", "--step", "10:00=Open"), "steps are in time order"),
    ):
        wrong = keel("maintenance", "schedule", "--data", directory, *steps, "--announcement", "x")
        assert (wrong.returncode, message in wrong.stderr) == (2, True), wrong.stderr
    listing = keel("maintenance", "list", "--data", directory)
    assert "schedule 1 (active, by" in listing.stdout and "ETH maintenance 10:00-12:00 UTC" in listing.stdout
    listed = keel_json("maintenance", "list", "--data", directory)
    assert [step["cancel_orders"] for step in listed[0]["steps"]] == [True, False, False]
    cancelled = keel("maintenance", "cancel", "--data", directory, "1", "--reason", "postponed")
    assert cancelled.returncode == 0 and "maintenance schedule 1 cancelled" in cancelled.stdout
    again = keel("maintenance", "cancel", "--data", directory, "1", "--reason", "twice")
    assert again.returncode == 1 and "UNKNOWN_SCHEDULE (4003)" in again.stderr

    state = recovered(data)
    assert [MarketState(market.state) for market in state.markets] == [MarketState.CANCEL_ONLY] * 6
    assert [(schedule.schedule_id, schedule.cancelled) for schedule in state.maintenances] == [(1, True)]
    first = keel_json("market", "list", "--data", directory)[0]
    assert (first["symbol"], first["marketType"], first["orderBookState"]) == ("SOL_USDC", "SPOT", "CancelOnly")


def test_deposits_withdrawals_and_adjustments(data: Path) -> None:
    directory = str(data)
    credited = keel_json(
        "deposit", "--data", directory, "--account", "1", "--asset", "usdc", "--amount", "25.5", "--tx", "tx-1"
    )
    assert (credited["deposit_id"], credited["status"], credited["confirmations"], credited["chain"]) == (
        1,
        "credited",
        32,
        "Solana",
    )
    repeated = keel(
        "deposit", "--data", directory, "--account", "1", "--asset", "USDC", "--amount", "25.5", "--tx", "tx-1"
    )
    assert repeated.returncode == 0 and "already reported; nothing changed: it is credited" in repeated.stdout
    confirming = keel_json(
        "deposit", "--data", directory, "--account", "2", "--asset", "SOL", "--amount", "3", "--confirmations", "5"
    )
    assert (confirming["status"], confirming["tx"][:7]) == ("confirming", "manual-")
    mismatch = keel(
        "deposit", "--data", directory, "--account", "2", "--asset", "USDC", "--amount", "1", "--tx", "tx-1"
    )
    assert mismatch.returncode == 1 and "DEPOSIT_MISMATCH (5001)" in mismatch.stderr
    for arguments, message in (
        (("--asset", "DOGE", "--amount", "1"), "unknown asset DOGE (listed: USDC, SOL, BTC, ETH)"),
        (("--asset", "USDC", "--amount", "1.0000001"), "more than 6 decimal places"),
    ):
        wrong = keel("deposit", "--data", directory, "--account", "1", *arguments)
        assert (wrong.returncode, message in wrong.stderr) == (2, True), wrong.stderr

    waiting = keel_json("withdrawals", "list", "--data", directory, "--status", "requested")
    assert [(row["id"], row["account_id"], row["amount"], row["approvals"]) for row in waiting] == [
        (3, 2, "200000", [])
    ]
    first = keel_json("withdrawals", "approve", "--data", directory, "3", "--operator", "alice")
    assert first["status"] == "requested"  # 200,000 >= 100,000: a second operator must approve
    same = keel("withdrawals", "approve", "--data", directory, "3", "--operator", "alice")
    assert same.returncode == 1 and "WITHDRAWAL_STATE (5007): alice already approved it" in same.stderr
    second = keel("withdrawals", "approve", "--data", directory, "3", "--operator", "carol")
    assert (
        second.returncode == 0
        and "withdrawal 3 (200000 USDC of account 2) approved: it is now approved" in second.stdout
    )
    sent = keel_json("withdrawals", "mark-sent", "--data", directory, "1", "--tx", "sig-1")
    assert (sent["status"], sent["tx"]) == ("sent", "sig-1")
    completed = keel_json("withdrawals", "mark-completed", "--data", directory, "1")
    assert (completed["status"], completed["entry_id"] is not None) == ("completed", True)
    assert (
        keel_json("withdrawals", "reject", "--data", directory, "2", "--reason", "sanctioned")["status"] == "rejected"
    )
    assert (
        keel_json("withdrawals", "mark-failed", "--data", directory, "3", "--reason", "chain halted")["status"]
        == "failed"
    )
    assert keel("withdrawals", "list", "--data", directory, "--status", "pending").returncode == 2
    table = keel("withdrawals", "list", "--data", directory)
    assert "failed (chain halted)" in table.stdout and "alice, carol" in table.stdout

    frozen = keel("withdrawals", "freeze", "--data", directory, "--reason", "audit", "--operator", "auditor")
    assert frozen.returncode == 0 and "withdrawals frozen (audit)" in frozen.stdout
    debited = keel(
        "adjust", "--data", directory, "--account", "1", "--asset", "USDC", "--amount=-0.5", "--incident", "INC-3"
    )
    assert debited.returncode == 0 and "account 1 debited 0.5 USDC (incident INC-3, ledger entry" in debited.stdout
    overdrawn = keel(
        "adjust", "--data", directory, "--account", "1", "--asset", "USDC", "--amount", "-5000", "--incident", "INC-4"
    )
    assert overdrawn.returncode == 1 and "INSUFFICIENT_AVAILABLE (3001)" in overdrawn.stderr

    state = recovered(data)
    alice = state.accounts[ALICE]
    # 1,000 + 25.5 deposited - (50 + 1 fee) withdrawn - 0.5 adjusted; nothing locked any more
    assert (alice.balances[0], alice.locked[0]) == (974 * USDC, 0)
    assert state.accounts[BOB].locked[0] == 0
    assert [DepositStatus(deposit.status) for deposit in state.deposits.values()] == [
        DepositStatus.CREDITED,
        DepositStatus.CONFIRMING,
    ]
    assert [WithdrawalStatus(one.status) for one in state.withdrawals.values()] == [
        WithdrawalStatus.COMPLETED,
        WithdrawalStatus.REJECTED,
        WithdrawalStatus.FAILED,
    ]
    assert state.withdrawals[3].approvals == ("alice", "carol")
    assert (state.withdrawals_frozen, state.withdrawals_frozen_reason) == (True, "audit")


def test_a_directory_in_use_with_no_serving_node_is_refused(data: Path) -> None:
    with Node.open(data) as node:
        node.start()
        held = keel("market", "state", "--data", str(data), "SOL_USDC", "Closed", "--reason", "x")
        listed = keel_json("withdrawals", "list", "--data", str(data))  # reading needs no lock
    assert held.returncode == 1
    assert "is in use by another keel process" in held.stderr and "`keel market state` needs" in held.stderr
    assert len(listed) == 3
