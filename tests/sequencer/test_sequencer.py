"""The sequencer: numbering, time, group commit, Ticks, checkpoints, snapshots, and fail-stop.

Each test runs a real node on each log backend (`log_config`), driven through the
sequencer's public calls (`submit`, `submit_many`, `call`) with a manual clock
(keel.testing.clock.ManualClock) wherever time matters, and reads back what reached
the log through a second, independent log handle. The properties:

- outcomes carry consecutive seqs and timestamps that never go backwards, even when
  the clock does; the log holds exactly those seqs and timestamps;
- acknowledged means durable: inside every callback, a separate handle already finds
  the record (checked for each way of writing the log the node supports);
- group commit: many submissions take far fewer commits than records;
- a Tick is injected once the interval has passed, on the next command or while idle;
- a Checkpoint follows every K commands and reproduces on replay; snapshots are
  written at checkpoints and pruned to `snapshot_keep`;
- when the log cannot be written, every pending callback gets SequencerStopped, later
  submissions get it at once, nothing unacknowledged is in the log, and a restart
  recovers exactly the log; when the engine cannot apply a command, what was applied
  before it is committed and acknowledged and the rest is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from keel.core import canonical
from keel.core.commands import Checkpoint, Command, CreateAccount, Credit, Tick, decode_command
from keel.core.engine import Engine
from keel.core.errors import RejectCode
from keel.core.events import CommandRejected
from keel.log.base import CommandLog
from keel.log.open import open_log
from keel.log.record import Record, decode_record
from keel.node.node import Node, init_data_dir
from keel.sequencer.sequencer import Outcome, Sequencer, SequencerStopped
from keel.snapshots.store import list_snapshots, load_snapshot
from keel.testing import damage
from keel.testing.clock import NS_PER_MS, ManualClock
from keel.testing.nodes import WRITERS, inline_writer_settings, node_config, submit_all, writer_settings

NEVER = 10**9  # an interval or count the test never reaches
ACK_TIMEOUT_S = 60.0


def create_accounts(count: int) -> list[Command]:
    return [CreateAccount(seq=0, timestamp_ns=0) for _ in range(count)]


def open_node(log_config: dict[str, str], data_dir: Path, clock: ManualClock, **settings: Any) -> Node:
    """Initialise `data_dir` (genesis stamped by `clock`) and open it."""
    options: dict[str, Any] = {"tick_interval_ms": NEVER, "checkpoint_every": NEVER, "snapshot_every": NEVER}
    options.update(settings)
    init_data_dir(data_dir, node_config(log_config, **options), clock=clock)
    return Node.open(data_dir)


def second_handle(log_config: dict[str, str]) -> CommandLog:
    """Open the same log through a connection of its own, which sees only what has committed."""
    return open_log(log_config["backend"], log_config["dsn"], log_config["schema"])


def stored_last_seq(log_config: dict[str, str]) -> int:
    """Return the last committed seq, read through a fresh handle."""
    log = second_handle(log_config)
    try:
        return log.last_seq()
    finally:
        log.close()


def stored_commands(log_config: dict[str, str], seq_from: int = 1) -> list[tuple[Record, Command]]:
    log = second_handle(log_config)
    try:
        return [
            (record, decode_command(record.payload))
            for record in (decode_record(data, seq) for seq, data in log.rows(seq_from))
        ]
    finally:
        log.close()


class Collector:
    """A callback that keeps every result in arrival order and says when `expected` have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.results: list[Outcome | SequencerStopped] = []
        self.done = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, result: Outcome | SequencerStopped) -> None:
        self.results.append(result)
        self.threads.add(threading.current_thread().name)
        if len(self.results) >= self.expected:
            self.done.set()

    def wait(self) -> list[Outcome | SequencerStopped]:
        assert self.done.wait(ACK_TIMEOUT_S), f"{len(self.results)} of {self.expected} results arrived"
        return self.results

    def outcomes(self) -> list[Outcome]:
        results = self.wait()
        stopped = [result for result in results if isinstance(result, SequencerStopped)]
        assert not stopped, stopped[0]
        return [result for result in results if isinstance(result, Outcome)]


# ---- numbering and time ---------------------------------------------------------------


