"""Deposits, withdrawals and adjustments: value crossing the exchange's boundary.

Deposits. A chain watcher reports each output it sees as a logged `ReportDeposit`
(chain, transaction id, output index, account, asset, amount, confirmations). The first
report of a (chain, tx, index) creates the deposit: `Seen` with no confirmations,
`Confirming` below the asset's required confirmations, and credited at once when it
already has them. Later reports only ever raise the confirmation count; the report that
reaches the requirement credits the account (ledger reason `deposit`, from the external
account) and the deposit is `Credited` for good. A report after that, a report with
fewer confirmations than already seen (reordering), or the same report twice changes
nothing (`DepositUpdated` is not emitted); a report that disagrees with the first one
on account, asset or amount is refused (DEPOSIT_MISMATCH) and so logged. A first report
of less than the asset's minimum deposit records the deposit as `Rejected` at once: it is
visible in the account's deposit history and never credited, whatever is reported later.
An operator can reject a deposit that is not yet credited. So each output is credited at
most once, however often and in whatever order it is reported.

Withdrawals. `RequestWithdrawal` checks the address for the asset's chain, the amount
(positive, at least the asset's minimum withdrawal; the fee is charged on top), the
available balance, the account's daily limit (requests since 00:00 UTC that were not
rejected, cancelled or failed) and, for an account with positions, that its equity
after the withdrawal still covers its initial margin; then
it locks amount + fee. It is `Approved` at once when it is under the asset's
auto-approval amount, else it waits for an operator (two distinct operators at or above
the asset's two-person amount). `Sent` records the chain transaction id; `Completed`
posts the ledger entry (amount to the external account, fee to the fee account) and
releases the lock. `Rejected` (operator), `Cancelled` (the user, before it is sent) and
`Failed` (operator, before completion) release the lock and move nothing. `Completed`,
`Rejected`, `Cancelled` and `Failed` are terminal: nothing changes a withdrawal after
them. A mistake is answered by an `Adjust` (ledger reason `adjustment`, with an incident
reference), never by editing. `FreezeWithdrawals` (the auditor, or an operator) refuses
new requests and approvals, sends and completions until unfrozen.

Imports: accounts, commands, errors, events, limits, money, perps, state, assets.
"""

from __future__ import annotations

import enum

from keel.core import limits
from keel.core.accounts import EXTERNAL_ACCOUNT_ID, FEE_ACCOUNT_ID
from keel.core.commands import (
    Adjust,
    CancelWithdrawal,
    FreezeWithdrawals,
    RejectDeposit,
    ReportDeposit,
    RequestWithdrawal,
    UpdateWithdrawal,
)
from keel.core.errors import RejectCode, Rejected
from keel.core.events import (
    Adjusted,
    DepositUpdated,
    EntryReason,
    Event,
    WithdrawalsFrozen,
    WithdrawalUpdated,
)
from keel.core.ledger import post_entry
from keel.core.matching import amount_text, user_account_for
from keel.core.perps import equity_atomic, initial_requirement_atomic
from keel.core.state import ExchangeState
from keel.core.transfer_records import Deposit, Withdrawal

DAY_NS = 86_400_000_000_000


@enum.unique
class DepositStatus(enum.IntEnum):
    SEEN = 0
    CONFIRMING = 1
    CREDITED = 2
    REJECTED = 3


@enum.unique
class WithdrawalStatus(enum.IntEnum):
    REQUESTED = 0  # waiting for approval
    APPROVED = 1
    SENT = 2
    COMPLETED = 3
    REJECTED = 4
    CANCELLED = 5
    FAILED = 6


@enum.unique
class WithdrawalAction(enum.IntEnum):
    APPROVE = 0
    REJECT = 1
    MARK_SENT = 2
    MARK_COMPLETED = 3
    MARK_FAILED = 4


_TERMINAL = frozenset(
    (WithdrawalStatus.COMPLETED, WithdrawalStatus.REJECTED, WithdrawalStatus.CANCELLED, WithdrawalStatus.FAILED)
)
_DEPOSIT = int(EntryReason.DEPOSIT)
_WITHDRAWAL = int(EntryReason.WITHDRAWAL)
_ADJUSTMENT = int(EntryReason.ADJUSTMENT)


