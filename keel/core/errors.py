"""Failures of the core: stable rejection codes, rejections, broken state.

Three kinds (STYLE.md section 4): a user's mistake raises `Rejected(code, message)`,
a programmer's mistake fails an `assert`, broken state raises `InvariantViolation`.
The `RejectCode` numbers are public: never renumber or reuse them; a retired code stays
as a comment. Ranges: 1xxx the request itself, 2xxx markets and order rules,
3xxx balances and accounts, 4xxx orders that must exist, 9xxx reserved for gateways.

Imports: the standard library only.
"""

from __future__ import annotations

import enum


@enum.unique
class RejectCode(enum.IntEnum):
    """Why a command was refused. The numbers are public: never renumber or reuse them."""

    # 1xxx: the request itself
    QUANTITY_NOT_POSITIVE = 1001
    PRICE_NOT_POSITIVE = 1002
    DECIMAL_MALFORMED = 1003
    DECIMAL_TOO_PRECISE = 1004
    PRICE_OFF_TICK = 1005
    QUANTITY_OFF_STEP = 1006
    ORDER_MALFORMED = 1007
    BATCH_TOO_LARGE = 1008
    AMOUNT_NOT_POSITIVE = 1009
    VALUE_TOO_LARGE = 1010
    CLIENT_ID_INVALID = 1011
    # 2xxx: markets and order rules
    UNKNOWN_MARKET = 2001
    UNKNOWN_ASSET = 2002
    QUANTITY_BELOW_MINIMUM = 2003
    QUANTITY_ABOVE_MAXIMUM = 2004
    NOTIONAL_BELOW_MINIMUM = 2005
    PRICE_OUT_OF_BAND = 2006
    POST_ONLY_WOULD_TAKE = 2007
    FILL_OR_KILL_UNFILLABLE = 2008
    SELF_TRADE = 2009
    NO_LIQUIDITY = 2010
    MARKET_EXISTS = 2011
    ASSET_EXISTS = 2012
    MARKET_CONFIG_INVALID = 2013
    ASSET_CONFIG_INVALID = 2014
    MARKET_NOT_OPEN = 2015
    NO_MARK_PRICE = 2016
    REDUCE_ONLY_WOULD_INCREASE = 2017
    OPEN_INTEREST_LIMIT = 2018
    MARKET_POST_ONLY = 2019
    MARKET_LIMIT_ONLY = 2020
    MARKET_STATE_TRANSITION = 2021
    PRICE_MOVE_TOO_LARGE = 2022
    TRIGGER_PRICE_WRONG_SIDE = 2023  # a take-profit or stop-loss that would fire at once or never
    # 3xxx: balances and accounts
    INSUFFICIENT_AVAILABLE = 3001
    UNKNOWN_ACCOUNT = 3002
    OPEN_ORDER_LIMIT = 3003
    ACCOUNT_NOT_USER = 3004
    ACCOUNT_LIMIT = 3005
    INSUFFICIENT_MARGIN = 3006
    BORROW_NOT_ENABLED = 3007
    POOL_INSUFFICIENT = 3008
    # 4xxx: orders that must exist
    UNKNOWN_ORDER = 4001
    DUPLICATE_CLIENT_ID = 4002
    UNKNOWN_SCHEDULE = 4003
    # 5xxx: deposits and withdrawals
    DEPOSIT_MISMATCH = 5001
    UNKNOWN_DEPOSIT = 5002
    ADDRESS_INVALID = 5003
    WITHDRAWALS_FROZEN = 5004
    WITHDRAWAL_LIMIT = 5005
    UNKNOWN_WITHDRAWAL = 5006
    WITHDRAWAL_STATE = 5007
    WITHDRAWAL_TOO_SMALL = 5008


class KeelError(Exception):
    """Base of every Keel exception; carries structured fields and a trader's message."""


class Rejected(KeelError):
    """A command refused for a reason the user can act on; state is unchanged."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Rejected({self.code.name}, {self.message!r})"


class CheckpointMismatch(KeelError):
    """Replayed state does not hash to what the log recorded at a checkpoint: stop."""

    def __init__(self, seq: int, expected: bytes, found: bytes, sections: list[str]) -> None:
        super().__init__(
            f"checkpoint at seq {seq}: state hash {found.hex()} does not match the recorded "
            f"{expected.hex()}; sections that differ: {', '.join(sections) or 'none named'}"
        )
        self.seq = seq
        self.expected = expected
        self.found = found
        self.sections = sections


class InvariantViolation(KeelError):
    """The engine's state broke a DESIGN.md invariant: stop trading, never repair."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("; ".join(violations))
        self.violations = violations
