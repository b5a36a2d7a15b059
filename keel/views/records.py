"""What the history store's queries return: frozen msgspec Structs of integers.

Fields carry the schema's column names (schema.py) and units; enum-valued fields hold the
core's enum numbers (`keel.core.orders.Side`, `OrderType`, `TimeInForce`,
`SelfTradePrevention`, `EndReason`, `keel.core.events.EntryReason`,
`keel.core.transfers.DepositStatus` and `WithdrawalStatus`, `keel.core.markets.MarketState`,
`MaintenanceKind` below) and order statuses `OrderStatus`, whose names in the API (spec
section 3) are `ORDER_STATUS_NAMES`. The
gateway turns ticks, steps and atomic units into decimal strings and nanoseconds into
the units each endpoint uses.

Imports: keel.core.orders.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from keel.core.orders import OrderStatus

# A trigger order's statuses before it is placed (spec 8.3). The core keeps a pending
# trigger apart from orders and has no OrderStatus for them, so history numbers them
# after the core's statuses; an OrderStatus never takes these values.
TRIGGER_PENDING: Final = 5
TRIGGER_FAILED: Final = 6
assert max(OrderStatus) < TRIGGER_PENDING

# The spec's order status names (section 8.3), by the status numbers the store keeps.
ORDER_STATUS_NAMES: Final = {
    OrderStatus.NEW: "New",
    OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    OrderStatus.FILLED: "Filled",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.EXPIRED: "Expired",
    TRIGGER_PENDING: "TriggerPending",
    TRIGGER_FAILED: "TriggerFailed",
}
OPEN_STATUSES: Final = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
NO_END_REASON: Final = -1


def is_open_status(status: int) -> bool:
    """Return whether an order with this status may still trade."""
    return status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class _Record(msgspec.Struct, frozen=True, gc=False):
    pass


class Position(_Record, frozen=True):
    """The last command the store has projected (0, 0 for an empty store)."""

    seq: int
    timestamp_ns: int


class OrderRecord(_Record, frozen=True):
    """An order as history knows it: every accepted order, in any status."""

    order_id: int
    account_id: int
    market_id: int
    side: int
    order_type: int
    time_in_force: int
    price_ticks: int  # 0 for a market order
    quantity_steps: int  # 0 for a market order by quote quantity
    quote_quantity_atomic: int  # 0 unless a market order by quote quantity
    client_id: int  # -1: none
    post_only: bool
    self_trade_prevention: int
    status: int  # OrderStatus
    executed_steps: int
    executed_quote_atomic: int
    fee_atomic: int
    cancelled_steps: int
    end_reason: int  # EndReason, or -1 while open or once Filled
    created_seq: int
    created_ns: int
    updated_seq: int
    updated_ns: int
    reduce_only: bool
    trigger_price_ticks: int  # 0: not a trigger order
    trigger_by: int  # keel.core.triggers.TriggerBy; -1 unless a trigger order
    triggered_ns: int  # when its trigger fired or failed; 0 before
    # The take-profit and stop-loss it carried, for its whole life (trigger price 0: none,
    # and then its limit price 0 and trigger-by -1; limit price 0: a market order).
    take_profit_trigger_ticks: int
    take_profit_limit_ticks: int
    take_profit_trigger_by: int  # keel.core.triggers.TriggerBy; -1 unless a take-profit
    stop_loss_trigger_ticks: int
    stop_loss_limit_ticks: int
    stop_loss_trigger_by: int  # keel.core.triggers.TriggerBy; -1 unless a stop-loss
    parent_order_id: int  # a take-profit or stop-loss: the order whose first fill created it; 0: none


class OrderUpdate(_Record, frozen=True):
    """One status change of an order."""

    order_id: int
    seq: int
    event_index: int
    account_id: int
    status: int
    executed_steps: int
    executed_quote_atomic: int
    end_reason: int
    timestamp_ns: int


class FillRecord(_Record, frozen=True):
    """One account's side of a trade."""

    trade_id: int
    is_maker: bool
    order_id: int
    account_id: int
    market_id: int
    side: int
    price_ticks: int
    quantity_steps: int
    quote_atomic: int
    fee_atomic: int  # negative: a rebate
    fee_asset_id: int
    client_id: int  # -1: none
    seq: int
    timestamp_ns: int