def _deposit_event(deposit: Deposit) -> DepositUpdated:
    return DepositUpdated(
        deposit.deposit_id,
        deposit.account_id,
        deposit.asset_id,
        deposit.amount_atomic,
        deposit.chain,
        deposit.tx_id,
        deposit.output_index,
        deposit.confirmations,
        deposit.status,
    )


def _withdrawal_event(withdrawal: Withdrawal, operator: str) -> WithdrawalUpdated:
    return WithdrawalUpdated(
        withdrawal.withdrawal_id,
        withdrawal.account_id,
        withdrawal.asset_id,
        withdrawal.amount_atomic,
        withdrawal.fee_atomic,
        withdrawal.status,
        withdrawal.chain,
        withdrawal.address,
        withdrawal.tx_id,
        operator,
        withdrawal.reason,
        withdrawal.client_id,
    )


def _asset(state: ExchangeState, asset_id: int) -> None:
    if not 0 <= asset_id < len(state.assets):
        raise Rejected(RejectCode.UNKNOWN_ASSET, f"asset {asset_id} does not exist")


def _text(value: str, what: str, maximum: int = limits.text_max) -> None:
    if not value or len(value) > maximum or not value.isprintable():
        raise Rejected(RejectCode.ORDER_MALFORMED, f"{what} must be 1 to {maximum} printable characters")


def _credit(state: ExchangeState, deposit: Deposit, seq: int, events: list[Event]) -> None:
    asset_id = deposit.asset_id
    amount = deposit.amount_atomic
    deposit.status = int(DepositStatus.CREDITED)
    lines = ((EXTERNAL_ACCOUNT_ID, asset_id, -amount), (deposit.account_id, asset_id, amount))
    post_entry(state, _DEPOSIT, seq, lines, events)


def report_deposit(state: ExchangeState, command: ReportDeposit, events: list[Event]) -> None:
    """Record (or advance) a deposit seen on chain; credit it once it is confirmed.

    Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_ASSET, AMOUNT_NOT_POSITIVE, VALUE_TOO_LARGE,
    ORDER_MALFORMED, DEPOSIT_MISMATCH)."""
    user_account_for(state, command.account_id)
    _asset(state, command.asset_id)
    _text(command.chain, "chain", 32)
    _text(command.tx_id, "transaction id", 128)
    if not 0 <= command.output_index <= 2**32:
        raise Rejected(RejectCode.ORDER_MALFORMED, "output index out of range")
    if command.amount_atomic <= 0:
        raise Rejected(RejectCode.AMOUNT_NOT_POSITIVE, "a deposit must be a positive amount")
    if command.confirmations < 0:
        raise Rejected(RejectCode.ORDER_MALFORMED, "confirmations must not be negative")
    expected_chain = state.assets[command.asset_id].chain
    if expected_chain and command.chain != expected_chain:
        raise Rejected(
            RejectCode.DEPOSIT_MISMATCH,
            f"{state.assets[command.asset_id].symbol} arrives on {expected_chain}, not on {command.chain}",
        )
    key = (command.chain, command.tx_id, command.output_index)
    deposit_id = state.deposit_keys.get(key)
    required = state.assets[command.asset_id].confirmations_required
    now = command.timestamp_ns
    if deposit_id is not None:
        deposit = state.deposits[deposit_id]
        if (deposit.account_id, deposit.asset_id, deposit.amount_atomic) != (
            command.account_id,
            command.asset_id,
            command.amount_atomic,
        ):
            raise Rejected(
                RejectCode.DEPOSIT_MISMATCH,
                f"deposit {deposit_id} ({command.chain} {command.tx_id}:{command.output_index}) was first reported as "
                f"{amount_text(state, deposit.asset_id, deposit.amount_atomic)} to account {deposit.account_id}",
            )
        if deposit.status >= DepositStatus.CREDITED or command.confirmations <= deposit.confirmations:
            return  # a duplicate, a late or reordered report: nothing to do
        if command.confirmations >= required:
            _check_fits(state, deposit)  # decide before the first write
        deposit.confirmations = command.confirmations
        deposit.updated_ns = now
        state.dirty_transfers.append(deposit)
        if command.confirmations >= required:
            _credit(state, deposit, command.seq, events)
        else:
            deposit.status = int(DepositStatus.CONFIRMING)
        events.append(_deposit_event(deposit))
        return
    if len(state.deposits) >= limits.deposits_max:
        raise Rejected(RejectCode.ORDER_MALFORMED, "the deposit register is full")
    deposit = Deposit(
        len(state.deposits) + 1,
        command.account_id,
        command.asset_id,
        command.amount_atomic,
        command.chain,
        command.tx_id,
        command.output_index,
        command.confirmations,
        int(DepositStatus.SEEN if command.confirmations == 0 else DepositStatus.CONFIRMING),
        now,
        now,
    )
    too_small = command.amount_atomic < state.assets[command.asset_id].deposit_min_atomic
    if too_small:  # recorded, visible and final: later reports of it change nothing
        deposit.status = int(DepositStatus.REJECTED)
    elif command.confirmations >= required:
        _check_fits(state, deposit)
    state.deposit_keys[key] = deposit.deposit_id
    state.deposits[deposit.deposit_id] = deposit
    state.dirty_transfers.append(deposit)
    if command.confirmations >= required and not too_small:
        _credit(state, deposit, command.seq, events)
    events.append(_deposit_event(deposit))