def test_outcomes_carry_consecutive_seqs_and_timestamps_that_never_go_backwards(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    """Commands sent one at a time while the clock moves forward, stands still and steps back get
    consecutive seqs, and each is stamped with the clock's time or, when the clock is behind, with the last
    timestamp again; the log stores exactly those seqs and timestamps."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock) as node:
        seq_first = node.report.last_seq + 1
        timestamp_last = node.engine.state.timestamp_ns_last
        sequencer = node.start(clock)
        outcomes = []
        expected_timestamps = []
        for index in range(150):
            if index % 50 == 25:
                clock.set_ns(clock.now_ns() - 5_000 * NS_PER_MS)  # an NTP step backwards
            elif index % 3 == 0:
                clock.advance(1_000 * (index % 7))
            timestamp_last = max(clock.now_ns(), timestamp_last)
            expected_timestamps.append(timestamp_last)
            outcomes.append(sequencer.call(CreateAccount(seq=0, timestamp_ns=0)))
        # Submitted in one burst, with the clock stepping back as they go: still in order, never backwards.
        burst = Collector(100)
        for index in range(100):
            if index % 10 == 0:
                clock.set_ns(clock.now_ns() - 1_000 * NS_PER_MS)
            sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), burst)
        outcomes += burst.outcomes()
    assert [outcome.seq for outcome in outcomes] == list(range(seq_first, seq_first + 250))
    assert [outcome.timestamp_ns for outcome in outcomes[:150]] == expected_timestamps
    timestamps = [outcome.timestamp_ns for outcome in outcomes]
    assert timestamps == sorted(timestamps)
    assert timestamps[150:] == [timestamps[149]] * 100, "a clock behind the last stamp changes nothing"
    stored = stored_commands(log_config, seq_first)
    assert [(record.seq, record.timestamp_ns) for record, _ in stored] == [
        (outcome.seq, outcome.timestamp_ns) for outcome in outcomes
    ]
    assert all(command.seq == record.seq for record, command in stored)


def test_call_returns_the_durable_outcome_with_its_events(log_config: dict[str, str], tmp_path: Path) -> None:
    """`call` waits for the outcome: the seq is the next one, the events are the engine's, the record is stored."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock) as node:
        last = node.report.last_seq
        sequencer = node.start(clock)
        created = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        assert created.seq == last + 1
        account_id = created.events[0].account_id  # type: ignore[union-attr]
        credited = sequencer.call(Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=0, amount_atomic=5))
        assert credited.seq == last + 2
        assert credited.events, "a credit posts a ledger entry"
        log = second_handle(log_config)
        try:
            assert log.row(credited.seq) is not None
        finally:
            log.close()


