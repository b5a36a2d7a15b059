"""Verified recovery: a node comes back exactly as it was, or refuses and names the first bad seq.

Every test runs on both log backends (the `log_config` fixture). A data directory is
given a history by a real node (sequencer, group commit, checkpoints) fed a seeded load
of accounts, credits, orders and cancels; then it is reopened, or damaged behind the
backend's back (raw SQL on the stored rows, bytes of a snapshot file) and reopened.

- A restart gives the same seq and state hash, and one from a snapshot replays only the
  tail; a Hypothesis test takes snapshots at random points of a random history and
  compares snapshot-plus-tail with replay from genesis at many seqs.
- A flipped byte, a deleted record, two swapped records, a rewritten record with a
  fresh checksum, a checkpoint recording a wrong hash, and a truncated middle record
  each refuse to open with RecoveryFailed naming exactly the damaged seq.
- A truncated final record (a torn write) is discarded and reported, never silently.
- A corrupted snapshot is skipped with its reason, and recovery falls back to an older
  snapshot or to genesis with the same final hash.
- Two processes cannot open one directory; a read-only open works beside a running node.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keel.node.recovery as recovery
import keel.snapshots.store as snapshot_store
from keel.core import canonical
from keel.core.canonical import SECTIONS
from keel.core.commands import Checkpoint, Command, CreateAccount, Tick, decode_command, encode_command
from keel.core.invariants import audit
from keel.log.record import decode_record, make_record
from keel.node.config import Config
from keel.node.node import DataDirError, Node, init_data_dir, open_log, wait_for_lock_release
from keel.node.recovery import RecoveryFailed
from keel.snapshots.store import SnapshotInfo, list_snapshots
from keel.testing import damage
from keel.testing.load import LoadGenerator
from keel.testing.nodes import build_data_dir, node_config, run_load, submit_all

COMMANDS = 600
CHECKPOINT_EVERY = 50


def history(log_config: dict[str, str], data_dir: Path, commands: int = COMMANDS, **settings: int) -> int:
    """Give `data_dir` a history of `commands` generated commands; return its last seq."""
    options = {"checkpoint_every": CHECKPOINT_EVERY, "snapshot_every": 1_000_000, **settings}
    return build_data_dir(data_dir, node_config(log_config, **options), commands)


def opened_hash(data_dir: Path, **options: object) -> tuple[int, bytes]:
    """Open read-only and return (last seq, state hash), checking the incremental hash against the full one."""
    with Node.open(data_dir, read_only=True, **options) as node:  # type: ignore[arg-type]
        state_hash = node.engine.state_hash()
        assert canonical.state_hash(node.engine.state) == state_hash
        return node.engine.state.seq_last, state_hash


def refusal(data_dir: Path, **options: object) -> RecoveryFailed:
    """Open `data_dir` and return the RecoveryFailed it must raise."""
    with pytest.raises(RecoveryFailed) as raised:
        Node.open(data_dir, **options).close()  # type: ignore[arg-type]
    return raised.value


def checkpoint_seqs(data_dir: Path) -> list[int]:
    """Return the seqs of the Checkpoint records in the log."""
    with Node.open(data_dir, read_only=True) as node:
        return [
            seq
            for seq, data in node.log.rows()
            if isinstance(decode_command(decode_record(data, seq).payload), Checkpoint)
        ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# ---- restarts --------------------------------------------------------------------------


def test_restart_gives_the_same_seq_and_state_hash(log_config: dict[str, str], data_dir: Path) -> None:
    """Close a node that ran a load, open it again: same last seq, same state hash, same state; it goes on
    from the next seq."""
    # No Ticks: one falling between the three commands at the end would take a seq.
    init_data_dir(data_dir, node_config(log_config, checkpoint_every=CHECKPOINT_EVERY, tick_interval_ms=10**9))
    with Node.open(data_dir) as node:
        sequencer = node.start()
        run_load(sequencer, LoadGenerator(random.Random(7), node.engine.state), COMMANDS)
    with Node.open(data_dir, read_only=True) as before:
        seq_before, hash_before = before.report.last_seq, before.engine.state_hash()
    with Node.open(data_dir) as node:
        assert node.report.last_seq == seq_before
        assert node.report.state_hash == hash_before
        assert node.engine.state_hash() == hash_before
        assert canonical.state_hash(node.engine.state) == hash_before
        assert audit(node.engine.state) == []
        assert node.report.torn_tail_discarded == 0
        assert node.report.snapshots_skipped == []
        sequencer = node.start()
        outcomes = submit_all(sequencer, [CreateAccount(seq=0, timestamp_ns=0)] * 3)
    assert [outcome.seq for outcome in outcomes] == [seq_before + 1, seq_before + 2, seq_before + 3]
    assert opened_hash(data_dir, from_genesis=True) == opened_hash(data_dir)


def test_restart_from_a_snapshot_replays_only_the_tail(log_config: dict[str, str], data_dir: Path) -> None:
    """With snapshots every 200 commands, a restart starts at the newest one and replays just what follows."""
    last_seq = history(log_config, data_dir, checkpoint_every=25, snapshot_every=200, snapshot_keep=3)
    snapshots = list_snapshots(data_dir)
    assert len(snapshots) == 3, "the sequencer prunes to snapshot_keep"
    newest = snapshots[0].seq
    assert newest in checkpoint_seqs(data_dir), "snapshots are taken at checkpoints"
    with Node.open(data_dir) as node:
        report = node.report
        assert report.snapshot_seq == newest
        assert report.records_replayed == last_seq - newest
        assert report.last_seq == last_seq
        assert report.checkpoints_verified == len([seq for seq in checkpoint_seqs(data_dir) if seq > newest])
        hash_from_snapshot = node.engine.state_hash()
    with Node.open(data_dir, from_genesis=True, read_only=True) as replayed:
        assert replayed.report.snapshot_seq == 0
        assert replayed.report.records_replayed == last_seq
        assert replayed.engine.state_hash() == hash_from_snapshot


@pytest.fixture
def example_dirs(log_config: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], dict[str, str]]]:
    """Yield a maker of fresh log settings (own directory, own schema) for each Hypothesis example."""
    made: list[dict[str, str]] = []

    def make() -> dict[str, str]:
        name = uuid.uuid4().hex[:8]
        log = dict(log_config, data_dir=str(tmp_path / f"example-{name}"))
        if log["backend"] == "sqlite":
            log["dsn"] = str(tmp_path / f"example-{name}.sqlite")
        else:
            log["schema"] = f"{log_config['schema']}_{name}"
        made.append(log)
        return log

    yield make
    for log in made:
        if log["backend"] == "postgres":
            import psycopg
            from psycopg import sql

            with psycopg.connect(log["dsn"], autocommit=True) as connection:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(log["schema"])))


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    segments=st.lists(st.tuples(st.integers(1, 80), st.booleans()), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    checkpoint_every=st.integers(3, 40),
    snapshot_every=st.integers(5, 120),
    snapshot_keep=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 10**6), min_size=3, max_size=8),
)
def test_snapshot_plus_tail_equals_replay_from_genesis(
    example_dirs: Callable[[], dict[str, str]],
    segments: list[tuple[int, bool]],
    seed: int,
    checkpoint_every: int,
    snapshot_every: int,
    snapshot_keep: int,
    cuts: list[int],
) -> None:
    """Run a random history in segments, snapshotting (Node.snapshot_now) after some of them; then at the end,
    at every snapshot and at random seqs, recovery from the newest usable snapshot gives exactly the state
    that replay from genesis gives."""
    log = example_dirs()
    data_dir = Path(log["data_dir"])
    config = node_config(
        log, checkpoint_every=checkpoint_every, snapshot_every=snapshot_every, snapshot_keep=snapshot_keep
    )
    init_data_dir(data_dir, config)
    snapshot_seqs: list[int] = []
    for index, (count, take_snapshot) in enumerate(segments):
        with Node.open(data_dir) as node:
            generator = LoadGenerator(random.Random(seed + index), node.engine.state)
            run_load(node.start(), generator, count, chunk=17)
        if take_snapshot:
            with Node.open(data_dir) as node:
                seq, path = node.snapshot_now()
                assert path.exists()
                snapshot_seqs.append(seq)
    with Node.open(data_dir) as node:
        last_seq = node.report.last_seq
        newest = max(info.seq for info in list_snapshots(data_dir))
        assert node.report.snapshot_seq == newest
        assert node.report.records_replayed == last_seq - newest
        from_snapshot = node.engine.state_hash()
    assert opened_hash(data_dir, from_genesis=True) == (last_seq, from_snapshot)
    points = {last_seq, *snapshot_seqs, *(seq + 1 for seq in snapshot_seqs if seq < last_seq)}
    points |= {1 + cut % last_seq for cut in cuts}
    for point in sorted(points):
        expected = opened_hash(data_dir, to_seq=point, from_genesis=True)
        assert expected[0] == point
        assert opened_hash(data_dir, to_seq=point) == expected, f"snapshot + tail differs from genesis at seq {point}"


# ---- damage in the log: refuse, naming the seq ---------------------------------------


@pytest.mark.parametrize("offset", [0, 5, 30, -40, -1], ids=["magic", "seq", "payload", "hash", "crc"])
def test_a_flipped_byte_in_a_middle_record_refuses_at_its_seq(
    log_config: dict[str, str], data_dir: Path, offset: int
) -> None:
    """One flipped bit anywhere in a record in the middle of the log: refuse to open, naming that record."""
    last_seq = history(log_config, data_dir)
    middle = last_seq // 2
    damage.flip_record_byte(data_dir, middle, offset)
    failed = refusal(data_dir)
    assert failed.seq == middle
    assert "checksum" in failed.problem
    assert f"first bad sequence number {middle}" in str(failed)
    assert refusal(data_dir, from_genesis=True, read_only=True).seq == middle


def test_a_deleted_middle_record_refuses_at_its_seq(log_config: dict[str, str], data_dir: Path) -> None:
    """A record missing from the middle of the log is a gap, named by the missing seq."""
    last_seq = history(log_config, data_dir)
    middle = last_seq // 2
    damage.delete_record(data_dir, middle)
    failed = refusal(data_dir)
    assert failed.seq == middle
    assert "missing" in failed.problem


def test_two_swapped_records_refuse_at_the_first(log_config: dict[str, str], data_dir: Path) -> None:
    """Two records stored in each other's place: refuse at the earlier seq, which holds the wrong record."""
    last_seq = history(log_config, data_dir)
    first, second = last_seq // 3, 2 * last_seq // 3
    damage.swap_records(data_dir, first, second)
    failed = refusal(data_dir)
    assert failed.seq == first
    assert "another sequence number" in failed.problem
    assert failed.expected == str(first)
    assert failed.found == str(second)