def _check_fits(state: ExchangeState, deposit: Deposit) -> None:
    external = state.accounts[EXTERNAL_ACCOUNT_ID].balances[deposit.asset_id]
    balance = state.accounts[deposit.account_id].balances[deposit.asset_id]
    if (
        external - deposit.amount_atomic < -limits.amount_atomic_max
        or balance + deposit.amount_atomic > limits.amount_atomic_max
    ):
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "the deposit would exceed the largest amount Keel holds")


def reject_deposit(state: ExchangeState, command: RejectDeposit, events: list[Event]) -> None:
    """Reject a deposit that is not credited yet (operator). Raises Rejected(UNKNOWN_DEPOSIT, ORDER_MALFORMED)."""
    _text(command.operator, "operator", 64)
    _text(command.reason, "reason")
    deposit = state.deposits.get(command.deposit_id)
    if deposit is None:
        raise Rejected(RejectCode.UNKNOWN_DEPOSIT, f"deposit {command.deposit_id} does not exist")
    if deposit.status >= DepositStatus.CREDITED:
        raise Rejected(
            RejectCode.UNKNOWN_DEPOSIT,
            f"deposit {command.deposit_id} is already {DepositStatus(deposit.status).name.lower()}",
        )
    deposit.status = int(DepositStatus.REJECTED)
    deposit.updated_ns = command.timestamp_ns
    state.dirty_transfers.append(deposit)
    events.append(_deposit_event(deposit))


def address_problem(chain: str, address: str) -> str:
    """Return why `address` is not valid on `chain` ('' when it is)."""
    if chain == "Solana":
        alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
        if 32 <= len(address) <= 44 and all(char in alphabet for char in address):
            return ""
        return "a Solana address is 32 to 44 base58 characters"
    if chain in ("Ethereum", "Arbitrum", "Base"):
        hexdigits = "0123456789abcdefABCDEF"
        if len(address) == 42 and address.startswith("0x") and all(char in hexdigits for char in address[2:]):
            return ""
        return f"an {chain} address is 0x and 40 hex digits"
    if chain == "Bitcoin":
        bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
        if address.startswith("bc1") and 14 <= len(address) <= 74 and all(char in bech32 for char in address[3:]):
            return ""
        return "a Bitcoin address here is bech32 (bc1...)"
    return f"withdrawals on chain {chain!r} are not supported"


def _day_total(state: ExchangeState, account_id: int, asset_id: int, now: int) -> int:
    day_start = now - now % DAY_NS
    total = 0
    for withdrawal_id in state.withdrawals_by_account.get(account_id, ()):
        withdrawal = state.withdrawals[withdrawal_id]
        if (
            withdrawal.asset_id == asset_id
            and withdrawal.created_ns >= day_start
            and withdrawal.status
            not in (WithdrawalStatus.CANCELLED, WithdrawalStatus.FAILED, WithdrawalStatus.REJECTED)
        ):
            total += withdrawal.amount_atomic
    return total