def test_a_command_the_log_cannot_hold_is_refused_before_it_takes_a_seq(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    """An integer beyond 64 bits cannot be encoded: the command is refused (seq 0,
    VALUE_TOO_LARGE), nothing is applied or logged, and the node goes on."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock) as node:
        last = node.report.last_seq
        sequencer = node.start(clock)
        created = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        huge = Credit(seq=0, timestamp_ns=0, account_id=1, asset_id=0, amount_atomic=2**70)
        refused = sequencer.call(huge)
        assert refused.seq == 0
        (event,) = refused.events
        assert isinstance(event, CommandRejected) and event.code == RejectCode.VALUE_TOO_LARGE
        after = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        assert after.seq == created.seq + 1 == last + 2
        assert sequencer.failed is None


# ---- acknowledged means durable -------------------------------------------------------


@pytest.mark.parametrize("writer", WRITERS)
def test_a_callback_runs_only_after_its_record_is_in_the_log(
    log_config: dict[str, str], tmp_path: Path, writer: str
) -> None:
    """Inside each callback, a log handle opened there and then (its own connection, which sees only committed
    data) already finds the record with the outcome's seq and timestamp, for single, batched and blocking
    submissions alike."""
    clock = ManualClock()
    findings: list[tuple[int, bool, str]] = []
    lock = threading.Lock()

    def check_durable(result: Outcome | SequencerStopped) -> None:
        if isinstance(result, SequencerStopped):
            with lock:
                findings.append((-1, False, str(result)))
            return
        log = second_handle(log_config)
        try:
            data = log.row(result.seq)
            found = data is not None and decode_record(data, result.seq).timestamp_ns == result.timestamp_ns
        finally:
            log.close()
        with lock:
            findings.append((result.seq, found, ""))

    with open_node(log_config, tmp_path / "data", clock, **writer_settings(writer)) as node:
        sequencer = node.start(clock)
        collector = Collector(60)

        def both(result: Outcome | SequencerStopped) -> None:
            check_durable(result)
            collector(result)

        for _ in range(20):
            sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), both)
        sequencer.submit_many(create_accounts(40), both)
        collector.wait()
        blocking = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        check_durable(blocking)
    assert len(findings) == 61
    not_durable = [finding for finding in findings if not finding[1]]
    assert not not_durable, f"acknowledged before durable: {not_durable[:5]}"
    assert collector.threads == {"keel-committer"}, "outcomes are delivered by the committer thread"


# ---- group commit ---------------------------------------------------------------------


@pytest.mark.parametrize("writer", WRITERS)
def test_many_submissions_are_group_committed_in_fewer_commits_than_records(
    log_config: dict[str, str], tmp_path: Path, writer: str
) -> None:
    """Thousands of commands from a batch submission and from eight submitting threads reach the log in far
    fewer commits than records: counted by the log handle itself (log.fsyncs) when the node writes through
    it, and by the appender either way."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock, **writer_settings(writer)) as node:
        sequencer = node.start(clock)
        fsyncs_before, commits_before = node.log.fsyncs(), sequencer.appender.commits
        seq_before = node.report.last_seq
        outcomes = submit_all(sequencer, create_accounts(3_000))
        assert len(outcomes) == 3_000
        collectors = [Collector(200) for _ in range(8)]

        def submit_from_thread(collector: Collector) -> None:
            for _ in range(200):
                sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), collector)

        threads = [threading.Thread(target=submit_from_thread, args=(collector,)) for collector in collectors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seqs = sorted(outcome.seq for collector in collectors for outcome in collector.outcomes())
        assert seqs == list(range(seq_before + 3_001, seq_before + 4_601))
        records = seqs[-1] - seq_before
        commits = sequencer.appender.commits - commits_before
        fsyncs = node.log.fsyncs() - fsyncs_before
    assert records == 4_600
    assert stored_last_seq(log_config) == seq_before + records
    assert 1 <= commits <= records // 10, f"{commits} commits for {records} records"
    if writer == "thread":
        assert fsyncs == commits, "the node's own log handle made every commit"
    else:
        assert fsyncs == 0, "the writer process made the commits, not the node's handle"


# ---- Ticks ----------------------------------------------------------------------------


def test_ticks_are_injected_once_the_interval_has_passed(log_config: dict[str, str], tmp_path: Path) -> None:
    """With a 500 ms interval on a manual clock: no Tick before 500 ms have passed, one Tick (stamped with the
    clock's time) right after the first command once they have, one only however long the gap, and one while
    idle with no command at all."""
    clock = ManualClock()
    # The engine thread also wakes after an interval of real time without commands; the commands here
    # come milliseconds apart, so only the idle step at the end gives it that chance.
    interval_ns = 500 * NS_PER_MS
    with open_node(log_config, tmp_path / "data", clock, tick_interval_ms=500) as node:
        start_seq = node.report.last_seq
        sequencer = node.start(clock)

        def command() -> Outcome:
            return sequencer.call(CreateAccount(seq=0, timestamp_ns=0))

        first = command()
        clock.advance(interval_ns - 1)
        before_due = command()
        clock.advance(1)
        due = command()
        tick_at = clock.now_ns()
        after_tick = command()
        clock.advance(5 * interval_ns)  # a long gap still makes one Tick
        long_gap = command()
        long_gap_at = clock.now_ns()
        after_long_gap = command()
        assert [first.seq, before_due.seq, due.seq] == [start_seq + 1, start_seq + 2, start_seq + 3]
        assert after_tick.seq == due.seq + 2
        assert after_long_gap.seq == long_gap.seq + 2

        # Idle: no command comes, but the engine thread wakes every interval and finds a Tick due.
        clock.advance(interval_ns)
        idle_at = clock.now_ns()
        deadline = time.monotonic() + 10
        while stored_last_seq(log_config) <= after_long_gap.seq:
            assert time.monotonic() < deadline, "no Tick was injected while idle"
            time.sleep(0.02)
    stored = stored_commands(log_config, start_seq + 1)
    ticks = [(record.seq, record.timestamp_ns) for record, command in stored if isinstance(command, Tick)]
    assert ticks[:3] == [(due.seq + 1, tick_at), (long_gap.seq + 1, long_gap_at), (after_long_gap.seq + 1, idle_at)]
    assert len(ticks) == 3


# ---- checkpoints and snapshots --------------------------------------------------------


def test_checkpoints_follow_every_k_commands_and_snapshots_are_pruned_to_keep(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    """checkpoint_every=10: after every 10 records comes a Checkpoint whose hash replay reproduces;
    snapshot_every=30, keep=2: snapshots are taken at the first checkpoint 30 records after the last one,
    only the newest two remain, and each is the state its checkpoint vouches for."""
    clock = ManualClock()
    data_dir = tmp_path / "data"
    with open_node(log_config, data_dir, clock, checkpoint_every=10, snapshot_every=30, snapshot_keep=2) as node:
        genesis_seq = node.report.last_seq
        sequencer = node.start(clock)
        submit_all(sequencer, create_accounts(150))
        for _ in range(50):
            sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
    stored = stored_commands(log_config, genesis_seq + 1)
    checkpoints = [(record.seq, command) for record, command in stored if isinstance(command, Checkpoint)]
    assert [seq for seq, _ in checkpoints] == list(range(genesis_seq + 11, stored[-1][0].seq + 1, 11))
    assert len(checkpoints) == 200 // 10
    for seq, checkpoint in checkpoints:
        with Node.open(data_dir, to_seq=seq, from_genesis=True, read_only=True) as replayed:
            assert canonical.state_hash(replayed.engine.state) == checkpoint.state_hash
    expected_snapshots = []
    last_snapshot = genesis_seq
    for seq, _ in checkpoints:
        if seq - last_snapshot >= 30:
            expected_snapshots.append(seq)
            last_snapshot = seq
    snapshots = list_snapshots(data_dir)
    assert [info.seq for info in snapshots] == sorted(expected_snapshots, reverse=True)[:2]
    hashes = dict(checkpoints)
    for info in snapshots:
        seq, state_hash, state = load_snapshot(info.path)
        assert seq == info.seq
        assert state_hash == hashes[seq].state_hash
        assert state.seq_last == seq
    with Node.open(data_dir) as node:
        assert node.report.snapshot_seq == snapshots[0].seq


# ---- fail-stop ------------------------------------------------------------------------


class FailingLog:
    """A CommandLog proxy whose appends fail (after waiting for `release`) once `failing` is set."""

    def __init__(self, log: CommandLog) -> None:
        self._log = log
        self.backend = log.backend
        self.failing = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.failed_appends = 0

    def append(self, records: Sequence[Record]) -> None:
        if self.failing:
            self.entered.set()
            assert self.release.wait(ACK_TIMEOUT_S)
            self.failed_appends += 1
            raise OSError(28, "No space left on device (injected)")
        self._log.append(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def _expect_stopped_now(submit: Callable[[Callable[[Outcome | SequencerStopped], None]], None], count: int) -> None:
    """Call `submit` with a callback and check it got `count` SequencerStopped before `submit` returned."""
    results: list[Outcome | SequencerStopped] = []
    submit(results.append)
    assert len(results) == count, "a stopped sequencer answers at once"
    assert all(isinstance(result, SequencerStopped) for result in results)


def test_a_failing_log_stops_the_sequencer_and_fails_every_pending_and_later_command(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    """The log starts failing while one commit is in progress and a hundred commands wait behind it: every
    one of those callbacks gets SequencerStopped (none an outcome), later submissions get it immediately, the
    log holds nothing after the last acknowledged command, and a restart recovers exactly the log."""
    clock = ManualClock()
    data_dir = tmp_path / "data"
    with open_node(log_config, data_dir, clock, **inline_writer_settings()) as node:
        failing = FailingLog(node.log)
        node.log = failing
        sequencer = node.start(clock)
        acknowledged = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        failing.failing = True
        failing.release.clear()
        pending = Collector(101)
        sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), pending)
        assert failing.entered.wait(ACK_TIMEOUT_S), "the commit never started"
        for _ in range(50):
            sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), pending)
        sequencer.submit_many(create_accounts(50), pending)
        assert not pending.done.is_set()
        failing.release.set()
        results = pending.wait()
        assert all(isinstance(result, SequencerStopped) for result in results), "nothing unwritten is acknowledged"
        assert isinstance(sequencer.failed, OSError)
        assert any(isinstance(result, SequencerStopped) and result.cause is sequencer.failed for result in results)

        _expect_stopped_now(lambda callback: sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), callback), 1)
        _expect_stopped_now(lambda callback: sequencer.submit_many(create_accounts(3), callback), 3)
        with pytest.raises(SequencerStopped):
            sequencer.call(CreateAccount(seq=0, timestamp_ns=0), timeout=5)
    stored = stored_commands(log_config)
    assert stored[-1][0].seq == acknowledged.seq
    with Node.open(data_dir) as node:
        assert node.report.last_seq == acknowledged.seq
        assert node.report.torn_tail_discarded == 0
        with Node.open(data_dir, from_genesis=True, read_only=True) as replayed:
            assert replayed.engine.state_hash() == node.engine.state_hash()
        # The restart after a failure first logs the safe state (a withdrawal freeze and
        # CancelOnly for every market; tests/node/test_failstop.py), then what comes next.
        assert node.start(clock).call(CreateAccount(seq=0, timestamp_ns=0)).seq == acknowledged.seq + 3
        assert node.engine.state.withdrawals_frozen


