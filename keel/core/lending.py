"""Borrowing and lending: a pool per asset, positions per account, interest at logged Ticks.

Theory of operation. Each account has, per asset, a lend position `lent` and a borrow
position `borrowed` (at most one of them is non-zero). Lending moves the amount from the
account's balance to the lending pool account; borrowing moves it from the pool to the
account's balance. So, per asset,

    pool balance == sum of lent - sum of borrowed >= 0

which is the rule "total borrowed never exceeds total lent" (audit checks it). As in the
API's `BorrowLend` execute, a Lend first repays the account's borrow and lends the rest;
a Borrow first redeems its lend and borrows the rest. A borrow needs the pool to hold
the amount, an index price for the asset, and initial margin for the account with the
borrow included: a borrowed amount's value counts against equity in full, and requires
`borrow_imf_bps` of its value as initial margin and `borrow_mmf_bps` as maintenance.
Lending needs the amount available; redeeming needs the pool to hold it.

Interest. At the first Tick at or after `interest_next_ns` (hourly), for each asset with
borrows: utilization u = borrowed / lent; the yearly borrow rate is
base + slope1 x min(u, optimal) / optimal + slope2 x max(0, u - optimal) / (1 - optimal)
(all in 1e-9, the shape of the API's borrow/lend markets); an hour's interest on each
borrow is ceil(borrowed x rate / 8,760) (toward the exchange) and is added to that borrow
and paid into the pool; lenders receive, in proportion to their lend, floor(total x
(10,000 - spread_bps) / 10,000) shared out rounding down, added to their lends; the rest
(the spread and the rounding) goes to the fee account. One balanced entry per asset
(reason `interest`): borrowers' interest into the pool, the spread out of it to fees.

Imports: accounts, commands, errors, events, ledger, lending_pool, limits, matching, money, perps, state.
"""

from __future__ import annotations

from keel.core import limits
from keel.core.accounts import FEE_ACCOUNT_ID, LENDING_POOL_ACCOUNT_ID, Account
from keel.core.commands import BorrowLend, Tick
from keel.core.errors import RejectCode, Rejected
from keel.core.events import EntryReason, Event, InterestAccrued
from keel.core.ledger import post_entry
from keel.core.lending_pool import BorrowLendSide as BorrowLendSide  # where callers have always found it
from keel.core.lending_pool import check_borrowable, check_pool_holds, move_pool
from keel.core.matching import amount_text, user_account_for
from keel.core.money import BPS, E9, div_ceil, div_floor
from keel.core.perps import equity_atomic, initial_requirement_atomic
from keel.core.state import ExchangeState

HOUR_NS = 3_600_000_000_000
HOURS_PER_YEAR = 8_760
_INTEREST = int(EntryReason.INTEREST)


def borrow_lend(state: ExchangeState, command: BorrowLend, events: list[Event]) -> None:
    """Borrow or lend (module docstring). Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_ASSET,
    AMOUNT_NOT_POSITIVE, VALUE_TOO_LARGE, ORDER_MALFORMED, BORROW_NOT_ENABLED,
    POOL_INSUFFICIENT, INSUFFICIENT_AVAILABLE, INSUFFICIENT_MARGIN)."""
    account = user_account_for(state, command.account_id)
    asset_id = command.asset_id
    if not 0 <= asset_id < len(state.assets):
        raise Rejected(RejectCode.UNKNOWN_ASSET, f"asset {asset_id} does not exist")
    amount = command.amount_atomic
    if amount <= 0:
        raise Rejected(RejectCode.AMOUNT_NOT_POSITIVE, "a borrow or lend must be a positive amount")
    if amount > limits.amount_atomic_max:
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "amount is too large")
    if command.side == BorrowLendSide.LEND:
        available = account.balances[asset_id] - account.locked[asset_id]
        if amount > available:
            raise Rejected(
                RejectCode.INSUFFICIENT_AVAILABLE,
                f"insufficient funds: lending needs {amount_text(state, asset_id, amount)}, "
                f"{amount_text(state, asset_id, available)} is available",
            )
    elif command.side == BorrowLendSide.BORROW:
        redeemed = min(amount, account.lent[asset_id])
        borrowed = amount - redeemed
        if borrowed:
            check_borrowable(state, asset_id)
        check_pool_holds(state, asset_id, amount)
        if borrowed:
            # Decide on a trial: apply, measure, undo (nothing else runs meanwhile).
            account.lent[asset_id] -= redeemed
            account.borrowed[asset_id] += borrowed
            account.balances[asset_id] += amount
            equity = equity_atomic(state, account)
            required = initial_requirement_atomic(state, account)
            account.lent[asset_id] += redeemed
            account.borrowed[asset_id] -= borrowed
            account.balances[asset_id] -= amount
            if equity < required:
                raise Rejected(
                    RejectCode.INSUFFICIENT_MARGIN,
                    f"insufficient margin: borrowing {amount_text(state, asset_id, amount)} needs "
                    f"{amount_text(state, state.margin_asset_id, required)} of initial margin, the account's equity "
                    f"would be {amount_text(state, state.margin_asset_id, equity)}",
                )
    else:
        raise Rejected(RejectCode.ORDER_MALFORMED, "side must be Borrow or Lend")
    move_pool(state, account, asset_id, command.side, amount, command.seq, events)


