"""`keel bench api`: signed orders over real HTTP against a real `keel serve`.

A tiny run (2 clients, each in its own process, 2 seconds) as a real subprocess: its one JSON object must
carry the figures issue 7 names (orders_per_s, p50_ms, p99_ms, p999_ms, errors) with no
error, every order placed must have been cancelled, the percentiles must be ordered, and
the log must have made at least every answered request durable. With `--data DIR` the
directory is kept and passes `keel verify`: the benchmark's orders and cancels are real,
logged commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments], capture_output=True, text=True, timeout=180
    )


def test_tiny_run_reports_issue_7_fields_with_no_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = keel("bench", "api", "--clients", "2", "--seconds", "2", "--data", str(data_dir), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    for field in ("orders_per_s", "p50_ms", "p99_ms", "p999_ms", "errors"):
        assert field in report, field
    assert report["errors"] == 0, report["first_error"]
    assert report["clients"] == 2
    assert report["orders"] > 0
    assert report["cancels"] == report["orders"]
    assert report["orders_per_s"] > 0
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["p999_ms"]
    assert report["log_covers_requests"] is True
    assert report["log_records_durable"] >= report["orders"] + report["cancels"]
    assert not (data_dir / "serve.json").exists()  # the server stopped cleanly
    verified = keel("verify", "--data", str(data_dir), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout.strip().splitlines()[-1])["ok"] is True


def test_clients_spread_over_fewer_processes_keep_their_own_loops() -> None:
    """`--processes 2` runs 5 clients in 2 processes: orders placed and cancelled, no error, all durable."""
    result = keel("bench", "api", "--clients", "5", "--processes", "2", "--seconds", "1.5", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == 0, report["first_error"]
    assert (report["clients"], report["client_processes"]) == (5, 2)
    assert report["orders"] >= 5 and report["cancels"] == report["orders"]
    assert report["log_records_durable"] >= report["orders"] + report["cancels"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]
