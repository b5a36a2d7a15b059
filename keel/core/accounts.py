"""Accounts: balances and locks per asset, and the account's open orders.

`balances[asset_id]` is the account's total holding of an asset in atomic units; it
changes only by posting ledger lines, so it always equals the sum of the account's
ledger lines (DESIGN.md rule 3). `locked[asset_id]` is the part held by open orders;
available = balance - locked. For a user account both are never negative (spot; the
margin issue adds borrowing). System accounts have negative ids: the external world
(deposits come from it, withdrawals go to it, so its balance is minus everything held
inside the exchange) and the fee account.

Imports: orders, positions.
"""

from __future__ import annotations

from typing import Final

from keel.core.orders import Order
from keel.core.positions import MarginTerm, Position

EXTERNAL_ACCOUNT_ID: Final = -1
FEE_ACCOUNT_ID: Final = -2
CLEARING_ACCOUNT_ID: Final = -3  # the counterparty of realized perpetual PnL (perps.py)
INSURANCE_ACCOUNT_ID: Final = -4  # the insurance fund; also receives funding rounding
LENDING_POOL_ACCOUNT_ID: Final = -5  # holds what lenders lent and borrowers did not take (lending.py)
SYSTEM_ACCOUNT_IDS: Final = (
    EXTERNAL_ACCOUNT_ID,
    FEE_ACCOUNT_ID,
    CLEARING_ACCOUNT_ID,
    INSURANCE_ACCOUNT_ID,
    LENDING_POOL_ACCOUNT_ID,
)
SYSTEM_ACCOUNT_NAMES: Final = {
    EXTERNAL_ACCOUNT_ID: "external",
    FEE_ACCOUNT_ID: "fees",
    CLEARING_ACCOUNT_ID: "clearing",
    INSURANCE_ACCOUNT_ID: "insurance",
    LENDING_POOL_ACCOUNT_ID: "lending-pool",
}


class Account:
    """One account. Mutable state owned by the engine."""

    __slots__ = (
        "account_id",
        "balances",
        "borrowed",
        "cap_need",
        "client_orders",
        "digest",
        "exposure",
        "init_cap_e9",
        "init_total",
        "lent",
        "leverage_limit",
        "locked",
        "maint_cap_e9",
        "maint_total",
        "margin_terms",
        "orders_open",
        "positions",
        "terms_drift",
        "unreal_total",
        "worst_exposure",
    )

    def __init__(self, account_id: int, assets_count: int) -> None:
        self.account_id = account_id
        self.balances: list[int] = [0] * assets_count
        self.locked: list[int] = [0] * assets_count
        self.lent: list[int] = [0] * assets_count  # lend positions per asset (lending.py)
        self.borrowed: list[int] = [0] * assets_count  # borrow positions per asset
        # Open orders by order id, in creation order; and by client id where one was given.
        self.orders_open: dict[int, Order] = {}
        self.client_orders: dict[int, Order] = {}
        self.positions: dict[int, Position] = {}  # market id -> position (perpetuals)
        # The user's leverage limit (account_settings.py): initial margin is at least 1/limit
        # of each position's and borrow's value; 0: none beyond the markets' own fractions.
        self.leverage_limit = 0
        # This account's contribution to the accounts section hash as last computed
        # (canonical.StateHasher); 0 until first hashed. Not part of the state itself.
        self.digest = 0
        # Derived, not state (never hashed or snapshotted; perps.py keeps them and rebuilds
        # them on restore, invariants.audit compares them with a full valuation): per
        # position record, a MarginTerm (unrealized PnL, maintenance, initial requirement,
        # the mark they were valued at, notional, worst-case notional), and their sums, so a
        # margin check costs the same whatever the number of positions. Terms go stale when
        # marks move and are valued again only when a bound cannot decide (perps.py, "Kept,
        # not recomputed"): terms_drift is the exchange's mark drift when every term was last
        # fresh, and the caps bound each term's margin fraction at up to twice its notional.
        self.margin_terms: dict[int, MarginTerm] = {}
        self.unreal_total = 0
        self.maint_total = 0
        self.init_total = 0
        self.exposure = 0
        self.worst_exposure = 0
        self.maint_cap_e9 = 0
        self.init_cap_e9 = 0
        self.terms_drift = 0
        self.cap_need: int | None = None  # perps.maintenance_within_bound at the drift cap

    def available(self, asset_id: int) -> int:
        """Return balance minus locked, in atomic units."""
        return self.balances[asset_id] - self.locked[asset_id]


def is_user_account(account_id: int) -> bool:
    """Return whether the id names a user's account rather than a system account."""
    return account_id > 0