class TradeRecord(_Record, frozen=True):
    """A public trade of a market."""

    trade_id: int
    market_id: int
    price_ticks: int
    quantity_steps: int
    quote_atomic: int
    taker_side: int  # the buyer was the maker when the taker sold (Backpack's isBuyerMaker)
    taker_order_id: int
    maker_order_id: int
    seq: int
    timestamp_ns: int


class LedgerLine(_Record, frozen=True):
    """One line of a balanced journal entry."""

    entry_id: int
    line_no: int
    reason: int  # EntryReason
    reference: int
    account_id: int
    asset_id: int
    amount_atomic: int
    seq: int
    timestamp_ns: int


class Kline(_Record, frozen=True):
    """One candle: trades with start_ns <= time < end_ns."""

    start_ns: int
    end_ns: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    volume_steps: int
    quote_volume_atomic: int
    trades: int


@enum.unique
class MaintenanceKind(enum.IntEnum):
    """What a `maintenance_events` row records."""

    SCHEDULED = 0  # text: the announcement
    CANCELLED = 1  # text: the reason
    STEP_APPLIED = 2
    STEP_BLOCKED = 3  # text: why the step could not be applied yet


NO_ENTRY: Final = -1  # entry_id of a deposit not credited, a withdrawal not completed, a round nobody paid


class DepositRecord(_Record, frozen=True):
    """A deposit a chain watcher reported, with its current status."""

    deposit_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    chain: str
    tx_id: str
    output_index: int
    confirmations: int
    status: int  # DepositStatus
    entry_id: int  # its ledger entry once credited, else -1
    created_seq: int
    created_ns: int
    updated_seq: int
    updated_ns: int


class DepositUpdate(_Record, frozen=True):
    deposit_id: int
    seq: int
    event_index: int
    account_id: int
    status: int
    confirmations: int
    timestamp_ns: int


class CreditRecord(_Record, frozen=True):
    """An operator credit (the Credit command): funds in without a chain deposit."""

    entry_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    seq: int
    timestamp_ns: int


class FundsIn(_Record, frozen=True):
    """One line of an account's deposit history: a chain deposit (`deposit_id` > 0) or an
    operator credit (`deposit_id` 0, `entry_id` its ledger entry)."""

    deposit_id: int
    entry_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    chain: str  # "" for a credit
    tx_id: str
    status: int  # DepositStatus (CREDITED for a credit)
    created_ns: int


class WithdrawalRecord(_Record, frozen=True):
    """A withdrawal with its current status."""

    withdrawal_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    fee_atomic: int
    chain: str
    address: str
    tx_id: str  # "" until sent
    status: int  # WithdrawalStatus
    reason: str  # why it was rejected or failed
    entry_id: int  # its ledger entry once completed, else -1
    created_seq: int
    created_ns: int
    updated_seq: int
    updated_ns: int
    client_id: int  # the user's own tag (the API's clientId); -1: none


class WithdrawalUpdate(_Record, frozen=True):
    withdrawal_id: int
    seq: int
    event_index: int
    account_id: int
    status: int
    operator: str  # "" for the user's own steps
    tx_id: str
    reason: str
    timestamp_ns: int


class FundingRound(_Record, frozen=True):
    market_id: int
    seq: int
    rate_e9: int
    mark_ticks: int
    index_ticks: int
    paid_atomic: int
    received_atomic: int
    positions: int
    entry_id: int
    timestamp_ns: int


class FundingPayment(_Record, frozen=True):
    """One account's funding in one round: amount < 0 paid, > 0 received."""

    entry_id: int
    line_no: int
    account_id: int
    market_id: int
    asset_id: int
    amount_atomic: int
    rate_e9: int
    seq: int
    timestamp_ns: int


class PositionChange(_Record, frozen=True):
    seq: int
    event_index: int
    account_id: int
    market_id: int
    size_before_steps: int
    size_after_steps: int
    cost_after_atomic: int
    realized_pnl_atomic: int
    trade_id: int  # 0: not from a trade (auto-deleveraging)
    timestamp_ns: int


class Liquidation(_Record, frozen=True):
    seq: int
    event_index: int
    account_id: int
    equity_atomic: int
    maintenance_atomic: int
    timestamp_ns: int


class MarketStateChange(_Record, frozen=True):
    seq: int
    event_index: int
    market_id: int
    state_before: int
    state: int
    reason: str
    operator: str
    timestamp_ns: int