@pytest.mark.parametrize("writer", WRITERS)
def test_a_log_table_gone_from_under_the_node_stops_it_and_a_restart_recovers(
    log_config: dict[str, str], tmp_path: Path, writer: str
) -> None:
    """A real write failure, for every way of writing the log: the table is renamed behind the node's back.
    The next command gets SequencerStopped, so does every later one; once the table is back, a restart
    recovers the log as it was, without the refused commands."""
    clock = ManualClock()
    data_dir = tmp_path / "data"
    with open_node(log_config, data_dir, clock, **writer_settings(writer)) as node:
        sequencer = node.start(clock)
        acknowledged = sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
        damage.rename_log_table(data_dir, "log_away")
        try:
            with pytest.raises(SequencerStopped):
                sequencer.call(CreateAccount(seq=0, timestamp_ns=0))
            _expect_stopped_now(lambda callback: sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), callback), 1)
        finally:
            damage.rename_log_table(data_dir, "log", current="log_away")
    with Node.open(data_dir) as node:
        assert node.report.last_seq == acknowledged.seq
        with Node.open(data_dir, from_genesis=True, read_only=True) as replayed:
            assert replayed.engine.state_hash() == node.engine.state_hash()


def test_a_stopped_sequencer_refuses_submissions_at_once(log_config: dict[str, str], tmp_path: Path) -> None:
    """After the node closes (the sequencer finished and stopped), submissions are answered with SequencerStopped."""
    clock = ManualClock()
    node = open_node(log_config, tmp_path / "data", clock)
    sequencer: Sequencer = node.start(clock)
    outcomes = submit_all(sequencer, create_accounts(10))
    node.close()
    _expect_stopped_now(lambda callback: sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), callback), 1)
    _expect_stopped_now(lambda callback: sequencer.submit_many(create_accounts(2), callback), 2)
    assert stored_commands(log_config)[-1][0].seq == outcomes[-1].seq