def request_withdrawal(state: ExchangeState, command: RequestWithdrawal, events: list[Event]) -> None:
    """A user asks to withdraw (module docstring). Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_ASSET,
    AMOUNT_NOT_POSITIVE, ADDRESS_INVALID, WITHDRAWALS_FROZEN, WITHDRAWAL_TOO_SMALL, WITHDRAWAL_LIMIT,
    INSUFFICIENT_AVAILABLE, INSUFFICIENT_MARGIN)."""
    account = user_account_for(state, command.account_id)
    _asset(state, command.asset_id)
    asset = state.assets[command.asset_id]
    if state.withdrawals_frozen:
        raise Rejected(RejectCode.WITHDRAWALS_FROZEN, f"withdrawals are frozen: {state.withdrawals_frozen_reason}")
    if not asset.chain:
        raise Rejected(RejectCode.ADDRESS_INVALID, f"{asset.symbol} cannot be withdrawn (no chain is configured)")
    problem = address_problem(asset.chain, command.address)
    if problem:
        raise Rejected(RejectCode.ADDRESS_INVALID, problem)
    amount = command.amount_atomic
    fee = asset.withdrawal_fee_atomic
    if amount <= 0:
        raise Rejected(RejectCode.AMOUNT_NOT_POSITIVE, "a withdrawal must be a positive amount")
    if amount < asset.withdrawal_min_atomic:
        raise Rejected(
            RejectCode.WITHDRAWAL_TOO_SMALL,
            f"the minimum withdrawal is {amount_text(state, command.asset_id, asset.withdrawal_min_atomic)}",
        )
    if not -1 <= command.client_id <= limits.client_id_max:
        raise Rejected(RejectCode.CLIENT_ID_INVALID, f"client id {command.client_id} is not a uint32")
    if amount > limits.amount_atomic_max:
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "amount is too large")
    total = amount + fee
    available = account.balances[command.asset_id] - account.locked[command.asset_id]
    if total > available:
        raise Rejected(
            RejectCode.INSUFFICIENT_AVAILABLE,
            f"insufficient funds: the withdrawal needs {amount_text(state, command.asset_id, total)} "
            f"(fee {amount_text(state, command.asset_id, fee)}), "
            f"{amount_text(state, command.asset_id, available)} is available",
        )
    limit = asset.withdrawal_daily_limit_atomic
    if limit:
        used = _day_total(state, account.account_id, command.asset_id, command.timestamp_ns)
        if used + amount > limit:
            raise Rejected(
                RejectCode.WITHDRAWAL_LIMIT,
                f"the daily withdrawal limit is {amount_text(state, command.asset_id, limit)}; "
                f"{amount_text(state, command.asset_id, used)} was already requested today",
            )
    if any(
        position.size_steps or position.open_buy_steps or position.open_sell_steps
        for position in account.positions.values()
    ):
        # The initial margin rule, with the withdrawn amount gone (locked funds are not collateral).
        account.locked[command.asset_id] += total
        try:
            equity = equity_atomic(state, account)
            required = initial_requirement_atomic(state, account)
        finally:
            account.locked[command.asset_id] -= total
        if equity < required:
            raise Rejected(
                RejectCode.INSUFFICIENT_MARGIN,
                "insufficient margin: after this withdrawal the account's equity would not cover its initial margin",
            )
    if len(state.withdrawals) >= limits.withdrawals_max:
        raise Rejected(RejectCode.ORDER_MALFORMED, "the withdrawal register is full")
    withdrawal_id = len(state.withdrawals) + 1
    # Automatic approval never bypasses the two-person rule.
    auto = amount <= asset.withdrawal_auto_approve_atomic and not (
        asset.two_person_min_atomic and amount >= asset.two_person_min_atomic
    )
    withdrawal = Withdrawal(
        withdrawal_id,
        account.account_id,
        command.asset_id,
        amount,
        fee,
        asset.chain,
        command.address,
        int(WithdrawalStatus.APPROVED if auto else WithdrawalStatus.REQUESTED),
        command.timestamp_ns,
        command.timestamp_ns,
        ("auto",) if auto else (),
        client_id=command.client_id,
    )
    account.locked[command.asset_id] += total
    state.withdrawals[withdrawal_id] = withdrawal
    state.withdrawals_by_account.setdefault(account.account_id, []).append(withdrawal_id)
    state.dirty_transfers.append(withdrawal)
    state.dirty_accounts.append(account)
    events.append(_withdrawal_event(withdrawal, ""))


