"""Commands: what the engine is asked to do, imperative and immutable.

Every command carries the sequence number and timestamp the sequencer gave it; the
engine reads time from nowhere else. Commands are a msgspec tagged union with integer
tags and array-like encoding, so `encode_command` gives compact canonical bytes for the
log. Tags are public (they are in every log): never renumber or reuse one.

Amounts: `*_atomic` are integers of an asset's atomic unit, `price_ticks` and
`quantity_steps` integers of the market's grid (see markets.py).

Imports: msgspec.
"""

from __future__ import annotations

from typing import Final

import msgspec

NO_CLIENT_ID: Final = -1
NO_ORDER_ID: Final = -1


class _Command(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag_field="k", gc=False):
    seq: int
    timestamp_ns: int


class ListAsset(_Command, frozen=True, tag=1):
    """List a new asset (operator)."""

    symbol: str
    decimals: int
    collateral_weight_bps: int = 10_000
    chain: str = ""  # where deposits come from and withdrawals go ("": no withdrawals)
    confirmations_required: int = 1
    withdrawal_fee_atomic: int = 0
    withdrawal_daily_limit_atomic: int = 0  # per account; 0: no limit
    withdrawal_auto_approve_atomic: int = 0  # at or below: approved without an operator
    two_person_min_atomic: int = 0  # at or above: two operators must approve; 0: never
    borrow_imf_bps: int = 0  # initial margin on a borrow's value; 0: the asset cannot be borrowed
    borrow_mmf_bps: int = 0  # maintenance margin on a borrow's value
    rate_base_e9: int = 0  # yearly borrow rate at zero utilization (lending.py)
    rate_slope1_e9: int = 0  # added up to the optimal utilization
    rate_slope2_e9: int = 0  # added from the optimal utilization to full
    optimal_utilization_bps: int = 8_000
    interest_spread_bps: int = 1_000  # the exchange's share of borrowers' interest
    deposit_min_atomic: int = 0  # a deposit below it is recorded as rejected, never credited
    withdrawal_min_atomic: int = 0  # a smaller withdrawal request is refused (the fee is extra)


class ListMarket(_Command, frozen=True, tag=2):
    """List a new spot market (operator). Fields as in markets.Market."""

    symbol: str
    base_asset_id: int
    quote_asset_id: int
    tick_atomic: int
    step_atomic: int
    quantity_min_steps: int
    quantity_max_steps: int
    notional_min_atomic: int
    fee_maker_bps: int
    fee_taker_bps: int
    band_low_bps: int = 7_500
    band_high_bps: int = 12_500
    impact_low_bps: int = 9_700
    impact_high_bps: int = 10_300
    kind: int = 0  # markets.MarketKind; the fields below are for perpetuals only
    imf_base_e9: int = 0
    imf_factor_e9: int = 0
    mmf_base_e9: int = 0
    mmf_factor_e9: int = 0
    funding_interval_ns: int = 0
    funding_cap_bps: int = 0
    open_interest_max_steps: int = 0
    index_move_cap_bps: int = 0  # perp: an index update moving more than this is refused (0: no cap)
    price_max_age_ns: int = 0  # perp: no funding or liquidation on an index older than this (0: no limit)


class CreateAccount(_Command, frozen=True, tag=3):
    """Open a user account; its id is the next account number."""


class Credit(_Command, frozen=True, tag=4):
    """Credit an account from the outside world (operator funding; reason `deposit`)."""

    account_id: int
    asset_id: int
    amount_atomic: int


