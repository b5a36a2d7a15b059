"""Every log backend passes the same suite: round trips, batching, durability counts, and
corruption found by `verify_chain` at the exact sequence number.

Each test runs once per backend (the `log_config` fixture: a SQLite file, a PostgreSQL
schema of its own). Corruption is made the way a disk, an operator or an attacker would,
by rewriting the stored rows with raw SQL behind the backend's back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from keel.core.commands import PlaceOrder, encode_command
from keel.log.base import CommandLog
from keel.log.open import open_log
from keel.log.record import (
    GENESIS_HASH,
    LogCorrupted,
    Record,
    decode_record,
    make_record,
    verify_chain,
)

TIMESTAMP_NS_BASE = 1_700_000_000_000_000_000


def payload_for(seq: int) -> bytes:
    """Return a PlaceOrder's canonical bytes, different for every seq."""
    command = PlaceOrder(
        seq=seq,
        timestamp_ns=TIMESTAMP_NS_BASE + seq,
        account_id=1 + seq % 1000,
        market_id=0,
        side=seq % 2,
        order_type=0,
        price_ticks=5_000_000 + seq,
        quantity_steps=100,
        client_id=seq,
    )
    return encode_command(command)


def build_chain(
    count: int, seq_first: int = 1, prev_hash: bytes = GENESIS_HASH, timestamps_ns: Sequence[int] | None = None
) -> list[Record]:
    """Return `count` chained records from `seq_first`, one PlaceOrder each."""
    records: list[Record] = []
    for index in range(count):
        seq = seq_first + index
        timestamp_ns = timestamps_ns[index] if timestamps_ns is not None else TIMESTAMP_NS_BASE + seq
        record = make_record(seq, timestamp_ns, payload_for(seq), prev_hash)
        records.append(record)
        prev_hash = record.hash
    return records


def open_config(config: dict[str, str], create: bool = False) -> CommandLog:
    """Open the log that a `log_config` names."""
    return open_log(config["backend"], config["dsn"], config["schema"], create=create)


def raw_execute(config: dict[str, str], statement: str, params: Sequence[Any]) -> None:
    """Run one statement on the stored table behind the backend's back; `{log}` is the table."""
    if config["backend"] == "sqlite":
        connection = sqlite3.connect(config["dsn"], isolation_level=None)
        try:
            connection.execute(statement.format(log="log").replace("%s", "?"), params)
        finally:
            connection.close()
        return
    import psycopg
    from psycopg import sql

    table = sql.SQL("{}.log").format(sql.Identifier(config["schema"]))
    with psycopg.connect(config["dsn"], autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(log=table), params)  # type: ignore[arg-type]


def store(config: dict[str, str], records: Sequence[Record]) -> None:
    """Create the log and append `records` in one batch."""
    log = open_config(config, create=True)
    try:
        log.append(records)
    finally:
        log.close()


def corruption_found(config: dict[str, str]) -> LogCorrupted:
    """Reopen the log, verify it from genesis and return the LogCorrupted it raises."""
    log = open_config(config)
    try:
        with pytest.raises(LogCorrupted) as raised:
            for _ in verify_chain(log.rows(), 1, GENESIS_HASH):
                pass
    finally:
        log.close()
    return raised.value


def test_opening_a_missing_log_without_create_raises_file_not_found(log_config: dict[str, str]) -> None:
    """Opening a log that was never created raises FileNotFoundError pointing at `keel init`."""
    with pytest.raises(FileNotFoundError, match="keel init"):
        open_config(log_config)


def test_append_then_read_returns_the_same_bytes(log_config: dict[str, str]) -> None:
    """Records appended one at a time come back byte for byte through rows, row and verify_chain."""
    records = build_chain(5)
    log = open_config(log_config, create=True)
    assert log.backend == log_config["backend"]
    assert log.last_seq() == 0
    assert list(log.rows()) == []
    for record in records:
        log.append([record])
    assert log.last_seq() == 5
    assert list(log.rows()) == [(record.seq, record.data) for record in records]
    assert log.row(3) == records[2].data
    assert log.row(6) is None
    assert log.row(0) is None
    assert list(verify_chain(log.rows(), 1, GENESIS_HASH)) == records
    log.close()


def test_batches_append_in_order_and_an_empty_batch_is_a_no_op(log_config: dict[str, str]) -> None:
    """Batches of several sizes land contiguously, and an empty batch writes and commits nothing."""
    records = build_chain(1 + 10 + 100)
    log = open_config(log_config, create=True)
    log.append(records[:1])
    log.append([])
    log.append(records[1:11])
    log.append(records[11:])
    assert log.last_seq() == 111
    assert log.fsyncs() == 3
    assert [seq for seq, _ in log.rows()] == list(range(1, 112))
    assert list(verify_chain(log.rows(), 1, GENESIS_HASH)) == records
    log.close()


