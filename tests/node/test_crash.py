"""Crash safety for real: a node under load is SIGKILLed over and over, and nothing acknowledged is lost.

A child process (`python -m keel.testing.crash_child DIR SEED`) opens the data
directory, starts the sequencer and submits a steady seeded load of accounts, credits,
limit and market orders, batches and cancels, printing each seq from its outcome
callback, that is, only once the record is durable. Checkpoints and snapshots are due
every few dozen commands, so kills land in the middle of those too. The parent waits
for at least one acknowledgement, then a random short time, and SIGKILLs the child:
sometimes the node process alone (its log writer process, if it has one, finishes the
batch in hand and exits), sometimes its whole process group (node and writer at once,
as a power cut would). Every few rounds it kills a child before it has acknowledged
anything, while it is still recovering.

After every kill, in this process: the directory opens (Node.open); every printed seq is
at most the recovered last seq and stored; no record was torn (both backends commit
transactionally); the record recovered last time is still there, byte for byte; the
state hash equals a fresh replay from genesis and the full recompute; and every
invariant holds. Then the next child continues on the same directory.

Twenty kills per backend by default; KEEL_LONG_TESTS=1 makes it 500, on a fresh
directory every 25 kills so that the replays from genesis stay short.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keel.core import canonical
from keel.core.invariants import audit
from keel.log.record import decode_record
from keel.node.node import Node, init_data_dir, wait_for_lock_release
from keel.testing.nodes import node_config

LONG = os.environ.get("KEEL_LONG_TESTS") == "1"
KILLS = 500 if LONG else 20
KILLS_PER_DIRECTORY = 25
EARLY_KILL_EVERY = 7  # every 7th round also kills a child before its first acknowledgement
KILL_DELAY_S_MAX = 0.25
FIRST_ACK_TIMEOUT_S = 60.0
CHILD_SECONDS = 120  # a child stops by itself after this long, should the parent vanish
SEED = 20_261_125


@dataclass
class Child:
    """One crash_child process and the files its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float = field(default_factory=time.monotonic)

    def acked(self) -> list[int]:
        """Return the seqs printed so far (complete lines only: a line is written in one call)."""
        text = self.stdout_path.read_text()
        lines = text.split("\n")[:-1]  # the part after the last newline is not complete
        return [int(line) for line in lines]

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-4000:]


class Children:
    """Starts crash children and guarantees that none outlives the test, pass or fail."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.running: list[Child] = []
        self.count = 0

    def start(self, data_dir: Path, seed: int, application_name: str) -> Child:
        self.count += 1
        stdout_path = self.work_dir / f"child-{self.count}.out"
        stderr_path = self.work_dir / f"child-{self.count}.err"
        # PGAPPNAME names the child's PostgreSQL sessions (and its writer's) so the parent
        # can wait until the server has finished with them.
        env = dict(os.environ, PGAPPNAME=application_name)
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "keel.testing.crash_child", str(data_dir), str(seed), str(CHILD_SECONDS)],
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,  # its own process group: killpg reaches a writer child too
            )
        child = Child(process, stdout_path, stderr_path)
        self.running.append(child)
        return child

    def kill(self, child: Child, whole_group: bool) -> None:
        if whole_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
        else:
            child.process.send_signal(signal.SIGKILL)
        child.process.wait(30)
        self.running.remove(child)

    def kill_all(self) -> None:
        for child in list(self.running):
            self.kill(child, whole_group=True)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def wait_for_first_ack(child: Child) -> list[int]:
    """Wait until the child has acknowledged something; fail with its stderr if it died first."""
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT_S
    while True:
        acked = child.acked()
        if acked:
            return acked
        code = child.process.poll()
        if code is not None:
            pytest.fail(f"crash child exited with {code} before acknowledging anything:\n{child.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"crash child acknowledged nothing within {FIRST_ACK_TIMEOUT_S} s:\n{child.stderr()}")
        time.sleep(0.005)


def wait_for_postgres_sessions_gone(dsn: str, application_name: str, timeout: float = 30.0) -> None:
    """Wait until no server session of a killed child is left (one may still be finishing a COMMIT)."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as connection:
        while True:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            assert time.monotonic() < deadline, f"sessions of {application_name} still open after {timeout} s"
            time.sleep(0.01)


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a PostgreSQL schema made for a later directory of a long run."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def check_after_crash(data_dir: Path, acked: list[int], previous: tuple[int, bytes] | None) -> tuple[int, bytes]:
    """Open the directory as the next node would and check it against what was acknowledged.

    Returns (last seq, that record's bytes) for the next round's check that it is kept."""
    with Node.open(data_dir) as node:
        report = node.report
        assert report.torn_tail_discarded == 0, "a transactional log cannot tear a record"
        if acked:
            assert acked == sorted(set(acked)), "acknowledgements arrive once each, in seq order"
            assert acked[-1] <= report.last_seq, f"acknowledged seq {acked[-1]} lost: log ends at {report.last_seq}"
            stored = {seq for seq, _ in node.log.rows(acked[0], acked[-1])}
            missing = [seq for seq in acked if seq not in stored]
            assert not missing, f"acknowledged records missing from the log: {missing[:10]}"
        if previous is not None:
            seq_before, data_before = previous
            assert report.last_seq >= seq_before, "records recovered before have gone"
            assert node.log.row(seq_before) == data_before, f"record {seq_before} changed since the last recovery"
        data_last = node.log.row(report.last_seq)
        assert data_last is not None
        decode_record(data_last, report.last_seq)
        state = node.engine.state
        assert state.seq_last == report.last_seq
        state_hash = node.engine.state_hash()
        assert state_hash == report.state_hash
        assert canonical.state_hash(state) == state_hash
        assert audit(state) == []
        with Node.open(data_dir, from_genesis=True, read_only=True) as replayed:
            assert replayed.report.last_seq == report.last_seq
            assert replayed.engine.state_hash() == state_hash
            assert canonical.state_hash(replayed.engine.state) == state_hash
        return report.last_seq, data_last


