"""The embedded SQLite log: WAL journal, synchronous=FULL, one transaction per batch.

One table, `log(seq INTEGER PRIMARY KEY, record BLOB NOT NULL)`. With WAL and
synchronous=FULL, SQLite fsyncs the WAL at every commit, so a committed batch survives
a crash or power loss; a batch is one `BEGIN IMMEDIATE ... COMMIT`.

Imports: record, base.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from keel.log.record import Record, has_valid_checksum

SCHEMA_VERSION = 1
_ROWS_PER_INSERT = 400  # 800 bound parameters, far below SQLite's limit of 32,766


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_statement(rows: int) -> str:
    return "INSERT INTO log (seq, record) VALUES " + ",".join(["(?, ?)"] * rows)


class SqliteLog:
    backend = "sqlite"

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        path = Path(path)
        if not create and not path.exists():
            raise FileNotFoundError(f"no log at {path}; run `keel init` first")
        self.path = path
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        if create:
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, record BLOB NOT NULL) STRICT"
            )
            self._connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._commits = 0
        self._last_seq = self._query_last_seq()

    def _query_last_seq(self) -> int:
        row = self._connection.execute("SELECT MAX(seq) FROM log").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        assert records[0].seq == self._last_seq + 1, f"append at {records[0].seq} after {self._last_seq}"
        assert records[-1].seq == records[0].seq + len(records) - 1, "a batch must hold consecutive records"
        assert all(has_valid_checksum(record.data) for record in records)
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Many rows per statement: each statement step releases and retakes the GIL,
            # and with the engine thread busy a retake can wait a whole switch interval.
            for start in range(0, len(records), _ROWS_PER_INSERT):
                chunk = records[start : start + _ROWS_PER_INSERT]
                parameters: list[int | bytes] = []
                for record in chunk:
                    parameters.append(record.seq)
                    parameters.append(record.data)
                connection.execute(_insert_statement(len(chunk)), parameters)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        self._commits += 1
        self._last_seq = records[-1].seq

    def rows(self, seq_from: int = 1, seq_to: int | None = None) -> Iterator[tuple[int, bytes]]:
        upper = seq_to if seq_to is not None else 2**63 - 1
        cursor = self._connection.execute(
            "SELECT seq, record FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq", (seq_from, upper)
        )
        while True:
            batch = cursor.fetchmany(4096)
            if not batch:
                return
            # sqlite3 gives an INTEGER PRIMARY KEY as int and a BLOB as bytes: the rows are
            # (seq, data) as they stand (decode_record copies any other buffer into bytes).
            yield from batch

    def row(self, seq: int) -> bytes | None:
        found = self._connection.execute("SELECT record FROM log WHERE seq = ?", (seq,)).fetchone()
        return bytes(found[0]) if found else None

    def last_seq(self) -> int:
        return self._last_seq

    def discard_after(self, seq: int) -> int:
        cursor = self._connection.execute("DELETE FROM log WHERE seq > ?", (seq,))
        self._last_seq = self._query_last_seq()
        return cursor.rowcount

    def fsyncs(self) -> int:
        return self._commits

    def close(self) -> None:
        self._connection.close()
