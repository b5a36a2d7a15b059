"""`keel bench engine --mixed`: the command runs end to end, and its flow keeps every invariant.

The first test runs a small mixed benchmark (one Tick, five index updates) as a real subprocess (fresh worker processes
with different PYTHONHASHSEEDs, the spot-only flow beside it, the margin workers) and
checks the documented JSON fields: runs ended in the same state hash, the audit passed,
the incremental hash equals a full recompute, and the margin check is reported for 1,
10 and 50 positions at two account counts. The second replays a generated mixed flow
in this process with Ticks made frequent enough to pay funding, and checks, with the
ledger totals of every event, that `audit` finds nothing and that generation and replay
are deterministic. The third checks that the margin probes hold the positions they
claim and that the margin check is exercised on its full path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keel.bench import mixed
from keel.core.engine import Engine
from keel.core.events import CommandRejected, FundingSettled, LiquidationStarted
from keel.core.invariants import audit
from keel.core.ledger import LedgerTotals
from keel.core.perps import equity_atomic, initial_requirement_atomic


def test_bench_engine_mixed_json_reports_reproducible_audited_figures() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli.main",
            "bench",
            "engine",
            "--mixed",
            "--n",
            "10500",
            "--runs",
            "2",
            "--accounts",
            "300",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["matches_expected"] is True
    assert report["reproducible"] is True
    assert report["audit_ok"] is True, report["audit_first_findings"]
    assert report["incremental_equals_full"] is True
    assert report["runs"] == 2
    assert len(report["ops_per_s_runs"]) == 2
    assert len(report["spot_only_ops_per_s_runs"]) == 2
    assert report["records"] == 10_500
    assert report["commands"] == 10_500 + report["index_updates"] + report["ticks"]
    assert report["index_updates"] == 5  # every 2,000 ops
    assert report["ticks"] == 1  # every 10,000 ops
    for field in ("ops_per_s", "commands_per_s", "spot_only_ops_per_s", "peak_rss_mb"):
        assert report[field] > 0, field
    assert report["mixed_over_spot_only"] == pytest.approx(report["ops_per_s"] / report["spot_only_ops_per_s"], 0.01)
    pairs = zip(report["ops_per_s_runs"], report["spot_only_ops_per_s_runs"], strict=True)
    assert report["mixed_over_spot_only_pairs"] == [pytest.approx(one / other, 0.01) for one, other in pairs]
    assert 0.3 < report["spot_share"] < 0.5
    assert report["spot_share"] + report["perp_share"] == pytest.approx(1.0)
    assert set(report["margin_check_us_by_positions"]) == {"1", "10", "50"}
    assert set(report["margin_check_us_by_accounts"]) == {"30", "300"}
    assert all(value > 0 for value in report["margin_check_us_by_positions"].values())
    assert [run["accounts"] for run in report["margin"]] == [30, 300]
    assert set(report["index_update_ms_by_accounts"]) == set(report["tick_ms_by_accounts"]) == {"30", "300"}
    assert report["python"] == sys.version.split()[0]


def test_mixed_flow_keeps_every_invariant_with_ledger_and_replays_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Tick every 500 ops (funding every 5,000) over 12,000 ops on 300 accounts: funding is paid in every
    perpetual, orders are refused only as the flow intends, and two replays end in the same state hash."""
    monkeypatch.setattr(mixed, "TICK_EVERY", 500)
    hashes = []
    for _ in range(2):
        engine = Engine()
        stamp = mixed.Stamp()
        ledger = LedgerTotals()
        for command in mixed.setup_commands(300, stamp):
            ledger.add(engine.apply(command))
        flow = mixed.generate_flow(12_000, 7, 300, stamp)
        funding_rounds = liquidations = 0
        refused: dict[tuple[str, int], int] = {}
        for _special, segment in flow.segments:
            for command in segment:
                events = engine.apply(command)
                ledger.add(events)
                for event in events:
                    funding_rounds += type(event) is FundingSettled
                    liquidations += type(event) is LiquidationStarted
                    if type(event) is CommandRejected:
                        key = (type(command).__name__, event.code)
                        refused[key] = refused.get(key, 0) + 1
        assert audit(engine.state, ledger) == []
        assert flow.ticks == 23
        assert funding_rounds == 2 * mixed.PERP_MARKETS  # at the 10th and 20th Tick
        # Cancels of orders that filled first (UNKNOWN_ORDER) and leveraged orders beyond their margin only.
        assert set(refused) <= {("CancelOrder", 4001), ("PlaceOrder", 3006)}
        hashes.append((engine.state_hash(), liquidations))
    assert hashes[0] == hashes[1]


def test_margin_probes_hold_1_10_and_50_positions_and_take_the_full_check() -> None:
    engine, _stamp, probes = mixed.build_margin_state(200, 3)
    state = engine.state
    assert sorted(probes) == [1, 10, 50]
    for count, account_id in probes.items():
        account = state.accounts[account_id]
        assert len(account.positions) == count
        assert all(position.size_steps > 0 for position in account.positions.values())
        # One more buy step raises the worst case in market 0, so the check computes both sides.
        with_order = initial_requirement_atomic(state, account, 0, 1, 0)
        assert with_order > initial_requirement_atomic(state, account)
        assert equity_atomic(state, account) > with_order
    others = [account for account_id, account in state.accounts.items() if 0 < account_id <= 200]
    assert sum(len(account.positions) for account in others) > 0
    assert audit(state) == []
