"""A sequencer failure leaves a record, and the next start comes back in a safe state.

A node whose log writer process dies cannot write: its sequencer fail-stops (nothing more
is acknowledged) and records why in DIR/failstop.json. The next process that starts a
node on the directory logs a withdrawal freeze and CancelOnly for every market (operator
"node", the reason naming the seq and the error) before anything else, and keeps the
record as failstop-<seq>.json. Run on both log backends, with a real writer process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.core.commands import CreateAccount, Tick
from keel.core.markets import MarketState
from keel.node.node import Node, init_data_dir
from keel.sequencer.sequencer import FAILSTOP_NAME, SequencerStopped
from keel.testing.nodes import node_config


def test_a_failed_sequencer_restarts_with_markets_cancel_only_and_withdrawals_frozen(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir, node_config(log_config, writer="process"))
    node = Node.open(data_dir)
    try:
        sequencer = node.start()
        acknowledged = sequencer.call(CreateAccount(seq=0, timestamp_ns=0)).seq
        writer = sequencer.appender._process  # type: ignore[attr-defined]
        writer.kill()
        writer.wait(10)
        with pytest.raises(SequencerStopped):
            for _ in range(5):  # the first may already be in a batch the dead writer took
                sequencer.call(Tick(seq=0, timestamp_ns=0), timeout=10)
    finally:
        node.close()
    record = json.loads((data_dir / FAILSTOP_NAME).read_text())
    assert record["seq"] >= acknowledged and record["error"] and record["time_ns"] > 0

    node = Node.open(data_dir)
    try:
        assert all(market.state == MarketState.OPEN for market in node.engine.state.markets)
        sequencer = node.start()
        sequencer.call(Tick(seq=0, timestamp_ns=0))  # sequenced after the safe-state commands
        state = node.engine.state
        assert all(market.state == MarketState.CANCEL_ONLY for market in state.markets)
        assert state.withdrawals_frozen
        reason = state.withdrawals_frozen_reason
        assert reason.startswith(f"restarted after the sequencer stopped at seq {record['seq']}")
    finally:
        node.close()
    assert not (data_dir / FAILSTOP_NAME).exists()
    assert json.loads((data_dir / f"failstop-{record['seq']}.json").read_text()) == record

    node = Node.open(data_dir)  # a clean restart changes nothing more
    try:
        node.start()
        assert node.engine.state.markets[0].state == MarketState.CANCEL_ONLY
    finally:
        node.close()
