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
quick check passes, the account is *certified*: it leaves `state.uncertified`.

A certificate is revoked by any later entry of the account in the dirty list: `sweep`
puts the account of every entry appended since it last ran back into
`state.uncertified`. The scan sweeps before it grants and the hasher sweeps before it
clears the list, so every change after a grant is swept after it.

A certificate also lapses on its own once the mark drift passes d0 + DRIFT_CAP_E9. Each
grant files the account in a bucket of its d0 (`BUCKET_E9` wide: `state.cert_buckets`,
bucket number -> account ids; `state.cert_bucket_of`, account id -> the bucket of its
current certificate), and `uncertified_now` revokes the certificates of every bucket
whose lowest d0 is out of reach, `expire`. So a certificate lasts until its own d0 is
out of reach (less at most one bucket's width), and a drift move revokes only the
certificates it outlived. A grant whose bucket is already out of reach is not made.
`reset` revokes them all: before the first scan, and after a restore (derived data is
rebuilt, not kept).

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
# Certificates are filed by their d0 in buckets this wide: one lapses at most this much drift early.
BUCKET_E9 = DRIFT_CAP_E9 // 16

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
    every change before now swept (liquidation.liquidate_where_needed); unless its terms
    are so old that the certificate would lapse at once (it stays uncertified)."""
    bucket = account.terms_drift // BUCKET_E9
    if bucket * BUCKET_E9 < state.mark_drift - DRIFT_CAP_E9:
        return
    account_id = account.account_id
    state.uncertified.pop(account_id, None)
    if state.cert_bucket_of.get(account_id) != bucket:  # else that bucket already lists it
        state.cert_bucket_of[account_id] = bucket
        listed = state.cert_buckets.get(bucket)
        if listed is None:
            state.cert_buckets[bucket] = [account_id]
        else:
            listed.append(account_id)


def before_clear(state: ExchangeState) -> None:
    """Sweep the entries the caller is about to clear from the dirty list. Before a
    perpetual is listed (no margin asset) nothing is ever certified: nothing to sweep."""
    if state.margin_asset_id >= 0:
        sweep(state)
    state.dirty_swept = 0


def uncertified_now(state: ExchangeState) -> dict[int, None]:
    """Sweep, revoke the certificates the mark drift outlived (all of them before the first
    reset), and return the uncertified accounts."""
    sweep(state)
    if not state.cert_trusted or not ENABLED:
        reset(state)
    elif state.cert_buckets:
        expire(state)
    return state.uncertified


def expire(state: ExchangeState) -> None:
    """Revoke the certificates of every bucket whose lowest d0 the drift cap no longer reaches."""
    reach = state.mark_drift - DRIFT_CAP_E9
    buckets = state.cert_buckets
    lapsed = [bucket for bucket in buckets if bucket * BUCKET_E9 < reach]
    if not lapsed:
        return
    bucket_of = state.cert_bucket_of
    uncertified = state.uncertified
    for bucket in lapsed:
        for account_id in buckets.pop(bucket):
            if bucket_of.get(account_id) == bucket:  # not certified again in a later bucket
                del bucket_of[account_id]
                uncertified[account_id] = None


def reset(state: ExchangeState) -> None:
    """Revoke every certificate."""
    uncertified = dict.fromkeys(state.position_holders)
    uncertified.update(state.lending_accounts)
    state.uncertified = uncertified
    state.cert_buckets = {}
    state.cert_bucket_of = {}
    state.cert_trusted = True


__all__ = ["BUCKET_E9", "ENABLED", "before_clear", "expire", "grant", "reset", "sweep", "uncertified_now"]
