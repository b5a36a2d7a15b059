"""Assets: a symbol and a number of decimals; balances are integers of atomic units.

An asset is listed once by a logged `ListAsset` command and never changes. Its id is
its position in the listing order, so ids are dense small integers used as list
indexes in account balances.

Imports: msgspec.
"""

from __future__ import annotations

import msgspec


class Asset(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A listed asset. `decimals` fixes the atomic unit: 1 unit = 10**-decimals."""

    asset_id: int
    symbol: str
    decimals: int
    collateral_weight_bps: int = 10_000  # haircut: collateral value = value x weight / 10,000
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
