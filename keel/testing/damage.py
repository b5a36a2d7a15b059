"""Damage a data directory's log and snapshots the way a disk, an operator or an attacker would.

Everything here goes behind the log backend's back: raw SQL on the stored table (the
SQLite file or `<schema>.log` in PostgreSQL), or bytes of a snapshot file rewritten in
place. Recovery must then refuse to open and name the first bad sequence number, or,
for a torn final record or a bad snapshot, say what it discarded or skipped. Only
tests use this module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel.node.config import Config, load_config


def log_dsn(data_dir: Path, config: Config) -> str:
    """Return the log's DSN as the node resolves it (a relative SQLite path is inside DIR)."""
    if config.backend == "sqlite" and not Path(config.dsn).is_absolute():
        return str(data_dir / config.dsn)
    return config.dsn


def _execute(data_dir: Path, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement on the log table (`{log}` in `statement`, `%s` placeholders); return its rows."""
    config = load_config(data_dir)
    dsn = log_dsn(data_dir, config)
    if config.backend == "sqlite":
        lite = sqlite3.connect(dsn, isolation_level=None)
        try:
            found = lite.execute(statement.format(log="log").replace("%s", "?"), params)
            return [tuple(row) for row in found.fetchall()]
        finally:
            lite.close()
    import psycopg
    from psycopg import sql

    table = sql.SQL("{}.log").format(sql.Identifier(config.schema))
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(sql.SQL(statement).format(log=table), params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def read_record(data_dir: Path, seq: int) -> bytes:
    """Return the stored bytes of record `seq`."""
    rows = _execute(data_dir, "SELECT record FROM {log} WHERE seq = %s", (seq,))
    assert rows, f"no record {seq}"
    return bytes(rows[0][0])


def record_exists(data_dir: Path, seq: int) -> bool:
    """Return whether a row for `seq` is stored."""
    return bool(_execute(data_dir, "SELECT 1 FROM {log} WHERE seq = %s", (seq,)))


def last_stored_seq(data_dir: Path) -> int:
    """Return the highest stored seq (0 when empty)."""
    rows = _execute(data_dir, "SELECT MAX(seq) FROM {log}", ())
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def rewrite_record(data_dir: Path, seq: int, data: bytes) -> None:
    """Replace the stored bytes of record `seq`."""
    _execute(data_dir, "UPDATE {log} SET record = %s WHERE seq = %s", (data, seq))


def delete_record(data_dir: Path, seq: int) -> None:
    """Delete the row of record `seq`."""
    _execute(data_dir, "DELETE FROM {log} WHERE seq = %s", (seq,))


def swap_records(data_dir: Path, seq_a: int, seq_b: int) -> None:
    """Store record `seq_a`'s bytes under `seq_b` and the other way round."""
    data_a, data_b = read_record(data_dir, seq_a), read_record(data_dir, seq_b)
    rewrite_record(data_dir, seq_a, data_b)
    rewrite_record(data_dir, seq_b, data_a)


def flip_byte(data: bytes, offset: int) -> bytes:
    """Return `data` with one bit of the byte at `offset` flipped."""
    damaged = bytearray(data)
    damaged[offset] ^= 0x01
    return bytes(damaged)


def flip_record_byte(data_dir: Path, seq: int, offset: int) -> None:
    """Flip one bit of the stored record `seq` at byte `offset` (negative counts from the end)."""
    rewrite_record(data_dir, seq, flip_byte(read_record(data_dir, seq), offset))


def truncate_record(data_dir: Path, seq: int, size: int) -> None:
    """Keep only the first `size` bytes of record `seq`, as a write torn by a crash would."""
    data = read_record(data_dir, seq)
    assert 0 < size < len(data)
    rewrite_record(data_dir, seq, data[:size])


def rename_log_table(data_dir: Path, new_name: str, current: str = "log") -> None:
    """Rename the log table (in its schema, for PostgreSQL), as an operator's mistake would."""
    config = load_config(data_dir)
    dsn = log_dsn(data_dir, config)
    if config.backend == "sqlite":
        lite = sqlite3.connect(dsn, isolation_level=None)
        try:
            lite.execute(f'ALTER TABLE "{current}" RENAME TO "{new_name}"')
        finally:
            lite.close()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
                sql.Identifier(config.schema), sql.Identifier(current), sql.Identifier(new_name)
            )
        )


def flip_file_byte(path: Path, offset: int) -> None:
    """Flip one bit of a file's byte at `offset` (negative counts from the end), in place."""
    path.write_bytes(flip_byte(path.read_bytes(), offset))