def test_append_refuses_a_batch_that_does_not_follow_the_last_seq(log_config: dict[str, str]) -> None:
    """Appending a gap, a repeat or a rewind fails an assertion and writes nothing."""
    records = build_chain(6)
    log = open_config(log_config, create=True)
    log.append(records[:3])
    with pytest.raises(AssertionError):
        log.append(records[4:])  # skips seq 4
    with pytest.raises(AssertionError):
        log.append(records[2:4])  # repeats seq 3
    with pytest.raises(AssertionError):
        log.append(records[:1])  # back to seq 1
    assert log.last_seq() == 3
    assert log.fsyncs() == 1
    assert [seq for seq, _ in log.rows()] == [1, 2, 3]
    log.append(records[3:])
    assert log.last_seq() == 6
    log.close()


def test_append_refuses_a_record_whose_checksum_is_wrong(log_config: dict[str, str]) -> None:
    """A record whose bytes no longer match their CRC is refused before the write (the paired check)."""
    records = build_chain(3)
    damaged = bytearray(records[2].data)
    damaged[30] ^= 0x01
    bad = Record(
        records[2].seq,
        records[2].timestamp_ns,
        records[2].payload,
        records[2].prev_hash,
        records[2].hash,
        bytes(damaged),
    )
    log = open_config(log_config, create=True)
    log.append(records[:2])
    with pytest.raises(AssertionError):
        log.append([bad])
    assert log.last_seq() == 2
    assert log.row(3) is None
    log.close()


def test_last_seq_and_contents_survive_reopening(log_config: dict[str, str]) -> None:
    """A reopened handle sees the last seq and every record a closed one committed, and continues from it."""
    records = build_chain(25)
    log = open_config(log_config, create=True)
    log.append(records[:20])
    log.close()
    reopened = open_config(log_config)
    assert reopened.last_seq() == 20
    assert reopened.fsyncs() == 0
    reopened.append(records[20:])
    reopened.close()
    again = open_config(log_config, create=True)  # create on an existing log opens it as it is
    assert again.last_seq() == 25
    assert list(verify_chain(again.rows(), 1, GENESIS_HASH)) == records
    again.close()


def test_discard_after_deletes_the_tail_and_appending_continues(log_config: dict[str, str]) -> None:
    """discard_after removes exactly the records after a seq, says how many, and the log continues there."""
    records = build_chain(10)
    log = open_config(log_config, create=True)
    log.append(records)
    assert log.discard_after(10) == 0
    assert log.discard_after(7) == 3
    assert log.last_seq() == 7
    assert log.row(8) is None
    replacement = build_chain(2, seq_first=8, prev_hash=records[6].hash, timestamps_ns=[records[6].timestamp_ns] * 2)
    log.append(replacement)
    assert log.last_seq() == 9
    assert list(verify_chain(log.rows(), 1, GENESIS_HASH)) == records[:7] + replacement
    assert log.discard_after(0) == 9
    assert log.last_seq() == 0
    log.close()


def test_rows_yields_exactly_the_requested_range(log_config: dict[str, str]) -> None:
    """rows(seq_from, seq_to) yields the stored rows in that inclusive range, in seq order."""
    records = build_chain(20)
    log = open_config(log_config, create=True)
    log.append(records)
    assert [seq for seq, _ in log.rows(5, 9)] == [5, 6, 7, 8, 9]
    assert [seq for seq, _ in log.rows(18)] == [18, 19, 20]
    assert [seq for seq, _ in log.rows(seq_to=2)] == [1, 2]
    assert [seq for seq, _ in log.rows(7, 7)] == [7]
    assert list(log.rows(9, 5)) == []
    assert list(log.rows(21)) == []
    assert [seq for seq, _ in log.rows(19, 1000)] == [19, 20]
    assert [data for _, data in log.rows(10, 11)] == [records[9].data, records[10].data]
    assert list(verify_chain(log.rows(11), 11, records[9].hash)) == records[10:]
    log.close()


def test_rows_streams_a_log_larger_than_one_read_page(log_config: dict[str, str]) -> None:
    """A log several read pages long comes back whole and in order, including a range that starts mid-page."""
    records = build_chain(10_000)
    log = open_config(log_config, create=True)
    for start in range(0, len(records), 1000):
        log.append(records[start : start + 1000])
    assert log.fsyncs() == 10
    assert sum(1 for _ in verify_chain(log.rows(), 1, GENESIS_HASH)) == 10_000
    assert [seq for seq, _ in log.rows(4000, 8200)] == list(range(4000, 8201))
    log.close()


