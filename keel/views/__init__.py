"""History views: engine events projected into a history store (SQLite or PostgreSQL).

Everything a user reads about the past (orders with every status change, fills, ledger
lines, trades, klines, deposits, withdrawals, funding, position changes, liquidations,
market states, maintenance, adjustments, borrow/lend movements and positions, interest,
perpetual positions and settlements) is
read from here, and all of it can be rebuilt from the command
log with identical contents. docs/views.md describes the schema and the rules.

- store.py: `HistoryStore` (tables, queries), `open_store`, `StoreSettings`
- projector.py: `Projector.apply(items)`, one transaction per batch, idempotent
- writer.py: `ViewsWriter`, the sequencer listener with a thread of its own
- catchup.py: `CatchUp` (during a node's recovery) and `rebuild` (from genesis)
- klines.py, records.py, schema.py: intervals, query results, table definitions

Imports: keel.core (and psycopg, only for a PostgreSQL store).
"""

from keel.views.catchup import CatchUp, CatchUpReport, RebuildReport, ViewsMismatch, rebuild
from keel.views.klines import KLINE_INTERVALS
from keel.views.projector import Item, Projector, ViewsGap
from keel.views.records import (
    NO_ENTRY,
    NO_MARKET,
    NO_POSITION,
    ORDER_STATUS_NAMES,
    TRIGGER_FAILED,
    TRIGGER_PENDING,
    Adjustment,
    BorrowLendKind,
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
    MaintenanceKind,
    MaintenanceStep,
    MarketStateChange,
    OrderRecord,
    OrderUpdate,
    PerpPosition,
    Position,
    PositionChange,
    Settlement,
    SettlementSource,
    TradeRecord,
    WithdrawalFreeze,
    WithdrawalRecord,
    WithdrawalUpdate,
)
from keel.views.store import (
    KLINES_LIMIT_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    HistoryStore,
    QueryInvalid,
    StoreError,
    StoreSettings,
    open_store,
    settings_for,
)
from keel.views.writer import ViewsFailed, ViewsWriter

__all__ = [
    "KLINES_LIMIT_MAX",
    "KLINE_INTERVALS",
    "LIMIT_DEFAULT",
    "LIMIT_MAX",
    "NO_ENTRY",
    "NO_MARKET",
    "NO_POSITION",
    "ORDER_STATUS_NAMES",
    "TRIGGER_FAILED",
    "TRIGGER_PENDING",
    "Adjustment",
    "BorrowLendKind",
    "BorrowLendMove",
    "BorrowLendPosition",
    "CatchUp",
    "CatchUpReport",
    "CreditRecord",
    "DepositRecord",
    "DepositUpdate",
    "FillRecord",
    "FundingPayment",
    "FundingRound",
    "FundsIn",
    "HistoryStore",
    "InterestPayment",
    "InterestRound",
    "Item",
    "Kline",
    "LedgerLine",
    "Liquidation",
    "MaintenanceEvent",
    "MaintenanceKind",
    "MaintenanceStep",
    "MarketStateChange",
    "OrderRecord",
    "OrderUpdate",
    "PerpPosition",
    "Position",
    "PositionChange",
    "Projector",
    "QueryInvalid",
    "RebuildReport",
    "Settlement",
    "SettlementSource",
    "StoreError",
    "StoreSettings",
    "TradeRecord",
    "ViewsFailed",
    "ViewsGap",
    "ViewsMismatch",
    "ViewsWriter",
    "WithdrawalFreeze",
    "WithdrawalRecord",
    "WithdrawalUpdate",
    "open_store",
    "rebuild",
    "settings_for",
]
