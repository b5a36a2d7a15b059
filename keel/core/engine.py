"""The engine: one object owning all exchange state, one entry point, `apply`.

`apply(command) -> list[Event]` is a pure function of the state and the command: no
clock, randomness, environment or I/O (DESIGN.md rule 2). The command's sequence number
must follow the last one applied and its timestamp must not go backwards; both are
given by the sequencer. A refused command yields one `CommandRejected` event and leaves
every part of the state except the log position (`seq_last`, `timestamp_ns_last`)
exactly as it was, because every handler decides before it applies.

This module dispatches only; the rules live in listing.py, matching.py, perps.py,
liquidation.py, lending.py, market_states.py and transfers.py.

Imports: the core's own modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from keel.core import limits
from keel.core.account_settings import set_leverage_limit
from keel.core.canonical import SECTIONS, StateHasher, combine
from keel.core.certificates import uncertified_now
from keel.core.commands import (
    Adjust,
    BorrowLend,
    CancelAllOrders,
    CancelMaintenance,
    CancelOrder,
    CancelWithdrawal,
    Checkpoint,
    Command,
    CreateAccount,
    Credit,
    FreezeWithdrawals,
    ListAsset,
    ListMarket,
    PlaceOrder,
    PlaceOrders,
    RejectDeposit,
    ReportDeposit,
    RequestWithdrawal,
    ScheduleMaintenance,
    SetIndexPrices,
    SetLeverageLimit,
    SetMarketState,
    Tick,
    UpdateWithdrawal,
)
from keel.core.errors import CheckpointMismatch, RejectCode, Rejected
from keel.core.events import (
    CheckpointPassed,
    CommandRejected,
    EntryReason,
    Event,
    FundingSettled,
    InterestAccrued,
    LedgerPosted,
    MarketStateChanged,
    MarkPriceChanged,
    OrderAccepted,
    TradeExecuted,
)
from keel.core.lending import accrue_interest, borrow_lend
from keel.core.liquidation import liquidate_where_needed
from keel.core.listing import create_account, credit, list_asset, list_market
from keel.core.market_states import cancel_maintenance, run_due_steps, schedule_maintenance, set_market_state
from keel.core.markets import MarketKind
from keel.core.perps import on_tick, set_index_prices
from keel.core.state import ExchangeState
from keel.core.transfers import (
    adjust,
    cancel_withdrawal,
    freeze_withdrawals,
    reject_deposit,
    report_deposit,
    request_withdrawal,
    update_withdrawal,
)
from keel.core.triggers import cancel_all_orders_and_triggers, cancel_order_or_trigger, fire_triggers, place_or_trigger

ENGINE_VERSION = 1


def _place_batch(state: ExchangeState, command: PlaceOrders, events: list[Event]) -> None:
    """Place each item in order; a refused item is reported and the rest go on (spec 8.6)."""
    if not 1 <= len(command.orders) <= limits.batch_orders_max:
        raise Rejected(RejectCode.BATCH_TOO_LARGE, f"a batch holds 1 to {limits.batch_orders_max} orders")
    for index, item in enumerate(command.orders):
        if item.account_id != command.account_id:
            events.append(
                CommandRejected(
                    int(RejectCode.ORDER_MALFORMED),
                    "every order in a batch must be for the same account",
                    index,
                )
            )
            continue
        try:
            place_or_trigger(
                state, msgspec.structs.replace(item, seq=command.seq, timestamp_ns=command.timestamp_ns), events
            )
        except Rejected as rejected:
            events.append(CommandRejected(int(rejected.code), rejected.message, index))


def _tick(state: ExchangeState, command: Tick, events: list[Event]) -> None:
    """Let time pass: due maintenance steps first, then marks and funding (perps.py)."""
    if state.maintenances:
        run_due_steps(state, command, events)
    on_tick(state, command, events)
    if state.lending_accounts:
        accrue_interest(state, command, events)


_HANDLERS: dict[type, Callable[[ExchangeState, Any, list[Event]], None]] = {
    PlaceOrder: place_or_trigger,
    CancelOrder: cancel_order_or_trigger,
    PlaceOrders: _place_batch,
    CancelAllOrders: cancel_all_orders_and_triggers,
    Credit: credit,
    CreateAccount: create_account,
    ListAsset: list_asset,
    ListMarket: list_market,
    Tick: _tick,
    SetMarketState: set_market_state,
    ScheduleMaintenance: schedule_maintenance,
    CancelMaintenance: cancel_maintenance,
    ReportDeposit: report_deposit,
    RejectDeposit: reject_deposit,
    RequestWithdrawal: request_withdrawal,
    UpdateWithdrawal: update_withdrawal,
    CancelWithdrawal: cancel_withdrawal,
    FreezeWithdrawals: freeze_withdrawals,
    Adjust: adjust,
    BorrowLend: borrow_lend,
    SetIndexPrices: set_index_prices,
    SetLeverageLimit: set_leverage_limit,
}


# Commands after which an account may be below maintenance margin: they move prices,
# positions, balances or locks, or reopen a market whose liquidations were paused.
_MOVES_MARGIN = (PlaceOrder, PlaceOrders, SetIndexPrices, Tick, BorrowLend, Adjust, SetMarketState)
_MOVES_EVERYONE = (SetIndexPrices, Tick, SetMarketState)
_MOVES_PRICES = (PlaceOrder, PlaceOrders, SetIndexPrices, Tick, SetMarketState)  # and so may fire triggers


def _liquidations(state: ExchangeState, command: Command, events: list[Event]) -> None:
    """Liquidate accounts this command left below maintenance margin (liquidation.py),
    until none is left: a liquidation can move other accounts too."""
    candidates = _touched(state, events, 0)
    if type(command) is SetIndexPrices:
        candidates += _exposed(state, [asset_id for asset_id, _ in command.prices])
    elif type(command) in _MOVES_EVERYONE:
        # Only the markets whose mark, funding or state changed: their position holders.
        moved = [
            event.market_id
            for event in events
            if isinstance(event, (MarkPriceChanged, FundingSettled, MarketStateChanged))
        ]
        if moved:
            candidates += _holding(state, moved)
    start = 0
    while candidates:
        start = len(events)
        liquidate_where_needed(state, candidates, command.seq, events)
        candidates = _touched(state, events, start) if len(events) > start else []


_PERP = MarketKind.PERP
_TRADE = int(EntryReason.TRADE)
_FUNDING = int(EntryReason.FUNDING)


def _exposed(state: ExchangeState, moved: list[int]) -> list[int]:
    """Uncertified accounts an index update can move: those with a position in a
    perpetual on a moved asset (its mark moved), and those with a position or a borrow
    elsewhere that hold, lent or borrowed a moved asset (its value moved). Nothing else
    about an account depends on those prices (perps.equity_atomic,
    maintenance_requirement_atomic), and a certified account is covered whatever they
    are (certificates.py)."""
    markets = state.markets
    moved_markets = [market.market_id for market in markets if market.kind == _PERP and market.base_asset_id in moved]
    accounts = state.accounts
    lending = state.lending_accounts
    found: list[int] = []
    for account_id in uncertified_now(state):
        account = accounts.get(account_id)
        if account is None or account_id <= 0:
            continue
        positions = account.positions
        if not positions and account_id not in lending:
            continue
        if not positions.keys().isdisjoint(moved_markets):
            found.append(account_id)
            continue
        balances, lent, borrowed = account.balances, account.lent, account.borrowed
        for asset_id in moved:
            if balances[asset_id] or lent[asset_id] or borrowed[asset_id]:
                found.append(account_id)
                break
    return found


def _holding(state: ExchangeState, moved: list[int]) -> list[int]:
    """Uncertified accounts with a position record in one of the `moved` markets (the
    others are covered: certificates.py). The uncertified are far fewer than the holders
    of every market a Tick moves, so they are the ones looked through."""
    moved_set = set(moved)  # only asked whether it meets a key view, never iterated
    accounts = state.accounts
    found: list[int] = []
    for account_id in uncertified_now(state):
        account = accounts.get(account_id)
        if account is not None and not moved_set.isdisjoint(account.positions):
            found.append(account_id)
    return found


def _touched(state: ExchangeState, events: list[Event], start: int) -> list[int]:
    """Accounts with positions or lends and borrows that trades or ledger entries among
    events[start:] moved, or that a spot order's hold left with less collateral. A
    perpetual order holds nothing and maintenance does not count open orders, so its
    acceptance alone moves no one's standing (its trades do). (A margin account's spot
    order is accepted only above initial margin, so this check never liquidates it; it
    is made anyway, because it certifies the account for the next index update or Tick:
    certificates.py.)"""
    found: dict[int, None] = {}
    markets = state.markets
    for event in events[start:]:
        if type(event) is TradeExecuted:
            found[event.taker_account_id] = None
            found[event.maker_account_id] = None
        elif type(event) is LedgerPosted:
            # A trade's entry moves its buyer and seller (its TradeExecuted, just before it)
            # and system accounts (never candidates); a funding round's, holders of the
            # market it names in FundingSettled, which the caller looks through when they
            # are not certified (and they are not: they changed). Nothing to add.
            if event.reason != _TRADE and event.reason != _FUNDING:
                for line in event.lines:
                    found[line[0]] = None
        elif type(event) is OrderAccepted:
            if markets[event.market_id].kind != _PERP:
                found[event.account_id] = None
        elif type(event) is InterestAccrued:  # borrows grew
            for account_id, _ in event.payments:
                found[account_id] = None
    accounts = state.accounts
    lending = state.lending_accounts
    return [
        account_id
        for account_id in found
        if account_id > 0 and (accounts[account_id].positions or account_id in lending)
    ]


class Engine:
    """Owns an ExchangeState; `apply` is the only way to change it."""

    __slots__ = ("handlers", "hasher", "state")

    def __init__(self, state: ExchangeState | None = None) -> None:
        self.state = state if state is not None else ExchangeState()
        self.hasher = StateHasher(self.state)
        self.handlers = dict(_HANDLERS)
        self.handlers[Checkpoint] = self._checkpoint

    def apply(self, command: Command) -> list[Event]:
        """Apply one sequenced command; return its events (a rejection is one event).

        Raises CheckpointMismatch when a Checkpoint command's hash is not reproduced."""
        state = self.state
        seq = command.seq
        assert seq == state.seq_last + 1, f"command seq {seq} does not follow {state.seq_last}"
        assert command.timestamp_ns >= state.timestamp_ns_last, "timestamps must not go backwards"
        state.seq_last = seq
        state.timestamp_ns_last = command.timestamp_ns
        events: list[Event] = []
        try:
            self.handlers[type(command)](state, command, events)
        except Rejected as rejected:
            assert not events, "a handler changed state before it refused"
            return [CommandRejected(int(rejected.code), rejected.message)]
        if state.triggers and type(command) in _MOVES_PRICES:
            fire_triggers(state, command.seq, command.timestamp_ns, events)
        if state.margin_asset_id >= 0 and type(command) in _MOVES_MARGIN:
            _liquidations(state, command, events)
        return events

    def section_hashes(self) -> dict[str, bytes]:
        """Return every section's hash, brought up to date incrementally."""
        return self.hasher.section_hashes(self.state)

    def refresh_hash(self) -> None:
        """Re-hash the entities changed since the last call, so that the next checkpoint
        has less to do (the sequencer spreads hashing across each checkpoint interval)."""
        self.hasher.refresh(self.state)

    def state_hash(self) -> bytes:
        """Return the state hash (equal to canonical.state_hash of the state)."""
        return combine(self.section_hashes())

    def checkpoint_command(self, seq: int, timestamp_ns: int) -> Checkpoint:
        """Return the Checkpoint command to log at `seq`: the hash the state will have
        once it is applied (the position is the only section that changes)."""
        assert seq == self.state.seq_last + 1
        state = self.state
        saved = state.seq_last, state.timestamp_ns_last
        state.seq_last, state.timestamp_ns_last = seq, timestamp_ns
        try:
            hashes = self.section_hashes()
        finally:
            state.seq_last, state.timestamp_ns_last = saved
        return Checkpoint(
            seq=seq,
            timestamp_ns=timestamp_ns,
            state_hash=combine(hashes),
            section_hashes=tuple(hashes[section] for section in SECTIONS),
        )

    def _checkpoint(self, state: ExchangeState, command: Checkpoint, events: list[Event]) -> None:
        hashes = self.section_hashes()
        found = combine(hashes)
        if found != command.state_hash:
            recorded = dict(zip(SECTIONS, command.section_hashes, strict=False))
            differing = [section for section in SECTIONS if recorded.get(section) != hashes[section]]
            raise CheckpointMismatch(command.seq, command.state_hash, found, differing)
        events.append(CheckpointPassed(found))
