"""The double-entry ledger: balanced journal entries, the only way balances change.

An entry is a `LedgerPosted` event: lines (account, asset, amount) that sum to zero per
asset, a reason and a reference. `post_entry` checks the balance and applies the lines
to accounts; the trade path in matching.py builds its five-line entry inline for speed,
and so does a funding round in perps.settle_funding (a line per position record), both
checked by the same invariant tests. The engine does not keep the journal: it
emits it, and the history views (or a `LedgerTotals` in tests and the auditor) keep it.

Imports: accounts, events, state.
"""

from __future__ import annotations

from collections.abc import Iterable

from keel.core.events import Event, LedgerPosted
from keel.core.state import ExchangeState

Line = tuple[int, int, int]


def is_balanced(lines: tuple[Line, ...]) -> bool:
    """Return whether the lines sum to zero for every asset."""
    totals: dict[int, int] = {}
    for _, asset_id, amount in lines:
        totals[asset_id] = totals.get(asset_id, 0) + amount
    return all(total == 0 for total in totals.values())


def post_entry(state: ExchangeState, reason: int, reference: int, lines: tuple[Line, ...], events: list[Event]) -> None:
    """Apply a balanced entry to the accounts' balances and append it to `events`."""
    assert is_balanced(lines)
    accounts = state.accounts
    for account_id, asset_id, amount in lines:
        account = accounts[account_id]
        account.balances[asset_id] += amount
        state.dirty_accounts.append(account)
    events.append(LedgerPosted(state.entry_id_next, reason, reference, lines))
    state.entry_id_next += 1


class LedgerTotals:
    """Sums of posted ledger lines per (account, asset), built from events.

    This is the other side of the invariant "a balance equals the sum of its ledger
    lines": the engine moves balances, this adds up what the engine said it moved."""

    __slots__ = ("entries", "next_entry_id", "totals", "unbalanced")

    def __init__(self) -> None:
        self.totals: dict[tuple[int, int], int] = {}
        self.entries = 0
        self.next_entry_id = 1
        self.unbalanced: list[int] = []

    def add(self, events: Iterable[Event]) -> None:
        """Add every LedgerPosted among `events`."""
        totals = self.totals
        for event in events:
            if type(event) is not LedgerPosted:
                continue
            if event.entry_id != self.next_entry_id or not is_balanced(event.lines):
                self.unbalanced.append(event.entry_id)
            self.next_entry_id = event.entry_id + 1
            self.entries += 1
            for account_id, asset_id, amount in event.lines:
                key = (account_id, asset_id)
                totals[key] = totals.get(key, 0) + amount

    def total(self, account_id: int, asset_id: int) -> int:
        return self.totals.get((account_id, asset_id), 0)
