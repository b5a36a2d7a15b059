"""`keel bench pipeline`: the shared flow through sequencer, durable log and engine.

A data directory is initialised with the benchmark market (BENCH_USDC: tick 0.01 USDC,
step 0.01 BENCH, fees 2/5 bps), 1,000 accounts are opened and funded through the
sequencer, then the flow's commands are submitted in chunks from a driver thread with
a bound on commands in flight. Each command's acknowledgement arrives only after the
batch holding its record has committed (acknowledged means durable), and the time
from its chunk's submission to that acknowledgement is its latency. Throughput is flow
commands over the time from the first submission to the last acknowledgement. With
`--rate R` the driver offers R commands/s in chunks of about a millisecond, so the
latency is measured at that rate rather than behind a full queue.
Checkpoints every 10,000 commands and snapshots every 100,000 run as configured. The
node's continuous auditor (a replica process replaying every durable command) runs as
it does by default; `--no-auditor` leaves it out, to measure sequencer, log and engine
alone (a node can run its auditor on another machine as a replica).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from keel.bench.engine import BENCH_ASSETS, BENCH_MARKETS, end_state, ensure_flow, flow_commands, funding_commands
from keel.node.config import Config
from keel.node.node import Node, init_data_dir, settle_collector
from keel.sequencer.sequencer import Outcome, SequencerStopped
from keel.testing.flow import read_flow

CHUNK = 500
IN_FLIGHT_MAX = 20_000


def bench_config(backend: str, dsn: str | None, schema: str | None, auditor: bool = True) -> Config:
    return Config(
        backend=backend,
        dsn=dsn or "log.sqlite",
        schema=schema or "keel",
        assets=BENCH_ASSETS,
        markets=BENCH_MARKETS,
        auditor_enabled=auditor,
    )


def run_pipeline(
    flow_path: str, expected: dict[str, Any], data_dir: Path, config: Config, rate: int = 0
) -> dict[str, Any]:
    init_data_dir(data_dir, config)
    node = Node.open(data_dir)
    sequencer = node.start()
    setup_done = threading.Event()
    remaining = [len(funding_commands())]

    def setup_ack(_: Outcome | SequencerStopped) -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            setup_done.set()

    sequencer.submit_many(funding_commands(), setup_ack)
    setup_done.wait(120)
    _, count, data = read_flow(flow_path)
    commands = flow_commands(data, 1)  # the sequencer renumbers them
    settle_collector()  # as `keel serve` does once the node is open: the setup is long-lived
    latencies_ns: list[int] = []
    acked = [0]
    failures: list[SequencerStopped] = []
    condition = threading.Condition()
    clock = time.perf_counter_ns
    total = len(commands)

    def make_ack(submitted_ns: int) -> Any:
        def ack(result: Outcome | SequencerStopped) -> None:
            # Callbacks all run on the committer thread, so the count needs no lock;
            # the driver is woken once per chunk.
            latencies_ns.append(clock() - submitted_ns)
            if isinstance(result, SequencerStopped):
                failures.append(result)
            acked[0] += 1
            if acked[0] == total or acked[0] % CHUNK == 0:
                with condition:
                    condition.notify()

        return ack

    commits_before = sequencer.appender.commits
    started = time.perf_counter()
    chunk = CHUNK if rate == 0 else max(1, min(CHUNK, rate // 1000))  # paced: about 1 ms of commands
    for start in range(0, total, chunk):
        if rate:
            due = started + start / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        with condition:
            while start - acked[0] > IN_FLIGHT_MAX:
                condition.wait(1)
        sequencer.submit_many(commands[start : start + chunk], make_ack(clock()))
    with condition:
        while acked[0] < total and not failures:
            condition.wait(1)
    elapsed = time.perf_counter() - started
    fsyncs = sequencer.appender.commits - commits_before
    summary = end_state(node.engine)
    node.close()
    latencies_ns.sort()
    keys = ("trades", "traded_qty", "bid_orders", "bid_qty", "ask_orders", "ask_qty")
    return {
        "backend": config.backend,
        "offered_rate": rate or None,
        "records": count,
        "commands": total,
        "seconds": round(elapsed, 3),
        "cmds_per_s": round(total / elapsed),
        "ops_per_s": round(count / elapsed),
        "matches_expected": not failures and all(summary[key] == expected[key] for key in keys),
        "end_state": summary,
        "p50_ack_us": round(latencies_ns[len(latencies_ns) // 2] / 1000),
        "p99_ack_us": round(latencies_ns[int(len(latencies_ns) * 0.99)] / 1000),
        "mean_ack_us": round(statistics.fmean(latencies_ns) / 1000),
        "commits": fsyncs,
        "records_per_commit": round(total / fsyncs, 1) if fsyncs else None,
        "failures": len(failures),
        "data_dir": str(data_dir),
    }


def bench_pipeline(
    flow: str | None,
    n: int,
    seed: int,
    backend: str,
    dsn: str | None,
    data: Path | None,
    rate: int = 0,
    *,
    auditor: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="keel-pipeline-") as workdir:
        flow_path, expected = ensure_flow(flow, n, seed, workdir)
        schema = None
        if backend == "postgres":
            schema = "keel_bench_" + uuid.uuid4().hex[:10]
            dsn = dsn or "postgresql://127.0.0.1:5432/test"
        data_dir = data if data is not None else Path(workdir) / "data"
        result = run_pipeline(flow_path, expected, data_dir, bench_config(backend, dsn, schema, auditor), rate)
        result["auditor"] = auditor
        if schema is not None:
            result["schema"] = schema
        if data is None:
            result["data_dir"] = None  # it lived in a temporary directory
            if schema is not None:
                _drop_schema(dsn or "", schema)
        return result


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    import sys

    print(json.dumps(bench_pipeline(sys.argv[1] if len(sys.argv) > 1 else None, 100_000, 42, "sqlite", None, None)))
