"""The history store: the tables of schema.py in SQLite or PostgreSQL, and the queries on them.

One `HistoryStore` wraps one database connection behind a lock, so a store may be
shared by threads (each call runs alone); the projector writes through it in
transactions and the gateway reads through it, ideally each with a store of its own
(`open_store` again) so that reads do not wait for writes. All SQL is written once,
with `?` placeholders and unqualified table names: on PostgreSQL the placeholders
become `%s` and the connection's `search_path` is the store's schema.

Durability is relaxed on purpose (SQLite `synchronous=NORMAL` in WAL mode; PostgreSQL
`synchronous_commit = off` for the store's own session): a crash may lose the last
transactions, never half of one, because the rows and the position advance together;
catch-up at the next start replays what was lost from the log (catchup.py).

Queries take integers and return records.py Structs. Pagination follows the spec
(section 8.5): `limit` defaults to 100 and may be 1 to 1,000, `offset` skips rows,
newest first unless `descending=False`. Time filters are half-open: start_ns <= time <
end_ns. A bad argument raises QueryInvalid (the gateway's INVALID_CLIENT_REQUEST).

Imports: keel.core.errors, schema, records, klines (and psycopg, only for PostgreSQL).
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

from keel.core.errors import KeelError
from keel.core.transfers import DepositStatus
from keel.views import schema
from keel.views.klines import KLINE_INTERVALS, MINUTE_S, NS_PER_S, Bar, KlineInterval, aggregate
from keel.views.records import (
    NO_POSITION,
    Adjustment,
    BorrowLendMove,
    BorrowLendPosition,
    CreditRecord,
    DepositRecord,
    DepositUpdate,
    FillRecord,
    FundingPayment,
    FundingRound,
    FundsIn,
    InterestPayment,
    InterestRound,
    Kline,
    LedgerLine,
    Liquidation,
    MaintenanceEvent,
    MaintenanceStep,
    MarketStateChange,
    OrderRecord,
    OrderUpdate,
    PerpPosition,
    Position,
    PositionChange,
    Settlement,
    TradeRecord,
    WithdrawalFreeze,
    WithdrawalRecord,
    WithdrawalUpdate,
)

LIMIT_DEFAULT: Final = 100
LIMIT_MAX: Final = 1_000
KLINES_LIMIT_MAX: Final = 1_000  # candles per query (inferred: the spec names no limit)
BACKENDS: Final = ("sqlite", "postgres")
STAGING_SUFFIX: Final = "_rebuild"
PREVIOUS_SUFFIX: Final = "_previous"
_SCHEMA_NAME_MAX = 63 - len(PREVIOUS_SUFFIX)  # PostgreSQL names are at most 63 bytes
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # as the log's (keel/log/postgres.py)
_BARS_PAGE = 2_000
_IN_CHUNK = 500  # ids per `IN (...)`, below both databases' parameter limits
_BIGINT_MAX = 2**63 - 1
_CREDITED = int(DepositStatus.CREDITED)  # an operator credit is credited when it is made


class StoreError(KeelError):
    """The history store cannot be used as asked (missing, unreachable, misconfigured)."""


class QueryInvalid(KeelError, ValueError):
    """A history query's arguments are out of range (limit, offset, times, interval)."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where a history store lives: SQLite (dsn: a file path) or PostgreSQL (dsn and schema)."""

    backend: str
    dsn: str
    schema: str = "keel_views"

    def validate(self) -> None:
        """Raise StoreError naming what cannot work."""
        if self.backend not in BACKENDS:
            raise StoreError(f"views backend must be sqlite or postgres, not {self.backend!r}")
        if not self.dsn:
            raise StoreError("views dsn must not be empty")
        if self.backend == "postgres":
            if not _SCHEMA_NAME.fullmatch(self.schema):
                raise StoreError(
                    f"views schema name {self.schema!r} is not a plain identifier "
                    "(letters, digits and underscores, not starting with a digit)"
                )
            if len(self.schema) > _SCHEMA_NAME_MAX:
                raise StoreError(
                    f"views schema name {self.schema!r} is longer than {_SCHEMA_NAME_MAX} characters "
                    f"(a rebuild keeps the old store as {self.schema}{PREVIOUS_SUFFIX})"
                )

    def describe(self) -> str:
        """Return where the store is, in words."""
        if self.backend == "sqlite":
            return f"SQLite file {self.dsn}"
        return f"PostgreSQL schema {self.schema}"

    def staging(self) -> StoreSettings:
        """Return where a rebuild builds its new store before swapping it in."""
        if self.backend == "sqlite":
            return replace(self, dsn=self.dsn + STAGING_SUFFIX.replace("_", "."))
        return replace(self, schema=self.schema + STAGING_SUFFIX)

    def previous(self) -> StoreSettings:
        """Return where a rebuild keeps the store it replaced."""
        if self.backend == "sqlite":
            return replace(self, dsn=self.dsn + PREVIOUS_SUFFIX.replace("_", "."))
        return replace(self, schema=self.schema + PREVIOUS_SUFFIX)


