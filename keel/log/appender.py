"""Appenders: turn sequenced commands into hash-chained records and make them durable.

The sequencer hands an appender batches of (seq, timestamp_ns, command bytes) and waits
for `append` to return: then every record of the batch is durable. Two appenders share
one contract:

- `InlineAppender` chains and writes on the calling thread (tests, tools, small nodes).
- `ProcessAppender` runs `python -m keel.log.writer` as a child process that opens the
  same log, chains and writes there, and answers with the last durable seq. Framing,
  hashing and the database driver then run on another core instead of competing with
  the engine for the GIL. The child inherits the data directory's lock file descriptor,
  so the directory stays locked until both processes are gone: a new node cannot open
  while an orphaned writer might still be committing. The child exits when its input
  closes (the parent stopped or died) after finishing the batch it is writing.

Wire format (little-endian): first parent -> child `u32 length | utf-8 DSN` (never on
the command line, where a password would show in `ps`); then parent -> child
`u32 length | msgpack [[seq, ts, bytes], ...]`;
child -> parent `u64 last durable seq | 32-byte hash of that record` per batch (and once
at start for the log as it is), or `u64 2**64-1 | u32 length | utf-8 error`.

Imports: record, base, open.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

import msgspec

from keel.core.errors import KeelError
from keel.log.base import CommandLog
from keel.log.record import GENESIS_HASH, decode_record, make_record

Item = tuple[int, int, bytes]  # (seq, timestamp_ns, command bytes)
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
ERROR_SEQ = 2**64 - 1  # in place of a seq: an error message follows
_encode = msgspec.msgpack.Encoder().encode


class AppendFailed(KeelError):
    """The log could not be written; what was not acknowledged is not durable."""


class Appender(Protocol):
    def append(self, items: Sequence[Item]) -> None:
        """Make the records for `items` durable, chained after the last one, in one transaction."""

    commits: int  # transactions committed through this appender

    @property
    def prev_hash(self) -> bytes:
        """The hash of the last record appended."""

    def close(self) -> None: ...


def last_record_hash(log: CommandLog) -> bytes:
    """Return the hash of the log's last record (the genesis hash when empty)."""
    last = log.last_seq()
    if last == 0:
        return GENESIS_HASH
    data = log.row(last)
    assert data is not None
    return decode_record(data, last).hash


class InlineAppender:
    def __init__(self, log: CommandLog, prev_hash: bytes) -> None:
        self.log = log
        self._prev_hash = prev_hash
        self.commits = 0

    @property
    def prev_hash(self) -> bytes:
        return self._prev_hash

    def append(self, items: Sequence[Item]) -> None:
        prev_hash = self._prev_hash
        records = []
        for seq, timestamp_ns, payload in items:
            record = make_record(seq, timestamp_ns, payload, prev_hash)
            prev_hash = record.hash
            records.append(record)
        self.log.append(records)
        self._prev_hash = prev_hash
        self.commits += 1

    def close(self) -> None:
        pass


class ProcessAppender:
    def __init__(self, backend: str, dsn: str, schema: str, *, lock_fd: int | None = None) -> None:
        # The DSN may hold a password: it goes through the pipe, not the command line (ps).
        arguments = [sys.executable, "-m", "keel.log.writer", backend, schema]
        self._process = subprocess.Popen(
            arguments,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            pass_fds=(lock_fd,) if lock_fd is not None and lock_fd >= 0 else (),
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._input = self._process.stdin
        self._output = self._process.stdout
        dsn_bytes = dsn.encode()
        self._write_all(_U32.pack(len(dsn_bytes)) + dsn_bytes)
        last_seq = self._read_seq()
        self._last_seq = last_seq
        self._prev_hash = self._read_exact(32)
        self.commits = 0

    @property
    def prev_hash(self) -> bytes:
        return self._prev_hash

    def _write_all(self, data: bytes) -> None:
        frame = memoryview(data)
        try:
            # A raw pipe write may be partial (a signal, a full pipe): write until all is sent.
            while frame:
                written = self._input.write(frame)
                frame = frame[written or 0 :]
        except OSError as error:
            raise AppendFailed(f"the log writer process is gone: {error}") from error

    def _read_exact(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self._output.read(size)
            if not chunk:
                raise AppendFailed(f"the log writer process exited (code {self._process.poll()})")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _read_seq(self) -> int:
        (seq,) = _U64.unpack(self._read_exact(8))
        if seq == ERROR_SEQ:
            (size,) = _U32.unpack(self._read_exact(4))
            raise AppendFailed(f"the log writer failed: {self._read_exact(size).decode(errors='replace')}")
        return int(seq)

    def append(self, items: Sequence[Item]) -> None:
        if not items:
            return
        assert items[0][0] == self._last_seq + 1
        blob = _encode(items)
        self._write_all(_U32.pack(len(blob)) + blob)
        durable = self._read_seq()
        if durable != items[-1][0]:
            raise AppendFailed(f"the log writer made {durable} durable, expected {items[-1][0]}")
        self._last_seq = durable
        self._prev_hash = self._read_exact(32)
        self.commits += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._input.close()
        self._process.wait(30)
