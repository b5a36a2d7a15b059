"""Clocks for the sequencer: the only place in Keel that reads the time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Return the current time in integer nanoseconds since the Unix epoch."""


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()
