"""Events: what happened, in the past tense, produced by `Engine.apply`.

Events are a msgspec tagged union like commands; their canonical bytes are what the
determinism tests compare across processes. Tags are public: never renumber them.

Imports: msgspec.
"""

from __future__ import annotations

import enum

import msgspec


@enum.unique
class EntryReason(enum.IntEnum):
    """Why value moved (DESIGN.md rule 3). Public numbers: never renumber."""

    TRADE = 1  # a trade's base and quote legs and its fees
    DEPOSIT = 2
    WITHDRAWAL = 3
    FUNDING = 4
    INTEREST = 5
    LIQUIDATION = 6
    INSURANCE = 7
    ADJUSTMENT = 8
    ADL = 9
    REALIZED_PNL = 10
    BORROW_LEND = 11


class _Event(msgspec.Struct, frozen=True, array_like=True, tag_field="k", gc=False):
    pass


class AssetListed(_Event, frozen=True, tag=1):
    asset_id: int
    symbol: str
    decimals: int


class MarketListed(_Event, frozen=True, tag=2):
    market_id: int
    symbol: str


class AccountCreated(_Event, frozen=True, tag=3):
    account_id: int


class OrderAccepted(_Event, frozen=True, tag=4):
    """An order entered the engine (it may trade, rest, or end in the same command)."""

    order_id: int
    account_id: int
    market_id: int
    side: int
    order_type: int
    time_in_force: int
    price_ticks: int
    quantity_steps: int
    quote_quantity_atomic: int
    client_id: int
    post_only: bool
    self_trade_prevention: int


class TradeExecuted(_Event, frozen=True, tag=5):
    """A taker order traded with a resting maker order at the maker's price."""

    trade_id: int
    market_id: int
    price_ticks: int
    quantity_steps: int
    taker_order_id: int
    maker_order_id: int
    taker_account_id: int
    maker_account_id: int
    taker_side: int
    fee_taker_atomic: int
    fee_maker_atomic: int  # negative: a rebate


class OrderCancelled(_Event, frozen=True, tag=6):
    """An open order was cancelled (by its owner, or as a resting order hit by STP)."""

    order_id: int
    account_id: int
    market_id: int
    reason: int  # orders.EndReason
    cancelled_steps: int


class OrderExpired(_Event, frozen=True, tag=7):
    """An order's unfilled remainder ended by rule (IOC, market, STP, fill limit)."""

    order_id: int
    account_id: int
    market_id: int
    reason: int  # orders.EndReason
    cancelled_steps: int


class LedgerPosted(_Event, frozen=True, tag=8):
    """One balanced journal entry: its lines sum to zero per asset.

    `lines` are (account_id, asset_id, amount_atomic); `reference` is the trade id for
    TRADE entries and the command's seq otherwise."""

    entry_id: int
    reason: int  # EntryReason
    reference: int
    lines: tuple[tuple[int, int, int], ...]


class CommandRejected(_Event, frozen=True, tag=9):
    """The command (or batch item `item`; -1 for the whole command) changed nothing."""

    code: int  # errors.RejectCode
    message: str
    item: int = -1


class CheckpointPassed(_Event, frozen=True, tag=10):
    """The state hash matched the checkpoint recorded in the log."""

    state_hash: bytes


class PositionChanged(_Event, frozen=True, tag=11):
    """A perpetual position changed by a trade (or liquidation, ADL). `size_*` are signed
    steps (long > 0); `cost_after_atomic` is the signed entry cost left (perps.py);
    `realized_pnl_atomic` is what this change settled into the account's quote balance
    (before fees). A flip through zero is one event with both legs: size_before > 0 > size_after."""

    account_id: int
    market_id: int
    size_before_steps: int
    size_after_steps: int
    cost_after_atomic: int
    realized_pnl_atomic: int
    trade_id: int  # 0: not from a trade


class MarkPriceChanged(_Event, frozen=True, tag=12):
    """A perpetual's index or mark price changed (ticks of the market)."""

    market_id: int
    index_ticks: int
    mark_ticks: int


class FundingSettled(_Event, frozen=True, tag=13):
    """A funding round: positions paid `rate_e9` x notional at the mark; longs pay when
    the rate is positive. `paid_atomic` is what payers paid, `received_atomic` what
    receivers got; the difference (rounding, toward the exchange) went to the insurance
    fund. The ledger entry follows."""

    market_id: int
    rate_e9: int
    mark_ticks: int
    index_ticks: int
    paid_atomic: int
    received_atomic: int
    positions: int


class LiquidationStarted(_Event, frozen=True, tag=14):
    """An account fell below maintenance margin and is being closed out (liquidation.py)."""

    account_id: int
    equity_atomic: int
    maintenance_atomic: int


class MarketStateChanged(_Event, frozen=True, tag=15):
    market_id: int
    state_before: int
    state: int
    reason: str
    operator: str


