"""The history store's tables: one definition, rendered for SQLite and for PostgreSQL.

Every column is an integer (atomic units, ticks, steps, ids, nanosecond timestamps,
enum numbers) except the symbols of assets and markets. Decimal strings, status names
and ISO times are the gateway's business. Each table has a primary key that makes its
rows unique and gives the canonical order `HistoryStore.dump` reads them in.

Adding a kind of history (deposits, withdrawals, funding payments, interest, position
changes) is adding a `Table` here and a handler in projector.py, never altering an
existing table: a store written by an older schema version is rebuilt from the log at
the next start (catchup.py), which fills the new table from the whole history.

Imports: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bump when a table is added or changed: stores of another version are rebuilt from the log.
SCHEMA_VERSION = 1

INT = "int"
TEXT = "text"


@dataclass(frozen=True, slots=True)
class Table:
    """One table: columns (name, INT or TEXT) in order, its primary key and secondary indexes."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


def _ints(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, INT) for name in names)


META = Table("meta", (("name", TEXT), ("value", INT)), ("name",))
# One row (id 1): the last command projected, so catch-up knows where to go on.
POSITION = Table("position", _ints("id", "seq", "timestamp_ns"), ("id",))
ASSETS = Table(
    "assets",
    (("asset_id", INT), ("symbol", TEXT), *_ints("decimals", "listed_seq", "listed_ns")),
    ("asset_id",),
)
MARKETS = Table(
    "markets",
    (
        ("market_id", INT),
        ("symbol", TEXT),
        *_ints(
            "base_asset_id",
            "quote_asset_id",
            "tick_atomic",
            "step_atomic",
            "lot_atomic",
            "kind",
            "listed_seq",
            "listed_ns",
        ),
    ),
    ("market_id",),
)
ACCOUNTS = Table("accounts", _ints("account_id", "created_seq", "created_ns"), ("account_id",))
# One row per accepted order, updated as it trades and ends; never deleted.
ORDERS = Table(
    "orders",
    _ints(
        "order_id",
        "account_id",
        "market_id",
        "side",  # keel.core.orders.Side
        "order_type",  # OrderType
        "time_in_force",  # TimeInForce
        "price_ticks",  # 0 for a market order
        "quantity_steps",  # 0 for a market order by quote quantity
        "quote_quantity_atomic",  # 0 unless a market order by quote quantity
        "client_id",  # -1: none
        "post_only",  # 0 or 1
        "self_trade_prevention",  # SelfTradePrevention
        "status",  # OrderStatus
        "executed_steps",
        "executed_quote_atomic",  # sum of price x quantity x lot over its fills, fees excluded
        "fee_atomic",  # fees it paid (negative: rebates), in the quote asset
        "cancelled_steps",  # what it gave up when it was cancelled or expired
        "end_reason",  # EndReason when Cancelled or Expired, else -1
        "created_seq",
        "created_ns",
        "updated_seq",
        "updated_ns",
    ),
    ("order_id",),
    (("account_id", "order_id"), ("account_id", "market_id", "order_id")),
)
# Append-only: one row per status change of an order (New, PartiallyFilled, Filled,
# Cancelled, Expired). `event_index` is the position in the command's events of the
# event that caused it (the number of events, for a Filled implied at the command's end).
ORDER_UPDATES = Table(
    "order_updates",
    _ints(
        "order_id",
        "seq",
        "event_index",
        "account_id",
        "status",
        "executed_steps",
        "executed_quote_atomic",
        "end_reason",
        "timestamp_ns",
    ),
    ("order_id", "seq", "event_index"),
    (("account_id", "seq"),),
)
# One row per account side of each trade (two for a trade, even a self-trade).
FILLS = Table(
    "fills",
    _ints(
        "trade_id",
        "is_maker",  # 0 or 1
        "order_id",
        "account_id",
        "market_id",
        "side",
        "price_ticks",
        "quantity_steps",
        "quote_atomic",
        "fee_atomic",
        "fee_asset_id",
        "client_id",
        "seq",
        "timestamp_ns",
    ),
    ("trade_id", "is_maker"),
    (("account_id", "trade_id"), ("account_id", "market_id", "trade_id"), ("order_id",)),
)
TRADES = Table(
    "trades",
    _ints(
        "trade_id",
        "market_id",
        "price_ticks",
        "quantity_steps",
        "quote_atomic",
        "taker_side",
        "taker_order_id",
        "maker_order_id",
        "seq",
        "timestamp_ns",
    ),
    ("trade_id",),
    (("market_id", "trade_id"), ("market_id", "timestamp_ns")),
)
LEDGER_LINES = Table(
    "ledger_lines",
    _ints(
        "entry_id",
        "line_no",
        "reason",  # keel.core.events.EntryReason
        "reference",  # the trade id for a trade, else the command's seq
        "account_id",
        "asset_id",
        "amount_atomic",
        "seq",
        "timestamp_ns",
    ),
    ("entry_id", "line_no"),
    (("account_id", "entry_id"), ("account_id", "asset_id", "entry_id")),
)
# Candles of width 60 s, 3,600 s and 86,400 s, kept as trades arrive; every Backpack
# interval is an exact aggregation of one of them (klines.py).
KLINE_BARS = Table(
    "kline_bars",
    _ints(
        "market_id",
        "width_s",
        "start_ns",
        "open_ticks",
        "high_ticks",
        "low_ticks",
        "close_ticks",
        "volume_steps",
        "quote_volume_atomic",
        "trades",
        "first_trade_id",
        "last_trade_id",
    ),
    ("market_id", "width_s", "start_ns"),
)

TABLES: tuple[Table, ...] = (
    META,
    POSITION,
    ASSETS,
    MARKETS,
    ACCOUNTS,
    ORDERS,
    ORDER_UPDATES,
    FILLS,
    TRADES,
    LEDGER_LINES,
    KLINE_BARS,
)
TABLES_BY_NAME = {table.name: table for table in TABLES}

_TYPES = {
    "sqlite": {INT: "INTEGER NOT NULL", TEXT: "TEXT NOT NULL"},
    "postgres": {INT: "BIGINT NOT NULL", TEXT: "TEXT NOT NULL"},
}


def create_statements(dialect: str) -> list[str]:
    """Return the CREATE TABLE and CREATE INDEX statements of every table (idempotent)."""
    types = _TYPES[dialect]
    suffix = " STRICT" if dialect == "sqlite" else ""
    statements = []
    for table in TABLES:
        columns = ", ".join(f"{name} {types[kind]}" for name, kind in table.columns)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, PRIMARY KEY ({', '.join(table.key)})){suffix}"
        )
        for index in table.indexes:
            name = f"{table.name}_by_{'_'.join(index)}"
            statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(index)})")
    return statements


def insert_statement(table: Table, *, upsert: bool = False) -> str:
    """Return an INSERT of every column (`?` placeholders); with `upsert`, one that
    replaces the non-key columns of an existing row with the same key."""
    names = table.column_names
    text = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    if upsert:
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in table.key)
        text += f" ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}"
    return text
