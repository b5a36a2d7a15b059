"""The history store's tables: one definition, rendered for SQLite and for PostgreSQL.

Every column is an integer (atomic units, ticks, steps, ids, nanosecond timestamps,
enum numbers) except the symbols of assets and markets and the words operators and
chains supply (chain names, transaction ids, addresses, reasons, operators). Decimal
strings, status names and ISO times are the gateway's business. Each table has a primary key that makes its
rows unique and gives the canonical order `HistoryStore.dump` reads them in.

Adding a kind of history (deposits, withdrawals, funding payments, interest, position
changes, settlements) is adding a `Table` here and a handler in projector.py; a new fact about rows
an existing table already has is a column appended at its end (never a change to an
existing column). Either raises SCHEMA_VERSION: a store written by an older schema
version is rebuilt from the log at the next start (catchup.py), which fills the new
tables and columns from the whole history.

Imports: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bump when a table is added or changed: stores of another version are rebuilt from the log.
# 2: deposits, operator credits, withdrawals, funding, position changes, liquidations,
#    market states, maintenance, adjustments and withdrawal freezes.
# 3: orders' reduce-only flag and trigger terms, trigger orders' own statuses, withdrawals'
#    client ids; borrow/lend movements and positions, interest rounds and payments.
# 4: perpetual positions (one row per run from flat to flat) and settlements.
# 5: settlements of collateral a liquidation gave the insurance fund, and of adjustments.
# 6: orders' attached take-profit and stop-loss terms.
# 7: orders' parent order (a take-profit or stop-loss its parent's first fill created).
SCHEMA_VERSION = 7

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
        # version 3
        "reduce_only",  # 0 or 1
        "trigger_price_ticks",  # 0: not a trigger order
        "trigger_by",  # keel.core.triggers.TriggerBy; -1 unless a trigger order
        "triggered_ns",  # when its trigger fired (or failed); 0 before
        # version 6: the take-profit and stop-loss the order carried (PlaceOrder's fields),
        # kept for its whole life: the engine forgets them at its first fill, when it
        # creates them as trigger orders of their own. Trigger price 0: none (its limit
        # price is then 0 and its trigger-by -1); limit price 0: a market order.
        "take_profit_trigger_ticks",
        "take_profit_limit_ticks",
        "take_profit_trigger_by",  # keel.core.triggers.TriggerBy; -1 unless a take-profit
        "stop_loss_trigger_ticks",
        "stop_loss_limit_ticks",
        "stop_loss_trigger_by",  # keel.core.triggers.TriggerBy; -1 unless a stop-loss
        # version 7: for a take-profit or stop-loss its parent's first fill created, the
        # parent's order id (TriggerAccepted's parent_order_id; the API's relatedOrderId),
        # kept when it fires and its order is placed; 0 for every other order.
        "parent_order_id",
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

# ---- schema version 2: value crossing the boundary, perpetuals, market states ----------
# One row per deposit a chain watcher reported (transfers.py), updated as it is confirmed,
# credited or rejected; `entry_id` is its ledger entry once credited (-1 before).
DEPOSITS = Table(
    "deposits",
    (
        *_ints("deposit_id", "account_id", "asset_id", "amount_atomic"),
        ("chain", TEXT),
        ("tx_id", TEXT),
        *_ints(
            "output_index",
            "confirmations",
            "status",  # keel.core.transfers.DepositStatus
            "entry_id",
            "created_seq",
            "created_ns",
            "updated_seq",
            "updated_ns",
        ),
    ),
    ("deposit_id",),
    (("account_id", "deposit_id"),),
)
# Append-only: every DepositUpdated (a status or confirmation change).
DEPOSIT_UPDATES = Table(
    "deposit_updates",
    _ints("deposit_id", "seq", "event_index", "account_id", "status", "confirmations", "timestamp_ns"),
    ("deposit_id", "seq", "event_index"),
    (("account_id", "seq"),),
)
# Operator credits (the `Credit` command, ledger reason deposit): funds that arrived
# without a chain deposit; the API lists them with the deposits (source administrator).
CREDITS = Table(
    "credits",
    _ints("entry_id", "account_id", "asset_id", "amount_atomic", "seq", "timestamp_ns"),
    ("entry_id",),
    (("account_id", "entry_id"),),
)
# One row per withdrawal with its current status; `entry_id` is its ledger entry once
# completed (-1 before and for the other ends).
WITHDRAWALS = Table(
    "withdrawals",
    (
        *_ints("withdrawal_id", "account_id", "asset_id", "amount_atomic", "fee_atomic"),
        ("chain", TEXT),
        ("address", TEXT),
        ("tx_id", TEXT),
        ("status", INT),  # keel.core.transfers.WithdrawalStatus
        ("reason", TEXT),
        *_ints("entry_id", "created_seq", "created_ns", "updated_seq", "updated_ns"),
        ("client_id", INT),  # version 3: the user's own tag (the API's clientId); -1: none
    ),
    ("withdrawal_id",),
    (("account_id", "withdrawal_id"), ("status", "withdrawal_id")),
)
# Append-only: every status change of a withdrawal, with who made it ("" for the user)
# and the transaction id and reason as they stood after it.
WITHDRAWAL_UPDATES = Table(
    "withdrawal_updates",
    (
        *_ints("withdrawal_id", "seq", "event_index", "account_id", "status"),
        ("operator", TEXT),
        ("tx_id", TEXT),
        ("reason", TEXT),
        ("timestamp_ns", INT),
    ),
    ("withdrawal_id", "seq", "event_index"),
    (("account_id", "seq"),),
)
# One row per funding round of a perpetual (FundingSettled); `entry_id` is the round's
# ledger entry (-1 when nobody paid: a zero rate or no positions).
FUNDING_ROUNDS = Table(
    "funding_rounds",
    _ints(
        "market_id",
        "seq",
        "rate_e9",  # > 0: longs paid shorts; units of 1e-9 per round
        "mark_ticks",
        "index_ticks",
        "paid_atomic",
        "received_atomic",
        "positions",
        "entry_id",
        "timestamp_ns",
    ),
    ("market_id", "seq"),
)
# One row per line of a funding entry: what each account paid (< 0) or received (> 0);
# the insurance fund's line is the round's rounding.
FUNDING_PAYMENTS = Table(
    "funding_payments",
    _ints(
        "entry_id", "line_no", "account_id", "market_id", "asset_id", "amount_atomic", "rate_e9", "seq", "timestamp_ns"
    ),
    ("entry_id", "line_no"),
    (("account_id", "entry_id"), ("account_id", "market_id", "entry_id")),
)
# Append-only: every PositionChanged (a trade, or auto-deleveraging: trade_id 0).
POSITION_CHANGES = Table(
    "position_changes",
    _ints(
        "seq",
        "event_index",
        "account_id",
        "market_id",
        "size_before_steps",
        "size_after_steps",
        "cost_after_atomic",
        "realized_pnl_atomic",
        "trade_id",
        "timestamp_ns",
    ),
    ("seq", "event_index"),
    (("account_id", "seq"), ("account_id", "market_id", "seq")),
)
LIQUIDATIONS = Table(
    "liquidations",
    _ints("seq", "event_index", "account_id", "equity_atomic", "maintenance_atomic", "timestamp_ns"),
    ("seq", "event_index"),
    (("account_id", "seq"),),
)
MARKET_STATE_CHANGES = Table(
    "market_state_changes",
    (
        *_ints("seq", "event_index", "market_id", "state_before", "state"),  # keel.core.markets.MarketState
        ("reason", TEXT),
        ("operator", TEXT),
        ("timestamp_ns", INT),
    ),
    ("seq", "event_index"),
    (("market_id", "seq"),),
)
# Append-only: a schedule recorded (kind 0: text = announcement), cancelled (1: text =
# reason), a step applied (2) or blocked (3: text = the problem); records.MaintenanceKind.
MAINTENANCE_EVENTS = Table(
    "maintenance_events",
    (
        *_ints("seq", "event_index", "schedule_id", "kind", "step", "state"),  # step, state -1: none
        ("text", TEXT),
        ("operator", TEXT),
        ("timestamp_ns", INT),
    ),
    ("seq", "event_index"),
    (("schedule_id", "seq"),),
)
# The steps of each schedule as recorded: one row per (step, market); market -1: every market.
MAINTENANCE_STEPS = Table(
    "maintenance_steps",
    _ints("schedule_id", "step", "market_id", "time_ns", "state"),
    ("schedule_id", "step", "market_id"),
)
ADJUSTMENTS = Table(
    "adjustments",
    (
        *_ints("seq", "event_index", "account_id", "asset_id", "amount_atomic"),
        ("incident", TEXT),
        ("operator", TEXT),
        *_ints("entry_id", "timestamp_ns"),
    ),
    ("seq", "event_index"),
    (("account_id", "seq"),),
)
WITHDRAWAL_FREEZES = Table(
    "withdrawal_freezes",
    (*_ints("seq", "event_index", "frozen"), ("reason", TEXT), ("operator", TEXT), ("timestamp_ns", INT)),
    ("seq", "event_index"),
)

# ---- schema version 3: borrowing, lending and interest (keel/core/lending.py) ---------
# A borrow/lend position is one run of an account's lend (or borrow) of an asset, from the
# command that opened it to the one that brought it back to zero; `opened_seq` names it.
# `quantity_atomic` is its size now (interest included), `interest_atomic` what it paid
# (borrow) or earned (lend) in interest, `rate_e9_sum` the sum of the yearly rates of the
# hourly rounds it took part in (their average is the position's average rate).
BORROW_LEND_POSITIONS = Table(
    "borrow_lend_positions",
    _ints(
        "account_id",
        "asset_id",
        "opened_seq",
        "side",  # keel.core.lending.BorrowLendSide
        "quantity_atomic",
        "interest_atomic",
        "rate_e9_sum",
        "interest_rounds",
        "closed_seq",  # -1 while open
        "opened_ns",
        "updated_seq",
        "updated_ns",
    ),
    ("account_id", "asset_id", "opened_seq"),
    (("account_id", "closed_seq"),),
)
# Append-only: what a BorrowLend command did to a position (a Lend that first repays a
# borrow is two rows, part 0 the repayment and part 1 the lend; likewise a Borrow that
# first redeems a lend). `quantity_after_atomic` is the position's size after it.
BORROW_LEND_MOVES = Table(
    "borrow_lend_moves",
    _ints(
        "seq",
        "event_index",
        "part",
        "account_id",
        "asset_id",
        "kind",  # records.BorrowLendKind
        "amount_atomic",
        "position_seq",  # the opened_seq of the position it moved
        "quantity_after_atomic",
        "entry_id",  # its ledger entry (reason borrow_lend, or liquidation; -1 for a takeover by the fund)
        "timestamp_ns",
    ),
    ("seq", "event_index", "part"),
    (("account_id", "seq"),),
)
# One row per hourly interest accrual of an asset (InterestAccrued); `entry_id` is the
# entry paying the spread to the fee account (-1 when there was none).
INTEREST_ROUNDS = Table(
    "interest_rounds",
    _ints(
        "asset_id",
        "seq",
        "rate_e9",  # the yearly borrow rate
        "borrowed_atomic",
        "lent_atomic",
        "paid_atomic",
        "to_lenders_atomic",
        "spread_atomic",
        "entry_id",
        "timestamp_ns",
    ),
    ("asset_id", "seq"),
)
# One row per share of an interest round (InterestAccrued.payments): borrowers < 0 (their
# borrow grew), lenders > 0 (their lend grew), and the fee account's spread (account -2,
# position -1), so a round's rows sum to zero. `rate_e9` is the yearly rate of that side:
# the borrow rate, or for a lender what the round paid lenders as a yearly rate of what
# they lent (0 for the fee account).
INTEREST_PAYMENTS = Table(
    "interest_payments",
    _ints("seq", "asset_id", "account_id", "amount_atomic", "rate_e9", "position_seq", "timestamp_ns"),
    ("seq", "asset_id", "account_id"),
    (("account_id", "seq"),),
)

# ---- schema version 4: perpetual positions and settlements ----------------------------
# A perpetual position is one run of an account's position in a market, from the
# PositionChanged that took it from flat to the one that brought it back to flat; a flip
# through zero closes one and opens the next in the same change. That opening change,
# (opened_seq, opened_index), names it. Quantities are steps, amounts the quote asset's
# atomic units; notionals are price x quantity x lot of the fills that opened (or added
# to) and closed it, so their quotients by the steps are average prices.
PERP_POSITIONS = Table(
    "perp_positions",
    _ints(
        "account_id",
        "market_id",
        "opened_seq",
        "opened_index",
        "size_steps",  # signed (long > 0) now; 0 once closed
        "cost_atomic",  # the signed entry cost left now (perps.py); 0 once closed
        "opened_steps",  # every quantity that opened or added to it
        "opened_notional_atomic",
        "closed_steps",  # every quantity that reduced or closed it
        "closed_notional_atomic",
        "realized_pnl_atomic",  # before fees
        "fees_atomic",  # the fees of its fills (a flip's fill: the position it closed)
        "funding_atomic",  # received > 0, paid < 0
        "liquidated_steps",  # closed by its account's liquidation (close-out or auto-deleveraging)
        "closed_seq",  # -1 while open
        "opened_ns",
        "closed_ns",  # 0 while open
        "updated_seq",
        "updated_ns",
    ),
    ("account_id", "market_id", "opened_seq", "opened_index"),
    (("account_id", "opened_seq"),),
)
# One row per value an account's balance received or gave up by settlement: a position
# change's realized PnL (line_no 0; the position it belongs to), and each user line of an
# entry covering a liquidation's deficit (reason insurance or adl; no market or position).
# `source` is records.SettlementSource.
SETTLEMENTS = Table(
    "settlements",
    _ints(
        "seq",
        "event_index",
        "line_no",
        "account_id",
        "asset_id",
        "amount_atomic",
        "source",
        "market_id",  # -1: none
        "position_seq",  # the position's opened_seq and opened_index; -1: none
        "position_index",
        "timestamp_ns",
    ),
    ("seq", "event_index", "line_no"),
    (("account_id", "seq"),),
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
    DEPOSITS,
    DEPOSIT_UPDATES,
    CREDITS,
    WITHDRAWALS,
    WITHDRAWAL_UPDATES,
    FUNDING_ROUNDS,
    FUNDING_PAYMENTS,
    POSITION_CHANGES,
    LIQUIDATIONS,
    MARKET_STATE_CHANGES,
    MAINTENANCE_EVENTS,
    MAINTENANCE_STEPS,
    ADJUSTMENTS,
    WITHDRAWAL_FREEZES,
    BORROW_LEND_POSITIONS,
    BORROW_LEND_MOVES,
    INTEREST_ROUNDS,
    INTEREST_PAYMENTS,
    PERP_POSITIONS,
    SETTLEMENTS,
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