def test_sigkill_under_load_never_loses_an_acknowledged_command(
    log_config: dict[str, str], tmp_path: Path, children: Children
) -> None:
    """Kill a loaded node again and again; each time, everything acknowledged is there and replays exactly."""
    rng = random.Random(SEED)
    schemas_extra: list[str] = []
    kills = kills_after_ack = 0
    snapshots_seen = 0
    previous: tuple[int, bytes] | None = None  # the last recovered record of the current directory
    try:
        while kills_after_ack < KILLS:
            directory_index = kills_after_ack // KILLS_PER_DIRECTORY
            data_dir = tmp_path / f"data-{directory_index}"
            if not data_dir.exists():
                log = dict(log_config)
                if log["backend"] == "sqlite":
                    log["dsn"] = str(data_dir / "log.sqlite")
                elif directory_index > 0:
                    log["schema"] = f"{log_config['schema']}_{directory_index}"
                    schemas_extra.append(log["schema"])
                config = node_config(log, checkpoint_every=37, snapshot_every=150, snapshot_keep=2, tick_interval_ms=20)
                init_data_dir(data_dir, config)
                previous = None
            application_name = f"keel-crash-{uuid.uuid4().hex[:12]}"
            child = children.start(data_dir, rng.randrange(2**32), application_name)
            early = kills % EARLY_KILL_EVERY == EARLY_KILL_EVERY - 1
            if early:
                time.sleep(rng.uniform(0.0, 0.3))  # mostly still importing or recovering
            else:
                wait_for_first_ack(child)
                time.sleep(rng.uniform(0.0, KILL_DELAY_S_MAX))
            exited = child.process.poll()
            assert exited is None, f"crash child exited by itself with {exited}:\n{child.stderr()}"
            children.kill(child, whole_group=rng.random() < 0.5)
            kills += 1
            acked = child.acked()
            if acked:
                kills_after_ack += 1
            wait_for_lock_release(data_dir, timeout=30)
            if log_config["backend"] == "postgres":
                wait_for_postgres_sessions_gone(log_config["dsn"], application_name)
            previous = check_after_crash(data_dir, acked, previous)
            snapshots_seen = max(snapshots_seen, len(list((data_dir / "snapshots").glob("*.keel"))))
    finally:
        children.kill_all()
        for schema in schemas_extra:
            drop_schema(log_config["dsn"], schema)
    assert kills_after_ack >= KILLS
    assert snapshots_seen >= 2, "the load should have written snapshots beyond genesis"