class MaintenanceScheduled(_Event, frozen=True, tag=16):
    schedule_id: int
    announcement: str
    operator: str
    steps: tuple[tuple[int, tuple[int, ...], int], ...]
    cancel_orders_steps: tuple[int, ...] = ()


class MaintenanceCancelled(_Event, frozen=True, tag=17):
    schedule_id: int
    reason: str
    operator: str


class MaintenanceStepApplied(_Event, frozen=True, tag=18):
    schedule_id: int
    step: int  # index in the schedule's steps
    state: int


class MaintenanceStepBlocked(_Event, frozen=True, tag=19):
    """A due step could not be applied yet (it is retried at every Tick)."""

    schedule_id: int
    step: int
    problem: str


class DepositUpdated(_Event, frozen=True, tag=20):
    deposit_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    chain: str
    tx_id: str
    output_index: int
    confirmations: int
    status: int  # transfers.DepositStatus


class WithdrawalUpdated(_Event, frozen=True, tag=21):
    withdrawal_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    fee_atomic: int
    status: int  # transfers.WithdrawalStatus
    chain: str
    address: str
    tx_id: str
    operator: str  # "" for the user's own steps
    reason: str
    client_id: int = -1


class WithdrawalsFrozen(_Event, frozen=True, tag=22):
    frozen: bool
    reason: str
    operator: str


class Adjusted(_Event, frozen=True, tag=23):
    """A correction: the ledger entry (reason adjustment) follows."""

    account_id: int
    asset_id: int
    amount_atomic: int
    incident: str
    operator: str


class BorrowLendChanged(_Event, frozen=True, tag=24):
    account_id: int
    asset_id: int
    side: int  # lending.BorrowLendSide
    amount_atomic: int
    lent_after_atomic: int
    borrowed_after_atomic: int
    liquidation: bool = False  # moved by a liquidation (liquidation.py), not by the account


class InterestAccrued(_Event, frozen=True, tag=25):
    """An hour of interest on one asset: borrows grew by `paid`, lends by `to_lenders`,
    and `spread` went to the fee account. `payments` are (account, amount) per position,
    borrowers negative, lenders and the fee account positive: they sum to zero."""

    asset_id: int
    rate_e9: int
    borrowed_atomic: int
    lent_atomic: int
    paid_atomic: int
    to_lenders_atomic: int
    spread_atomic: int
    payments: tuple[tuple[int, int], ...]


class TriggerAccepted(_Event, frozen=True, tag=26):
    """A trigger order is pending (API status TriggerPending).

    With `parent_order_id` 0 it is the command's own trigger order, whose terms are the
    command's. Otherwise it is a take-profit or stop-loss that the first fill of order
    `parent_order_id` created (triggers.py), in the command that filled it, which may be
    another account's: its terms are here, as no command carries them. It is reduce-only,
    GTC if a limit order, with no client id and the parent's self-trade prevention, and
    `sibling_order_id` (0: none) is its one-cancels-the-other partner."""

    order_id: int
    account_id: int
    market_id: int
    trigger_price_ticks: int
    trigger_by: int
    parent_order_id: int = 0
    side: int = 0
    order_type: int = 0
    price_ticks: int = 0
    quantity_steps: int = 0
    self_trade_prevention: int = 0
    sibling_order_id: int = 0


class TriggerFired(_Event, frozen=True, tag=27):
    """The reference price reached a trigger: its order's events follow."""

    order_id: int
    account_id: int
    market_id: int
    reference_ticks: int


class LeverageLimitSet(_Event, frozen=True, tag=29):
    """An account's leverage limit changed (0: none)."""

    account_id: int
    leverage_limit: int


class TriggerFailed(_Event, frozen=True, tag=28):
    """A trigger fired but its order was refused (API status TriggerFailed)."""

    order_id: int
    account_id: int
    market_id: int
    code: int
    message: str


Event = (
    AssetListed
    | MarketListed
    | AccountCreated
    | OrderAccepted
    | TradeExecuted
    | OrderCancelled
    | OrderExpired
    | LedgerPosted
    | CommandRejected
    | CheckpointPassed
    | PositionChanged
    | MarkPriceChanged
    | FundingSettled
    | LiquidationStarted
    | MarketStateChanged
    | MaintenanceScheduled
    | MaintenanceCancelled
    | MaintenanceStepApplied
    | MaintenanceStepBlocked
    | DepositUpdated
    | WithdrawalUpdated
    | WithdrawalsFrozen
    | Adjusted
    | BorrowLendChanged
    | InterestAccrued
    | TriggerAccepted
    | TriggerFired
    | TriggerFailed
    | LeverageLimitSet
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Event])


def encode_events(events: list[Event]) -> bytes:
    """Return the canonical bytes of a list of events."""
    return _encoder.encode(events)


def decode_events(data: bytes) -> list[Event]:
    """Return the events encoded in `data`."""
    events: list[Event] = _decoder.decode(data)
    return events
