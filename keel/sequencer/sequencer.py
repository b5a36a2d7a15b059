"""The sequencer: the single writer of the command log.

Theory of operation. Two threads. The engine thread takes submitted commands in arrival
order, gives each the next sequence number and a timestamp (the clock's, but never
earlier than the last one), applies it to the engine, and encodes it as a hash-chained
log record. It closes a batch when it holds `batch_max` records, when `batch_us` have
passed since the batch opened, or when no command is waiting and the committer is idle
(waiting would only add latency). The committer thread hands each batch to the appender (which
chains the records and writes them, on this thread or in a writer process) in one
transaction (merging batches that queued up behind a slow commit: group commit),
and only then calls each command's callback with its outcome. Acknowledged means
durable: no callback runs before the transaction holding its record has committed.

The engine thread also injects a `Tick` whenever `tick_interval_ms` has passed, and
after every `checkpoint_every` commands a `Checkpoint` carrying the state hash (the
incremental hash is refreshed `hash_refreshes` times within that interval, so a
checkpoint only pays for what changed since the last refresh); at the
first checkpoint `snapshot_every` commands after the last snapshot it encodes the state,
and the committer writes the snapshot file once the checkpoint's record is durable.

If the log cannot be written, the engine's state is ahead of the log: the sequencer
stops (fail-stop), every pending and future submission fails with SequencerStopped, and
the node must be restarted, which recovers from the log. A sequencer with a data
directory records why in `DIR/failstop.json` (`FAILSTOP_NAME`: the last applied seq,
the error, the time), so that the next start opens the markets in a safe state
(node.py, `Node.start`).

Imports: keel.core, keel.log, keel.snapshots, keel.sequencer.clock.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from keel.core.commands import Command, Tick, encode_command
from keel.core.engine import Engine
from keel.core.errors import KeelError, RejectCode
from keel.core.events import CommandRejected, Event
from keel.core.snapshot import encode_state
from keel.log.appender import Appender, Item
from keel.sequencer.clock import Clock, SystemClock
from keel.snapshots.store import prune_snapshots, write_snapshot_bytes


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """What a command did, released only once its record is durable. `seq` 0: the command
    could not be logged (an integer beyond 64 bits) and was refused before sequencing."""

    seq: int
    timestamp_ns: int
    events: list[Event]


class SequencerStopped(KeelError):
    """The sequencer is not running (stopped, or failed: see `cause`)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


Callback = Callable[[Outcome | SequencerStopped], None]


class Published(msgspec.Struct, frozen=True, gc=False):
    """One durable command with its events, as listeners (views, streams) see it."""

    seq: int
    timestamp_ns: int
    command: Command
    events: list[Event]


Listener = Callable[[list[Published]], None]


@dataclass(frozen=True, slots=True)
class SequencerSettings:
    batch_max: int = 1000
    batch_us: int = 500
    tick_interval_ms: int = 1000  # 0: no ticks
    checkpoint_every: int = 10_000
    hash_refreshes: int = 2  # times per checkpoint interval the state hash is brought up to date
    snapshot_every: int = 100_000
    snapshot_keep: int = 3


@dataclass(slots=True)
class _Batch:
    items: list[Item]  # (seq, timestamp_ns, command bytes), chained into records by the appender
    acks: list[tuple[Callback, Outcome | SequencerStopped]]  # delivered in this order after the commit
    snapshots: list[tuple[int, bytes, bytes]]  # (seq, state hash, image)
    published: list[Published] = field(default_factory=list)  # only when there are listeners


_STOP = object()
FAILSTOP_NAME = "failstop.json"  # in the data directory: why the last sequencer stopped failing
_Item = tuple[Command | list[Command], Callback]


