"""Settings a user sets on their own account: the leverage limit.

Theory of operation. `SetLeverageLimit` records a whole number from 1 to
`limits.leverage_limit_max` (or 0 to remove it) on the account. With a limit L, the
initial margin of each position and open order is at least 1/L of its notional at the
mark, and that of each borrow at least 1/L of its value (perps.initial_requirement_atomic,
rounded up, toward the exchange), on top of the markets' and assets' own fractions, which
still apply where they are larger. Maintenance margin is not changed, so a lower limit
never starts a liquidation: it refuses new orders, borrows and withdrawals that the
account's equity would not cover under it. The limit is account state (in the state hash
and snapshots); `LeverageLimitSet` records each change.

Imports: commands, errors, events, limits, matching, perps, state.
"""

from __future__ import annotations

from keel.core import limits
from keel.core.commands import SetLeverageLimit
from keel.core.errors import RejectCode, Rejected
from keel.core.events import Event, LeverageLimitSet
from keel.core.matching import user_account_for
from keel.core.perps import refresh_account_terms
from keel.core.state import ExchangeState


def set_leverage_limit(state: ExchangeState, command: SetLeverageLimit, events: list[Event]) -> None:
    """Set (or with 0 remove) the account's leverage limit. Raises Rejected(UNKNOWN_ACCOUNT,
    ORDER_MALFORMED)."""
    account = user_account_for(state, command.account_id)
    limit = command.leverage_limit
    if not 0 <= limit <= limits.leverage_limit_max:
        raise Rejected(
            RejectCode.ORDER_MALFORMED,
            f"a leverage limit is a whole number from 1 to {limits.leverage_limit_max} (0 removes it), not {limit}",
        )
    if account.leverage_limit == limit:
        return
    account.leverage_limit = limit
    refresh_account_terms(state, account)
    state.dirty_accounts.append(account)
    events.append(LeverageLimitSet(account.account_id, limit))
