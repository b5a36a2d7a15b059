"""The views writer: a listener for the sequencer that projects on a thread of its own.

The sequencer calls its listeners on the committer thread once a group of records is
durable, so a listener must return at once. `ViewsWriter` only queues what it is given;
its thread takes everything queued, up to `batch_max` commands, and applies it with the
projector in one transaction, so under load one commit covers many of the sequencer's
groups (the same group commit the log uses).

The queue holds at most `queue_max` listener calls; when the store falls that far behind,
the listener waits, holding back the sequencer's acknowledgements until history catches
up, rather than growing without bound.

A failed transaction is retried (`retries` times, reconnecting between attempts, for a
database that went away for a moment). If it still fails, the writer records the error,
stops projecting and drops what it is given from then on (counting it in `dropped`):
the store stays exactly the projection of the log up to its position, trading goes on,
and the next start catches the store up from the log. `failed` and `errors` say what
happened; `flush` raises ViewsFailed.

Imports: keel.core (commands, events, errors), projector, store.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from keel.core.commands import Command
from keel.core.errors import KeelError
from keel.core.events import Event
from keel.views.projector import Item, Projector
from keel.views.store import HistoryStore, open_store


class Durable(Protocol):
    """A durable command with its events, as the sequencer publishes it (sequencer.Published)."""

    @property
    def seq(self) -> int: ...

    @property
    def timestamp_ns(self) -> int: ...

    @property
    def command(self) -> Command: ...

    @property
    def events(self) -> list[Event]: ...


class ViewsFailed(KeelError):
    """The views writer stopped projecting; `cause` is the error that stopped it."""

    def __init__(self, message: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause


_STOP = None


class ViewsWriter:
    """Projects what the sequencer publishes into a HistoryStore on its own thread."""

    def __init__(
        self,
        store: HistoryStore,
        *,
        batch_max: int = 10_000,
        queue_max: int = 4_096,
        retries: int = 3,
        retry_delay_s: float = 0.2,
    ) -> None:
        assert batch_max >= 1
        assert queue_max >= 1
        assert retries >= 0
        self.store = store
        self.projector = Projector(store)
        self.batch_max = batch_max
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.errors: list[BaseException] = []
        self.failed: BaseException | None = None
        self.dropped = 0  # commands not projected after a failure
        self.applied = 0  # commands projected by this writer
        self.position = store.position().seq
        self._queue: queue.Queue[list[Item] | None] = queue.Queue(maxsize=queue_max)
        self._done = threading.Condition()
        self._handed = 0  # listener calls queued
        self._finished = 0  # listener calls applied (or dropped)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="keel-views", daemon=True)
        self._thread.start()

    # ---- the listener side ------------------------------------------------------------
    def __call__(self, published: Sequence[Durable]) -> None:
        """The sequencer listener: queue durable commands (fast; waits only when the queue is full)."""
        self.put([(one.seq, one.timestamp_ns, one.command, one.events) for one in published])

    def put(self, items: Sequence[Item]) -> None:
        """Queue (seq, timestamp_ns, command, events) items, in log order."""
        assert not self._closed, "the views writer is closed"
        with self._done:
            self._handed += 1
        self._queue.put(list(items))

    @property
    def lag(self) -> int:
        """Return how many listener calls are queued and not yet applied."""
        with self._done:
            return self._handed - self._finished

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything queued so far is applied; raise ViewsFailed if the
        writer has failed, TimeoutError if it takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._done:
            target = self._handed
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"views writer: {target - self._finished} calls still queued after {timeout} s")
                self._done.wait(remaining)
        if self.failed is not None:
            raise ViewsFailed(f"the views writer stopped at seq {self.position}: {self.failed}", self.failed)

    def wait_until(self, seq: int, timeout: float = 10.0) -> bool:
        """Wait until the store holds every command up to `seq` (a reader that wants to
        see its own order in history); return False on timeout or once the writer failed."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.position < seq and self.failed is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(remaining)
            return self.position >= seq

    def close(self, timeout: float = 60.0) -> None:
        """Apply what is queued, stop the thread and close the store (errors stay in `errors`)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self.store.close()

    # ---- the writer thread ------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            calls = 1
            items = first
            while len(items) < self.batch_max:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                calls += 1
                items.extend(more)
            if self.failed is None:
                self._apply(items)
            else:
                self.dropped += len(items)
            with self._done:
                self._finished += calls
                self._done.notify_all()

    def _apply(self, items: list[Item]) -> None:
        for attempt in range(self.retries + 1):
            try:
                applied = self.projector.apply(items)
            except BaseException as error:  # a store's failure must not stop trading
                self.errors.append(error)
                if attempt == self.retries:
                    self.failed = error
                    self.dropped += len(items)
                    return
                time.sleep(self.retry_delay_s * (attempt + 1))
                self._reconnect()
                continue
            with self._done:
                self.applied += applied
                if items:
                    self.position = max(self.position, items[-1][0])
                self._done.notify_all()
            return

    def _reconnect(self) -> None:
        """Open the store again (the connection may be what failed)."""
        try:
            store = open_store(self.store.settings, create=False)
        except BaseException as error:
            self.errors.append(error)
            return
        old, self.store = self.store, store
        try:
            old.close()
        except BaseException as error:
            self.errors.append(error)
        self.projector = Projector(store)
