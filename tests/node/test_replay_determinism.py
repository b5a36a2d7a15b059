"""One data directory replayed by `keel verify` and `keel replay` in fresh processes under two hash seeds.

A node runs a few thousand seeded commands (accounts, credits, orders of every kind,
batches, cancels, Ticks) with a checkpoint every 100 and a snapshot every 1,000. Then
`keel verify --from-genesis --full --json` and `keel replay --to SEQ --json` run as
subprocesses with PYTHONHASHSEED=0 and =4242. Both must print the same thing, byte for
byte: the state hash, every section hash and summary at each seq. Every checkpoint in
the log must reproduce (verify counts them all, by incremental hash and by full
recompute), and at a checkpoint's seq `keel replay` must print exactly the hashes the
checkpoint recorded.
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
from keel.node.node import Node
from keel.testing.nodes import build_data_dir, node_config

COMMANDS = 3_000
HASH_SEEDS = ("0", "4242")


def keel(*arguments: str, hash_seed: str) -> dict[str, Any]:
    """Run `keel ARGUMENTS` in a fresh interpreter with PYTHONHASHSEED=hash_seed; return its JSON line."""
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED=hash_seed),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


@pytest.fixture
def history(log_config: dict[str, str], tmp_path: Path) -> tuple[Path, dict[int, Checkpoint]]:
    """Return a data directory with a few thousand commands and its checkpoints by seq."""
    data_dir = tmp_path / "data"
    config = node_config(log_config, checkpoint_every=100, snapshot_every=1_000, tick_interval_ms=5)
    build_data_dir(data_dir, config, COMMANDS, seed=42)
    checkpoints: dict[int, Checkpoint] = {}
    with Node.open(data_dir, read_only=True) as node:
        for seq, data in node.log.rows():
            command = decode_command(decode_record(data, seq).payload)
            if isinstance(command, Checkpoint):
                checkpoints[seq] = command
    return data_dir, checkpoints


def test_verify_and_replay_agree_across_hash_seeds_and_reproduce_every_checkpoint(
    history: tuple[Path, dict[int, Checkpoint]],
) -> None:
    """verify from genesis and replay at several seqs print identical results under both hash seeds; every
    checkpoint reproduces, and replay at a checkpoint's seq prints the hashes that checkpoint recorded."""
    data_dir, checkpoints = history
    assert len(checkpoints) >= COMMANDS // 100
    verified = [
        keel("verify", "--data", str(data_dir), "--from-genesis", "--full", "--json", hash_seed=seed)
        for seed in HASH_SEEDS
    ]
    for report in verified:
        report.pop("seconds")
        report.pop("records_per_s")
    assert verified[0] == verified[1]
    report = verified[0]
    assert report["ok"] is True
    assert report["snapshot_seq"] == 0
    assert report["checkpoints_verified"] == len(checkpoints)
    assert report["full_checks"] == len(checkpoints)
    last_seq = report["last_seq"]
    assert report["records_replayed"] == last_seq

    checkpoint_seqs = sorted(checkpoints)
    points = [checkpoint_seqs[0], checkpoint_seqs[len(checkpoint_seqs) // 2], checkpoint_seqs[-1] + 1, last_seq]
    for point in points:
        replayed = [
            keel("replay", "--data", str(data_dir), "--to", str(point), "--json", hash_seed=s) for s in HASH_SEEDS
        ]
        assert replayed[0] == replayed[1], f"replay to {point} differs between hash seeds"
        summary = replayed[0]
        assert summary["seq"] == point
        if point in checkpoints:
            checkpoint = checkpoints[point]
            assert summary["state_hash"] == checkpoint.state_hash.hex()
            assert summary["sections"] == {
                section: value.hex() for section, value in zip(SECTIONS, checkpoint.section_hashes, strict=True)
            }
    assert summary["state_hash"] == report["state_hash"]

    # In this process too: snapshot plus tail (the default open) gives the hash the fresh processes printed.
    with Node.open(data_dir, read_only=True) as node:
        assert node.report.snapshot_seq > 0
        assert node.engine.state_hash().hex() == report["state_hash"]