def test_a_rewritten_record_with_a_fresh_checksum_breaks_the_chain_at_the_next_seq(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """A record replaced by a different, well-formed one (own hash and CRC recomputed, as a tamperer would)
    passes its own checks; the next record's link to it does not, and recovery names that next seq."""
    last_seq = history(log_config, data_dir)
    middle = last_seq // 2
    original = decode_record(damage.read_record(data_dir, middle), middle)
    forged_command: Command = CreateAccount(seq=middle, timestamp_ns=original.timestamp_ns)
    if encode_command(forged_command) == original.payload:  # it was a CreateAccount: forge something else
        forged_command = Tick(seq=middle, timestamp_ns=original.timestamp_ns)
    forged = make_record(middle, original.timestamp_ns, encode_command(forged_command), original.prev_hash)
    assert forged.data != original.data
    damage.rewrite_record(data_dir, middle, forged.data)
    failed = refusal(data_dir)
    assert failed.seq == middle + 1
    assert "hash chain broken" in failed.problem
    assert failed.expected == forged.hash.hex()


def append_checkpoint(data_dir: Path, make_wrong: Callable[[Checkpoint], Checkpoint]) -> int:
    """Append, through the log API, a well-formed Checkpoint record chained to the last record whose
    hashes `make_wrong` has altered from the true ones; return its seq."""
    with Node.open(data_dir, read_only=True) as node:
        seq = node.engine.state.seq_last + 1
        timestamp_ns = node.engine.state.timestamp_ns_last
        true = node.engine.checkpoint_command(seq, timestamp_ns)
        prev_hash = node.prev_hash
        config: Config = node.config
    wrong = make_wrong(true)
    assert wrong.state_hash != true.state_hash
    log = open_log(data_dir, config)
    try:
        log.append([make_record(seq, timestamp_ns, encode_command(wrong), prev_hash)])
    finally:
        log.close()
    return seq


def _wrong_accounts_section(true: Checkpoint) -> Checkpoint:
    sections = list(true.section_hashes)
    index = SECTIONS.index("accounts")
    sections[index] = bytes(32 - 1) + b"\x01"
    return msgspec.structs.replace(true, state_hash=bytes(reversed(true.state_hash)), section_hashes=tuple(sections))


def test_a_checkpoint_with_a_wrong_hash_refuses_at_its_seq_naming_the_section(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """A correctly chained Checkpoint whose recorded hash (and accounts section) is wrong: the replayed state
    does not match it, and recovery refuses at its seq, saying which section differs."""
    history(log_config, data_dir)
    seq = append_checkpoint(data_dir, _wrong_accounts_section)
    failed = refusal(data_dir)
    assert failed.seq == seq
    assert "does not match the checkpoint" in failed.problem
    assert any(line == "sections that differ: accounts" for line in failed.details), failed.details
    assert refusal(data_dir, read_only=True, from_genesis=True).seq == seq


def test_a_checkpoint_with_only_its_state_hash_wrong_still_refuses(log_config: dict[str, str], data_dir: Path) -> None:
    """Only the combined hash wrong (every section hash right): still refused at that seq."""
    history(log_config, data_dir)
    seq = append_checkpoint(
        data_dir, lambda true: msgspec.structs.replace(true, state_hash=bytes(reversed(true.state_hash)))
    )
    failed = refusal(data_dir)
    assert failed.seq == seq
    assert "does not match the checkpoint" in failed.problem


@pytest.mark.parametrize("keep", ["half", "header-only"])
def test_a_torn_final_record_is_discarded_and_reported(log_config: dict[str, str], data_dir: Path, keep: str) -> None:
    """The last record cut short (a write torn by a crash, never acknowledged): the node opens, reports the
    seq it discarded, the record is gone, the state is that of the log before it, and the node goes on."""
    last_seq = history(log_config, data_dir)
    whole = damage.read_record(data_dir, last_seq)
    damage.truncate_record(data_dir, last_seq, len(whole) // 2 if keep == "half" else 10)
    expected = opened_hash(data_dir, to_seq=last_seq - 1, from_genesis=True)
    # A read-only open (keel verify) never discards: it refuses and leaves the record as it is.
    assert refusal(data_dir, read_only=True).seq == last_seq
    assert damage.record_exists(data_dir, last_seq)
    with Node.open(data_dir) as node:
        assert node.report.torn_tail_discarded == last_seq
        assert node.report.last_seq == last_seq - 1
        assert node.engine.state_hash() == expected[1]
        assert node.log.row(last_seq) is None
        assert node.log.last_seq() == last_seq - 1
        outcome = node.start().call(CreateAccount(seq=0, timestamp_ns=0))
        assert outcome.seq == last_seq
    assert damage.read_record(data_dir, last_seq) != whole
    with Node.open(data_dir) as node:
        assert node.report.torn_tail_discarded == 0
        assert node.report.last_seq >= last_seq  # a checkpoint may have fallen due after it
        command = decode_command(decode_record(node.log.row(last_seq) or b"", last_seq).payload)
        assert isinstance(command, CreateAccount)


@pytest.mark.parametrize("keep", ["half", "header-only"])
def test_a_torn_middle_record_refuses_at_its_seq(log_config: dict[str, str], data_dir: Path, keep: str) -> None:
    """The same truncation on a record with others after it is corruption, not a torn tail: refuse, and
    discard nothing."""
    last_seq = history(log_config, data_dir)
    middle = last_seq // 2
    whole = damage.read_record(data_dir, middle)
    damage.truncate_record(data_dir, middle, len(whole) // 2 if keep == "half" else 10)
    failed = refusal(data_dir)
    assert failed.seq == middle
    assert damage.last_stored_seq(data_dir) == last_seq
    assert damage.record_exists(data_dir, middle)


def test_damage_before_the_newest_snapshot_is_found_by_replay_from_genesis(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """A normal open starts at the newest snapshot and checks only the records after it, so a flipped byte
    before that snapshot is not replayed and the node opens with the right state; `from_genesis` (keel verify
    --from-genesis) reads every record and refuses at the damaged seq."""
    last_seq = history(log_config, data_dir, checkpoint_every=25, snapshot_every=200)
    newest = list_snapshots(data_dir)[0].seq
    early = newest // 2
    expected = opened_hash(data_dir)
    damage.flip_record_byte(data_dir, early, 30)
    assert opened_hash(data_dir) == expected
    assert expected[0] == last_seq
    assert refusal(data_dir, from_genesis=True, read_only=True).seq == early


# ---- damaged snapshots: skipped with a reason, same final state ---------------------


@pytest.mark.parametrize("offset", [-7, 20, 50], ids=["image", "state-hash", "image-hash"])
def test_a_corrupted_snapshot_is_skipped_for_an_older_one(
    log_config: dict[str, str], data_dir: Path, offset: int
) -> None:
    """Flip a byte of the newest snapshot: it is skipped, saying which file and why, and recovery starts at
    the next older snapshot, replays more of the log, and ends with the same hash."""
    history(log_config, data_dir, checkpoint_every=25, snapshot_every=150, snapshot_keep=3)
    expected = opened_hash(data_dir)
    newest, older = list_snapshots(data_dir)[:2]
    damage.flip_file_byte(newest.path, offset)
    with Node.open(data_dir) as node:
        report = node.report
        assert report.snapshot_seq == older.seq
        assert len(report.snapshots_skipped) == 1
        assert newest.path.name in report.snapshots_skipped[0]
        assert "hash" in report.snapshots_skipped[0]
        assert report.records_replayed == expected[0] - older.seq
        assert (node.engine.state.seq_last, node.engine.state_hash()) == expected


def test_with_every_snapshot_corrupted_recovery_replays_from_genesis(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """Every snapshot damaged (one truncated, the others flipped): all are skipped, each with its reason,
    and the log is replayed from genesis to the same hash."""
    history(log_config, data_dir, checkpoint_every=25, snapshot_every=150, snapshot_keep=3)
    expected = opened_hash(data_dir)
    snapshots = list_snapshots(data_dir)
    assert len(snapshots) == 3
    snapshots[0].path.write_bytes(snapshots[0].path.read_bytes()[:40])
    for info in snapshots[1:]:
        damage.flip_file_byte(info.path, -1)
    with Node.open(data_dir) as node:
        report = node.report
        assert report.snapshot_seq == 0
        assert [skipped.split(":")[0] for skipped in report.snapshots_skipped] == [
            f"snapshot {info.path.name}" for info in snapshots
        ]
        assert "shorter than its header" in report.snapshots_skipped[0]
        assert report.records_replayed == expected[0]
        assert (node.engine.state.seq_last, node.engine.state_hash()) == expected


def test_a_snapshot_the_log_does_not_vouch_for_is_skipped(log_config: dict[str, str], data_dir: Path) -> None:
    """A well-formed snapshot whose seq is not a logged checkpoint with its hash (here: a copy renamed to
    another seq's file name, so its header and name disagree) is not trusted."""
    history(log_config, data_dir, checkpoint_every=25, snapshot_every=150, snapshot_keep=3)
    expected = opened_hash(data_dir)
    newest = list_snapshots(data_dir)[0]
    misplaced = newest.path.with_name(f"snapshot-{newest.seq + 1:012d}.keel")
    misplaced.write_bytes(newest.path.read_bytes())
    with Node.open(data_dir) as node:
        assert node.report.snapshot_seq == newest.seq
        assert (node.engine.state.seq_last, node.engine.state_hash()) == expected


def test_a_snapshot_pruned_while_a_read_only_open_recovers_is_skipped(
    log_config: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only open beside a running node lists the snapshots, and before it reads the newest, the node
    writes a newer one and prunes that one (snapshot_keep=1). Recovery must skip the vanished file and carry
    on (older snapshot or genesis), not fail."""
    history(log_config, data_dir, checkpoint_every=25, snapshot_every=150, snapshot_keep=1)
    expected = opened_hash(data_dir)
    listing = snapshot_store.list_snapshots

    def listed_then_pruned(directory: Path) -> list[SnapshotInfo]:
        found = listing(directory)
        found[0].path.unlink()  # the serving node's prune_snapshots, between the listing and the read
        return found

    monkeypatch.setattr(recovery, "list_snapshots", listed_then_pruned)
    with Node.open(data_dir, read_only=True) as node:
        assert (node.engine.state.seq_last, node.engine.state_hash()) == expected


# ---- who may open a data directory ---------------------------------------------------


def test_a_second_process_cannot_open_a_running_nodes_directory_but_read_only_can(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """While a node runs (a crash_child under load, another process), Node.open in this process raises
    DataDirError; a read-only open succeeds beside it and reproduces the log it reads; once the node is
    gone, the directory opens normally."""
    init_data_dir(data_dir, node_config(log_config, checkpoint_every=40, snapshot_every=500))
    child = subprocess.Popen(
        [sys.executable, "-m", "keel.testing.crash_child", str(data_dir), "5", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.strip().isdigit(), child.stderr.read() if child.stderr else ""
        with pytest.raises(DataDirError, match="another keel process"):
            Node.open(data_dir)
        for _ in range(3):
            with Node.open(data_dir, read_only=True) as beside:
                assert beside.report.last_seq >= int(first)
                assert canonical.state_hash(beside.engine.state) == beside.engine.state_hash()
                seq = beside.report.last_seq
            assert opened_hash(data_dir, to_seq=seq, from_genesis=True)[0] == seq
            time.sleep(0.05)
        with pytest.raises(DataDirError):
            Node.open(data_dir)
    finally:
        child.kill()
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()
    wait_for_lock_release(data_dir, timeout=30)
    with Node.open(data_dir) as node:
        assert node.report.last_seq >= int(first)


def writer_process_of(pid: int) -> int:
    """Return the pid of the log writer process (keel.log.writer) that process `pid` started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"keel.log.writer" in command_line:
            return int(entry.name)
    raise AssertionError(f"process {pid} has no log writer child")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the writer process through /proc")
def test_an_orphaned_log_writer_keeps_the_directory_locked_until_it_exits(
    log_config: dict[str, str], data_dir: Path
) -> None:
    """A node killed while its writer process lives on (here: stopped with SIGSTOP mid-run) leaves the directory
    locked: the writer inherited the lock and might still commit, so Node.open is refused until the writer has
    seen its input close and exited; then the directory opens with every acknowledged record."""
    init_data_dir(data_dir, node_config(log_config, writer="process"))
    node_process = subprocess.Popen(
        [sys.executable, "-m", "keel.testing.crash_child", str(data_dir), "9", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    writer = -1
    try:
        assert node_process.stdout is not None
        assert node_process.stdout.readline().strip().isdigit()
        writer = writer_process_of(node_process.pid)
        os.kill(writer, signal.SIGSTOP)
        node_process.kill()
        acked = [int(line) for line in node_process.stdout.read().split()]
        node_process.wait(30)
        with pytest.raises(DataDirError, match="another keel process"):
            Node.open(data_dir)
        os.kill(writer, signal.SIGCONT)
        wait_for_lock_release(data_dir, timeout=30)
        writer = -1
    finally:
        if node_process.poll() is None:
            node_process.kill()
            node_process.wait(30)
        if node_process.stdout is not None:
            node_process.stdout.close()
        if writer > 0:
            os.kill(writer, signal.SIGKILL)
    with Node.open(data_dir) as node:
        assert node.report.last_seq >= max(acked, default=0)
        assert node.report.torn_tail_discarded == 0


def test_a_read_only_open_reads_while_a_writer_holds_a_sqlite_transaction(tmp_path: Path) -> None:
    """A write transaction held open on the SQLite log (as the node's writer holds one while it commits) must
    not stop a read-only open: in WAL mode readers see the last committed state without any lock."""
    data_dir = tmp_path / "data"
    last_seq = build_data_dir(data_dir, Config(), 20)
    writer = sqlite3.connect(data_dir / "log.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with Node.open(data_dir, read_only=True) as node:
            assert node.report.last_seq == last_seq
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_two_opens_in_one_process_are_refused_too(log_config: dict[str, str], data_dir: Path) -> None:
    """The lock is per open, not per process: a second Node.open of an open directory is refused until the
    first one closes."""
    history(log_config, data_dir, commands=10)
    first = Node.open(data_dir)
    try:
        with pytest.raises(DataDirError):
            Node.open(data_dir)
    finally:
        first.close()
    Node.open(data_dir).close()


def test_opening_a_missing_or_uninitialised_directory_says_what_to_do(tmp_path: Path) -> None:
    """A directory that does not exist, or has no keel.toml, is refused with the command that fixes it."""
    with pytest.raises(DataDirError, match="keel init"):
        Node.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="keel init"):
        Node.open(tmp_path / "empty")


def test_init_refuses_an_initialised_directory(log_config: dict[str, str], data_dir: Path) -> None:
    """A second init on the same directory is refused and changes nothing."""
    history(log_config, data_dir, commands=5)
    expected = opened_hash(data_dir)
    with pytest.raises(DataDirError, match="already initialised"):
        init_data_dir(data_dir, node_config(log_config))
    assert opened_hash(data_dir) == expected


def test_an_init_whose_genesis_append_fails_leaves_no_openable_directory(
    log_config: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the genesis records cannot be written (disk full), init fails and leaves no keel.toml: the directory
    does not pass for an exchange (opening it is refused) and init can simply be run again."""
    from keel.log.postgres import PostgresLog
    from keel.log.sqlite import SqliteLog

    def disk_full(self: object, records: object) -> None:
        raise OSError(28, "No space left on device")

    backend_class = SqliteLog if log_config["backend"] == "sqlite" else PostgresLog
    with monkeypatch.context() as patch:
        patch.setattr(backend_class, "append", disk_full)
        with pytest.raises(OSError, match="No space left"):
            init_data_dir(data_dir, node_config(log_config))
    assert not (data_dir / "keel.toml").exists()
    with pytest.raises((DataDirError, FileNotFoundError, RecoveryFailed)):
        Node.open(data_dir).close()
    init_data_dir(data_dir, node_config(log_config))
    assert opened_hash(data_dir)[0] == 11  # 4 assets, 6 markets, a checkpoint