class Sequencer:
    """Numbers, stamps, applies and durably logs commands; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        appender: Appender,
        *,
        clock: Clock,
        settings: SequencerSettings,
        data_dir: Path | None = None,
        last_checkpoint_seq: int | None = None,
        last_snapshot_seq: int | None = None,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self.engine = engine
        self.listeners = list(listeners)
        self._publish = bool(self.listeners)
        # Held by the engine thread while it changes the engine; hold it to read a
        # consistent engine state from another thread (it may be up to one batch ahead
        # of what is durable).
        self.read_lock = threading.Lock()
        self.listener_errors: list[BaseException] = []
        self.appender = appender
        self.clock = clock
        # The system clock is read straight from the time module (a Python frame fewer per
        # command); any other clock through its method.
        self._now_ns: Callable[[], int] = time.time_ns if type(clock) is SystemClock else clock.now_ns
        self.settings = settings
        self.data_dir = data_dir
        self.failed: BaseException | None = None
        self.callback_errors: list[BaseException] = []
        self.snapshot_errors: list[BaseException] = []  # a failed snapshot does not stop trading
        self._closed = False
        self._append_failed = False  # once a batch is lost, no later batch may be written
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()  # None: stop
        self._to_commit: queue.Queue[object] = queue.Queue(maxsize=64)
        self._committer_idle = threading.Event()
        self._committer_idle.set()
        self._stopping = False
        state = engine.state
        # Where the last checkpoint and snapshot are (from recovery), so a node that is
        # restarted often still checkpoints every `checkpoint_every` commands of the log.
        self._last_checkpoint_seq = state.seq_last if last_checkpoint_seq is None else last_checkpoint_seq
        self._last_snapshot_seq = state.seq_last if last_snapshot_seq is None else last_snapshot_seq
        self._last_tick_ns = state.timestamp_ns_last
        # 0 refreshes: the checkpoint hashes the whole interval's changes at once.
        self._refresh_every = (
            max(1, settings.checkpoint_every // (settings.hash_refreshes + 1)) if settings.hash_refreshes else 0
        )
        self._last_refresh_seq = state.seq_last
        # When _after_command next has something to do (a Tick, a checkpoint or a hash
        # refresh): the hot loop compares against these instead of calling it per command.
        self._tick_every_ns = settings.tick_interval_ms * 1_000_000 if settings.tick_interval_ms else 0
        self._duty_seq = 0
        self._set_duty_seq()
        self._engine_thread = threading.Thread(target=self._run_engine, name="keel-sequencer", daemon=True)
        self._commit_thread = threading.Thread(target=self._run_committer, name="keel-committer", daemon=True)
        self._started = False

    # ---- the caller's side ----------------------------------------------------------
    def start(self) -> Sequencer:
        assert not self._started
        self._started = True
        self._engine_thread.start()
        self._commit_thread.start()
        return self

    def submit(self, command: Command, callback: Callback) -> None:
        """Queue a command (its seq and timestamp are replaced); `callback` gets the outcome."""
        if self.failed is not None or self._stopping:
            callback(SequencerStopped("the sequencer is not accepting commands", self.failed))
            return
        self._inbox.put((command, callback))
        if self._closed:  # the engine thread ended after the check above: refuse it now
            self._fail_waiting()

    def submit_many(self, commands: Sequence[Command], callback: Callback) -> None:
        """Queue several commands in order, one callback call per command."""
        if self.failed is not None or self._stopping:
            for _ in commands:
                callback(SequencerStopped("the sequencer is not accepting commands", self.failed))
            return
        self._inbox.put((list(commands), callback))
        if self._closed:
            self._fail_waiting()

    def call(self, command: Command, timeout: float = 30.0) -> Outcome:
        """Submit and wait for the durable outcome; raise SequencerStopped on failure."""
        done = threading.Event()
        box: list[Outcome | SequencerStopped] = []

        def deliver(result: Outcome | SequencerStopped) -> None:
            box.append(result)
            done.set()

        self.submit(command, deliver)
        if not done.wait(timeout):
            raise SequencerStopped(f"no durable outcome within {timeout} s (the command may still be logged)")
        result = box[0]
        if isinstance(result, SequencerStopped):
            raise result
        return result

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, make it durable, and stop both threads."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._inbox.put(None)
        self._engine_thread.join(timeout)
        self._commit_thread.join(timeout)

    # ---- the engine thread ----------------------------------------------------------
    def _apply_submission(self, commands: list[Command], batch: _Batch, callback: Callback) -> None:
        """Stamp, apply and frame one submission's commands in order, with the periodic
        duties after each command that has them due.

        The hot loop of the node: _stamp_and_apply and _after_command inlined, one clock
        read per command (the stamp and the Tick's due check), and the duties looked at
        only once due (`_tick_every_ns`, `_duty_seq`)."""
        engine = self.engine
        state = engine.state
        apply = engine.apply
        now_ns = self._now_ns
        replace = msgspec.structs.replace
        encode = encode_command
        lock = self.read_lock
        items_append = batch.items.append
        acks_append = batch.acks.append
        published_append = batch.published.append if self._publish else None
        tick_every = self._tick_every_ns
        for index, command in enumerate(commands):
            now = now_ns()
            answered = index  # the commands before this one have their outcome in the batch
            try:
                seq = state.seq_last + 1
                last = state.timestamp_ns_last
                timestamp_ns = now if now >= last else last
                stamped = replace(command, seq=seq, timestamp_ns=timestamp_ns)
                try:
                    # Encode before applying: a command the log cannot hold (an integer
                    # beyond 64 bits) is refused here, before it takes a seq, instead of
                    # stopping the node.
                    payload = encode(stamped)
                except (OverflowError, msgspec.EncodeError) as error:
                    refused = CommandRejected(int(RejectCode.VALUE_TOO_LARGE), f"the command cannot be logged: {error}")
                    acks_append((callback, Outcome(0, timestamp_ns, [refused])))
                    continue
                with lock:
                    events = apply(stamped)
                items_append((seq, timestamp_ns, payload))
                if published_append is not None:
                    published_append(Published(seq, timestamp_ns, stamped, events))
                acks_append((callback, Outcome(seq, timestamp_ns, events)))
                answered = index + 1
                if seq >= self._duty_seq or (tick_every and now - self._last_tick_ns >= tick_every):
                    self._after_command(batch, now)
            except BaseException as error:
                # The commands of the submission not applied whole (this one, unless it was
                # the Tick or checkpoint after it that failed, and the rest): refuse them,
                # after the outcomes the batch holds, so callbacks keep submission order
                # and no caller is left waiting.
                stopped = SequencerStopped("the engine failed; the node must restart", error)
                batch.acks.extend((callback, stopped) for _ in commands[answered:])
                raise

    def _stamp_and_apply(self, command: Command, batch: _Batch, callback: Callback | None) -> int:
        engine = self.engine
        state = engine.state
        seq = state.seq_last + 1
        timestamp_ns = self._now_ns()
        if timestamp_ns < state.timestamp_ns_last:
            timestamp_ns = state.timestamp_ns_last
        stamped = msgspec.structs.replace(command, seq=seq, timestamp_ns=timestamp_ns)
        try:
            # Encode before applying: a command the log cannot hold (an integer beyond
            # 64 bits) is refused here, before it takes a seq, instead of stopping the node.
            payload = encode_command(stamped)
        except (OverflowError, msgspec.EncodeError) as error:
            if callback is not None:
                refused = CommandRejected(int(RejectCode.VALUE_TOO_LARGE), f"the command cannot be logged: {error}")
                batch.acks.append((callback, Outcome(0, timestamp_ns, [refused])))
            return 0
        with self.read_lock:
            events = engine.apply(stamped)
        batch.items.append((seq, timestamp_ns, payload))
        if self._publish:
            batch.published.append(Published(seq, timestamp_ns, stamped, events))
        if callback is not None:
            batch.acks.append((callback, Outcome(seq, timestamp_ns, events)))
        return seq

    def _after_command(self, batch: _Batch, now: int) -> None:
        """The periodic duties, `now` being the clock's reading: a Tick once the interval has
        passed, a checkpoint every `checkpoint_every` commands, hash refreshes between."""
        settings = self.settings
        state = self.engine.state
        if self._tick_every_ns and now - self._last_tick_ns >= self._tick_every_ns:
            self._last_tick_ns = now
            self._stamp_and_apply(Tick(seq=0, timestamp_ns=0), batch, None)
        if state.seq_last - self._last_checkpoint_seq >= settings.checkpoint_every:
            self.checkpoint(batch)
            self._last_refresh_seq = state.seq_last
        elif self._refresh_every and state.seq_last - self._last_refresh_seq >= self._refresh_every:
            # Hash what changed so far, part of an interval at a time, so that the
            # checkpoint itself pauses the engine only for the last part.
            with self.read_lock:
                self.engine.refresh_hash()
            self._last_refresh_seq = state.seq_last
        self._set_duty_seq()

    def _set_duty_seq(self) -> None:
        """The seq after which _after_command has a checkpoint or a hash refresh to do."""
        due = self._last_checkpoint_seq + self.settings.checkpoint_every
        if self._refresh_every:
            due = min(due, self._last_refresh_seq + self._refresh_every)
        self._duty_seq = due

    def checkpoint(self, batch: _Batch) -> int:
        """Append a Checkpoint (and take a snapshot when one is due); return its seq."""
        engine = self.engine
        state = engine.state
        seq = state.seq_last + 1
        timestamp_ns = max(self.clock.now_ns(), state.timestamp_ns_last)
        with self.read_lock:
            command = engine.checkpoint_command(seq, timestamp_ns)
            events = engine.apply(command)
        batch.items.append((seq, timestamp_ns, encode_command(command)))
        if self._publish:
            batch.published.append(Published(seq, timestamp_ns, command, events))
        self._last_checkpoint_seq = seq
        self._set_duty_seq()
        if self.data_dir is not None and seq - self._last_snapshot_seq >= self.settings.snapshot_every:
            self._last_snapshot_seq = seq
            batch.snapshots.append((seq, command.state_hash, encode_state(state)))
        return seq

    def _run_engine(self) -> None:
        settings = self.settings
        inbox = self._inbox
        batch_window_s = settings.batch_us / 1_000_000
        tick_s = settings.tick_interval_ms / 1000 if settings.tick_interval_ms else None
        stop = False
        batch = _Batch([], [], [])
        try:
            while not stop and self.failed is None:
                batch = _Batch([], [], [])
                item: _Item | None
                idle = False
                try:
                    item = inbox.get(timeout=tick_s)
                except queue.Empty:
                    item, idle = None, True
                opened = time.perf_counter()
                while True:
                    if item is None and not idle:
                        stop = True
                        break
                    if item is not None:
                        command, callback = item
                        self._apply_submission(command if isinstance(command, list) else [command], batch, callback)
                    else:
                        self._after_command(batch, self._now_ns())
                    idle = False
                    if len(batch.items) >= settings.batch_max:
                        break
                    waited = time.perf_counter() - opened
                    if waited >= batch_window_s:
                        break
                    try:
                        item = inbox.get_nowait()
                    except queue.Empty:
                        if self._committer_idle.is_set():
                            break  # nothing waiting and the disk is free: commit now
                        try:
                            item = inbox.get(timeout=batch_window_s - waited)
                        except queue.Empty:
                            break
                if batch.items or batch.acks:  # acks alone: refusals that took no seq
                    self._committer_idle.clear()
                    self._to_commit.put(batch)
                    batch = _Batch([], [], [])
        except BaseException as error:
            self.failed = error
            self._record_failure(error)
            # Every command in the open batch was applied whole and its record made:
            # commit and acknowledge them; the log then replays to exactly this point.
            if batch.items or batch.acks:
                self._to_commit.put(batch)
        finally:
            self._to_commit.put(_STOP)
            self._closed = True
            self._fail_waiting()

    # ---- the committer thread -------------------------------------------------------
    def _run_committer(self) -> None:
        to_commit = self._to_commit
        stop = False
        while not stop:
            item = to_commit.get()
            batches: list[_Batch] = []
            while True:
                if item is _STOP:
                    stop = True
                    break
                assert isinstance(item, _Batch)
                batches.append(item)
                try:
                    item = to_commit.get_nowait()
                except queue.Empty:
                    break
            if not batches:
                continue
            items = [item for batch in batches for item in batch.items]
            try:
                if self._append_failed:
                    raise SequencerStopped("an earlier batch could not be written", self.failed)
                if items:
                    self.appender.append(items)
            except BaseException as error:
                self._append_failed = True
                self.failed = self.failed or error
                self._record_failure(error)
                stopped = SequencerStopped("the log could not be written; the node must restart", error)
                for batch in batches:
                    for callback, _ in batch.acks:
                        self._deliver(callback, stopped)
                self._committer_idle.set()
                continue
            callback_errors = self.callback_errors
            for batch in batches:
                for callback, outcome in batch.acks:
                    try:  # _deliver, inlined: one call per command
                        callback(outcome)
                    except BaseException as error:  # a caller's bug must not stop the log
                        callback_errors.append(error)
            if self._publish:
                published = [one for batch in batches for one in batch.published]
                for listener in self.listeners:
                    try:
                        listener(published)
                    except BaseException as error:  # a view's bug must not stop the log
                        self.listener_errors.append(error)
            for batch in batches:
                for seq, state_hash, image in batch.snapshots:
                    assert self.data_dir is not None
                    try:
                        write_snapshot_bytes(self.data_dir, seq, state_hash, image)
                        prune_snapshots(self.data_dir, self.settings.snapshot_keep)
                    except OSError as error:  # the log is durable; a snapshot only speeds recovery
                        self.snapshot_errors.append(error)
            if to_commit.empty():
                self._committer_idle.set()
        self._committer_idle.set()

    def _deliver(self, callback: Callback, result: Outcome | SequencerStopped) -> None:
        try:
            callback(result)
        except BaseException as error:  # a caller's bug must not stop the log
            self.callback_errors.append(error)

    def _record_failure(self, error: BaseException) -> None:
        """Write DIR/failstop.json once (the first failure is the cause); a failure to write
        it must not hide the original error."""
        if self.data_dir is None:
            return
        path = self.data_dir / FAILSTOP_NAME
        if path.exists():
            return
        record = {
            "seq": self.engine.state.seq_last,
            "error": f"{type(error).__name__}: {error}",
            "time_ns": time.time_ns(),
        }
        try:
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(msgspec.json.encode(record))
            temporary.replace(path)
        except OSError:
            pass

    def _fail_waiting(self) -> None:
        """After the engine thread ends, refuse whatever is still queued."""
        stopped = SequencerStopped("the sequencer stopped", self.failed)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            command, callback = item
            for _ in command if isinstance(command, list) else [command]:
                self._deliver(callback, stopped)
