"""Fixtures for the views tests: a data directory whose log and history store share a backend.

`views_log` is the root `log_config` (SQLite file, or a fresh PostgreSQL schema; the
PostgreSQL cases skip when the server is unreachable and fail on CI) and also drops the
history store's PostgreSQL schemas (`<schema>_views` and its `_rebuild` and `_previous`
siblings) at teardown. With the default keel.toml the store is DIR/views.sqlite on
SQLite and `<log schema>_views` on PostgreSQL. `store_settings` names a store alone (no
node), on each backend, for the tests that feed a store directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.views import StoreSettings


def _drop_schemas(dsn: str, schemas: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def views_log(log_config: dict[str, str]) -> Iterator[dict[str, str]]:
    """Yield the log settings (both backends); the views store follows the log's backend."""
    yield log_config
    if log_config["backend"] == "postgres":
        base = log_config["schema"] + "_views"
        _drop_schemas(log_config["dsn"], [base, base + "_rebuild", base + "_previous"])


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSettings]:
    """Yield settings for a history store that does not exist yet, on each backend."""
    if request.param == "sqlite":
        yield StoreSettings("sqlite", str(tmp_path / "views.sqlite"))
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema: str = request.getfixturevalue("postgres_schema")
    yield StoreSettings("postgres", dsn, schema)
    _drop_schemas(dsn, [schema + "_rebuild", schema + "_previous"])
