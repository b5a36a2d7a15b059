"""`keel bench log`: durable appends per second on a log backend, by batch size.

For each batch size (1, 10, 100, 1000) a fresh, empty log receives the same N chained
records, `batch` records per `append`; every append is one durable commit (SQLite: WAL
with synchronous=FULL; PostgreSQL: one transaction under synchronous_commit=on), so
`commits` is the number of disk flushes the log asked for. Each record carries the
canonical bytes of a PlaceOrder, the command the exchange logs most, and the records
are built and hash-chained before the clock starts: the timed loop is `append` only.

SQLite writes into a temporary directory (under `--dsn` when one is given, to measure a
particular disk); PostgreSQL writes into a throwaway schema on `--dsn`, dropped afterwards.

Imports: core commands, log.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from keel.core.commands import PlaceOrder, encode_command
from keel.log.open import BACKENDS, open_log
from keel.log.record import GENESIS_HASH, Record, make_record

BATCH_SIZES = (1, 10, 100, 1000)
POSTGRES_DSN_DEFAULT = "postgresql://127.0.0.1:5432/test"
TIMESTAMP_NS_BASE = 1_760_000_000_000_000_000


def build_records(n: int) -> list[Record]:
    """Return `n` chained records from seq 1, each a PlaceOrder like the exchange logs."""
    assert n >= 1
    records: list[Record] = []
    prev_hash = GENESIS_HASH
    for seq in range(1, n + 1):
        timestamp_ns = TIMESTAMP_NS_BASE + seq * 1_000
        command = PlaceOrder(
            seq=seq,
            timestamp_ns=timestamp_ns,
            account_id=100_000 + seq % 50_000,
            market_id=3,
            side=seq % 2,
            order_type=0,
            time_in_force=0,
            price_ticks=6_512_345 + seq % 1_000,
            quantity_steps=1_250 + seq % 100,
            client_id=3_000_000_000 + seq,
        )
        record = make_record(seq, timestamp_ns, encode_command(command), prev_hash)
        records.append(record)
        prev_hash = record.hash
    return records


def _time_appends(backend: str, dsn: str, schema: str, records: list[Record], batch: int) -> dict[str, Any]:
    log = open_log(backend, dsn, schema, create=True)
    try:
        assert log.last_seq() == 0
        started = time.perf_counter()
        for start in range(0, len(records), batch):
            log.append(records[start : start + batch])
        seconds = time.perf_counter() - started
        assert log.last_seq() == len(records)
        commits = log.fsyncs()
    finally:
        log.close()
    return {
        "batch": batch,
        "records_per_s": round(len(records) / seconds),
        "commits": commits,
        "seconds": round(seconds, 4),
    }


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def bench(backend: str, n: int, dsn: str | None = None, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> dict[str, Any]:
    """Return records/s, commits and seconds for appending `n` records at each batch size."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown log backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    assert n >= 1
    records = build_records(n)
    results: list[dict[str, Any]] = []
    for batch in batch_sizes:
        assert batch >= 1
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="keel-bench-log-", dir=dsn) as directory:
                path = str(Path(directory) / f"log-{batch}.sqlite")
                results.append(_time_appends(backend, path, "keel", records, batch))
        else:
            server = dsn or POSTGRES_DSN_DEFAULT
            schema = "keel_bench_" + uuid.uuid4().hex[:12]
            try:
                results.append(_time_appends(backend, server, schema, records, batch))
            finally:
                _drop_schema(server, schema)
    return {"backend": backend, "n": n, "record_bytes": len(records[0].data), "results": results}
