"""Errors on the wire: one exception, one table from engine rejections to HTTP.

Every error the gateway answers is `{"code": CODE, "message": text}` (spec section 4.1)
with the HTTP status of spec section 4.2. ccxt picks its exception from `code` alone, so
`REJECTIONS` maps each core `RejectCode` to the Backpack code that makes ccxt raise the
right class (InsufficientFunds, InvalidOrder, BadSymbol, ...); docs/api.md shows the
same table. A test checks that every RejectCode has an entry.

Imports: keel.core.errors, keel.core.events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from keel.core.errors import RejectCode
from keel.core.events import CommandRejected, Event


class ApiError(Exception):
    """An answer other than success: HTTP status, Backpack error code, a trader's message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        return msgspec.json.encode({"code": self.code, "message": self.message})


def bad_request(message: str) -> ApiError:
    """Malformed, missing or contradictory parameters (ccxt BadRequest)."""
    return ApiError(400, "INVALID_CLIENT_REQUEST", message)


def not_found(message: str) -> ApiError:
    """An order or account that is not there (ccxt ExchangeNotAvailable, as against Backpack)."""
    return ApiError(404, "RESOURCE_NOT_FOUND", message)


def not_implemented(what: str) -> ApiError:
    """A Backpack feature Keel does not have yet (ccxt OperationFailed); never a 404 or 500."""
    return ApiError(400, "NOT_IMPLEMENTED", f"{what} is not available on this exchange yet")