def test_fsyncs_counts_one_commit_per_nonempty_batch_per_handle(log_config: dict[str, str]) -> None:
    """fsyncs() counts this handle's committed batches: one per append, none for reads or empty batches."""
    records = build_chain(30)
    log = open_config(log_config, create=True)
    assert log.fsyncs() == 0
    for start in range(0, 30, 3):
        log.append(records[start : start + 3])
    list(log.rows())
    log.row(1)
    log.append([])
    assert log.fsyncs() == 10
    log.close()
    assert open_config(log_config).fsyncs() == 0


@pytest.mark.parametrize(
    ("offset", "part"),
    [(4, "seq in the header"), (30, "payload"), (-60, "prev hash"), (-20, "record hash"), (-1, "crc")],
)
def test_a_flipped_byte_in_a_middle_record_is_reported_at_its_seq(
    log_config: dict[str, str], offset: int, part: str
) -> None:
    """One bit flipped anywhere inside record 5 of 9 is caught as a checksum mismatch at seq 5."""
    records = build_chain(9)
    store(log_config, records)
    damaged = bytearray(records[4].data)
    damaged[offset] ^= 0x10
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (bytes(damaged), 5))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 5, part
    assert "checksum" in corrupted.problem


def test_a_deleted_middle_record_is_reported_as_a_gap_at_its_seq(log_config: dict[str, str]) -> None:
    """Deleting record 4 of 8 leaves a gap that verify_chain reports at seq 4, naming the seq found instead."""
    store(log_config, build_chain(8))
    raw_execute(log_config, "DELETE FROM {log} WHERE seq = %s", (4,))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 4
    assert "missing" in corrupted.problem
    assert corrupted.found == "seq 5"


def test_two_swapped_records_are_reported_at_the_first_of_them(log_config: dict[str, str]) -> None:
    """Swapping the blobs of records 3 and 6 is reported at seq 3, which holds record 6."""
    records = build_chain(8)
    store(log_config, records)
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (records[5].data, 3))
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (records[2].data, 6))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 3
    assert "another sequence number" in corrupted.problem
    assert corrupted.found == "6"


def test_a_torn_last_record_is_reported_at_its_seq(log_config: dict[str, str]) -> None:
    """The last record cut short mid-record fails decode_record, and verify_chain reports that seq."""
    records = build_chain(6)
    store(log_config, records)
    torn = records[5].data[: len(records[5].data) // 2]
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (torn, 6))
    with pytest.raises(LogCorrupted) as raised:
        decode_record(torn, 6)
    assert raised.value.seq == 6
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 6
    assert "torn" in corrupted.problem
    log = open_config(log_config)
    assert sum(1 for _ in verify_chain(log.rows(seq_to=5), 1, GENESIS_HASH)) == 5
    log.close()


def test_a_well_formed_record_chained_elsewhere_is_reported_as_a_chain_break(log_config: dict[str, str]) -> None:
    """Record 4 replaced by a valid record that chains to another prev hash is reported as a break at seq 4."""
    records = build_chain(7)
    store(log_config, records)
    forged = make_record(4, records[3].timestamp_ns, records[3].payload, records[1].hash)
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (forged.data, 4))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 4
    assert "chain" in corrupted.problem
    assert corrupted.expected == records[2].hash.hex()
    assert corrupted.found == records[1].hash.hex()


def test_a_rewritten_command_is_reported_at_the_next_record(log_config: dict[str, str]) -> None:
    """Record 4 rewritten with another command but the right prev hash breaks the chain at seq 5."""
    records = build_chain(7)
    store(log_config, records)
    forged = make_record(4, records[3].timestamp_ns, payload_for(999), records[2].hash)
    raw_execute(log_config, "UPDATE {log} SET record = %s WHERE seq = %s", (forged.data, 4))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 5
    assert "chain" in corrupted.problem
    assert corrupted.found == records[3].hash.hex()


def test_a_timestamp_going_backwards_is_reported_at_its_seq(log_config: dict[str, str]) -> None:
    """A well-chained log whose record 4 is stamped before record 3 is reported at seq 4."""
    timestamps_ns = [100, 200, 300, 250, 400]
    store(log_config, build_chain(5, timestamps_ns=timestamps_ns))
    corrupted = corruption_found(log_config)
    assert corrupted.seq == 4
    assert "backwards" in corrupted.problem
    assert corrupted.found == "250"