def _state_error(withdrawal: Withdrawal, status_name: str, tail: str) -> Rejected:
    return Rejected(RejectCode.WITHDRAWAL_STATE, f"withdrawal {withdrawal.withdrawal_id} is {status_name}{tail}")


def _release(state: ExchangeState, withdrawal: Withdrawal) -> None:
    account = state.accounts[withdrawal.account_id]
    account.locked[withdrawal.asset_id] -= withdrawal.amount_atomic + withdrawal.fee_atomic
    state.dirty_accounts.append(account)


def update_withdrawal(state: ExchangeState, command: UpdateWithdrawal, events: list[Event]) -> None:
    """An operator approves, rejects, marks sent, completed or failed. Raises Rejected(UNKNOWN_WITHDRAWAL,
    WITHDRAWAL_STATE, WITHDRAWALS_FROZEN, ORDER_MALFORMED)."""
    _text(command.operator, "operator", 64)
    withdrawal = state.withdrawals.get(command.withdrawal_id)
    if withdrawal is None:
        raise Rejected(RejectCode.UNKNOWN_WITHDRAWAL, f"withdrawal {command.withdrawal_id} does not exist")
    status = withdrawal.status
    action = command.action
    name = WithdrawalStatus(status).name.lower()
    if status in _TERMINAL:
        raise _state_error(withdrawal, name, ": it is final")
    if action not in (WithdrawalAction.REJECT, WithdrawalAction.MARK_FAILED) and state.withdrawals_frozen:
        raise Rejected(RejectCode.WITHDRAWALS_FROZEN, f"withdrawals are frozen: {state.withdrawals_frozen_reason}")
    asset = state.assets[withdrawal.asset_id]
    if action == WithdrawalAction.APPROVE:
        if status != WithdrawalStatus.REQUESTED:
            raise _state_error(withdrawal, name, ", not waiting")
        if command.operator in withdrawal.approvals:
            raise Rejected(RejectCode.WITHDRAWAL_STATE, f"{command.operator} already approved it: a second person must")
        approvals = (*withdrawal.approvals, command.operator)
        needed = 2 if asset.two_person_min_atomic and withdrawal.amount_atomic >= asset.two_person_min_atomic else 1
        withdrawal.approvals = approvals
        if len(approvals) >= needed:
            withdrawal.status = int(WithdrawalStatus.APPROVED)
    elif action == WithdrawalAction.REJECT:
        if status not in (WithdrawalStatus.REQUESTED, WithdrawalStatus.APPROVED):
            raise Rejected(
                RejectCode.WITHDRAWAL_STATE, f"withdrawal {withdrawal.withdrawal_id} is {name}: too late to reject"
            )
        _text(command.reason, "reason")
        withdrawal.status = int(WithdrawalStatus.REJECTED)
        withdrawal.reason = command.reason
        _release(state, withdrawal)
    elif action == WithdrawalAction.MARK_SENT:
        if status != WithdrawalStatus.APPROVED:
            raise Rejected(
                RejectCode.WITHDRAWAL_STATE, f"withdrawal {withdrawal.withdrawal_id} is {name}, not approved"
            )
        _text(command.tx_id, "transaction id", 128)
        withdrawal.status = int(WithdrawalStatus.SENT)
        withdrawal.tx_id = command.tx_id
    elif action == WithdrawalAction.MARK_COMPLETED:
        if status != WithdrawalStatus.SENT:
            raise _state_error(withdrawal, name, ", not sent")
        _release(state, withdrawal)
        asset_id = withdrawal.asset_id
        amount, fee = withdrawal.amount_atomic, withdrawal.fee_atomic
        lines = (
            (withdrawal.account_id, asset_id, -(amount + fee)),
            (EXTERNAL_ACCOUNT_ID, asset_id, amount),
            (FEE_ACCOUNT_ID, asset_id, fee),
        )
        post_entry(state, _WITHDRAWAL, command.seq, lines, events)
        withdrawal.status = int(WithdrawalStatus.COMPLETED)
    elif action == WithdrawalAction.MARK_FAILED:
        if status not in (WithdrawalStatus.APPROVED, WithdrawalStatus.SENT):
            raise Rejected(
                RejectCode.WITHDRAWAL_STATE, f"withdrawal {withdrawal.withdrawal_id} is {name}: it cannot fail"
            )
        _text(command.reason, "reason")
        withdrawal.status = int(WithdrawalStatus.FAILED)
        withdrawal.reason = command.reason
        _release(state, withdrawal)
    else:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"unknown withdrawal action {action}")
    withdrawal.updated_ns = command.timestamp_ns
    state.dirty_transfers.append(withdrawal)
    events.append(_withdrawal_event(withdrawal, command.operator))


