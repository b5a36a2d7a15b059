"""The PostgreSQL log: one table per schema, one transaction per batch, COPY to write.

One table, `<schema>.log (seq BIGINT PRIMARY KEY, record BYTEA NOT NULL)`. A batch is
one transaction whose rows go in through `COPY ... FROM STDIN (FORMAT BINARY)`: measured
here against `executemany`, text COPY and `INSERT ... SELECT unnest(...)`, it ties at one
record a batch (the commit's flush dominates) and wins from ten up, 2.5x to 5x over
`executemany` at 100 and 1,000 records. Outside `append` the connection is in autocommit
mode, so nothing else holds a transaction open.

Durability: with `synchronous_commit = on`, the server's default, COMMIT returns only
after the commit's WAL has been flushed to disk, so a batch that `append` returned from
survives a crash of the server or the machine (given the server's own `fsync = on`,
also the default, which no client can change). Should a database or role have been
set to `synchronous_commit = off`, the handle raises it back to `on` for its own
session; every other setting (`local`, `remote_write`, `remote_apply`) also flushes
locally before COMMIT returns and is left as it is, so synchronous replicas keep their
guarantee. `fsyncs()` counts the commits this handle made.
If `append` raises because the connection was lost while committing, whether the batch
committed is unknown: the handle's last seq is left as it was, and the caller must not
acknowledge the batch but reopen the log and read `last_seq()` from the server.

The schema name is checked to be a plain identifier and always quoted with
`psycopg.sql.Identifier`; seqs are asserted to fit BIGINT before they leave the process.
`rows()` pages through the primary key (keyset pagination, `ROWS_PAGE` rows a query)
rather than running one statement, so a million-row log is never held in memory at once
and no cursor or transaction is left open between the caller's reads; the rows after
the highest seq stored when iteration starts are not yielded, as for one snapshot.

Imports: record.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from keel.log.record import Record, has_valid_checksum

BIGINT_MAX = 2**63 - 1
BIGINT_MIN = -(2**63)
ROWS_PAGE = 4096
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes; refuse rather than truncate.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Settings of synchronous_commit under which a returned COMMIT is not yet on disk.
_SYNCHRONOUS_COMMIT_WEAK = frozenset({"off"})


def _assert_fits_bigint(value: int) -> None:
    assert value >= BIGINT_MIN, f"{value} does not fit BIGINT"
    assert value <= BIGINT_MAX, f"{value} does not fit BIGINT"


def check_schema_name(schema: str) -> str:
    """Return `schema` if it is a plain SQL identifier; raise ValueError otherwise."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"log schema name {schema!r} is not a plain identifier "
            "(letters, digits and underscores, not starting with a digit, at most 63 characters)"
        )
    return schema


class PostgresLog:
    """The command log in `<schema>.log` of a PostgreSQL database, one handle per writer."""

    backend = "postgres"

    def __init__(self, dsn: str, schema: str = "keel", *, create: bool = False) -> None:
        self.schema = check_schema_name(schema)
        self._connection = psycopg.connect(dsn, autocommit=True)
        try:
            self._where = f"database {self._connection.info.dbname!r} on {self._connection.info.host}"
            self._table = sql.SQL("{}.log").format(sql.Identifier(self.schema))
            if create:
                self._create()
            elif not self._table_exists():
                raise FileNotFoundError(f"no log table {self.schema}.log in {self._where}; run `keel init` first")
            self._require_synchronous_commit()
            self._commits = 0
            self._last_seq = self._query_last_seq()
        except BaseException:
            self._connection.close()
            raise

    def _create(self) -> None:
        self._connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        self._connection.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY, record BYTEA NOT NULL)").format(self._table)
        )

    def _table_exists(self) -> bool:
        # to_regclass wants the quoted name, so that a mixed-case schema is looked up as given.
        qualified = sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier("log"))
        row = self._connection.execute("SELECT to_regclass(%s)", (qualified.as_string(self._connection),)).fetchone()
        return row is not None and row[0] is not None

    def _require_synchronous_commit(self) -> None:
        if self._query_synchronous_commit() in _SYNCHRONOUS_COMMIT_WEAK:
            self._connection.execute("SET synchronous_commit = on")
        # The setting this handle's commits run under, for status reports.
        self.synchronous_commit = self._query_synchronous_commit()
        assert self.synchronous_commit not in _SYNCHRONOUS_COMMIT_WEAK

    def _query_synchronous_commit(self) -> str:
        row = self._connection.execute("SELECT current_setting('synchronous_commit')").fetchone()
        assert row is not None
        return str(row[0])

    def _query_last_seq(self) -> int:
        row = self._connection.execute(sql.SQL("SELECT MAX(seq) FROM {}").format(self._table)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        assert records[0].seq == self._last_seq + 1, f"append at {records[0].seq} after {self._last_seq}"
        for record_prev, record in itertools.pairwise(records):
            assert record.seq == record_prev.seq + 1, f"batch skips from {record_prev.seq} to {record.seq}"
        _assert_fits_bigint(records[-1].seq)
        assert all(has_valid_checksum(record.data) for record in records)
        copy_statement = sql.SQL("COPY {} (seq, record) FROM STDIN (FORMAT BINARY)").format(self._table)
        # The transaction block commits on exit and rolls back if anything raised inside it.
        with self._connection.transaction(), self._connection.cursor() as cursor, cursor.copy(copy_statement) as copy:
            copy.set_types(["int8", "bytea"])
            for record in records:
                copy.write_row((record.seq, record.data))
        self._commits += 1
        self._last_seq = records[-1].seq

    def rows(self, seq_from: int = 1, seq_to: int | None = None) -> Iterator[tuple[int, bytes]]:
        _assert_fits_bigint(seq_from)
        if seq_to is not None:
            _assert_fits_bigint(seq_to)
        upper = seq_to if seq_to is not None else self._query_last_seq()
        query = sql.SQL("SELECT seq, record FROM {} WHERE seq >= %s AND seq <= %s ORDER BY seq LIMIT %s").format(
            self._table
        )
        seq_next = seq_from
        # Each page is at least one row further on, so the loop ends within the seq range.
        while seq_next <= upper:
            with self._connection.cursor(binary=True) as cursor:
                page = cursor.execute(query, (seq_next, upper, ROWS_PAGE)).fetchall()
            if not page:
                return
            for seq, data in page:
                yield int(seq), bytes(data)
            seq_last = int(page[-1][0])
            if len(page) < ROWS_PAGE or seq_last >= upper:
                return
            seq_next = seq_last + 1

    def row(self, seq: int) -> bytes | None:
        _assert_fits_bigint(seq)
        found = self._connection.execute(
            sql.SQL("SELECT record FROM {} WHERE seq = %s").format(self._table), (seq,)
        ).fetchone()
        return bytes(found[0]) if found else None

    def last_seq(self) -> int:
        return self._last_seq

    def discard_after(self, seq: int) -> int:
        _assert_fits_bigint(seq)
        cursor = self._connection.execute(sql.SQL("DELETE FROM {} WHERE seq > %s").format(self._table), (seq,))
        self._last_seq = self._query_last_seq()
        return cursor.rowcount

    def fsyncs(self) -> int:
        return self._commits

    def close(self) -> None:
        self._connection.close()
