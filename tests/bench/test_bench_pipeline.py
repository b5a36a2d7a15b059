"""`keel bench pipeline`: the shared flow through sequencer, durable log and engine, on each backend.

The command runs as a real subprocess with a small flow (N=5,000). Its JSON report must
say the end state matches the flow's expected one, with a positive throughput and the
acknowledgement latency percentiles; with `--data DIR` the directory it leaves behind
must pass `keel verify` (every checkpoint reproduces) and `keel verify --from-genesis`
to the same hash. The PostgreSQL run leaves no schema behind unless asked to keep the
data, and then the test drops it. PostgreSQL is skipped when unreachable, failed on CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

N = 5_000


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments], capture_output=True, text=True, timeout=300
    )


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schema_exists(dsn: str, schema: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None and row[0] == 1


def check_report(report: dict[str, Any], backend: str) -> None:
    assert report["backend"] == backend
    assert report["records"] == N
    assert report["matches_expected"] is True, report
    assert report["failures"] == 0
    assert report["cmds_per_s"] > 0
    assert isinstance(report["p50_ack_us"], int)
    assert isinstance(report["p99_ack_us"], int)
    assert 0 <= report["p50_ack_us"] <= report["p99_ack_us"]
    assert 1 <= report["commits"] < report["commands"], "acknowledgements come from group commits"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bench_pipeline_matches_the_expected_end_state(backend: str, request: pytest.FixtureRequest) -> None:
    """The flow's end state through the whole pipeline equals the expected one; throughput and latency are reported."""
    arguments = ["bench", "pipeline", "--n", str(N), "--json", "--backend", backend]
    if backend == "postgres":
        dsn = str(request.getfixturevalue("postgres_dsn"))
        arguments += ["--dsn", dsn]
    report = last_json(keel(*arguments))
    check_report(report, backend)
    assert report["data_dir"] is None
    if backend == "postgres":
        assert not schema_exists(dsn, report["schema"]), "a run without --data drops its schema"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bench_pipeline_data_directory_verifies(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """With --data DIR the run leaves a data directory whose log `keel verify` accepts, from its snapshot and
    from genesis, with the same state hash."""
    data_dir = tmp_path / "bench-data"
    arguments = ["bench", "pipeline", "--n", str(N), "--json", "--backend", backend, "--data", str(data_dir)]
    dsn = ""
    if backend == "postgres":
        dsn = str(request.getfixturevalue("postgres_dsn"))
        arguments += ["--dsn", dsn]
    report: dict[str, Any] = {}
    try:
        report = last_json(keel(*arguments))
        check_report(report, backend)
        assert report["data_dir"] == str(data_dir)
        verified = keel("verify", "--data", str(data_dir), "--json")
        assert verified.returncode == 0, verified.stderr + verified.stdout
        summary = json.loads(verified.stdout)
        assert summary["ok"] is True
        assert summary["last_seq"] >= report["commands"]
        from_genesis = last_json(keel("verify", "--data", str(data_dir), "--json", "--from-genesis"))
        assert from_genesis["state_hash"] == summary["state_hash"]
        assert from_genesis["checkpoints_verified"] >= 1
    finally:
        if backend == "postgres" and report.get("schema"):
            drop_schema(dsn, report["schema"])


def test_bench_pipeline_without_the_auditor(tmp_path: Path) -> None:
    """--no-auditor runs the node with its auditor disabled (its keel.toml says so) and
    reaches the same end state; the default runs it, as a node does."""
    data_dir = tmp_path / "no-auditor"
    report = last_json(keel("bench", "pipeline", "--n", str(N), "--json", "--no-auditor", "--data", str(data_dir)))
    check_report(report, "sqlite")
    assert report["auditor"] is False
    from keel.node.config import load_config

    assert load_config(data_dir).auditor_enabled is False
    with_auditor = last_json(keel("bench", "pipeline", "--n", str(N), "--json"))
    assert with_auditor["auditor"] is True
    check_report(with_auditor, "sqlite")