class ViewsConfig(Protocol):
    """What `settings_for` reads of a data directory's configuration (keel.node.config.Config)."""

    @property
    def backend(self) -> str: ...  # the log's

    @property
    def dsn(self) -> str: ...

    @property
    def schema(self) -> str: ...

    @property
    def views_backend(self) -> str: ...

    @property
    def views_dsn(self) -> str: ...

    @property
    def views_schema(self) -> str: ...


VIEWS_SQLITE_NAME: Final = "views.sqlite"


def settings_for(data_dir: Path, config: ViewsConfig) -> StoreSettings:
    """Return where a data directory's history store is (keel.toml [views], with defaults:
    DIR/views.sqlite; on PostgreSQL, the log's DSN and schema `<log schema>_views`)."""
    if config.views_backend == "sqlite":
        path = Path(config.views_dsn or VIEWS_SQLITE_NAME)
        return StoreSettings("sqlite", str(path if path.is_absolute() else data_dir / path))
    return StoreSettings("postgres", config.views_dsn or config.dsn, config.views_schema or f"{config.schema}_views")


class Connection(Protocol):
    """What the store needs of a database connection (one per backend below)."""

    dialect: str

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> None: ...

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def insert_many(self, table: schema.Table, rows: Sequence[Sequence[Any]]) -> None: ...

    def transaction(self) -> Any: ...

    def close(self) -> None: ...


class _SqliteConnection:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA busy_timeout=30000")

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._connection.execute(statement, parameters).fetchall()

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> None:
        self._connection.execute(statement, parameters)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(statement, rows)

    def insert_many(self, table: schema.Table, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(schema.insert_statement(table), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()


@functools.lru_cache(maxsize=256)
def _postgres_statement(statement: str) -> str:
    assert "%" not in statement, "the store's SQL has no literal percent signs"
    return statement.replace("?", "%s")


class _PostgresConnection:
    dialect = "postgres"

    def __init__(self, dsn: str, schema_name: str, *, create: bool) -> None:
        import psycopg
        from psycopg import sql

        try:
            self._connection = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as error:
            raise StoreError(f"cannot reach the views database ({str(error).strip()})") from error
        try:
            identifier = sql.Identifier(schema_name)
            if create:
                self._connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(identifier))
            elif (
                self._connection.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema_name,)
                ).fetchone()
                is None
            ):
                raise StoreError(f"no views schema {schema_name} in database {self._connection.info.dbname!r}")
            self._connection.execute(sql.SQL("SET search_path TO {}").format(identifier))
            # The store is rebuilt from the log, so a lost commit costs a replay, not history.
            self._connection.execute("SET synchronous_commit TO off")
        except BaseException:
            self._connection.close()
            raise

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._connection.execute(_postgres_statement(statement), parameters).fetchall()

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> None:
        self._connection.execute(_postgres_statement(statement), parameters)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._connection.cursor() as cursor:
            cursor.executemany(_postgres_statement(statement), rows)

    def insert_many(self, table: schema.Table, rows: Sequence[Sequence[Any]]) -> None:
        # COPY: several times faster than executemany for the append-only tables
        # (the same measurement as the log's, keel/log/postgres.py).
        statement = f"COPY {table.name} ({', '.join(table.column_names)}) FROM STDIN"
        with self._connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._connection.transaction():
            yield

    def close(self) -> None:
        self._connection.close()


def _check_page(limit: int, offset: int, limit_max: int = LIMIT_MAX) -> None:
    if not 1 <= limit <= limit_max:
        raise QueryInvalid(f"limit must be between 1 and {limit_max}, got {limit}")
    if not 0 <= offset <= _BIGINT_MAX:
        raise QueryInvalid(f"offset must not be negative, got {offset}")


def _check_times(start_ns: int | None, end_ns: int | None) -> None:
    for name, value in (("start", start_ns), ("end", end_ns)):
        if value is not None and not 0 <= value <= _BIGINT_MAX:
            raise QueryInvalid(f"{name} time is out of range: {value}")
    if start_ns is not None and end_ns is not None and end_ns < start_ns:
        raise QueryInvalid("the end time is before the start time")


