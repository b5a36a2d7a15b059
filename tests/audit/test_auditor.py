"""The continuous auditor: it follows a running node, audits at checkpoints, and on a
violation freezes withdrawals and moves every market to CancelOnly with logged commands."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from keel.audit.auditor import AUDIT_FILE, Auditor
from keel.core.commands import CreateAccount, Credit, PlaceOrder
from keel.core.events import CheckpointPassed
from keel.core.markets import MarketState
from keel.node.config import Config
from keel.node.node import Node, init_data_dir
from keel.node.recovery import RecoveryFailed
from keel.testing.clock import ManualClock
from keel.testing.harness import Harness

NEVER = 10**9


def start_node(tmp_path: Path, mode: str) -> tuple[Node, ManualClock]:
    clock = ManualClock()
    options = {"tick_interval_ms": NEVER, "checkpoint_every": 5, "snapshot_every": NEVER}
    init_data_dir(tmp_path / "data", Config(writer="thread", auditor_mode=mode, **options), clock=clock)
    node = Node.open(tmp_path / "data")
    node.start(clock)
    return node, clock


def audited(node: Node) -> bool:
    """Wait until the node's auditor (thread or process) has caught up with the log."""
    if node.auditor is not None:
        return node.auditor.wait_idle()
    assert node.auditor_process is not None
    return node.auditor_process.wait_until(node.engine.state.seq_last)


MODES = pytest.mark.parametrize("mode", ["process", "thread"])


@MODES
def test_a_healthy_node_is_audited_at_every_checkpoint(tmp_path: Path, mode: str) -> None:
    node, _ = start_node(tmp_path, mode)
    try:
        sequencer = node._sequencer
        assert sequencer is not None
        for _ in range(4):
            account = sequencer.call(CreateAccount(seq=0, timestamp_ns=0)).events[0].account_id  # type: ignore[union-attr]
            sequencer.call(Credit(seq=0, timestamp_ns=0, account_id=account, asset_id=0, amount_atomic=10**9))
            sequencer.call(
                PlaceOrder(
                    seq=0,
                    timestamp_ns=0,
                    account_id=account,
                    market_id=0,
                    side=0,
                    order_type=0,
                    price_ticks=10_000,
                    quantity_steps=10,
                )
            )
        assert audited(node)
        status = json.loads((tmp_path / "data" / AUDIT_FILE).read_text())
        assert status["status"] == "ok" and status["audits"] >= 2 and status["findings"] == []
        assert status["audited_seq"] > node.report.last_seq
    finally:
        node.close()


@MODES
def test_a_node_whose_state_drifts_is_halted_by_logged_commands(tmp_path: Path, mode: str) -> None:
    """A bug that changes a balance without a ledger entry: the shadow engine's state no
    longer matches the node's next checkpoint, so the auditor halts the exchange."""
    node, _ = start_node(tmp_path, mode)
    data = tmp_path / "data"
    try:
        sequencer = node._sequencer
        assert sequencer is not None
        account = sequencer.call(CreateAccount(seq=0, timestamp_ns=0)).events[0].account_id  # type: ignore[union-attr]
        with sequencer.read_lock:
            node.engine.state.accounts[account].balances[0] += 1  # the "bug"
            node.engine.state.dirty_accounts.append(node.engine.state.accounts[account])
        for _ in range(6):  # reach a checkpoint
            sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        audited(node)
        for _ in range(50):
            if all(market.state == MarketState.CANCEL_ONLY for market in node.engine.state.markets):
                break
            sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        state = node.engine.state
        assert state.withdrawals_frozen and "invariant violation" in state.withdrawals_frozen_reason
        assert all(market.state == MarketState.CANCEL_ONLY for market in state.markets)
        status = json.loads((data / AUDIT_FILE).read_text())
        assert status["status"] == "violation"
        assert "differs from the node's checkpoint in sections accounts" in status["findings"][0]
    finally:
        node.close()
    # The drifted checkpoint is in the log: no node can reproduce it, so none will open
    # (and trade) on this log until an operator acts; the halt commands follow it.
    with pytest.raises(RecoveryFailed) as refused:
        Node.open(data, read_only=True)
    assert "sections that differ: accounts" in str(refused.value)


def test_an_invariant_violation_with_a_matching_hash_is_found_by_the_audit(tmp_path: Path) -> None:
    """If node and shadow agree but the state itself is wrong, the full audit names it."""
    h = Harness()
    h.list_defaults()
    account = h.new_account(USDC=1_000)
    reasons: list[str] = []
    auditor = Auditor(h.state, tmp_path, reasons.append)
    try:
        auditor.engine.state.accounts[account].locked[0] += 7  # wrong in the shadow, hashed consistently
        checkpoint = auditor.engine.checkpoint_command(auditor.engine.state.seq_last + 1, h.state.timestamp_ns_last)
        auditor([SimpleNamespace(command=checkpoint, events=[CheckpointPassed(checkpoint.state_hash)])])
        assert auditor.wait_idle()
    finally:
        auditor.close()
    assert reasons and "locked 7 != holds of open orders and pending withdrawals 0" in reasons[0]
    assert json.loads((tmp_path / AUDIT_FILE).read_text())["status"] == "violation"
