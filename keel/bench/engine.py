"""`keel bench engine`: the shared order flow through the real `Engine.apply`.

Each flow record becomes the command a client would send: NEW a GTC limit order whose
client id is the flow's order id, MKT a market order by quantity, CXL a cancel by client
id, MOD a cancel followed by a new limit order with the same client id (Keel has no
replace command yet). Orders use self-trade prevention ALLOW because the flow's accounts
are drawn at random and the reference book knows no accounts; every other rule applies.
1,000 accounts are funded first so that no order is refused for funds.

Commands are built before the clock starts; the timed loop is `apply`, a check of the
first event for a rejection, and the incremental state hash every 10,000 commands (the
node's default checkpoint interval). Each run is a fresh process (`python -m
keel.bench.engine --worker ...`); the parent reports the median. The bare reference book
(`keel.testing.reference_book`) is timed the same way on the same flow, for the ratio.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from keel.core.commands import (
    CancelOrder,
    Command,
    CreateAccount,
    Credit,
    PlaceOrder,
)
from keel.core.engine import Engine
from keel.core.events import CommandRejected
from keel.core.orders import OrderType, SelfTradePrevention
from keel.node.config import AssetConfig, Config, MarketConfig
from keel.node.genesis import genesis_commands
from keel.testing.flow import CXL, MKT, MOD, NEW, RECORD, generate, read_flow, write_flow

ACCOUNTS = 1_000
FUNDING_ATOMIC = 10**15
MARKET_ID = 0
CHECKPOINT_EVERY = 10_000


BENCH_ASSETS = (AssetConfig("USDC", 6), AssetConfig("BENCH", 8))
# tick 0.01 USDC, step 0.01 BENCH: one lot is 100 atomic USDC; fees 2 and 5 bps.
BENCH_MARKETS = (MarketConfig("BENCH_USDC", "BENCH", "USDC", "0.01", "0.01", "0.01", "0", 2, 5),)


def funding_commands(accounts: int = ACCOUNTS) -> list[Command]:
    """Return unstamped commands that open `accounts` accounts and fund both bench assets."""
    commands: list[Command] = [CreateAccount(seq=0, timestamp_ns=0) for _ in range(accounts)]
    for account_id in range(1, accounts + 1):
        for asset_id in (0, 1):
            commands.append(
                Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=FUNDING_ATOMIC)
            )
    return commands


def setup_commands(accounts: int = ACCOUNTS) -> list[Command]:
    """Return the stamped commands that list the bench market and fund `accounts` accounts."""
    config = Config(assets=BENCH_ASSETS, markets=BENCH_MARKETS)
    unstamped = genesis_commands(config) + funding_commands(accounts)
    return [
        msgspec.structs.replace(command, seq=seq, timestamp_ns=seq) for seq, command in enumerate(unstamped, start=1)
    ]


def flow_commands(data: memoryview, seq_first: int) -> list[Command]:
    """Return the commands for every flow record, numbered from `seq_first`."""
    allow = int(SelfTradePrevention.ALLOW)
    limit, market = int(OrderType.LIMIT), int(OrderType.MARKET)
    commands: list[Command] = []
    append = commands.append
    seq = seq_first
    for op, side, order_id, price, quantity, account_id, _mid in RECORD.iter_unpack(data):
        if op == NEW or op == MOD:
            if op == MOD:
                append(
                    CancelOrder(
                        seq=seq, timestamp_ns=seq, account_id=account_id, market_id=MARKET_ID, client_id=order_id
                    )
                )
                seq += 1
            append(
                PlaceOrder(
                    seq=seq,
                    timestamp_ns=seq,
                    account_id=account_id,
                    market_id=MARKET_ID,
                    side=side,
                    order_type=limit,
                    price_ticks=price,
                    quantity_steps=quantity,
                    self_trade_prevention=allow,
                    client_id=order_id,
                )
            )
        elif op == MKT:
            append(
                PlaceOrder(
                    seq=seq,
                    timestamp_ns=seq,
                    account_id=account_id,
                    market_id=MARKET_ID,
                    side=side,
                    order_type=market,
                    quantity_steps=quantity,
                    self_trade_prevention=allow,
                )
            )
        elif op == CXL:
            append(
                CancelOrder(seq=seq, timestamp_ns=seq, account_id=account_id, market_id=MARKET_ID, client_id=order_id)
            )
        else:
            raise ValueError(f"unknown flow op {op}")
        seq += 1
    return commands


def end_state(engine: Engine) -> dict[str, int]:
    """Return the flow's end-state summary in the shape of <flow>.expected.json."""
    state = engine.state
    book = state.books[MARKET_ID]
    summary = {"trades": state.trade_id_next - 1, "traded_qty": state.markets[MARKET_ID].volume_steps}
    for name, levels in (("bid", book.bids), ("ask", book.asks)):
        live = [order for level in levels.values() for order in level.orders if order.open_steps > 0]
        summary[f"{name}_orders"] = len(live)
        summary[f"{name}_qty"] = sum(order.open_steps for order in live)
    return summary


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine_once(flow_path: str) -> dict[str, Any]:
    """Replay the flow once in this process; return timings and the end state."""
    _, count, data = read_flow(flow_path)
    engine = Engine()
    for command in setup_commands():
        engine.apply(command)
    commands = flow_commands(data, engine.state.seq_last + 1)
    gc.collect()
    gc.freeze()  # setup objects are long-lived; keep the collector off them, as a node does
    apply = engine.apply
    rejected = CommandRejected
    rejects = 0
    # A node hashes the state at every checkpoint (every 10,000 commands by default);
    # the engine only keeps dirty lists between them, so the loop does the same.
    chunks = [commands[start : start + CHECKPOINT_EVERY] for start in range(0, len(commands), CHECKPOINT_EVERY)]
    state_hash = engine.state_hash
    started = time.perf_counter()
    for chunk in chunks:
        for command in chunk:
            events = apply(command)
            if type(events[0]) is rejected:
                rejects += 1
        state_hash()
    elapsed = time.perf_counter() - started
    summary = end_state(engine)
    summary["rejects"] = rejects
    return {
        "records": count,
        "commands": len(commands),
        "seconds": elapsed,
        "ops_per_s": count / elapsed,
        "commands_per_s": len(commands) / elapsed,
        "end_state": summary,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_reference_once(flow_path: str) -> dict[str, Any]:
    """Replay the flow once through the bare reference book; return its timing."""
    from keel.testing.reference_book import NaiveEngine

    _, count, data = read_flow(flow_path)
    records = list(RECORD.iter_unpack(data))
    book = NaiveEngine()
    handlers: dict[int, Callable[..., Any]] = {
        NEW: book.new_limit,
        MKT: book.new_market,
        CXL: book.cancel,
        MOD: book.modify,
    }
    gc.collect()
    started = time.perf_counter()
    for op, side, order_id, price, quantity, account_id, _mid in records:
        handlers[op](order_id, side, price, quantity, account_id)
    elapsed = time.perf_counter() - started
    return {"records": count, "seconds": elapsed, "ops_per_s": count / elapsed, "end_state": book.summary()}


def _run_worker(kind: str, flow_path: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "keel.bench.engine", "--worker", kind, flow_path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def ensure_flow(flow: str | None, n: int, seed: int, workdir: str) -> tuple[str, dict[str, Any]]:
    """Return a flow path and its expected end state, generating one when none is given."""
    if flow is None:
        path = os.path.join(workdir, f"flow-{n}-s{seed}.bin")
        records, meta = generate(n, seed)
        write_flow(path, seed, records)
        Path(path + ".expected.json").write_text(json.dumps(meta, indent=2))
        return path, meta["expected"]
    expected_path = Path(flow + ".expected.json")
    if not expected_path.exists():
        raise FileNotFoundError(f"{expected_path} is missing: a flow file comes with its expected end state")
    meta = json.loads(expected_path.read_text())
    return flow, meta["expected"]


def bench(flow: str | None, runs: int, n: int, seed: int, reference: bool = True) -> dict[str, Any]:
    """Run the engine (and the reference book) `runs` times in fresh processes."""
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as workdir:
        flow_path, expected = ensure_flow(flow, n, seed, workdir)
        engine_runs = [_run_worker("engine", flow_path) for _ in range(runs)]
        reference_runs = [_run_worker("reference", flow_path) for _ in range(runs)] if reference else []
    ops = statistics.median(run["ops_per_s"] for run in engine_runs)
    end = engine_runs[0]["end_state"]
    keys = ("trades", "traded_qty", "bid_orders", "bid_qty", "ask_orders", "ask_qty", "rejects")
    matches = all(run["end_state"] == engine_runs[0]["end_state"] for run in engine_runs) and all(
        end[key] == expected[key] for key in keys if key in expected
    )
    result: dict[str, Any] = {
        "flow": flow_path if flow else f"generated n={n} seed={seed}",
        "records": engine_runs[0]["records"],
        "commands": engine_runs[0]["commands"],
        "runs": runs,
        "ops_per_s": round(ops),
        "ops_per_s_runs": [round(run["ops_per_s"]) for run in engine_runs],
        "commands_per_s": round(statistics.median(run["commands_per_s"] for run in engine_runs)),
        "matches_expected": matches,
        "end_state": end,
        "expected": {key: expected[key] for key in keys if key in expected},
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in engine_runs), 1),
        "python": sys.version.split()[0],
    }
    if reference_runs:
        reference_ops = statistics.median(run["ops_per_s"] for run in reference_runs)
        result["reference_ops_per_s"] = round(reference_ops)
        result["reference_over_engine"] = round(reference_ops / ops, 2)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        runner = run_engine_once if sys.argv[2] == "engine" else run_reference_once
        print(json.dumps(runner(sys.argv[3])))
    else:
        raise SystemExit("usage: python -m keel.bench.engine --worker engine|reference FLOW (use `keel bench engine`)")