def _where(
    filters: list[tuple[str, int | None]],
    time_column: str,
    start_ns: int | None,
    end_ns: int | None,
    market_ids: Sequence[int] | None = None,
) -> tuple[str, list[int]]:
    """Return a WHERE clause and its parameters for equality filters (None: no filter), a time
    range, and a set of markets (None: any; at least one id)."""
    clauses: list[str] = []
    parameters: list[int] = []
    for column, value in filters:
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if market_ids is not None:
        assert market_ids, "an empty set of markets matches nothing: the caller answers that"
        clauses.append(f"market_id IN ({', '.join('?' for _ in market_ids)})")
        parameters.extend(market_ids)
    if start_ns is not None:
        clauses.append(f"{time_column} >= ?")
        parameters.append(start_ns)
    if end_ns is not None:
        clauses.append(f"{time_column} < ?")
        parameters.append(end_ns)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", parameters


def _order(record: tuple[Any, ...]) -> OrderRecord:
    values = list(record)
    values[_POST_ONLY] = bool(values[_POST_ONLY])
    values[_REDUCE_ONLY] = bool(values[_REDUCE_ONLY])
    return OrderRecord(*values)


def _fill(record: tuple[Any, ...]) -> FillRecord:
    values = list(record)
    values[_IS_MAKER] = bool(values[_IS_MAKER])
    return FillRecord(*values)


# Records are built positionally from rows: their fields are the tables' columns, in order.
for _record, _table in (
    (OrderRecord, schema.ORDERS),
    (OrderUpdate, schema.ORDER_UPDATES),
    (FillRecord, schema.FILLS),
    (TradeRecord, schema.TRADES),
    (LedgerLine, schema.LEDGER_LINES),
    (DepositRecord, schema.DEPOSITS),
    (DepositUpdate, schema.DEPOSIT_UPDATES),
    (CreditRecord, schema.CREDITS),
    (WithdrawalRecord, schema.WITHDRAWALS),
    (WithdrawalUpdate, schema.WITHDRAWAL_UPDATES),
    (FundingRound, schema.FUNDING_ROUNDS),
    (FundingPayment, schema.FUNDING_PAYMENTS),
    (PositionChange, schema.POSITION_CHANGES),
    (Liquidation, schema.LIQUIDATIONS),
    (MarketStateChange, schema.MARKET_STATE_CHANGES),
    (MaintenanceEvent, schema.MAINTENANCE_EVENTS),
    (MaintenanceStep, schema.MAINTENANCE_STEPS),
    (Adjustment, schema.ADJUSTMENTS),
    (WithdrawalFreeze, schema.WITHDRAWAL_FREEZES),
    (BorrowLendPosition, schema.BORROW_LEND_POSITIONS),
    (BorrowLendMove, schema.BORROW_LEND_MOVES),
    (InterestRound, schema.INTEREST_ROUNDS),
    (InterestPayment, schema.INTEREST_PAYMENTS),
):
    assert _record.__struct_fields__ == _table.column_names, _table.name
_POST_ONLY = schema.ORDERS.column_names.index("post_only")
_REDUCE_ONLY = schema.ORDERS.column_names.index("reduce_only")
_IS_MAKER = schema.FILLS.column_names.index("is_maker")
_ORDER_COLUMNS = ", ".join(schema.ORDERS.column_names)
_UPDATE_COLUMNS = ", ".join(schema.ORDER_UPDATES.column_names)
_FILL_COLUMNS = ", ".join(schema.FILLS.column_names)
_TRADE_COLUMNS = ", ".join(schema.TRADES.column_names)
_LEDGER_COLUMNS = ", ".join(schema.LEDGER_LINES.column_names)