def test_a_failing_duty_answers_the_rest_of_its_submission(
    log_config: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint the engine cannot make, due after the second command of a submit_many of four: the two
    applied commands keep their durable outcomes and the other two are answered with SequencerStopped, so no
    caller is left waiting for an answer."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock, checkpoint_every=2) as node:
        sequencer = node.start(clock)

        def broken(self: Engine, seq: int, timestamp_ns: int) -> Checkpoint:
            raise RuntimeError("the state hash could not be computed")

        monkeypatch.setattr(Engine, "checkpoint_command", broken)
        answers = Collector(4)
        sequencer.submit_many(create_accounts(4), answers)
        assert answers.done.wait(ACK_TIMEOUT_S), f"{len(answers.results)} of 4 submitted commands were answered"
        assert isinstance(sequencer.failed, RuntimeError)
        outcomes = [result for result in answers.results if isinstance(result, Outcome)]
        refused = [result for result in answers.results if isinstance(result, SequencerStopped)]
        assert (len(outcomes), len(refused)) == (2, 2)
        assert stored_last_seq(log_config) == outcomes[1].seq


def test_an_engine_failure_answers_every_pending_command_with_sequencer_stopped(
    log_config: dict[str, str], tmp_path: Path
) -> None:
    """Commands before and after a command the engine cannot apply (a Checkpoint with a wrong hash), in one
    submit_many: the sequencer stops, and every one of them is answered: those applied whole before it with
    their durable outcomes, the failing one and the rest with SequencerStopped; later submissions are refused."""
    clock = ManualClock()
    with open_node(log_config, tmp_path / "data", clock) as node:
        sequencer = node.start(clock)
        wrong = Checkpoint(seq=0, timestamp_ns=0, state_hash=bytes(32), section_hashes=())
        answers = Collector(4)
        sequencer.submit_many([*create_accounts(2), wrong, *create_accounts(1)], answers)
        assert answers.done.wait(ACK_TIMEOUT_S), f"{len(answers.results)} of 4 submitted commands were answered"
        assert sequencer.failed is not None
        # The refusals are answered at once, the outcomes once their batch has committed: count, not order.
        outcomes = [result for result in answers.results if isinstance(result, Outcome)]
        refused = [result for result in answers.results if isinstance(result, SequencerStopped)]
        assert len(outcomes) == 2
        assert len(refused) == 2
        assert outcomes[1].seq == outcomes[0].seq + 1
        log = second_handle(log_config)
        try:
            for outcome in outcomes:
                assert log.row(outcome.seq) is not None
            assert log.last_seq() == outcomes[1].seq
        finally:
            log.close()
        _expect_stopped_now(lambda callback: sequencer.submit(CreateAccount(seq=0, timestamp_ns=0), callback), 1)
