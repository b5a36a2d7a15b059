"""`keel views rebuild` and `keel views status` as an operator runs them (real processes).

Checked on a SQLite data directory: a missing directory and a store that does not exist
yet are refused with messages that say what to do; a rebuild of a fresh directory
reaches the log's last seq and status then reports the store level with the log; the
human output names every table; a rebuild while a node holds the directory is refused
(a serving node keeps its own store) and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from views_session import GENESIS_LAST_SEQ, T_BASE, session_config

from keel.node.node import Node, init_data_dir
from keel.testing.clock import ManualClock


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def keel_json(*arguments: str) -> dict[str, Any]:
    result = keel(*arguments, "--json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_rebuild_and_status(tmp_path: Path) -> None:
    missing = keel("views", "rebuild", "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert "is not a directory" in missing.stderr
    assert "keel init --data" in missing.stderr

    data_dir = tmp_path / "data"
    log = {"backend": "sqlite", "dsn": str(data_dir / "log.sqlite"), "schema": "keel"}
    init_data_dir(data_dir, session_config(log), clock=ManualClock(T_BASE))
    absent = keel("views", "status", "--data", str(data_dir))
    assert absent.returncode == 1
    assert "no history store yet" in absent.stderr
    assert "keel views rebuild" in absent.stderr

    rebuilt = keel_json("views", "rebuild", "--data", str(data_dir))
    assert rebuilt["position"] == GENESIS_LAST_SEQ
    assert rebuilt["rows"]["assets"] == 4
    assert rebuilt["rows"]["markets"] == 3
    assert rebuilt["previous"] is None
    status = keel_json("views", "status", "--data", str(data_dir))
    assert (status["position"], status["log_last_seq"], status["behind"]) == (GENESIS_LAST_SEQ, GENESIS_LAST_SEQ, 0)
    assert status["rows"] == rebuilt["rows"]

    human = keel("views", "rebuild", "--data", str(data_dir))
    assert human.returncode == 0, human.stderr
    assert "rebuilt" in human.stdout
    for table in ("orders", "order_updates", "fills", "trades", "ledger_lines", "kline_bars"):
        assert table in human.stdout
    assert "views.sqlite.previous" in human.stdout

    with Node.open(data_dir):
        refused = keel("views", "rebuild", "--data", str(data_dir))
    assert refused.returncode == 1
    assert "another keel process is using" in refused.stderr
    assert "stop the node first" in refused.stderr
    assert not (data_dir / "views.sqlite.rebuild").exists()
