"""What only the PostgreSQL backend has: a checked schema name, commits that stay
durable whatever the session default, BIGINT-sized seqs, and a check of every batch's
own contiguity. The behaviour it shares with SQLite is covered by test_log.py.
"""

from __future__ import annotations

import uuid

import pytest

from keel.log.postgres import BIGINT_MAX, PostgresLog, check_schema_name
from keel.log.record import GENESIS_HASH, make_record, verify_chain


@pytest.fixture
def schema(postgres_schema: str) -> str:
    """Return a fresh schema name (the shared fixture drops it afterwards)."""
    return postgres_schema


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a schema this module created under a name of its own."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize("name", ["", "1log", "keel.log", 'keel"; DROP SCHEMA public; --', "k" * 64, "kéel", "a b"])
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused_before_connecting(name: str) -> None:
    """Schema names with anything but identifier characters raise ValueError without touching the server."""
    with pytest.raises(ValueError, match="not a plain identifier"):
        PostgresLog("postgresql://invalid.invalid:1/none", name, create=True)


def test_plain_identifiers_are_accepted_as_schema_names() -> None:
    """Letters, digits and underscores up to 63 characters, not starting with a digit, are accepted."""
    for name in ["keel", "Keel_Live", "_x", "k" * 63, "keel_t_0123456789ab"]:
        assert check_schema_name(name) == name


def test_a_mixed_case_schema_is_created_and_found_again(postgres_dsn: str) -> None:
    """A schema name is quoted, so a mixed-case one is created as given and found on reopening."""
    name = "Keel_T_" + uuid.uuid4().hex[:12]
    try:
        log = PostgresLog(postgres_dsn, name, create=True)
        log.append([make_record(1, 1, b"x", GENESIS_HASH)])
        log.close()
        reopened = PostgresLog(postgres_dsn, name)
        assert reopened.last_seq() == 1
        reopened.close()
    finally:
        drop_schema(postgres_dsn, name)


def test_a_batch_with_a_gap_inside_it_is_refused(postgres_dsn: str, schema: str) -> None:
    """A batch whose own seqs skip one fails an assertion and writes nothing."""
    first = make_record(1, 1, b"a", GENESIS_HASH)
    third = make_record(3, 3, b"c", first.hash)
    log = PostgresLog(postgres_dsn, schema, create=True)
    with pytest.raises(AssertionError, match="skips"):
        log.append([first, third])
    assert log.last_seq() == 0
    assert list(log.rows()) == []
    assert log.fsyncs() == 0
    log.close()


def test_commits_are_durable_even_when_the_session_default_is_off(postgres_dsn: str, schema: str) -> None:
    """A connection whose default is synchronous_commit=off is raised to on for the log's own session."""
    separator = "&" if "?" in postgres_dsn else "?"
    dsn_off = f"{postgres_dsn}{separator}options=-c%20synchronous_commit%3Doff"
    log = PostgresLog(dsn_off, schema, create=True)
    assert log.synchronous_commit == "on"
    log.close()
    default = PostgresLog(postgres_dsn, schema)
    assert default.synchronous_commit != "off"
    default.close()


def test_seqs_beyond_bigint_are_refused(postgres_dsn: str, schema: str) -> None:
    """A seq that does not fit BIGINT fails an assertion before it is sent to the server."""
    log = PostgresLog(postgres_dsn, schema, create=True)
    assert log.row(BIGINT_MAX) is None
    with pytest.raises(AssertionError, match="BIGINT"):
        log.row(BIGINT_MAX + 1)
    with pytest.raises(AssertionError, match="BIGINT"):
        log.discard_after(BIGINT_MAX + 1)
    with pytest.raises(AssertionError, match="BIGINT"):
        list(log.rows(1, BIGINT_MAX + 1))
    log.close()


def test_rows_does_not_yield_what_was_appended_after_iteration_began(postgres_dsn: str, schema: str) -> None:
    """rows() without an upper bound stops at the last seq stored when iteration began, as one snapshot would."""
    records = []
    prev_hash = GENESIS_HASH
    for seq in range(1, 5001):
        record = make_record(seq, seq, seq.to_bytes(8, "little"), prev_hash)
        records.append(record)
        prev_hash = record.hash
    log = PostgresLog(postgres_dsn, schema, create=True)
    log.append(records[:4500])
    rows = log.rows()
    first = next(rows)
    log.append(records[4500:])
    seen = [first, *rows]
    assert len(seen) == 4500
    assert sum(1 for _ in verify_chain(seen, 1, GENESIS_HASH)) == 4500
    log.close()
