"""Open the command log a node or a tool is configured with, whichever backend it is.

`backend` is "sqlite" (then `dsn` is the database file's path and `schema` is unused) or
"postgres" (then `dsn` is a libpq connection string and the log is `<schema>.log`).
The PostgreSQL driver is imported only when that backend is asked for.

Imports: base, sqlite, postgres.
"""

from __future__ import annotations

from keel.log.base import CommandLog

BACKENDS = ("sqlite", "postgres")


def open_log(backend: str, dsn: str, schema: str = "keel", create: bool = False) -> CommandLog:
    """Return the log at `dsn` on `backend`; create it when `create`, else raise FileNotFoundError if absent."""
    if backend == "sqlite":
        from keel.log.sqlite import SqliteLog

        return SqliteLog(dsn, create=create)
    if backend == "postgres":
        from keel.log.postgres import PostgresLog

        return PostgresLog(dsn, schema, create=create)
    raise ValueError(f"unknown log backend {backend!r}; expected one of {', '.join(BACKENDS)}")
