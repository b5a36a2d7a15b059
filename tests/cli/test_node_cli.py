"""The node commands as an operator runs them: `keel init`, `verify`, `log show`, `snapshot`, `replay`.

Every command runs as a real subprocess (`python -m keel.cli.main`, the entry point of
`.venv/bin/keel`) against real data directories on SQLite and, where it matters, on
PostgreSQL (skipped when unreachable, failed on CI). Checked: the exit codes, that the
messages name what went wrong (the refused directory, the first bad seq, the command to
run), that `--json` output parses and holds the documented fields, that `--from` and
`--limit` select exactly those records, that a snapshot is used by the next verify, and
that `replay --to` agrees with `verify` and with the checkpoints in the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.core.canonical import SECTIONS
from keel.core.commands import Checkpoint, decode_command
from keel.log.record import decode_record
from keel.node.config import Config
from keel.node.node import Node
from keel.testing import damage
from keel.testing.nodes import build_data_dir

GENESIS_RECORDS = 11  # 4 assets, 3 spot markets, 3 perpetuals and a checkpoint in the default keel.toml


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `keel ARGUMENTS` and return the finished process (text output, wide terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def keel_json(*arguments: str) -> dict[str, Any]:
    result = keel(*arguments)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, int]:
    """A SQLite data directory (log inside it) with a few hundred commands; returns (directory, last seq)."""
    data_dir = tmp_path / "data"
    last_seq = build_data_dir(data_dir, Config(checkpoint_every=50, snapshot_every=1_000_000), 400)
    return data_dir, last_seq


# ---- init -----------------------------------------------------------------------------


def test_init_creates_a_sqlite_directory_that_verifies(tmp_path: Path) -> None:
    """`keel init` makes keel.toml, the operator key, the log with its genesis records and a snapshot; verify passes."""
    data_dir = tmp_path / "data"
    result = keel("init", "--data", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert f"initialised {data_dir}" in result.stdout
    assert f"{GENESIS_RECORDS} genesis records" in result.stdout
    assert "SOL_USDC" in result.stdout
    for name in ("keel.toml", "operator.key", "operator.pub", "log.sqlite"):
        assert (data_dir / name).exists(), name
    assert (data_dir / "operator.key").stat().st_mode & 0o077 == 0, "the operator key is private"
    assert len(list((data_dir / "snapshots").glob("*.keel"))) == 1
    verified = keel("verify", "--data", str(data_dir))
    assert verified.returncode == 0, verified.stderr
    assert "verified" in verified.stdout
    report = keel_json("verify", "--data", str(data_dir), "--json")
    assert report["ok"] is True
    assert report["last_seq"] == GENESIS_RECORDS


def test_init_on_postgres_with_dsn_and_schema(tmp_path: Path, postgres_dsn: str, postgres_schema: str) -> None:
    """`keel init --backend postgres --dsn DSN --schema S` puts the log in S.log; verify and log show read it there.
    A second directory pointed at the same schema is refused: that log already holds records."""
    data_dir = tmp_path / "data"
    result = keel(
        "init", "--data", str(data_dir), "--backend", "postgres", "--dsn", postgres_dsn, "--schema", postgres_schema
    )
    assert result.returncode == 0, result.stderr
    assert "postgres log" in result.stdout
    assert not (data_dir / "log.sqlite").exists()
    toml = (data_dir / "keel.toml").read_text()
    assert 'backend = "postgres"' in toml
    assert f'schema = "{postgres_schema}"' in toml
    assert damage.last_stored_seq(data_dir) == GENESIS_RECORDS
    assert keel_json("verify", "--data", str(data_dir), "--json")["last_seq"] == GENESIS_RECORDS
    lines = keel("log", "show", "--data", str(data_dir), "--json").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, GENESIS_RECORDS + 1))
    other = keel(
        "init",
        "--data",
        str(tmp_path / "other"),
        "--backend",
        "postgres",
        "--dsn",
        postgres_dsn,
        "--schema",
        postgres_schema,
    )
    assert other.returncode != 0
    assert "already holds records" in other.stderr


def test_init_twice_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """A second `keel init` on the same directory exits non-zero, says the directory is already initialised,
    and leaves it as it was."""
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    before = keel_json("verify", "--data", str(data_dir), "--json")["state_hash"]
    toml = (data_dir / "keel.toml").read_text()
    key = (data_dir / "operator.key").read_text()
    again = keel("init", "--data", str(data_dir))
    assert again.returncode != 0
    assert "already initialised" in again.stderr
    assert str(data_dir) in again.stderr
    assert (data_dir / "keel.toml").read_text() == toml
    assert (data_dir / "operator.key").read_text() == key
    assert keel_json("verify", "--data", str(data_dir), "--json")["state_hash"] == before


def test_init_refuses_unusable_options(tmp_path: Path) -> None:
    """Postgres without a DSN, or an unknown backend, is a usage error (exit 2) that says what is missing."""
    no_dsn = keel("init", "--data", str(tmp_path / "a"), "--backend", "postgres")
    assert no_dsn.returncode == 2
    assert "--dsn" in no_dsn.stderr
    unknown = keel("init", "--data", str(tmp_path / "b"), "--backend", "mysql")
    assert unknown.returncode == 2
    assert "sqlite or postgres" in unknown.stderr
    assert not (tmp_path / "a" / "keel.toml").exists()


# ---- verify ---------------------------------------------------------------------------


def test_verify_passes_then_names_the_seq_of_a_corrupted_middle_record(history: tuple[Path, int]) -> None:
    """verify exits 0 on a good log; after one byte of a middle record is flipped it exits 1 naming that seq,
    in text and in JSON (ok false, seq)."""
    data_dir, last_seq = history
    good = keel_json("verify", "--data", str(data_dir), "--json")
    assert good["ok"] is True
    assert good["last_seq"] == last_seq
    assert good["checkpoints_verified"] >= 1
    middle = last_seq // 2
    damage.flip_record_byte(data_dir, middle, 30)
    bad = keel("verify", "--data", str(data_dir))
    assert bad.returncode == 1
    assert f"first bad sequence number {middle}" in bad.stderr
    bad_json = keel("verify", "--data", str(data_dir), "--json")
    assert bad_json.returncode == 1
    parsed = json.loads(bad_json.stdout)
    assert parsed["ok"] is False
    assert parsed["seq"] == middle
    assert str(middle) in parsed["error"]
    shown = keel("log", "show", "--data", str(data_dir), "--from", str(middle - 1), "--limit", "3")
    assert shown.returncode == 1
    assert f"record {middle} is corrupted" in shown.stderr


def test_verify_runs_beside_a_running_node_but_snapshot_is_refused(history: tuple[Path, int]) -> None:
    """verify opens read-only, so it works while a node holds the directory; snapshot needs the node stopped."""
    data_dir, last_seq = history
    with Node.open(data_dir):
        assert keel_json("verify", "--data", str(data_dir), "--json")["last_seq"] == last_seq
        refused = keel("snapshot", "--data", str(data_dir))
        assert refused.returncode == 1
        assert "another keel process" in refused.stderr


# ---- log show -------------------------------------------------------------------------


def test_log_show_prints_a_table_and_json_lines_respecting_from_and_limit(history: tuple[Path, int]) -> None:
    """The table has the documented columns and one row per record asked for; --json prints one parseable
    object per record with seq, timestamp, type, fields and hash; --from and --limit select exactly that range."""
    data_dir, last_seq = history
    table = keel("log", "show", "--data", str(data_dir))
    assert table.returncode == 0, table.stderr
    for column in ("seq", "time (UTC)", "command", "fields", "hash"):
        assert column in table.stdout
    assert "ListAsset" in table.stdout
    assert "symbol=USDC" in table.stdout

    lines = keel("log", "show", "--data", str(data_dir), "--json", "--from", "8", "--limit", "4").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["seq"] for record in records] == [8, 9, 10, 11]
    assert [record["type"] for record in records] == ["ListMarket", "ListMarket", "ListMarket", "Checkpoint"]
    assert records[0]["command"]["symbol"] == "SOL_USDC_PERP"
    assert len(records[3]["command"]["state_hash"]) == 64
    assert len(records[3]["command"]["section_hashes"]) == len(SECTIONS)
    with Node.open(data_dir, read_only=True) as node:
        for record in records:
            stored = decode_record(node.log.row(record["seq"]) or b"", record["seq"])
            assert record["hash"] == stored.hash.hex()
            assert record["timestamp_ns"] == stored.timestamp_ns

    default_limit = keel("log", "show", "--data", str(data_dir), "--json").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in default_limit] == list(range(1, 21))
    tail = keel("log", "show", "--data", str(data_dir), "--json", "--from", str(last_seq - 1), "--limit", "10")
    assert [json.loads(line)["seq"] for line in tail.stdout.splitlines()] == [last_seq - 1, last_seq]
    table_range = keel("log", "show", "--data", str(data_dir), "--from", "10", "--limit", "2")
    rows = [line for line in table_range.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["10", "11"]


# ---- snapshot -------------------------------------------------------------------------


def test_snapshot_writes_a_file_that_the_next_verify_starts_from(history: tuple[Path, int]) -> None:
    """`keel snapshot` appends a checkpoint at the next seq and writes its snapshot; verify then starts there
    (replaying nothing), while verify --from-genesis replays everything to the same hash."""
    data_dir, last_seq = history
    result = keel("snapshot", "--data", str(data_dir))
    assert result.returncode == 0, result.stderr
    seq = last_seq + 1
    assert f"snapshot at seq {seq}" in result.stdout
    assert (data_dir / "snapshots" / f"snapshot-{seq:012d}.keel").exists()
    report = keel_json("verify", "--data", str(data_dir), "--json")
    assert report["snapshot_seq"] == seq
    assert report["records_replayed"] == 0
    assert report["last_seq"] == seq
    from_genesis = keel_json("verify", "--data", str(data_dir), "--json", "--from-genesis")
    assert from_genesis["snapshot_seq"] == 0
    assert from_genesis["records_replayed"] == seq
    assert from_genesis["state_hash"] == report["state_hash"]
    with Node.open(data_dir, read_only=True) as node:
        command = decode_command(decode_record(node.log.row(seq) or b"", seq).payload)
    assert isinstance(command, Checkpoint)
    assert command.state_hash.hex() == report["state_hash"]


# ---- replay ---------------------------------------------------------------------------


def test_replay_to_a_seq_prints_the_hash_verify_and_the_checkpoints_give(history: tuple[Path, int]) -> None:
    """replay --to the last seq prints verify's hash; --to a checkpoint's seq prints that checkpoint's hash;
    --json carries every documented field; past the end it exits 1 saying where the log ends."""
    data_dir, last_seq = history
    verified = keel_json("verify", "--data", str(data_dir), "--json")
    at_end = keel_json("replay", "--data", str(data_dir), "--to", str(last_seq), "--json")
    assert at_end["state_hash"] == verified["state_hash"]
    for field in (
        "seq",
        "timestamp_ns",
        "state_hash",
        "sections",
        "accounts",
        "open_orders",
        "next_ids",
        "assets",
        "markets",
    ):
        assert field in at_end, field
    assert at_end["seq"] == last_seq
    assert set(at_end["sections"]) == set(SECTIONS)
    assert set(at_end["next_ids"]) == {"account", "order", "trade", "ledger_entry"}
    assert [asset["symbol"] for asset in at_end["assets"]] == ["USDC", "SOL", "BTC", "ETH"]
    assert [market["symbol"] for market in at_end["markets"]] == [
        "SOL_USDC",
        "BTC_USDC",
        "ETH_USDC",
        "SOL_USDC_PERP",
        "BTC_USDC_PERP",
        "ETH_USDC_PERP",
    ]
    assert at_end["accounts"] > 0
    with Node.open(data_dir, read_only=True) as node:
        checkpoints = {
            seq: command
            for seq, data in node.log.rows()
            if isinstance(command := decode_command(decode_record(data, seq).payload), Checkpoint)
        }
    seq = sorted(checkpoints)[len(checkpoints) // 2]
    at_checkpoint = keel_json("replay", "--data", str(data_dir), "--to", str(seq), "--json")
    assert at_checkpoint["seq"] == seq
    assert at_checkpoint["state_hash"] == checkpoints[seq].state_hash.hex()
    text = keel("replay", "--data", str(data_dir), "--to", str(seq))
    assert text.returncode == 0
    assert f"seq {seq}: state hash {checkpoints[seq].state_hash.hex()}" in text.stdout
    beyond = keel("replay", "--data", str(data_dir), "--to", str(last_seq + 5))
    assert beyond.returncode == 1
    assert f"ends at seq {last_seq}" in beyond.stderr


# ---- a directory that is not there ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "--data", "DIR"],
        ["verify", "--data", "DIR", "--json"],
        ["log", "show", "--data", "DIR"],
        ["snapshot", "--data", "DIR"],
        ["replay", "--data", "DIR", "--to", "1"],
    ],
    ids=["verify", "verify-json", "log-show", "snapshot", "replay"],
)
def test_commands_on_a_missing_directory_fail_and_say_to_run_init(tmp_path: Path, command: list[str]) -> None:
    """Each command pointed at a directory that does not exist exits 1, names the directory and `keel init`,
    prints no traceback and creates nothing."""
    missing = tmp_path / "absent"
    result = keel(*(str(missing) if argument == "DIR" else argument for argument in command))
    assert result.returncode == 1
    message = result.stdout if "--json" in command else result.stderr
    assert "keel init" in message
    assert str(missing) in message
    assert "Traceback" not in result.stderr
    assert not missing.exists()
