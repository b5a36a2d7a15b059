"""Operator API for value crossing the boundary: deposits, withdrawals, freezes, adjustments.

Routes under `/operator/v1/`, signed with the operator key. Writes are one logged core
command each (`ReportDeposit`, `RejectDeposit`, `UpdateWithdrawal` with a
`transfers.WithdrawalAction`, `FreezeWithdrawals`, `Adjust`) answered from their events
once durable; an engine refusal keeps its REJECTIONS status and code, with the engine's
code named in the message. Statuses are the core's names in lower case (deposits:
seen, confirming, credited, rejected; withdrawals: requested, approved, sent, completed,
rejected, cancelled, failed), not the user API's, because operators act on each step.

The withdrawal list reads the history views (paged, filtered by status and account) and
adds who approved each one from the engine state (the two-person rule needs it).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post

from keel.core import limits
from keel.core.commands import Adjust, FreezeWithdrawals, RejectDeposit, ReportDeposit, UpdateWithdrawal
from keel.core.errors import Rejected
from keel.core.events import (
    Adjusted,
    DepositUpdated,
    LedgerPosted,
    WithdrawalsFrozen,
    WithdrawalUpdated,
)
from keel.core.money import format_decimal, parse_decimal
from keel.core.state import ExchangeState
from keel.core.transfers import DepositStatus, WithdrawalAction, WithdrawalStatus
from keel.gateway import convert
from keel.gateway import format as fmt
from keel.gateway.errors import ApiError, bad_request, not_found, raise_if_refused
from keel.gateway.web import body_of, gateway_of, json_response

OPERATOR: Final = {"operator": True}
DEPOSIT_STATUS_NAMES: Final = {int(status): status.name.lower() for status in DepositStatus}
WITHDRAWAL_STATUS_NAMES: Final = {int(status): status.name.lower() for status in WithdrawalStatus}
WITHDRAWAL_STATUSES_IN: Final = {name: status for status, name in WITHDRAWAL_STATUS_NAMES.items()}
ACTIONS_IN: Final = {
    "approve": int(WithdrawalAction.APPROVE),
    "reject": int(WithdrawalAction.REJECT),
    "markSent": int(WithdrawalAction.MARK_SENT),
    "markCompleted": int(WithdrawalAction.MARK_COMPLETED),
    "markFailed": int(WithdrawalAction.MARK_FAILED),
}
_ID_MAX: Final = 2**62


class DepositBody(msgspec.Struct, rename="camel", kw_only=True):
    """A deposit seen on chain (ReportDeposit). `chain` defaults to the asset's chain and
    `confirmations` to what the asset requires (so a manual credit is credited at once)."""

    account_id: int
    symbol: str
    quantity: str
    tx_id: str
    chain: str | None = None
    output_index: int = 0
    confirmations: int | None = None


class DepositRejectBody(msgspec.Struct, rename="camel", kw_only=True):
    deposit_id: int
    reason: str
    operator: str


class WithdrawalUpdateBody(msgspec.Struct, rename="camel", kw_only=True):
    """One operator step: approve, reject (reason), markSent (txId), markCompleted, markFailed (reason)."""

    withdrawal_id: int
    action: str
    operator: str
    tx_id: str = ""
    reason: str = ""


class FreezeBody(msgspec.Struct, rename="camel", kw_only=True):
    frozen: bool
    reason: str
    operator: str


class AdjustBody(msgspec.Struct, rename="camel", kw_only=True):
    """A visible correction: `quantity` > 0 credits the account, < 0 debits it."""

    account_id: int
    symbol: str
    quantity: str
    incident: str
    operator: str


BODIES: Final[dict[tuple[str, str], Any]] = {
    ("/operator/v1/deposits", "post"): DepositBody,
    ("/operator/v1/deposits/reject", "post"): DepositRejectBody,
    ("/operator/v1/withdrawals/update", "post"): WithdrawalUpdateBody,
    ("/operator/v1/withdrawals/freeze", "post"): FreezeBody,
    ("/operator/v1/adjustments", "post"): AdjustBody,
}


def _account_id(value: int) -> int:
    if not 0 < value < _ID_MAX:
        raise not_found(f"account {value} does not exist")
    return value


def _deposit_object(
    event: DepositUpdated, symbol: str, decimals: int, entry_id: int | None, changed: bool, seq: int
) -> dict[str, Any]:
    return {
        "seq": seq,
        "changed": changed,
        "depositId": event.deposit_id,
        "accountId": event.account_id,
        "symbol": symbol,
        "quantity": format_decimal(event.amount_atomic, decimals),
        "chain": event.chain,
        "txId": event.tx_id,
        "outputIndex": event.output_index,
        "confirmations": event.confirmations,
        "status": DEPOSIT_STATUS_NAMES[int(event.status)],
        "entryId": entry_id,
    }


@post(
    "/operator/v1/deposits",
    opt={"instruction": "operatorDepositReport", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Report a deposit seen on chain (ReportDeposit): credited once, at its required confirmations",
)
async def report_deposit(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), DepositBody, "deposit")
    asset = gateway.asset(body.symbol)
    account_id = _account_id(body.account_id)
    amount_atomic = convert.positive_amount(body.quantity, asset.decimals, "quantity")
    asset_chain, required = gateway.read(
        lambda state: (state.assets[asset.asset_id].chain, state.assets[asset.asset_id].confirmations_required)
    )
    chain = body.chain if body.chain is not None else asset_chain
    if not chain:
        raise bad_request(f"{asset.symbol} has no chain configured: give chain")
    confirmations = body.confirmations if body.confirmations is not None else required
    if not 0 <= confirmations <= 2**31 or not 0 <= body.output_index <= 2**32:
        raise bad_request("confirmations and outputIndex must be small non-negative integers")
    outcome = await gateway.submit(
        ReportDeposit(
            seq=0,
            timestamp_ns=0,
            chain=chain,
            tx_id=body.tx_id,
            output_index=body.output_index,
            account_id=account_id,
            asset_id=asset.asset_id,
            amount_atomic=amount_atomic,
            confirmations=confirmations,
        )
    )
    raise_if_refused(outcome.events, operator=True)
    entry_id = next((event.entry_id for event in outcome.events if isinstance(event, LedgerPosted)), None)
    updated = next((event for event in outcome.events if isinstance(event, DepositUpdated)), None)
    if updated is None:  # a duplicate or late report: nothing changed; say what the deposit is
        key = (chain, body.tx_id, body.output_index)

        def read(state: ExchangeState) -> DepositUpdated | None:
            deposit_id = state.deposit_keys.get(key)
            if deposit_id is None:
                return None
            deposit = state.deposits[deposit_id]
            return DepositUpdated(
                deposit.deposit_id,
                deposit.account_id,
                deposit.asset_id,
                deposit.amount_atomic,
                deposit.chain,
                deposit.tx_id,
                deposit.output_index,
                deposit.confirmations,
                int(deposit.status),
            )

        existing = gateway.read(read)
        assert existing is not None, "a report that changed nothing is of a known deposit"
        return json_response(_deposit_object(existing, asset.symbol, asset.decimals, None, False, outcome.seq))
    return json_response(_deposit_object(updated, asset.symbol, asset.decimals, entry_id, True, outcome.seq))


@post(
    "/operator/v1/deposits/reject",
    opt={"instruction": "operatorDepositReject", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Reject a deposit that is not credited yet (RejectDeposit)",
)
async def reject_deposit(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), DepositRejectBody, "deposit rejection")
    if not 0 < body.deposit_id < _ID_MAX:
        raise not_found(f"deposit {body.deposit_id} does not exist")
    outcome = await gateway.submit(
        RejectDeposit(seq=0, timestamp_ns=0, deposit_id=body.deposit_id, reason=body.reason, operator=body.operator)
    )
    raise_if_refused(outcome.events, operator=True)
    event = outcome.events[0]
    assert isinstance(event, DepositUpdated)
    asset = gateway.assets()[event.asset_id]
    return json_response(_deposit_object(event, asset.symbol, asset.decimals, None, True, outcome.seq))


def _withdrawal_object(
    withdrawal_id: int,
    account_id: int,
    symbol: str,
    decimals: int,
    amount_atomic: int,
    fee_atomic: int,
    chain: str,
    address: str,
    tx_id: str,
    status: int,
    reason: str,
) -> dict[str, Any]:
    return {
        "id": withdrawal_id,
        "accountId": account_id,
        "symbol": symbol,
        "quantity": format_decimal(amount_atomic, decimals),
        "fee": format_decimal(fee_atomic, decimals),
        "chain": chain,
        "address": address,
        "txId": tx_id or None,
        "status": WITHDRAWAL_STATUS_NAMES[status],
        "reason": reason or None,
    }


@get(
    "/operator/v1/withdrawals",
    opt={"instruction": "operatorWithdrawals", **OPERATOR},
    tags=["operator"],
    summary="Withdrawals, newest first: status (requested, approved, sent, ...), accountId, limit, offset",
)
async def list_withdrawals(
    request: Request[Any, Any, Any],
    status: str | None = None,
    accountId: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
) -> Response[bytes]:
    gateway = gateway_of(request)
    wanted = None
    if status is not None:
        wanted = WITHDRAWAL_STATUSES_IN.get(status)
        if wanted is None:
            raise bad_request(f"status must be one of {', '.join(WITHDRAWAL_STATUSES_IN)}, got {status[:32]!r}")
    account_id = convert.bounded_int(accountId, "accountId", 0, 1, _ID_MAX) if accountId else None
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, _ID_MAX)
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.withdrawals(account_id, None, wanted, None, None, count, skip)
    ids = [one.withdrawal_id for one in found]
    approvals = gateway.read(
        lambda state: {withdrawal_id: tuple(state.withdrawals[withdrawal_id].approvals) for withdrawal_id in ids}
    )
    body = []
    for one in found:
        entry = _withdrawal_object(
            one.withdrawal_id,
            one.account_id,
            assets[one.asset_id].symbol,
            assets[one.asset_id].decimals,
            one.amount_atomic,
            one.fee_atomic,
            one.chain,
            one.address,
            one.tx_id,
            one.status,
            one.reason,
        )
        entry["approvals"] = list(approvals.get(one.withdrawal_id, ()))
        entry["createdAt"] = fmt.iso(one.created_ns)
        entry["updatedAt"] = fmt.iso(one.updated_ns)
        body.append(entry)
    return json_response(body)


@post(
    "/operator/v1/withdrawals/update",
    opt={"instruction": "operatorWithdrawalUpdate", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="An operator's step on a withdrawal: approve, reject, markSent, markCompleted, markFailed",
)
async def update_withdrawal(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), WithdrawalUpdateBody, "withdrawal update")
    action = ACTIONS_IN.get(body.action)
    if action is None:
        raise bad_request(f"action must be one of {', '.join(ACTIONS_IN)}, got {body.action[:32]!r}")
    if not 0 < body.withdrawal_id < _ID_MAX:
        raise not_found(f"withdrawal {body.withdrawal_id} does not exist")
    outcome = await gateway.submit(
        UpdateWithdrawal(
            seq=0,
            timestamp_ns=0,
            withdrawal_id=body.withdrawal_id,
            action=action,
            operator=body.operator,
            tx_id=body.tx_id,
            reason=body.reason,
        )
    )
    raise_if_refused(outcome.events, operator=True)
    event = next(event for event in outcome.events if isinstance(event, WithdrawalUpdated))
    entry_id = next((event.entry_id for event in outcome.events if isinstance(event, LedgerPosted)), None)
    asset = gateway.assets()[event.asset_id]
    answer = _withdrawal_object(
        event.withdrawal_id,
        event.account_id,
        asset.symbol,
        asset.decimals,
        event.amount_atomic,
        event.fee_atomic,
        event.chain,
        event.address,
        event.tx_id,
        int(event.status),
        event.reason,
    )
    answer["seq"] = outcome.seq
    answer["entryId"] = entry_id
    return json_response(answer)


@post(
    "/operator/v1/withdrawals/freeze",
    opt={"instruction": "operatorWithdrawalsFreeze", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Freeze (frozen true) or unfreeze withdrawals: requests, approvals, sends and completions",
)
async def freeze(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), FreezeBody, "freeze")
    outcome = await gateway.submit(
        FreezeWithdrawals(seq=0, timestamp_ns=0, frozen=body.frozen, reason=body.reason, operator=body.operator)
    )
    raise_if_refused(outcome.events, operator=True)
    event = outcome.events[0]
    assert isinstance(event, WithdrawalsFrozen)
    return json_response({"seq": outcome.seq, "frozen": event.frozen, "reason": event.reason})


@post(
    "/operator/v1/adjustments",
    opt={"instruction": "operatorAdjust", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="A visible correction with an incident reference (Adjust; ledger reason adjustment)",
)
async def adjust(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), AdjustBody, "adjustment")
    asset = gateway.asset(body.symbol)
    account_id = _account_id(body.account_id)
    text = body.quantity.strip()
    try:
        amount_atomic = parse_decimal(text.removeprefix("-"), asset.decimals, field="quantity")
    except Rejected as rejected:
        raise convert.from_rejected(rejected, "quantity") from None
    if amount_atomic <= 0 or amount_atomic > limits.amount_atomic_max:
        raise ApiError(400, "INVALID_QUANTITY", f"quantity must be non-zero and at most the largest amount, got {text}")
    if text.startswith("-"):
        amount_atomic = -amount_atomic
    outcome = await gateway.submit(
        Adjust(
            seq=0,
            timestamp_ns=0,
            account_id=account_id,
            asset_id=asset.asset_id,
            amount_atomic=amount_atomic,
            incident=body.incident,
            operator=body.operator,
        )
    )
    raise_if_refused(outcome.events, operator=True)
    event = outcome.events[0]
    assert isinstance(event, Adjusted)
    entry_id = next((one.entry_id for one in outcome.events if isinstance(one, LedgerPosted)), None)
    return json_response(
        {
            "seq": outcome.seq,
            "accountId": event.account_id,
            "symbol": asset.symbol,
            "quantity": format_decimal(event.amount_atomic, asset.decimals),
            "incident": event.incident,
            "operator": event.operator,
            "entryId": entry_id,
        }
    )


HANDLERS: Final = [report_deposit, reject_deposit, list_withdrawals, update_withdrawal, freeze, adjust]
