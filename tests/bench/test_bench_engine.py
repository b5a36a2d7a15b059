"""`keel bench engine`: the command runs end to end, and the flow it replays is the shared one.

The first test runs a small benchmark as a real subprocess (generation, fresh worker
processes, the reference book) and checks that the engine ended in the flow's expected
state. The second checks that keel.testing.flow is a faithful port of the shared
generator: for the same n and seed it writes the same bytes, and the same expected end
state, as ../shared/bench/gen_flow.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keel.testing.flow import generate, write_flow

SHARED_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "bench"


def test_bench_engine_json_matches_expected_end_state() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", "bench", "engine", "--n", "20000", "--runs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["matches_expected"] is True, (report["end_state"], report["expected"])
    assert report["ops_per_s"] > 0
    assert report["runs"] == 1
    assert report["records"] == 20_000
    assert "peak_rss_mb" in report
    assert report["peak_rss_mb"] > 0


@pytest.mark.skipif(
    not (SHARED_BENCH / "gen_flow.py").exists(),
    reason=f"the shared benchmark generator is not beside the repository ({SHARED_BENCH} is missing)",
)
def test_generate_is_byte_identical_to_the_shared_generator(tmp_path: Path) -> None:
    shared_out = tmp_path / "shared.bin"
    subprocess.run(
        [sys.executable, str(SHARED_BENCH / "gen_flow.py"), "--n", "20000", "--seed", "42", "--out", str(shared_out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    records, meta = generate(20_000, 42)
    keel_out = tmp_path / "keel.bin"
    write_flow(str(keel_out), 42, records)
    assert keel_out.read_bytes() == shared_out.read_bytes()
    shared_meta = json.loads(Path(str(shared_out) + ".expected.json").read_text())
    assert json.loads(json.dumps(meta)) == shared_meta