class PlaceOrder(_Command, frozen=True, tag=5):
    """Place one order. A market order gives exactly one of quantity_steps and
    quote_quantity_atomic (the other is 0) and price_ticks 0."""

    account_id: int
    market_id: int
    side: int  # orders.Side
    order_type: int  # orders.OrderType
    time_in_force: int = 0  # orders.TimeInForce
    price_ticks: int = 0
    quantity_steps: int = 0
    quote_quantity_atomic: int = 0
    post_only: bool = False
    self_trade_prevention: int = 0  # orders.SelfTradePrevention
    client_id: int = NO_CLIENT_ID
    reduce_only: bool = False  # perpetuals: may only reduce the position, never open or flip it
    trigger_price_ticks: int = 0  # > 0: a trigger order, placed when the price is reached (triggers.py)
    trigger_by: int = 0  # triggers.TriggerBy: last, mark or index price
    # Perpetuals: a take-profit and a stop-loss attached to the order, created as reduce-only
    # trigger orders on the other side at its first fill (triggers.py). Trigger price 0: none;
    # limit price 0: a market order; trigger-by as trigger_by.
    take_profit_trigger_ticks: int = 0
    take_profit_limit_ticks: int = 0
    take_profit_trigger_by: int = 0
    stop_loss_trigger_ticks: int = 0
    stop_loss_limit_ticks: int = 0
    stop_loss_trigger_by: int = 0
    # Spot: orders.AutoMargin flags, what the order may do with the lending pool (borrow what
    # its hold lacks, repay or lend what its fills bring in; matching.py). 0: nothing.
    auto_margin: int = 0


class PlaceOrders(_Command, frozen=True, tag=6):
    """Place up to limits.batch_orders_max orders, each independently, in order.

    Items are PlaceOrder values whose own seq and timestamp are ignored and whose
    account must be the batch's account."""

    account_id: int
    orders: tuple[PlaceOrder, ...]


class CancelOrder(_Command, frozen=True, tag=7):
    """Cancel one open order of the account, by order id or by client id."""

    account_id: int
    market_id: int
    order_id: int = NO_ORDER_ID
    client_id: int = NO_CLIENT_ID


class CancelAllOrders(_Command, frozen=True, tag=8):
    """Cancel every open order of the account in one market."""

    account_id: int
    market_id: int


class Tick(_Command, frozen=True, tag=9):
    """Let time pass: the sequencer's clock, logged so that replay sees it."""


class Checkpoint(_Command, frozen=True, tag=10):
    """Assert the state hash: after applying this command (so with this command's seq and
    timestamp as the log position), the state must hash to `state_hash`, section by
    section as in `section_hashes` (canonical.SECTIONS order). A mismatch stops the
    engine (CheckpointMismatch); it is never a rejection."""

    state_hash: bytes
    section_hashes: tuple[bytes, ...]


class SetIndexPrices(_Command, frozen=True, tag=11):
    """Set index prices (operator or oracle feed): (asset_id, price_atomic) pairs, the price
    in quote-asset atomic units per whole unit of the asset. Marks of the perpetuals on
    those assets follow (perps.mark_price)."""

    prices: tuple[tuple[int, int], ...]


class SetMarketState(_Command, frozen=True, tag=12):
    """Move a market (market_id -1: every market) to a markets.MarketState (operator)."""

    market_id: int
    state: int
    reason: str
    operator: str


class ScheduleMaintenance(_Command, frozen=True, tag=13):
    """Record a maintenance schedule: steps (time_ns, market ids (empty: all), state),
    applied by the first Tick at or after each time (market_states.py)."""

    announcement: str
    operator: str
    steps: tuple[tuple[int, tuple[int, ...], int], ...]
    cancel_orders_steps: tuple[int, ...] = ()  # indexes of steps that also cancel the markets' orders


class CancelMaintenance(_Command, frozen=True, tag=14):
    """Cancel the remaining steps of a maintenance schedule."""

    schedule_id: int
    reason: str
    operator: str


class ReportDeposit(_Command, frozen=True, tag=15):
    """A chain watcher saw an output paying an account (transfers.py)."""

    chain: str
    tx_id: str
    output_index: int
    account_id: int
    asset_id: int
    amount_atomic: int
    confirmations: int


class RejectDeposit(_Command, frozen=True, tag=16):
    deposit_id: int
    reason: str
    operator: str


class RequestWithdrawal(_Command, frozen=True, tag=17):
    account_id: int
    asset_id: int
    amount_atomic: int
    address: str
    client_id: int = -1  # the user's own tag for it (the API's clientId), echoed back


