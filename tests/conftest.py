"""Shared fixtures: a fresh, isolated command log on each backend.

`log_config` runs a test once per backend. For SQLite the log is a file in the test's
temporary directory; for PostgreSQL it is a schema of its own (`keel_t_<hex>`), dropped
at teardown. When PostgreSQL cannot be reached the PostgreSQL cases are skipped with the
reason, except on CI (KEEL_CI=1), where they fail: a green CI must mean both backends ran.
Set KEEL_TEST_POSTGRES_DSN to use another server than the local one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_DSN_DEFAULT = "postgresql://127.0.0.1:5432/test"


def postgres_dsn_configured() -> str:
    """Return the DSN the tests use for PostgreSQL."""
    return os.environ.get("KEEL_TEST_POSTGRES_DSN", POSTGRES_DSN_DEFAULT)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """Return a reachable PostgreSQL DSN, or skip (fail on CI) saying why there is none."""
    import psycopg

    dsn = postgres_dsn_configured()
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        reason = f"PostgreSQL at {dsn} is unreachable ({str(error).strip()}); set KEEL_TEST_POSTGRES_DSN"
        if os.environ.get("KEEL_CI") == "1":
            pytest.fail(f"PostgreSQL is required on CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return dsn


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """Yield a fresh PostgreSQL schema name (`keel_t_<hex>`, not created yet), dropped at teardown."""
    schema = "keel_t_" + uuid.uuid4().hex[:12]
    try:
        yield schema
    finally:
        drop_schema(postgres_dsn, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def log_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Yield {"backend", "dsn", "schema"} naming a log that does not exist yet, on each backend."""
    backend: str = request.param
    if backend == "sqlite":
        yield {"backend": "sqlite", "dsn": str(tmp_path / "log.sqlite"), "schema": "keel"}
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema: str = request.getfixturevalue("postgres_schema")
    yield {"backend": "postgres", "dsn": dsn, "schema": schema}
