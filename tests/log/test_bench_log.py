"""`keel bench log`: the command runs end to end on each backend and reports what it measured.

The command runs as a real subprocess with a small N; the report must name one result
per batch size whose commit count is exactly the number of batches, and the PostgreSQL
run must leave no schema behind. PostgreSQL is skipped when unreachable, failed on CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

N = 250


def bench_schemas(dsn: str) -> set[str]:
    """Return the names of the benchmark's throwaway schemas now on the server."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", ("keel\\_bench\\_%",)
        ).fetchall()
    return {str(row[0]) for row in rows}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bench_log_reports_one_commit_per_batch_at_each_batch_size(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each batch size appends N records in ceil(N / batch) commits, and the run cleans up after itself."""
    if backend == "postgres":
        dsn = str(request.getfixturevalue("postgres_dsn"))
        schemas_before = bench_schemas(dsn)
    else:
        dsn = str(tmp_path)
    command = ["bench", "log", "--backend", backend, "--n", str(N), "--dsn", dsn, "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    assert report["n"] == N
    assert [row["batch"] for row in report["results"]] == [1, 10, 100, 1000]
    for row in report["results"]:
        assert row["commits"] == -(-N // row["batch"])
        assert row["records_per_s"] > 0
        assert row["seconds"] > 0
    if backend == "postgres":
        assert bench_schemas(dsn) <= schemas_before
    else:
        assert list(tmp_path.iterdir()) == []