class MaintenanceEvent(_Record, frozen=True):
    seq: int
    event_index: int
    schedule_id: int
    kind: int  # MaintenanceKind
    step: int  # -1 unless a step event
    state: int  # -1 unless a step event
    text: str
    operator: str
    timestamp_ns: int


class MaintenanceStep(_Record, frozen=True):
    schedule_id: int
    step: int
    market_id: int  # -1: every market
    time_ns: int
    state: int


class Adjustment(_Record, frozen=True):
    seq: int
    event_index: int
    account_id: int
    asset_id: int
    amount_atomic: int  # > 0 credited, < 0 debited
    incident: str
    operator: str
    entry_id: int
    timestamp_ns: int


class WithdrawalFreeze(_Record, frozen=True):
    seq: int
    event_index: int
    frozen: bool
    reason: str
    operator: str
    timestamp_ns: int


@enum.unique
class BorrowLendKind(enum.IntEnum):
    """What a borrow/lend movement did (Backpack's BorrowLendEventType)."""

    BORROW = 0
    BORROW_REPAY = 1
    LEND = 2
    LEND_REDEEM = 3


NO_POSITION: Final = -1  # closed_seq of an open position; position_seq of the fee account's interest


class BorrowLendPosition(_Record, frozen=True):
    """One run of an account's lend or borrow of an asset (schema.BORROW_LEND_POSITIONS)."""

    account_id: int
    asset_id: int
    opened_seq: int
    side: int  # keel.core.lending.BorrowLendSide
    quantity_atomic: int
    interest_atomic: int  # paid (borrow) or earned (lend), >= 0
    rate_e9_sum: int
    interest_rounds: int
    closed_seq: int  # -1 while open
    opened_ns: int
    updated_seq: int
    updated_ns: int


class BorrowLendMove(_Record, frozen=True):
    seq: int
    event_index: int
    part: int
    account_id: int
    asset_id: int
    kind: int  # BorrowLendKind
    amount_atomic: int
    position_seq: int
    quantity_after_atomic: int
    entry_id: int
    timestamp_ns: int


class InterestRound(_Record, frozen=True):
    asset_id: int
    seq: int
    rate_e9: int
    borrowed_atomic: int
    lent_atomic: int
    paid_atomic: int
    to_lenders_atomic: int
    spread_atomic: int
    entry_id: int
    timestamp_ns: int


class InterestPayment(_Record, frozen=True):
    """One position's share of an interest round: < 0 paid by a borrower, > 0 earned by a lender."""

    seq: int
    asset_id: int
    account_id: int
    amount_atomic: int
    rate_e9: int
    position_seq: int
    timestamp_ns: int


@enum.unique
class SettlementSource(enum.IntEnum):
    """Why a settlement moved an account's balance (schema.SETTLEMENTS)."""

    REALIZED_PNL = 0  # a trade's realized PnL (a liquidation's close-out trades included)
    ADL = 1  # auto-deleveraging: a transfer's realized PnL, or a share of a liquidation's deficit
    INSURANCE = 2  # the insurance fund covering a liquidated account's deficit
    COLLATERAL = 3  # collateral a liquidation gave the insurance fund, and what the fund paid for it
    ADJUSTMENT = 4  # an operator's adjustment (an incident's correction)


NO_MARKET: Final = -1  # market_id of a settlement that belongs to no market (a deficit's cover)


class PerpPosition(_Record, frozen=True):
    """One run of an account's perpetual position, flat to flat (schema.PERP_POSITIONS)."""

    account_id: int
    market_id: int
    opened_seq: int
    opened_index: int
    size_steps: int  # signed now; 0 once closed
    cost_atomic: int  # signed entry cost left now; 0 once closed
    opened_steps: int
    opened_notional_atomic: int
    closed_steps: int
    closed_notional_atomic: int
    realized_pnl_atomic: int
    fees_atomic: int
    funding_atomic: int
    liquidated_steps: int
    closed_seq: int  # -1 while open
    opened_ns: int
    closed_ns: int  # 0 while open
    updated_seq: int
    updated_ns: int


class Settlement(_Record, frozen=True):
    """Value an account received (> 0) or gave up (< 0) by settlement."""

    seq: int
    event_index: int
    line_no: int
    account_id: int
    asset_id: int
    amount_atomic: int
    source: int  # SettlementSource
    market_id: int  # -1: none
    position_seq: int  # the position's opened_seq, -1: none
    position_index: int  # the position's opened_index, -1: none
    timestamp_ns: int
