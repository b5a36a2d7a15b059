"""The one interface every log backend implements, and how a data directory names one.

A backend stores (seq, record bytes) rows. `append` is the only write and makes a whole
batch durable in one transaction before it returns; `discard_after` exists for exactly
one case, a torn final record that was never acknowledged (node recovery reports it).
Backends do not interpret records: record.py decodes and `verify_chain` checks them.

Imports: record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from keel.log.record import Record


class CommandLog(Protocol):
    """A durable, append-only sequence of records."""

    backend: str

    def append(self, records: Sequence[Record]) -> None:
        """Make `records` durable, in one transaction; they must follow the last seq."""

    def rows(self, seq_from: int = 1, seq_to: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield stored (seq, record bytes) rows in seq order, from `seq_from` to `seq_to` inclusive."""

    def last_seq(self) -> int:
        """Return the highest stored seq, 0 when empty."""

    def row(self, seq: int) -> bytes | None:
        """Return one record's bytes, or None."""

    def discard_after(self, seq: int) -> int:
        """Delete records after `seq` (only for a torn, unacknowledged tail); return how many."""

    def fsyncs(self) -> int:
        """Return how many durable commits this handle has made."""

    def close(self) -> None: ...