def borrow_rate_e9(state: ExchangeState, asset_id: int, borrowed: int, lent: int) -> int:
    """Return the yearly borrow rate (1e-9) at this utilization (module docstring)."""
    asset = state.assets[asset_id]
    if lent <= 0:
        return asset.rate_base_e9
    optimal = asset.optimal_utilization_bps
    utilization_bps = min(BPS, borrowed * BPS // lent)
    rate = asset.rate_base_e9 + asset.rate_slope1_e9 * min(utilization_bps, optimal) // max(optimal, 1)
    if utilization_bps > optimal:
        rate += asset.rate_slope2_e9 * (utilization_bps - optimal) // max(BPS - optimal, 1)
    return rate


def accrue_interest(state: ExchangeState, command: Tick, events: list[Event]) -> None:
    """Pay an hour of interest when it is due (module docstring)."""
    now = command.timestamp_ns
    if state.interest_next_ns == 0:
        state.interest_next_ns = (now // HOUR_NS + 1) * HOUR_NS
        return
    if now < state.interest_next_ns:
        return
    state.interest_next_ns = (now // HOUR_NS + 1) * HOUR_NS
    accounts = state.accounts
    borrowers: list[list[tuple[Account, int]]] = [[] for _ in state.assets]
    lenders: list[list[tuple[Account, int]]] = [[] for _ in state.assets]
    for account_id in sorted(state.lending_accounts):
        account = accounts[account_id]
        for asset_id, borrowed in enumerate(account.borrowed):
            if borrowed:
                borrowers[asset_id].append((account, borrowed))
        for asset_id, lent in enumerate(account.lent):
            if lent:
                lenders[asset_id].append((account, lent))
    for asset_id in range(len(state.assets)):
        if not borrowers[asset_id]:
            continue
        borrowed_total = sum(amount for _, amount in borrowers[asset_id])
        lent_total = sum(amount for _, amount in lenders[asset_id])
        rate = borrow_rate_e9(state, asset_id, borrowed_total, lent_total)
        paid = 0
        payments: list[tuple[int, int]] = []  # per position: borrowers pay, lenders and fees receive
        for account, borrowed in borrowers[asset_id]:
            interest = div_ceil(borrowed * rate, E9 * HOURS_PER_YEAR)
            if interest:
                account.borrowed[asset_id] += interest  # the borrow grows; the balance is untouched
                paid += interest
                payments.append((account.account_id, -interest))
                state.dirty_accounts.append(account)
        to_lenders = paid * (BPS - state.assets[asset_id].interest_spread_bps) // BPS
        shared = 0
        for account, lent in lenders[asset_id]:
            share = div_floor(to_lenders * lent, lent_total)
            if share:
                account.lent[asset_id] += share
                shared += share
                payments.append((account.account_id, share))
                state.dirty_accounts.append(account)
        spread = paid - shared
        # The pool's claim grows by the borrowers' interest and shrinks by the lenders'
        # shares: it pays the spread out to the fee account, keeping pool == lent - borrowed.
        payments.append((FEE_ACCOUNT_ID, spread))
        events.append(
            InterestAccrued(asset_id, rate, borrowed_total, lent_total, paid, shared, spread, tuple(payments))
        )
        if spread:
            spread_lines = ((LENDING_POOL_ACCOUNT_ID, asset_id, -spread), (FEE_ACCOUNT_ID, asset_id, spread))
            post_entry(state, _INTEREST, command.seq, spread_lines, events)