class HistoryStore:
    """The history tables of one store; see the module docstring. Use `open_store`."""

    def __init__(self, connection: Connection, settings: StoreSettings) -> None:
        self.connection = connection
        self.settings = settings
        # Held for each call, and by the projector for a whole transaction.
        self.lock = threading.RLock()

    # ---- bookkeeping ------------------------------------------------------------------
    def position(self) -> Position:
        """Return the last command projected ((0, 0) when none)."""
        with self.lock:
            rows = self.connection.query("SELECT seq, timestamp_ns FROM position WHERE id = 1")
        return Position(*rows[0]) if rows else Position(0, 0)

    def schema_version(self) -> int:
        """Return the schema version the store was created with."""
        with self.lock:
            rows = self.connection.query("SELECT value FROM meta WHERE name = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def is_current(self) -> bool:
        """Return whether the store has this code's tables (else it must be rebuilt)."""
        return self.schema_version() == schema.SCHEMA_VERSION

    def counts(self) -> dict[str, int]:
        """Return the number of rows of each history table."""
        with self.lock:
            return {
                table.name: int(self.connection.query(f"SELECT COUNT(*) FROM {table.name}")[0][0])
                for table in schema.TABLES
                if table not in (schema.META, schema.POSITION)
            }

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Return every row of every table, tables by name, rows in primary-key order:
        two stores with the same history give equal dumps."""
        with self.lock:
            return {
                table.name: [
                    tuple(row)
                    for row in self.connection.query(
                        f"SELECT {', '.join(table.column_names)} FROM {table.name} ORDER BY {', '.join(table.key)}"
                    )
                ]
                for table in schema.TABLES
            }

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- queries ----------------------------------------------------------------------
    def orders(
        self,
        account_id: int,
        *,
        market_id: int | None = None,
        order_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
        market_ids: Sequence[int] | None = None,
    ) -> list[OrderRecord]:
        """Return the account's orders in any status (spec 8.5), newest first; times filter
        on when the order was created; `market_ids` keeps those of some markets (None: any)."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        if market_ids is not None and not market_ids:
            return []
        where, parameters = _where(
            [("account_id", account_id), ("market_id", market_id), ("order_id", order_id)],
            "created_ns",
            start_ns,
            end_ns,
            market_ids,
        )
        direction = "DESC" if descending else "ASC"
        with self.lock:
            rows = self.connection.query(
                f"SELECT {_ORDER_COLUMNS} FROM orders{where} ORDER BY order_id {direction} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [_order(row) for row in rows]

    def order(self, order_id: int) -> OrderRecord | None:
        """Return one order whoever owns it (the gateway checks `account_id`), or None."""
        with self.lock:
            rows = self.connection.query(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,))
        return _order(rows[0]) if rows else None

    def orders_by_id(self, order_ids: Sequence[int]) -> list[OrderRecord]:
        """Return the orders with these ids, whoever owns them, in ascending id; ids the
        store does not hold are left out."""
        wanted = sorted(set(order_ids))
        found: list[OrderRecord] = []
        with self.lock:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = self.connection.query(
                    f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id IN ({', '.join('?' for _ in chunk)}) "
                    "ORDER BY order_id",
                    chunk,
                )
                found.extend(_order(row) for row in rows)
        return found

    def order_updates(self, order_id: int) -> list[OrderUpdate]:
        """Return every status change of one order, oldest first."""
        with self.lock:
            rows = self.connection.query(
                f"SELECT {_UPDATE_COLUMNS} FROM order_updates WHERE order_id = ? ORDER BY seq, event_index",
                (order_id,),
            )
        return [OrderUpdate(*row) for row in rows]

    def fills(
        self,
        account_id: int,
        *,
        market_id: int | None = None,
        order_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
        market_ids: Sequence[int] | None = None,
    ) -> list[FillRecord]:
        """Return the account's fills (spec 8.5), newest first; `market_ids` as in `orders`."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        if market_ids is not None and not market_ids:
            return []
        where, parameters = _where(
            [("account_id", account_id), ("market_id", market_id), ("order_id", order_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            market_ids,
        )
        direction = "DESC" if descending else "ASC"
        with self.lock:
            rows = self.connection.query(
                f"SELECT {_FILL_COLUMNS} FROM fills{where} "
                f"ORDER BY trade_id {direction}, is_maker {direction} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [_fill(row) for row in rows]

    def ledger(
        self,
        account_id: int,
        *,
        asset_id: int | None = None,
        reason: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[LedgerLine]:
        """Return the account's ledger lines, newest first; `reason` is an EntryReason."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        where, parameters = _where(
            [("account_id", account_id), ("asset_id", asset_id), ("reason", reason)], "timestamp_ns", start_ns, end_ns
        )
        direction = "DESC" if descending else "ASC"
        with self.lock:
            rows = self.connection.query(
                f"SELECT {_LEDGER_COLUMNS} FROM ledger_lines{where} "
                f"ORDER BY entry_id {direction}, line_no {direction} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [LedgerLine(*row) for row in rows]

    # ---- version 2: transfers, perpetuals, market states --------------------------------
    def _page(
        self,
        table: schema.Table,
        filters: list[tuple[str, int | None]],
        time_column: str,
        start_ns: int | None,
        end_ns: int | None,
        limit: int,
        offset: int,
        descending: bool,
    ) -> list[tuple[Any, ...]]:
        """Return a page of a table's rows in key order (newest first when descending)."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        where, parameters = _where(filters, time_column, start_ns, end_ns)
        direction = "DESC" if descending else "ASC"
        order = ", ".join(f"{column} {direction}" for column in table.key)
        with self.lock:
            return self.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name}{where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )

    def _by_key(self, table: schema.Table, column: str, value: int) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name} WHERE {column} = ? "
                f"ORDER BY {', '.join(table.key)}",
                (value,),
            )

    def deposits(
        self,
        account_id: int,
        *,
        asset_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[DepositRecord]:
        """Return the account's chain deposits in any status, newest first; times filter on
        when the deposit was first reported."""
        rows = self._page(
            schema.DEPOSITS,
            [("account_id", account_id), ("asset_id", asset_id)],
            "created_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [DepositRecord(*row) for row in rows]

    def deposit(self, deposit_id: int) -> DepositRecord | None:
        """Return one deposit whoever it pays, or None."""
        rows = self._by_key(schema.DEPOSITS, "deposit_id", deposit_id)
        return DepositRecord(*rows[0]) if rows else None

    def deposit_updates(self, deposit_id: int) -> list[DepositUpdate]:
        """Return every change of one deposit, oldest first."""
        return [DepositUpdate(*row) for row in self._by_key(schema.DEPOSIT_UPDATES, "deposit_id", deposit_id)]

    def credits(
        self,
        account_id: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[CreditRecord]:
        """Return the account's operator credits, newest first."""
        rows = self._page(
            schema.CREDITS, [("account_id", account_id)], "timestamp_ns", start_ns, end_ns, limit, offset, descending
        )
        return [CreditRecord(*row) for row in rows]

    def funds_in(
        self,
        account_id: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[FundsIn]:
        """Return the account's deposit history: chain deposits (any status, at the time they
        were first reported) and operator credits together, newest first (spec 9.1 Deposit)."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        deposits_where, deposits_parameters = _where([("account_id", account_id)], "created_ns", start_ns, end_ns)
        credits_where, credits_parameters = _where([("account_id", account_id)], "timestamp_ns", start_ns, end_ns)
        direction = "DESC" if descending else "ASC"
        with self.lock:
            rows = self.connection.query(
                "SELECT deposit_id, entry_id, account_id, asset_id, amount_atomic, chain, tx_id, status, created_ns "
                f"FROM deposits{deposits_where} UNION ALL "
                "SELECT 0, entry_id, account_id, asset_id, amount_atomic, '', '', ?, timestamp_ns "
                f"FROM credits{credits_where} "
                f"ORDER BY created_ns {direction}, deposit_id {direction}, entry_id {direction} LIMIT ? OFFSET ?",
                [*deposits_parameters, _CREDITED, *credits_parameters, limit, offset],
            )
        return [FundsIn(*row) for row in rows]

    def withdrawals(
        self,
        account_id: int | None,
        *,
        asset_id: int | None = None,
        status: int | None = None,
        withdrawal_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[WithdrawalRecord]:
        """Return withdrawals (one account's, or every account's for None) with their current
        status, newest first; times filter on when each was requested; `status` is a WithdrawalStatus."""
        rows = self._page(
            schema.WITHDRAWALS,
            [("account_id", account_id), ("asset_id", asset_id), ("status", status), ("withdrawal_id", withdrawal_id)],
            "created_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [WithdrawalRecord(*row) for row in rows]

    def withdrawal(self, withdrawal_id: int) -> WithdrawalRecord | None:
        """Return one withdrawal whoever made it, or None."""
        rows = self._by_key(schema.WITHDRAWALS, "withdrawal_id", withdrawal_id)
        return WithdrawalRecord(*rows[0]) if rows else None

    def withdrawal_updates(self, withdrawal_id: int) -> list[WithdrawalUpdate]:
        """Return every status change of one withdrawal, oldest first."""
        rows = self._by_key(schema.WITHDRAWAL_UPDATES, "withdrawal_id", withdrawal_id)
        return [WithdrawalUpdate(*row) for row in rows]

    def funding_rounds(
        self,
        market_id: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[FundingRound]:
        """Return a perpetual's funding rounds (its funding rate history), newest first."""
        rows = self._page(
            schema.FUNDING_ROUNDS,
            [("market_id", market_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [FundingRound(*row) for row in rows]

    def funding_payments(
        self,
        account_id: int,
        *,
        market_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[FundingPayment]:
        """Return the account's funding payments (paid < 0, received > 0), newest first."""
        rows = self._page(
            schema.FUNDING_PAYMENTS,
            [("account_id", account_id), ("market_id", market_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [FundingPayment(*row) for row in rows]

    def position_changes(
        self,
        account_id: int,
        *,
        market_id: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[PositionChange]:
        """Return every change of the account's perpetual positions, newest first."""
        rows = self._page(
            schema.POSITION_CHANGES,
            [("account_id", account_id), ("market_id", market_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [PositionChange(*row) for row in rows]

    def liquidations(
        self,
        account_id: int | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[Liquidation]:
        """Return liquidations (of one account, or all), newest first."""
        rows = self._page(
            schema.LIQUIDATIONS,
            [("account_id", account_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [Liquidation(*row) for row in rows]

    def market_state_changes(
        self,
        market_id: int | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[MarketStateChange]:
        """Return market state changes (of one market, or all), newest first."""
        rows = self._page(
            schema.MARKET_STATE_CHANGES,
            [("market_id", market_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [MarketStateChange(*row) for row in rows]

    def maintenance_events(
        self,
        schedule_id: int | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[MaintenanceEvent]:
        """Return maintenance events (of one schedule, or all), newest first."""
        rows = self._page(
            schema.MAINTENANCE_EVENTS,
            [("schedule_id", schedule_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [MaintenanceEvent(*row) for row in rows]

    def maintenance_steps(self, schedule_id: int) -> list[MaintenanceStep]:
        """Return a schedule's steps as recorded, in step then market order."""
        return [MaintenanceStep(*row) for row in self._by_key(schema.MAINTENANCE_STEPS, "schedule_id", schedule_id)]

    def adjustments(
        self,
        account_id: int | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[Adjustment]:
        """Return adjustments (of one account, or all), newest first."""
        rows = self._page(
            schema.ADJUSTMENTS,
            [("account_id", account_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [Adjustment(*row) for row in rows]

    def withdrawal_freezes(
        self, *, limit: int = LIMIT_DEFAULT, offset: int = 0, descending: bool = True
    ) -> list[WithdrawalFreeze]:
        """Return every freeze and unfreeze of withdrawals, newest first."""
        rows = self._page(schema.WITHDRAWAL_FREEZES, [], "timestamp_ns", None, None, limit, offset, descending)
        return [WithdrawalFreeze(row[0], row[1], bool(row[2]), *row[3:]) for row in rows]

    # ---- version 3: borrowing, lending and interest -----------------------------------
    def borrow_lend_positions(
        self,
        account_id: int,
        *,
        asset_id: int | None = None,
        side: int | None = None,
        is_open: bool | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[BorrowLendPosition]:
        """Return the account's borrow/lend positions (open, closed, or both for None), newest
        first by the command that opened them; `side` is a lending.BorrowLendSide."""
        _check_page(limit, offset)
        where, parameters = _where([("account_id", account_id), ("asset_id", asset_id), ("side", side)], "", None, None)
        if is_open is not None:
            where += (" AND " if where else " WHERE ") + ("closed_seq = ?" if is_open else "closed_seq <> ?")
            parameters.append(NO_POSITION)
        direction = "DESC" if descending else "ASC"
        table = schema.BORROW_LEND_POSITIONS
        with self.lock:
            rows = self.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name}{where} "
                f"ORDER BY opened_seq {direction}, asset_id {direction} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [BorrowLendPosition(*row) for row in rows]

    def borrow_lend_moves(
        self,
        account_id: int,
        *,
        asset_id: int | None = None,
        kind: int | None = None,
        position_seq: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[BorrowLendMove]:
        """Return the account's borrows, repayments, lends and redemptions, newest first;
        `kind` is a records.BorrowLendKind."""
        rows = self._page(
            schema.BORROW_LEND_MOVES,
            [("account_id", account_id), ("asset_id", asset_id), ("kind", kind), ("position_seq", position_seq)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [BorrowLendMove(*row) for row in rows]

    def interest_rounds(
        self,
        asset_id: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[InterestRound]:
        """Return an asset's hourly interest rounds, newest first."""
        rows = self._page(
            schema.INTEREST_ROUNDS,
            [("asset_id", asset_id)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [InterestRound(*row) for row in rows]

    def interest_payments(
        self,
        account_id: int,
        *,
        asset_id: int | None = None,
        position_seq: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[InterestPayment]:
        """Return the account's interest (paid < 0 on borrows, earned > 0 on lends), newest first."""
        rows = self._page(
            schema.INTEREST_PAYMENTS,
            [("account_id", account_id), ("asset_id", asset_id), ("position_seq", position_seq)],
            "timestamp_ns",
            start_ns,
            end_ns,
            limit,
            offset,
            descending,
        )
        return [InterestPayment(*row) for row in rows]

    # ---- version 4: perpetual positions and settlements -------------------------------
    def perp_positions(
        self,
        account_id: int,
        *,
        market_id: int | None = None,
        is_open: bool | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[PerpPosition]:
        """Return the account's perpetual positions (open, closed, or both for None), newest
        first by the change that opened them."""
        _check_page(limit, offset)
        where, parameters = _where([("account_id", account_id), ("market_id", market_id)], "", None, None)
        if is_open is not None:
            where += " AND " + ("closed_seq = ?" if is_open else "closed_seq <> ?")
            parameters.append(NO_POSITION)
        direction = "DESC" if descending else "ASC"
        table = schema.PERP_POSITIONS
        with self.lock:
            rows = self.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name}{where} "
                f"ORDER BY opened_seq {direction}, opened_index {direction} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [PerpPosition(*row) for row in rows]

    def settlements(
        self,
        account_id: int,
        *,
        sources: Sequence[int] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = LIMIT_DEFAULT,
        offset: int = 0,
        descending: bool = True,
    ) -> list[Settlement]:
        """Return the account's settlements (received > 0, given up < 0), newest first;
        `sources` (records.SettlementSource numbers, at least one) narrows them."""
        _check_page(limit, offset)
        _check_times(start_ns, end_ns)
        where, parameters = _where([("account_id", account_id)], "timestamp_ns", start_ns, end_ns)
        if sources is not None:
            assert sources, "no source matches nothing: the caller answers that"
            where += f" AND source IN ({', '.join('?' for _ in sources)})"
            parameters.extend(sources)
        direction = "DESC" if descending else "ASC"
        table = schema.SETTLEMENTS
        order = ", ".join(f"{column} {direction}" for column in table.key)
        with self.lock:
            rows = self.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name}{where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            )
        return [Settlement(*row) for row in rows]

    def trades(self, market_id: int, *, limit: int = LIMIT_DEFAULT, offset: int = 0) -> list[TradeRecord]:
        """Return a market's trades, newest first (spec 6: /api/v1/trades and /trades/history)."""
        _check_page(limit, offset)
        with self.lock:
            rows = self.connection.query(
                f"SELECT {_TRADE_COLUMNS} FROM trades WHERE market_id = ? ORDER BY trade_id DESC LIMIT ? OFFSET ?",
                (market_id, limit, offset),
            )
        return [TradeRecord(*row) for row in rows]

    def klines(
        self,
        market_id: int,
        interval: str,
        start_ns: int,
        end_ns: int | None = None,
        *,
        limit: int = KLINES_LIMIT_MAX,
    ) -> list[Kline]:
        """Return the market's candles of `interval` (a Backpack name: 1m ... 1month) that
        start at or after `start_ns` and before `end_ns`, oldest first; only candles with
        trades (spec 6.1)."""
        found = KLINE_INTERVALS.get(interval)
        if found is None:
            raise QueryInvalid(f"unknown kline interval {interval!r}; expected one of {', '.join(KLINE_INTERVALS)}")
        _check_page(limit, 0, KLINES_LIMIT_MAX)
        _check_times(start_ns, end_ns)
        with self.lock:
            return aggregate(self._bars(market_id, found, start_ns, end_ns), found, limit)

    def window(self, market_id: int, start_ns: int, end_ns: int) -> Kline | None:
        """Return one candle of every trade of the market with start_ns <= time < end_ns
        (a rolling 24 h ticker), or None without trades. Exact at any nanosecond: whole
        minutes come from 1-minute bars, the partial minutes at either end from trades."""
        _check_times(start_ns, end_ns)
        minute_ns = MINUTE_S * NS_PER_S
        head_end = -(-start_ns // minute_ns) * minute_ns  # the first minute boundary at or after start
        tail_start = end_ns - end_ns % minute_ns
        pieces: list[Bar] = []
        with self.lock:
            if head_end >= tail_start:
                pieces.extend(self._trade_bars(market_id, start_ns, end_ns))
            else:
                pieces.extend(self._trade_bars(market_id, start_ns, head_end))
                pieces.extend(self._bars(market_id, KLINE_INTERVALS["1m"], head_end, tail_start))
                pieces.extend(self._trade_bars(market_id, tail_start, end_ns))
        if not pieces:
            return None
        return Kline(
            start_ns,
            end_ns,
            pieces[0][1],
            max(piece[2] for piece in pieces),
            min(piece[3] for piece in pieces),
            pieces[-1][4],
            sum(piece[5] for piece in pieces),
            sum(piece[6] for piece in pieces),
            sum(piece[7] for piece in pieces),
        )

    def _trade_bars(self, market_id: int, start_ns: int, end_ns: int) -> list[Bar]:
        """Return each trade with start_ns <= time < end_ns as a bar of its own, oldest first."""
        if start_ns >= end_ns:
            return []
        rows = self.connection.query(
            "SELECT timestamp_ns, price_ticks, quantity_steps, quote_atomic FROM trades "
            "WHERE market_id = ? AND timestamp_ns >= ? AND timestamp_ns < ? ORDER BY trade_id",
            (market_id, start_ns, end_ns),
        )
        return [(row[0], row[1], row[1], row[1], row[1], row[2], row[3], 1) for row in rows]

    def _bars(self, market_id: int, interval: KlineInterval, start_ns: int, end_ns: int | None) -> Iterator[Bar]:
        """Yield the bars of the candles asked for, page by page (keyset on start_ns)."""
        lower = interval.first_start_at_or_after(start_ns)
        upper = _BIGINT_MAX if end_ns is None else interval.first_start_at_or_after(end_ns)
        while lower < upper:
            page = self.connection.query(
                "SELECT start_ns, open_ticks, high_ticks, low_ticks, close_ticks, volume_steps, "
                "quote_volume_atomic, trades FROM kline_bars WHERE market_id = ? AND width_s = ? "
                "AND start_ns >= ? AND start_ns < ? ORDER BY start_ns LIMIT ?",
                (market_id, interval.bar_width_s, lower, upper, _BARS_PAGE),
            )
            for row in page:
                yield (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])
            if len(page) < _BARS_PAGE:
                return
            lower = int(page[-1][0]) + 1


def _connect(settings: StoreSettings, *, create: bool) -> Connection:
    if settings.backend == "sqlite":
        path = Path(settings.dsn)
        if not create and not path.exists():
            raise StoreError(f"no history store at {path}")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return _SqliteConnection(path)
    return _PostgresConnection(settings.dsn, settings.schema, create=create)


def open_store(settings: StoreSettings, *, create: bool = True) -> HistoryStore:
    """Open the history store (creating its tables when `create`); raise StoreError."""
    settings.validate()
    connection = _connect(settings, create=create)
    store = HistoryStore(connection, settings)
    try:
        if create:
            with connection.transaction():
                for statement in schema.create_statements(connection.dialect):
                    connection.execute(statement)
                # Only a new store gets this code's version: an older store keeps its own,
                # which tells catch-up to rebuild it.
                if not connection.query("SELECT 1 FROM meta"):
                    connection.execute(
                        "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (schema.SCHEMA_VERSION,)
                    )
                    connection.execute("INSERT INTO position (id, seq, timestamp_ns) VALUES (1, 0, 0)")
    except BaseException:
        connection.close()
        raise
    return store


def remove_store(settings: StoreSettings) -> None:
    """Delete a store that only a rebuild uses (its staging store); never the live one's history."""
    settings.validate()
    if settings.backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(settings.dsn + suffix).unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(settings.dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.schema)))


def store_exists(settings: StoreSettings) -> bool:
    """Return whether a store exists where `settings` point."""
    settings.validate()
    if settings.backend == "sqlite":
        return Path(settings.dsn).exists()
    import psycopg

    with psycopg.connect(settings.dsn, autocommit=True) as connection:
        row = connection.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (settings.schema,)
        ).fetchone()
    return row is not None


def swap_in(staging: StoreSettings, live: StoreSettings) -> StoreSettings | None:
    """Make the store built at `staging` the live one, atomically; keep the replaced store
    as `live.previous()` (replacing an older previous one). Return where the replaced store
    is now, or None when there was none. Nothing must have either store open."""
    previous = live.previous()
    if live.backend == "sqlite":
        live_path, staging_path, previous_path = Path(live.dsn), Path(staging.dsn), Path(previous.dsn)
        for path in (staging_path, live_path):
            _close_cleanly(path)
        had_live = live_path.exists()
        if had_live:
            # A hard link keeps the old store under its new name while the live name
            # moves, in one rename, from the old file to the new one.
            link = Path(str(previous_path) + ".link")
            link.unlink(missing_ok=True)
            os.link(live_path, link)
            os.replace(link, previous_path)
        os.replace(staging_path, live_path)
        _fsync_directory(live_path.parent)
        return previous if had_live else None
    import psycopg
    from psycopg import sql

    with psycopg.connect(live.dsn, autocommit=True) as connection, connection.transaction():
        had_live = (
            connection.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (live.schema,)
            ).fetchone()
            is not None
        )
        # DDL is transactional in PostgreSQL: readers see the old schema or the new one.
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(previous.schema)))
        if had_live:
            connection.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(live.schema), sql.Identifier(previous.schema)
                )
            )
        connection.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(staging.schema), sql.Identifier(live.schema))
        )
    return previous if had_live else None


def _close_cleanly(path: Path) -> None:
    """Fold a SQLite file's write-ahead log into it, so that the file alone is the store."""
    if not path.exists():
        return
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    if Path(str(path) + "-wal").exists():
        raise StoreError(f"{path} is still open in another process; stop it before a rebuild")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
