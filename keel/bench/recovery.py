"""`keel bench recovery --data DIR`: replay speed and time to trading-ready.

Each figure comes from a fresh process, as after a crash:
- ready: wall time from spawning `python -m keel.bench.recovery --ready DIR` until it
  reports that the node is open (newest verified snapshot, tail replayed, every
  checkpoint checked) and its sequencer has started; interpreter start-up and imports
  included. The sequencer is then stopped without writing anything.
- replay: records per second replaying the whole log from genesis (chain, checksums and
  every checkpoint verified), measured inside the child around Node.open.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _child_ready(data_dir: Path) -> None:
    from keel.node.node import Node

    node = Node.open(data_dir)
    sequencer = node.start()
    print(
        json.dumps(
            {
                "ready": True,
                "snapshot_seq": node.report.snapshot_seq,
                "replayed": node.report.records_replayed,
                "last_seq": node.report.last_seq,
            }
        ),
        flush=True,
    )
    del sequencer
    node.close()


def _child_replay(data_dir: Path) -> None:
    from keel.node.node import Node

    node = Node.open(data_dir, from_genesis=True, read_only=True)
    report = node.report
    node.close()
    print(
        json.dumps(
            {"records": report.records_replayed, "seconds": report.seconds, "checkpoints": report.checkpoints_verified}
        ),
        flush=True,
    )


def bench_recovery(data_dir: Path, runs: int) -> dict[str, Any]:
    ready_s = []
    ready_info: dict[str, Any] = {}
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "keel.bench.recovery", "--ready", str(data_dir)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        ready_s.append(time.perf_counter() - started)
        process.wait(60)
        if not line:
            raise RuntimeError(f"the node in {data_dir} did not open (exit {process.returncode})")
        ready_info = json.loads(line)
    replays = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-m", "keel.bench.recovery", "--replay", str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        replays.append(json.loads(output))
    records = replays[0]["records"]
    return {
        "data_dir": str(data_dir),
        "last_seq": ready_info.get("last_seq"),
        "ready_s_median": round(statistics.median(ready_s), 3),
        "ready_s_runs": [round(value, 3) for value in ready_s],
        "ready_from_snapshot_seq": ready_info.get("snapshot_seq"),
        "ready_tail_replayed": ready_info.get("replayed"),
        "replay_records": records,
        "replay_records_per_s": round(statistics.median(records / run["seconds"] for run in replays)),
        "replay_checkpoints_verified": replays[0]["checkpoints"],
        "runs": runs,
    }


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    _child_ready(directory) if mode == "--ready" else _child_replay(directory)
