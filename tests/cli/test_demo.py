"""`keel demo --offline`: the README's first command runs, shows what it promises, and adds up.

The command is run as a real subprocess (the same entry point as `.venv/bin/keel`) and its
text is checked for a trade, ledger lines, the post-only refusal's stable code and a clean
audit; a second process with another PYTHONHASHSEED must print exactly the same text,
state hash included. The summary test recomputes every balance by hand from the fee rules
in keel/core/matching.py (fees are ceil(notional x bps / 10,000) per role and order).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

from rich.console import Console

from keel.demo import run_offline_demo


def run_demo(*args: str, hash_seed: str = "0") -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, COLUMNS="80", PYTHONHASHSEED=hash_seed)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return result, time.perf_counter() - started


def test_demo_offline_prints_trades_ledger_rejection_and_clean_audit() -> None:
    result, elapsed = run_demo("--offline")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Trades" in out
    # Trade 1: bob bid 152 and traded at alice's resting 150 (trade, price, quantity, taker, maker).
    assert re.search(r"│\s+1 │\s+150 │\s+4 │ bob \(buy\)\s+│ alice\s+│", out), out
    assert "Ledger" in out
    assert "deposit" in out
    assert "+599.88" in out  # alice's quote leg of trade 1: 600 less the 0.12 maker fee
    assert "POST_ONLY_WOULD_TAKE" in out
    assert "2007" in out
    assert "invariants: all hold" in out
    assert "state hash: " in out
    assert elapsed < 2.0, f"keel demo --offline took {elapsed:.2f} s"


def test_demo_output_does_not_depend_on_hash_seed() -> None:
    first, _ = run_demo("--offline", hash_seed="0")
    second, _ = run_demo("--offline", hash_seed="4242")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_demo_without_offline_says_the_served_demo_is_not_built_and_runs_offline() -> None:
    result, _ = run_demo()
    assert result.returncode == 0, result.stderr
    assert "not built yet" in result.stdout
    assert "invariants: all hold" in result.stdout


def test_summary_balances_equal_hand_computed_values() -> None:
    summary = run_offline_demo(Console(file=io.StringIO(), width=120))
    usdc, sol = 10**6, 10**9  # atomic units per whole USDC and SOL
    # Trade 1: bob takes 4 SOL at 150 = 600 USDC; taker fee 600 x 5 bps = 0.3, alice's maker fee 600 x 2 bps = 0.12.
    # Trade 2: carol takes 3 SOL at 150 = 450 USDC; taker fee 0.225; alice's maker fee on her cumulative
    # maker notional: ceil(1050 x 2 bps) - ceil(600 x 2 bps) = 0.21 - 0.12 = 0.09.
    assert summary["trades"] == [(15_000, 400), (15_000, 300)]
    assert summary["rejections"] == ["POST_ONLY_WOULD_TAKE"]
    balances = summary["balances"]
    assert balances["alice"]["SOL"] == (13 * sol, 3 * sol)  # 10 offered, 7 sold, 3 still locked
    assert balances["alice"]["USDC"] == (600 * usdc - 120_000 + 450 * usdc - 90_000, 0)
    assert balances["bob"]["SOL"] == (4 * sol, 0)
    assert balances["bob"]["USDC"] == (2_000 * usdc - 600 * usdc - 300_000, 0)  # the cancelled bid holds nothing
    assert balances["carol"]["SOL"] == (3 * sol, 0)
    assert balances["carol"]["USDC"] == (1_000 * usdc - 450 * usdc - 225_000, 0)
    assert balances["fees"]["USDC"] == (300_000 + 120_000 + 225_000 + 90_000, 0)
    assert balances["external"]["USDC"] == (-3_000 * usdc, 0)
    assert balances["external"]["SOL"] == (-20 * sol, 0)
    for symbol in ("USDC", "SOL", "BTC", "ETH"):
        assert sum(assets[symbol][0] for assets in balances.values()) == 0
    assert summary["ledger_entries"] == 5  # three credits, two trades
    assert summary["audit"] == []
    assert len(summary["state_hash"]) == 64
