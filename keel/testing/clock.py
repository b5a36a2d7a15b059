"""A manual clock for the sequencer: time moves only when a test says so.

`ManualClock` satisfies keel.sequencer.clock.Clock. Tests advance it to make Ticks fall
due, and may even set it backwards to check that the sequencer never stamps a command
earlier than the one before (TigerBeetle keeps its simulated time in src/testing/ too).
"""

from __future__ import annotations

import threading

NS_PER_MS = 1_000_000
TIMESTAMP_NS_START = 1_700_000_000_000_000_000  # 2023-11-14, far from 0 and from today


class ManualClock:
    """A clock that reads `now_ns` and changes only through `advance` and `set_ns`."""

    def __init__(self, start_ns: int = TIMESTAMP_NS_START) -> None:
        assert start_ns >= 0
        self._lock = threading.Lock()
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """Return the current manual time in integer nanoseconds since the Unix epoch."""
        with self._lock:
            return self._now_ns

    def advance(self, ns: int) -> int:
        """Move time forward by `ns` nanoseconds; return the new time."""
        assert ns >= 0, "advance moves forward only; use set_ns to go back"
        with self._lock:
            self._now_ns += ns
            return self._now_ns

    def advance_ms(self, ms: int) -> int:
        """Move time forward by `ms` milliseconds; return the new time."""
        return self.advance(ms * NS_PER_MS)

    def set_ns(self, now_ns: int) -> None:
        """Set the time to `now_ns`, backwards if so asked (a clock step, as NTP may make)."""
        assert now_ns >= 0
        with self._lock:
            self._now_ns = now_ns