# RejectCode -> (HTTP status, Backpack code). ccxt classes in the comments (spec 4.2).
REJECTIONS: Final[dict[RejectCode, tuple[int, str]]] = {
    RejectCode.QUANTITY_NOT_POSITIVE: (400, "INVALID_QUANTITY"),  # BadRequest
    RejectCode.PRICE_NOT_POSITIVE: (400, "INVALID_PRICE"),  # InvalidOrder
    RejectCode.DECIMAL_MALFORMED: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.DECIMAL_TOO_PRECISE: (400, "INVALID_CLIENT_REQUEST"),  # price: INVALID_PRICE, see FIELD_CODES
    RejectCode.PRICE_OFF_TICK: (400, "INVALID_PRICE"),  # InvalidOrder
    RejectCode.QUANTITY_OFF_STEP: (400, "INVALID_QUANTITY"),  # BadRequest
    RejectCode.ORDER_MALFORMED: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.BATCH_TOO_LARGE: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.AMOUNT_NOT_POSITIVE: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.VALUE_TOO_LARGE: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.CLIENT_ID_INVALID: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest
    RejectCode.UNKNOWN_MARKET: (400, "INVALID_MARKET"),  # BadSymbol
    RejectCode.UNKNOWN_ASSET: (400, "INVALID_ASSET"),  # BadRequest
    RejectCode.QUANTITY_BELOW_MINIMUM: (400, "INVALID_QUANTITY"),  # BadRequest
    RejectCode.QUANTITY_ABOVE_MAXIMUM: (400, "INVALID_QUANTITY"),  # BadRequest
    RejectCode.NOTIONAL_BELOW_MINIMUM: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.PRICE_OUT_OF_BAND: (400, "INVALID_PRICE"),  # InvalidOrder
    RejectCode.POST_ONLY_WOULD_TAKE: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.FILL_OR_KILL_UNFILLABLE: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.SELF_TRADE: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.NO_LIQUIDITY: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.MARKET_EXISTS: (400, "INVALID_CLIENT_REQUEST"),  # operator commands
    RejectCode.ASSET_EXISTS: (400, "INVALID_CLIENT_REQUEST"),
    RejectCode.MARKET_CONFIG_INVALID: (400, "INVALID_CLIENT_REQUEST"),
    RejectCode.ASSET_CONFIG_INVALID: (400, "INVALID_CLIENT_REQUEST"),
    # Spec section 7: CancelOnly and Closed are TRADING_PAUSED (ccxt ExchangeNotAvailable);
    # an order PostOnly or LimitOnly does not accept is INVALID_ORDER.
    RejectCode.MARKET_NOT_OPEN: (400, "TRADING_PAUSED"),
    RejectCode.MARKET_POST_ONLY: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.MARKET_LIMIT_ONLY: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.MARKET_STATE_TRANSITION: (400, "INVALID_CLIENT_REQUEST"),  # operator commands
    RejectCode.PRICE_MOVE_TOO_LARGE: (400, "INVALID_PRICE"),  # an operator's index price update
    RejectCode.TRIGGER_PRICE_WRONG_SIDE: (400, "INVALID_PRICE"),  # an attached take-profit or stop-loss
    RejectCode.NO_MARK_PRICE: (400, "INVALID_ORDER"),  # a perpetual before its first index price
    RejectCode.REDUCE_ONLY_WOULD_INCREASE: (400, "INVALID_ORDER"),  # InvalidOrder (spec 8.2)
    RejectCode.OPEN_INTEREST_LIMIT: (400, "POSITION_LIMIT"),  # OperationRejected
    RejectCode.INSUFFICIENT_AVAILABLE: (400, "INSUFFICIENT_FUNDS"),  # InsufficientFunds
    RejectCode.UNKNOWN_ACCOUNT: (404, "RESOURCE_NOT_FOUND"),  # operator credit to no account
    RejectCode.OPEN_ORDER_LIMIT: (400, "ORDER_LIMIT"),  # OperationRejected
    RejectCode.ACCOUNT_NOT_USER: (403, "FORBIDDEN"),  # OperationRejected
    RejectCode.ACCOUNT_LIMIT: (400, "PRECONDITION_FAILED"),  # OperationFailed
    RejectCode.INSUFFICIENT_MARGIN: (400, "INSUFFICIENT_MARGIN"),  # InsufficientFunds
    RejectCode.BORROW_NOT_ENABLED: (400, "BORROW_LIMIT"),  # BadRequest: the asset cannot be borrowed (now)
    RejectCode.POOL_INSUFFICIENT: (400, "INSUFFICIENT_SUPPLY"),  # InsufficientFunds (spec 4.2)
    # ccxt has no code that yields OrderNotFound; RESOURCE_NOT_FOUND is what Backpack answers.
    RejectCode.UNKNOWN_ORDER: (404, "RESOURCE_NOT_FOUND"),  # ExchangeNotAvailable
    RejectCode.DUPLICATE_CLIENT_ID: (400, "INVALID_ORDER"),  # InvalidOrder
    RejectCode.UNKNOWN_SCHEDULE: (404, "RESOURCE_NOT_FOUND"),  # operator: cancel a maintenance schedule
    # Deposits and withdrawals. Spec 4.2 names PRECONDITION_FAILED (ccxt OperationFailed) for a
    # withdrawal refused by state (frozen by the auditor); a limit or a step out of order is the same kind.
    RejectCode.DEPOSIT_MISMATCH: (400, "INVALID_CLIENT_REQUEST"),  # operator: a report contradicting the first
    RejectCode.UNKNOWN_DEPOSIT: (404, "RESOURCE_NOT_FOUND"),  # operator: reject a deposit
    RejectCode.ADDRESS_INVALID: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest (ccxt has no address code)
    RejectCode.WITHDRAWALS_FROZEN: (400, "PRECONDITION_FAILED"),  # OperationFailed
    RejectCode.WITHDRAWAL_LIMIT: (400, "PRECONDITION_FAILED"),  # OperationFailed: the daily limit
    RejectCode.UNKNOWN_WITHDRAWAL: (404, "RESOURCE_NOT_FOUND"),  # ExchangeNotAvailable
    RejectCode.WITHDRAWAL_STATE: (400, "PRECONDITION_FAILED"),  # OperationFailed: e.g. already final
    RejectCode.WITHDRAWAL_TOO_SMALL: (400, "INVALID_CLIENT_REQUEST"),  # BadRequest: below the asset's minimum
}

# A decimal that is malformed or too precise is reported against the field it was in, so
# that an over-precise price is an INVALID_PRICE (ccxt InvalidOrder) like an off-tick one.
FIELD_CODES: Final[dict[str, str]] = {
    "price": "INVALID_PRICE",
    "quantity": "INVALID_QUANTITY",
    "quoteQuantity": "INVALID_QUANTITY",
}


def rejection(code: int, message: str) -> ApiError:
    """Return the ApiError for an engine rejection (a CommandRejected event's code and message)."""
    status, wire_code = REJECTIONS[RejectCode(code)]
    return ApiError(status, wire_code, message)


def raise_if_refused(events: Sequence[Event], *, operator: bool = False) -> None:
    """Raise the ApiError of a command the engine refused (its only event is
    CommandRejected); `operator` names the engine's code in the message."""
    first = events[0] if events else None
    if isinstance(first, CommandRejected):
        raise (operator_rejection if operator else rejection)(first.code, first.message)


def operator_rejection(code: int, message: str) -> ApiError:
    """Return the ApiError for an engine rejection of an operator command: as `rejection`,
    with the engine's code named in the message ("WITHDRAWAL_STATE (5007): ..."), which
    operators and `keel` commands print (docs/errors.md lists the codes)."""
    status, wire_code = REJECTIONS[RejectCode(code)]
    return ApiError(status, wire_code, f"{RejectCode(code).name} ({code}): {message}")
