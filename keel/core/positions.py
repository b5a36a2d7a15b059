"""Positions: an account's exposure in one perpetual market (the rules are in perps.py).

Imports: msgspec.
"""

from __future__ import annotations

import msgspec


class Position(msgspec.Struct, array_like=True, gc=False):
    """An account's exposure in one perpetual market: its position and its open orders."""

    market_id: int
    account_id: int
    size_steps: int = 0  # signed: long > 0
    cost_atomic: int = 0  # signed entry cost: > 0 for a long, < 0 for a short
    open_buy_steps: int = 0  # open quantity of resting buy orders
    open_sell_steps: int = 0
    realized_pnl_atomic: int = 0  # settled by trades since the position was opened
    funding_atomic: int = 0  # funding received (> 0) or paid (< 0) since then


class MarginTerm(msgspec.Struct, gc=False):
    """One position record's margin term as perps.py keeps it (derived, never hashed or
    snapshotted): unrealized PnL, maintenance and initial requirement, the mark they were
    valued at, and the notional and worst-case notional they used. Not tracked by the
    cyclic garbage collector (it holds only integers), so neither are the dicts of them:
    the terms are replaced at every fill, and tracked tuples made the collector run and
    walk them again and again."""

    unrealized: int
    maintenance: int
    initial: int
    mark: int
    notional: int
    worst: int