class UpdateWithdrawal(_Command, frozen=True, tag=18):
    """An operator's step on a withdrawal: transfers.WithdrawalAction."""

    withdrawal_id: int
    action: int
    operator: str
    tx_id: str = ""
    reason: str = ""


class CancelWithdrawal(_Command, frozen=True, tag=19):
    account_id: int
    withdrawal_id: int


class FreezeWithdrawals(_Command, frozen=True, tag=20):
    frozen: bool
    reason: str
    operator: str


class Adjust(_Command, frozen=True, tag=21):
    """A visible correction with an incident reference: amount > 0 credits, < 0 debits."""

    account_id: int
    asset_id: int
    amount_atomic: int
    incident: str
    operator: str


class SetLeverageLimit(_Command, frozen=True, tag=23):
    """A user sets the account's leverage limit (account_settings.py); 0 removes it."""

    account_id: int
    leverage_limit: int


class BorrowLend(_Command, frozen=True, tag=22):
    """Borrow or lend an asset (lending.py); side is lending.BorrowLendSide."""

    account_id: int
    asset_id: int
    side: int
    amount_atomic: int


Command = (
    ListAsset
    | ListMarket
    | CreateAccount
    | Credit
    | PlaceOrder
    | PlaceOrders
    | CancelOrder
    | CancelAllOrders
    | Tick
    | Checkpoint
    | SetIndexPrices
    | SetMarketState
    | ScheduleMaintenance
    | CancelMaintenance
    | ReportDeposit
    | RejectDeposit
    | RequestWithdrawal
    | UpdateWithdrawal
    | CancelWithdrawal
    | FreezeWithdrawals
    | Adjust
    | BorrowLend
    | SetLeverageLimit
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command)

# Older encodings. msgspec encodes the inherited keyword-only fields `seq` and
# `timestamp_ns` last, so a field added to a command lands before them, not at the end,
# and an older, shorter array no longer decodes as it is (it fails: `seq` and
# `timestamp_ns` are required). Fields are only ever added at the end of a command's own
# fields, each with a default (PlaceOrder: reduce_only; the trigger fields; the six
# take-profit and stop-loss fields; auto_margin. ListAsset: the minimum deposit and
# withdrawal. ScheduleMaintenance: cancel_orders_steps), so an older array is read by
# inserting the defaults of the fields it lacks before its last two elements. Only arrays
# the current layout refuses take this path, and the result must still decode.
_BASE_FIELDS: Final = frozenset(("seq", "timestamp_ns"))
_TYPES_BY_TAG: Final[dict[object, type]] = {kind.__struct_config__.tag: kind for kind in Command.__args__}


def _upgraded(raw: object) -> object:
    """Return an older command array with the defaults of the fields it lacks inserted
    (and so for a batch's items); anything else unchanged."""
    if not isinstance(raw, list) or len(raw) < 3:
        return raw
    kind = _TYPES_BY_TAG.get(raw[0])
    if kind is None:
        return raw
    if kind is PlaceOrders and isinstance(raw[2], list):
        raw = [*raw[:2], [_upgraded(item) for item in raw[2]], *raw[3:]]
    own = [field for field in msgspec.structs.fields(kind) if field.name not in _BASE_FIELDS]
    present = len(raw) - 3  # the tag, then its own fields, then seq and timestamp_ns
    missing = own[present:] if 0 <= present < len(own) else []
    if not missing or any(field.default is msgspec.NODEFAULT for field in missing):
        return raw
    return raw[:-2] + [msgspec.to_builtins(field.default) for field in missing] + raw[-2:]


def encode_command(command: Command) -> bytes:
    """Return the canonical bytes of a command (msgpack, array-like, integer tags)."""
    return _encoder.encode(command)


def decode_command(data: bytes) -> Command:
    """Return the command encoded in `data`, reading older layouts too (above); raises
    msgspec.DecodeError if malformed."""
    try:
        command: Command = _decoder.decode(data)
    except msgspec.ValidationError:
        raw = msgspec.msgpack.decode(data)
        upgraded = _upgraded(raw)
        if upgraded == raw:
            raise
        command = _decoder.decode(_encoder.encode(upgraded))
    return command