def cancel_withdrawal(state: ExchangeState, command: CancelWithdrawal, events: list[Event]) -> None:
    """The user cancels a withdrawal that was not sent yet. Raises Rejected(UNKNOWN_WITHDRAWAL, WITHDRAWAL_STATE)."""
    withdrawal = state.withdrawals.get(command.withdrawal_id)
    if withdrawal is None or withdrawal.account_id != command.account_id:
        raise Rejected(RejectCode.UNKNOWN_WITHDRAWAL, f"withdrawal {command.withdrawal_id} does not exist")
    if withdrawal.status not in (WithdrawalStatus.REQUESTED, WithdrawalStatus.APPROVED):
        name = WithdrawalStatus(withdrawal.status).name.lower()
        raise Rejected(
            RejectCode.WITHDRAWAL_STATE,
            f"withdrawal {withdrawal.withdrawal_id} is {name}: it can no longer be cancelled",
        )
    withdrawal.status = int(WithdrawalStatus.CANCELLED)
    withdrawal.updated_ns = command.timestamp_ns
    _release(state, withdrawal)
    state.dirty_transfers.append(withdrawal)
    events.append(_withdrawal_event(withdrawal, ""))


def freeze_withdrawals(state: ExchangeState, command: FreezeWithdrawals, events: list[Event]) -> None:
    """Freeze or unfreeze withdrawals (the auditor or an operator)."""
    _text(command.operator, "operator", 64)
    _text(command.reason, "reason")
    state.withdrawals_frozen = command.frozen
    state.withdrawals_frozen_reason = command.reason if command.frozen else ""
    events.append(WithdrawalsFrozen(command.frozen, command.reason, command.operator))


def adjust(state: ExchangeState, command: Adjust, events: list[Event]) -> None:
    """A visible correction (operator): move an amount between an account and the outside
    world with an incident reference. Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_ASSET,
    AMOUNT_NOT_POSITIVE, VALUE_TOO_LARGE, ORDER_MALFORMED, INSUFFICIENT_AVAILABLE)."""
    account = user_account_for(state, command.account_id)
    _asset(state, command.asset_id)
    _text(command.incident, "incident reference", 64)
    _text(command.operator, "operator", 64)
    amount = command.amount_atomic
    if amount == 0:
        raise Rejected(RejectCode.AMOUNT_NOT_POSITIVE, "an adjustment moves a non-zero amount")
    asset_id = command.asset_id
    external_after = state.accounts[EXTERNAL_ACCOUNT_ID].balances[asset_id] - amount
    if (
        abs(amount) > limits.amount_atomic_max
        or account.balances[asset_id] + amount > limits.amount_atomic_max
        or external_after < -limits.amount_atomic_max
    ):
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "the adjustment would exceed the largest amount Keel holds")
    if amount < 0 and -amount > account.balances[asset_id] - account.locked[asset_id]:
        raise Rejected(
            RejectCode.INSUFFICIENT_AVAILABLE,
            f"the account has only {amount_text(state, asset_id, account.available(asset_id))} available",
        )
    events.append(Adjusted(account.account_id, asset_id, amount, command.incident, command.operator))
    lines = ((EXTERNAL_ACCOUNT_ID, asset_id, -amount), (account.account_id, asset_id, amount))
    post_entry(state, _ADJUSTMENT, command.seq, lines, events)
