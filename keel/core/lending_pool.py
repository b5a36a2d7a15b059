"""The lending pool's movements, and the rules a borrow must meet.

Shared by the explicit `BorrowLend` (lending.py) and the automatic borrowing, lending,
redeeming and repaying of spot orders (matching.py, "Automatic borrowing and lending"),
so that both move value by one set of rules. It sits below matching.py in the import
graph (lending.py imports matching.py).

The pool is the system account LENDING_POOL_ACCOUNT_ID. Every movement between an
account and the pool is one balanced entry of two lines (reason `borrow_lend`: the pool's
line first, then the account's), followed by one `BorrowLendChanged`, and changes the
account's lend or borrow of that asset by exactly the amount moved. So, per asset,

    pool balance == sum of lent - sum of borrowed >= 0

A Borrow first redeems the account's lend of the asset and borrows the rest; a Lend
first repays the account's borrow and lends the rest; so an account never both lends
and borrows one asset. The `check_*` functions raise Rejected and change nothing;
`move_pool` only asserts and writes (STYLE.md: decide, then apply).

Imports: accounts, errors, events, ledger, money, state.
"""

from __future__ import annotations

import enum

from keel.core.accounts import LENDING_POOL_ACCOUNT_ID, Account
from keel.core.errors import RejectCode, Rejected
from keel.core.events import BorrowLendChanged, EntryReason, Event
from keel.core.ledger import post_entry
from keel.core.money import format_decimal
from keel.core.state import ExchangeState

_BORROW_LEND = int(EntryReason.BORROW_LEND)


@enum.unique
class BorrowLendSide(enum.IntEnum):
    BORROW = 0
    LEND = 1


_BORROW = int(BorrowLendSide.BORROW)


def _amount_text(state: ExchangeState, asset_id: int, amount_atomic: int) -> str:
    asset = state.assets[asset_id]
    return f"{format_decimal(amount_atomic, asset.decimals)} {asset.symbol}"


def check_borrowable(state: ExchangeState, asset_id: int) -> None:
    """Refuse a new borrow of the asset: it must be enabled (`borrow_imf_bps` > 0), a
    margin asset must exist (the first perpetual lists it) and, unless the asset is the
    margin asset, it must have an index price to value the borrow.

    Raises Rejected(BORROW_NOT_ENABLED)."""
    asset = state.assets[asset_id]
    if not asset.borrow_imf_bps:
        raise Rejected(RejectCode.BORROW_NOT_ENABLED, f"{asset.symbol} cannot be borrowed")
    if state.margin_asset_id < 0:
        raise Rejected(RejectCode.BORROW_NOT_ENABLED, "no margin asset yet: borrowing opens with the first perpetual")
    if asset_id != state.margin_asset_id and state.index_prices[asset_id] == 0:
        raise Rejected(RejectCode.BORROW_NOT_ENABLED, f"{asset.symbol} has no index price to value a borrow")


def check_pool_holds(state: ExchangeState, asset_id: int, amount_atomic: int) -> None:
    """Refuse taking `amount_atomic` out of the pool (a borrow, a redeemed lend) when it
    holds less. Raises Rejected(POOL_INSUFFICIENT)."""
    pool = state.accounts[LENDING_POOL_ACCOUNT_ID].balances[asset_id]
    if amount_atomic > pool:
        raise Rejected(
            RejectCode.POOL_INSUFFICIENT,
            f"the {state.assets[asset_id].symbol} lending pool holds {_amount_text(state, asset_id, pool)}, "
            f"less than the {_amount_text(state, asset_id, amount_atomic)} asked",
        )


def move_pool(
    state: ExchangeState,
    account: Account,
    asset_id: int,
    side: int,
    amount_atomic: int,
    reference: int,
    events: list[Event],
) -> None:
    """Apply a Borrow (from the pool to the account: redeem the lend first, borrow the
    rest) or a Lend (from the account to the pool: repay the borrow first, lend the rest)
    of `amount_atomic` > 0 that the caller has already checked; append the entry (reason
    `borrow_lend`, `reference` what caused it) and the BorrowLendChanged."""
    assert amount_atomic > 0
    lent = account.lent
    borrowed = account.borrowed
    if side == _BORROW:
        assert amount_atomic <= state.accounts[LENDING_POOL_ACCOUNT_ID].balances[asset_id]
        redeemed = min(amount_atomic, lent[asset_id])
        lent[asset_id] -= redeemed
        borrowed[asset_id] += amount_atomic - redeemed
        to_account = amount_atomic
    else:
        assert amount_atomic <= account.balances[asset_id] - account.locked[asset_id]
        repaid = min(amount_atomic, borrowed[asset_id])
        borrowed[asset_id] -= repaid
        lent[asset_id] += amount_atomic - repaid
        to_account = -amount_atomic
    assert lent[asset_id] >= 0
    assert borrowed[asset_id] >= 0
    assert not (lent[asset_id] and borrowed[asset_id])
    state.lending_accounts[account.account_id] = None
    lines = ((LENDING_POOL_ACCOUNT_ID, asset_id, -to_account), (account.account_id, asset_id, to_account))
    post_entry(state, _BORROW_LEND, reference, lines, events)
    events.append(
        BorrowLendChanged(account.account_id, asset_id, side, amount_atomic, lent[asset_id], borrowed[asset_id])
    )
