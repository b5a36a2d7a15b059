"""Catch-up and rebuild: bringing a history store level with the log.

At a node's start the store is somewhere behind the log (the node was stopped, or the
views writer failed, or crashed before its last transactions reached the disk). The
node's recovery replays the log from its newest snapshot; `CatchUp` is the
`on_replayed` callback that projects each replayed command past the store's position.
When the store is behind the snapshot, the commands in between are not replayed, so
the store cannot be caught up that way and is rebuilt from genesis instead:

    catch = CatchUp(open_store(settings))
    node = Node.open(data_dir, on_replayed=catch)
    report = catch.finish(node.report.last_seq, replay_from_genesis)  # rebuilds if needed

`replay_from_genesis(feed)` must call `feed(seq, timestamp_ns, command, events)` for
every command of the log from seq 1 (a fresh engine: keel.node.recovery.recover with
`from_genesis=True`) and return the last seq; this package cannot open a node itself
(it sits below keel/node), so the caller supplies it (keel/cli/views_commands.py has
`open_node_with_views`, which does all of this).

A rebuild never changes the live store in place: it projects the whole log into a new
store beside it (`<file>.rebuild` or schema `<schema>_rebuild`), checks that it reached
the log's last seq, then swaps it in atomically and keeps the replaced store as
`<file>.previous` or schema `<schema>_previous` (store.swap_in).

A store that is ahead of the log, or whose last command has another timestamp than the
log's command at that seq, was built from another log: catch-up refuses it
(ViewsMismatch) instead of guessing; `keel views rebuild` replaces it.

Imports: keel.core (commands, events, errors), projector, schema, store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keel.core.commands import Command
from keel.core.errors import KeelError
from keel.core.events import Event
from keel.views import schema
from keel.views.projector import Item, Projector
from keel.views.store import HistoryStore, StoreError, StoreSettings, open_store, remove_store, swap_in

Replayed = Callable[[int, int, Command, list[Event]], None]  # as keel.node.recovery.Replayed
ReplayFromGenesis = Callable[[Replayed], int]  # feeds every command from seq 1; returns the last seq
CHUNK = 5_000  # commands per transaction while replaying


class ViewsMismatch(KeelError):
    """The history store does not belong to this log (ahead of it, or different at its position)."""


@dataclass(slots=True)
class RebuildReport:
    position: int  # the last seq projected: the log's last seq
    rows: dict[str, int]  # rows per table
    seconds: float
    previous: StoreSettings | None  # where the replaced store is kept, if there was one


@dataclass(slots=True)
class CatchUpReport:
    position_before: int
    position: int
    projected: int  # commands projected from the node's replay
    rebuilt: bool = False
    reason: str = ""  # why the store was rebuilt
    rebuild: RebuildReport | None = None
    rows: dict[str, int] = field(default_factory=dict)


class _Feed:
    """Buffers replayed commands and applies them CHUNK at a time."""

    def __init__(self, projector: Projector, chunk: int = CHUNK) -> None:
        self.projector = projector
        self.chunk = chunk
        self.buffer: list[Item] = []
        self.projected = 0

    def __call__(self, seq: int, timestamp_ns: int, command: Command, events: Sequence[Event]) -> None:
        self.buffer.append((seq, timestamp_ns, command, events))
        if len(self.buffer) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.projected += self.projector.apply(self.buffer)
            self.buffer = []


class CatchUp:
    """The `on_replayed` callback that catches a store up during a node's recovery."""

    def __init__(self, store: HistoryStore, *, chunk: int = CHUNK) -> None:
        self.store = store
        position = store.position()
        self.position_before = position.seq
        self._position_ns = position.timestamp_ns
        self._next = position.seq + 1
        self._feed = _Feed(Projector(store), chunk)
        self.mismatch = ""
        version = store.schema_version()
        self.rebuild_reason = (
            ""
            if version == schema.SCHEMA_VERSION
            else f"the store has schema version {version} and this Keel writes version {schema.SCHEMA_VERSION}"
        )

    def __call__(self, seq: int, timestamp_ns: int, command: Command, events: list[Event]) -> None:
        if self.rebuild_reason or self.mismatch:
            return
        if seq < self._next:
            if seq == self.position_before and timestamp_ns != self._position_ns:
                self.mismatch = (
                    f"the store's last command, seq {seq}, has timestamp {self._position_ns} "
                    f"but the log's has {timestamp_ns}"
                )
            return
        if seq > self._next:
            self.rebuild_reason = (
                f"the store is at seq {self._next - 1} and the node recovered from a snapshot at seq {seq - 1}"
            )
            return
        self._feed(seq, timestamp_ns, command, events)
        self._next = seq + 1

    def finish(self, last_seq: int, replay_from_genesis: ReplayFromGenesis) -> CatchUpReport:
        """Apply what is buffered; rebuild the store from genesis if it could not be caught
        up; close the store. Raise ViewsMismatch for a store of another log."""
        try:
            self._feed.flush()
            position = self.store.position().seq
            if not self.rebuild_reason and not self.mismatch and position > last_seq:
                self.mismatch = f"the store is at seq {position}, beyond the log's last seq {last_seq}"
            if self.mismatch:
                raise ViewsMismatch(
                    f"the history store ({self.store.settings.describe()}) does not belong to this log: "
                    f"{self.mismatch}; replace it with `keel views rebuild`"
                )
            if not self.rebuild_reason and position < last_seq:
                self.rebuild_reason = (
                    f"the store is at seq {position} and the node recovered from a snapshot at seq {last_seq}"
                )
            rows = self.store.counts() if not self.rebuild_reason else {}
        finally:
            self.store.close()
        report = CatchUpReport(self.position_before, position, self._feed.projected, rows=rows)
        if self.rebuild_reason:
            rebuilt = rebuild(self.store.settings, replay_from_genesis)
            report.rebuilt = True
            report.reason = self.rebuild_reason
            report.rebuild = rebuilt
            report.position = rebuilt.position
            report.rows = rebuilt.rows
        return report


def rebuild(settings: StoreSettings, replay_from_genesis: ReplayFromGenesis, *, chunk: int = CHUNK) -> RebuildReport:
    """Project the whole log into a new store and swap it in for the one at `settings`.

    Raises StoreError if the new store does not reach the log's last seq; whatever
    `replay_from_genesis` raises (RecoveryFailed, a database down) leaves the live store
    as it was."""
    started = time.perf_counter()
    staging = settings.staging()
    remove_store(staging)  # what an interrupted rebuild left
    store = open_store(staging)
    try:
        feed = _Feed(Projector(store), chunk)
        last_seq = replay_from_genesis(feed)
        feed.flush()
        position = store.position().seq
        if position != last_seq:
            raise StoreError(f"the rebuilt store reached seq {position}, not the log's last seq {last_seq}")
        rows = store.counts()
    except BaseException:
        store.close()
        remove_store(staging)
        raise
    store.close()
    previous = swap_in(staging, settings)
    return RebuildReport(position, rows, time.perf_counter() - started, previous)
