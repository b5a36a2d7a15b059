"""Coverage certificates: which position holders a price move cannot put below maintenance.

Derived, never state: nothing here is hashed, snapshotted or read by a decision. It only
lets the liquidation scan after an index update or a Tick skip accounts whose answer is
already known, so that a scan costs what changed instead of every holder.

Theory of operation. The scan's first question (liquidation.liquidate_where_needed) is
the bound at the drift cap: an account that never lent or borrowed, whose terms were
valued at drift d0 no further back than DRIFT_CAP_E9, and whose free margin asset covers
`cap_need`, is above maintenance at every mark within DRIFT_CAP_E9 (in log terms) of those
its terms were valued at (perps.py, "The bound"). That stays true while nothing about the
account changes and the exchange's mark drift stays within d0 + DRIFT_CAP_E9, whatever
else happens: the answer depends only on the account's balances, locks, positions and
lending (all hashed, so every change to them appends the account to
`state.dirty_accounts`) and on the marks (bounded by the drift). So when the scan's
quick check passes, the account is *certified*: it leaves `state.uncertified`, and
`state.cert_floor` keeps the lowest d0 of any certificate granted since the last reset.

A certificate is revoked by any later entry of the account in the dirty list: `sweep`
puts the account of every entry appended since it last ran back into
`state.uncertified`. The scan sweeps before it grants and the hasher sweeps before it
clears the list, so every change after a grant is swept after it. When the mark drift
passes `cert_floor + DRIFT_CAP_E9`, some certificate may have lapsed, and `reset`
revokes them all (every holder and lending account is uncertified again).

Invariant: every account with a position record or in `lending_accounts` is either in
`uncertified` or holds a certificate granted after its last change and within the drift
cap of now; so an index update or a Tick needs to examine only the uncertified among the
accounts it can move. The liquidation checks that examine them are the ones the engine
makes anyway, in the same ascending id order, so decisions, events and hashes are those
of a scan over every holder (tests/core/test_certificates.py compares them with
certificates switched off).

Imports: accounts, perps, state.
"""

from __future__ import annotations

from operator import attrgetter

from keel.core.accounts import Account
from keel.core.perps import DRIFT_CAP_E9
from keel.core.state import ExchangeState

# Switched off (tests only), no certificate is granted or trusted: every holder is examined.
ENABLED = True

_ACCOUNT_ID = attrgetter("account_id")


def sweep(state: ExchangeState) -> None:
    """Revoke the certificate of every account changed since the last sweep: the entries
    of `state.dirty_accounts` appended since then. Every grant follows a sweep, so a
    change before the grant was swept before it, and one after it is swept later."""
    dirty = state.dirty_accounts
    start = state.dirty_swept
    assert start <= len(dirty), "the dirty list was cleared without before_clear"
    if start < len(dirty):
        state.uncertified.update(dict.fromkeys(map(_ACCOUNT_ID, dirty[start:])))
        state.dirty_swept = len(dirty)


def grant(state: ExchangeState, account: Account) -> None:
    """Certify an account the scan's quick check just found covered at the drift cap, with
    every change before now swept (liquidation.liquidate_where_needed)."""
    state.uncertified.pop(account.account_id, None)
    floor = state.cert_floor
    if floor is not None and account.terms_drift < floor:
        state.cert_floor = account.terms_drift


def before_clear(state: ExchangeState) -> None:
    """Sweep the entries the caller is about to clear from the dirty list. Before a
    perpetual is listed (no margin asset) nothing is ever certified: nothing to sweep."""
    if state.margin_asset_id >= 0:
        sweep(state)
    state.dirty_swept = 0


def uncertified_now(state: ExchangeState) -> dict[int, None]:
    """Sweep, reset if any certificate may have lapsed, and return the uncertified accounts."""
    sweep(state)
    floor = state.cert_floor
    if floor is None or state.mark_drift - DRIFT_CAP_E9 > floor or not ENABLED:
        reset(state)
    return state.uncertified


def reset(state: ExchangeState) -> None:
    """Revoke every certificate."""
    uncertified = dict.fromkeys(state.position_holders)
    uncertified.update(state.lending_accounts)
    state.uncertified = uncertified
    state.cert_floor = state.mark_drift


__all__ = ["ENABLED", "before_clear", "grant", "reset", "sweep", "uncertified_now"]
