"""Deposits (exactly-once crediting under duplicates and reordering), withdrawals (every
state, limits, two-person rule, margin rule, terminal states), freezes and adjustments."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.core import canonical
from keel.core.accounts import EXTERNAL_ACCOUNT_ID, FEE_ACCOUNT_ID
from keel.core.commands import (
    Adjust,
    CancelWithdrawal,
    FreezeWithdrawals,
    ListAsset,
    PlaceOrder,
    RejectDeposit,
    ReportDeposit,
    RequestWithdrawal,
    SetIndexPrices,
    UpdateWithdrawal,
)
from keel.core.errors import RejectCode
from keel.core.events import Adjusted, DepositUpdated, EntryReason, LedgerPosted, WithdrawalUpdated
from keel.core.snapshot import decode_state, encode_state
from keel.core.transfers import DepositStatus, WithdrawalAction, WithdrawalStatus
from keel.testing.harness import Harness

USDC = 1_000_000
ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"  # base58, 44 characters


def setup() -> tuple[Harness, int, int]:
    """USDC on Solana: 2 confirmations, fee 1 USDC, daily limit 1,000, auto-approve up to
    100, two operators from 500."""
    h = Harness()
    h.ok(
        ListAsset,
        symbol="USDC",
        decimals=6,
        chain="Solana",
        confirmations_required=2,
        withdrawal_fee_atomic=1 * USDC,
        withdrawal_daily_limit_atomic=1_000 * USDC,
        withdrawal_auto_approve_atomic=100 * USDC,
        two_person_min_atomic=500 * USDC,
    )
    account = h.new_account()
    return h, account, 0


def deposit(h: Harness, account: int, confirmations: int, tx: str = "tx1", index: int = 0, amount: int = 50 * USDC):
    return h.ok(
        ReportDeposit,
        chain="Solana",
        tx_id=tx,
        output_index=index,
        account_id=account,
        asset_id=0,
        amount_atomic=amount,
        confirmations=confirmations,
    )


def test_deposit_goes_seen_confirming_credited_and_is_credited_once() -> None:
    h, account, usdc = setup()
    events = deposit(h, account, 0)
    assert events == [DepositUpdated(1, account, usdc, 50 * USDC, "Solana", "tx1", 0, 0, DepositStatus.SEEN)]
    events = deposit(h, account, 1)
    assert [e.status for e in events] == [DepositStatus.CONFIRMING]
    assert h.balance(account, "USDC") == 0
    events = deposit(h, account, 2)
    entry = next(e for e in events if isinstance(e, LedgerPosted))
    assert entry.reason == EntryReason.DEPOSIT
    assert entry.lines == ((EXTERNAL_ACCOUNT_ID, usdc, -50 * USDC), (account, usdc, 50 * USDC))
    assert h.balance(account, "USDC") == 50 * USDC
    for confirmations in (2, 3, 1, 0, 40):  # duplicates and late reports change nothing
        assert deposit(h, account, confirmations) == []
    assert h.balance(account, "USDC") == 50 * USDC
    assert h.audit() == []


def test_a_report_that_disagrees_with_the_first_is_refused() -> None:
    h, account, _ = setup()
    deposit(h, account, 0)
    h.reject(
        ReportDeposit,
        RejectCode.DEPOSIT_MISMATCH,
        "first reported as 50 USDC to account 1",
        chain="Solana",
        tx_id="tx1",
        output_index=0,
        account_id=account,
        asset_id=0,
        amount_atomic=51 * USDC,
        confirmations=5,
    )


def test_rejected_deposit_is_never_credited() -> None:
    h, account, _ = setup()
    deposit(h, account, 1)
    h.ok(RejectDeposit, deposit_id=1, reason="sanctioned address", operator="ops")
    assert deposit(h, account, 9) == []
    assert h.balance(account, "USDC") == 0
    h.reject(RejectDeposit, RejectCode.UNKNOWN_DEPOSIT, "already rejected", deposit_id=1, reason="r", operator="o")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 4)),  # (output index, confirmations)
        min_size=1,
        max_size=25,
    )
)
def test_any_order_of_reports_credits_each_output_at_most_once(reports: list[tuple[int, int]]) -> None:
    h, account, _ = setup()
    for index, confirmations in reports:
        deposit(h, account, confirmations, index=index, amount=(index + 1) * USDC)
    credited = {index for index, confirmations in reports if confirmations >= 2}
    assert h.balance(account, "USDC") == sum((index + 1) * USDC for index in credited)
    assert h.audit() == []


def funded(amount: int = 2_000 * USDC) -> tuple[Harness, int]:
    h, account, _ = setup()
    deposit(h, account, 2, amount=amount)
    return h, account


def request(h: Harness, account: int, amount: int, address: str = ADDRESS) -> list[Any]:
    return h.submit(RequestWithdrawal, account_id=account, asset_id=0, amount_atomic=amount, address=address)


def act(h: Harness, withdrawal_id: int, action: WithdrawalAction, operator: str = "ops", **extra: str) -> list[Any]:
    return h.submit(UpdateWithdrawal, withdrawal_id=withdrawal_id, action=int(action), operator=operator, **extra)


def test_small_withdrawal_is_auto_approved_sent_and_completed_with_its_fee() -> None:
    h, account = funded()
    (event,) = request(h, account, 100 * USDC)
    assert isinstance(event, WithdrawalUpdated) and event.status == WithdrawalStatus.APPROVED
    assert h.locked(account, "USDC") == 101 * USDC
    act(h, 1, WithdrawalAction.MARK_SENT, tx_id="sig123")
    events = act(h, 1, WithdrawalAction.MARK_COMPLETED)
    entry = next(e for e in events if isinstance(e, LedgerPosted))
    assert entry.reason == EntryReason.WITHDRAWAL
    assert entry.lines == ((account, 0, -101 * USDC), (EXTERNAL_ACCOUNT_ID, 0, 100 * USDC), (FEE_ACCOUNT_ID, 0, USDC))
    assert h.balance(account, "USDC") == 1_899 * USDC and h.locked(account, "USDC") == 0
    # completed is terminal: nothing reverses it
    for action in WithdrawalAction:
        (rejected,) = act(h, 1, action, tx_id="x", reason="oops")
        assert rejected.code == RejectCode.WITHDRAWAL_STATE and "final" in rejected.message
    h.reject(CancelWithdrawal, RejectCode.WITHDRAWAL_STATE, "no longer", account_id=account, withdrawal_id=1)
    assert h.audit() == []


def test_large_withdrawal_needs_two_different_operators() -> None:
    h, account = funded()
    (event,) = request(h, account, 600 * USDC)
    assert event.status == WithdrawalStatus.REQUESTED
    act(h, 1, WithdrawalAction.APPROVE, operator="alice")
    assert h.state.withdrawals[1].status == WithdrawalStatus.REQUESTED
    (rejected,) = act(h, 1, WithdrawalAction.APPROVE, operator="alice")
    assert rejected.code == RejectCode.WITHDRAWAL_STATE
    act(h, 1, WithdrawalAction.APPROVE, operator="bob")
    assert h.state.withdrawals[1].status == WithdrawalStatus.APPROVED
    assert h.state.withdrawals[1].approvals == ("alice", "bob")


@pytest.mark.parametrize(
    ("how", "status"),
    [("reject", WithdrawalStatus.REJECTED), ("fail", WithdrawalStatus.FAILED), ("cancel", WithdrawalStatus.CANCELLED)],
)
def test_rejected_failed_or_cancelled_withdrawal_releases_the_lock(how: str, status: WithdrawalStatus) -> None:
    h, account = funded()
    request(h, account, 200 * USDC)  # waits for approval
    if how == "reject":
        act(h, 1, WithdrawalAction.REJECT, reason="address on a blocklist")
    elif how == "fail":
        act(h, 1, WithdrawalAction.APPROVE)
        act(h, 1, WithdrawalAction.MARK_SENT, tx_id="sig")
        act(h, 1, WithdrawalAction.MARK_FAILED, reason="dropped by the chain")
    else:
        h.ok(CancelWithdrawal, account_id=account, withdrawal_id=1)
    assert h.state.withdrawals[1].status == status
    assert h.locked(account, "USDC") == 0 and h.balance(account, "USDC") == 2_000 * USDC
    assert h.audit() == []


def test_withdrawal_refusals() -> None:
    h, account = funded(300 * USDC)
    h.reject(
        RequestWithdrawal,
        RejectCode.ADDRESS_INVALID,
        "base58",
        account_id=account,
        asset_id=0,
        amount_atomic=USDC,
        address="0xabc",
    )
    h.reject(
        RequestWithdrawal,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "fee 1 USDC",
        account_id=account,
        asset_id=0,
        amount_atomic=300 * USDC,
        address=ADDRESS,
    )
    h.reject(
        RequestWithdrawal,
        RejectCode.AMOUNT_NOT_POSITIVE,
        "positive",
        account_id=account,
        asset_id=0,
        amount_atomic=0,
        address=ADDRESS,
    )
    h.reject(
        RequestWithdrawal,
        RejectCode.UNKNOWN_ACCOUNT,
        "does not exist",
        account_id=99,
        asset_id=0,
        amount_atomic=USDC,
        address=ADDRESS,
    )
    other = h.new_account()
    request(h, account, 10 * USDC)
    h.reject(CancelWithdrawal, RejectCode.UNKNOWN_WITHDRAWAL, "does not exist", account_id=other, withdrawal_id=1)


def test_daily_limit_counts_todays_requests_but_not_cancelled_ones() -> None:
    h, account = funded(3_000 * USDC)
    for _ in range(10):
        request(h, account, 100 * USDC)
    h.reject(
        RequestWithdrawal,
        RejectCode.WITHDRAWAL_LIMIT,
        "daily withdrawal limit is 1000 USDC",
        account_id=account,
        asset_id=0,
        amount_atomic=USDC,
        address=ADDRESS,
    )
    h.ok(CancelWithdrawal, account_id=account, withdrawal_id=3)
    request(h, account, 100 * USDC)
    assert h.audit() == []


def test_freeze_stops_requests_and_payouts_but_not_rejections() -> None:
    h, account = funded()
    request(h, account, 50 * USDC)
    h.ok(FreezeWithdrawals, frozen=True, reason="invariant violation at seq 40", operator="auditor")
    h.reject(
        RequestWithdrawal,
        RejectCode.WITHDRAWALS_FROZEN,
        "invariant violation",
        account_id=account,
        asset_id=0,
        amount_atomic=USDC,
        address=ADDRESS,
    )
    (refused,) = act(h, 1, WithdrawalAction.MARK_SENT, tx_id="sig")
    assert refused.code == RejectCode.WITHDRAWALS_FROZEN
    act(h, 1, WithdrawalAction.REJECT, reason="frozen")
    h.ok(FreezeWithdrawals, frozen=False, reason="resolved", operator="ops")
    request(h, account, 50 * USDC)


def test_withdrawal_must_leave_initial_margin_for_positions() -> None:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp()
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    long_, short = h.new_account(USDC=100 * USDC), h.new_account(USDC=100 * USDC)
    base = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": 1_000}
    h.ok(PlaceOrder, account_id=short, side=1, **base)
    h.ok(PlaceOrder, account_id=long_, side=0, **base)  # 10 SOL at 100: initial margin 2% of 1,000 = 20 USDC
    # the default USDC has no chain: a withdrawal address cannot be checked
    h.reject(
        RequestWithdrawal,
        RejectCode.ADDRESS_INVALID,
        "no chain",
        account_id=long_,
        asset_id=0,
        amount_atomic=USDC,
        address=ADDRESS,
    )


def test_adjustment_is_visible_with_its_incident() -> None:
    h, account = funded(10 * USDC)
    events = h.ok(Adjust, account_id=account, asset_id=0, amount_atomic=-3 * USDC, incident="INC-42", operator="ops")
    assert events[0] == Adjusted(account, 0, -3 * USDC, "INC-42", "ops")
    assert events[1].reason == EntryReason.ADJUSTMENT
    assert h.balance(account, "USDC") == 7 * USDC
    h.reject(
        Adjust,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "only 7 USDC",
        account_id=account,
        asset_id=0,
        amount_atomic=-8 * USDC,
        incident="INC-42",
        operator="ops",
    )


def test_transfers_survive_snapshots_and_hash_incrementally() -> None:
    h, account = funded()
    request(h, account, 600 * USDC)
    act(h, 1, WithdrawalAction.APPROVE, operator="alice")
    deposit(h, account, 1, tx="tx2")
    assert h.engine.state_hash() == canonical.state_hash(h.state)
    state = decode_state(encode_state(h.state))
    assert canonical.state_hash(state) == canonical.state_hash(h.state)
    assert state.deposit_keys == h.state.deposit_keys
    assert state.withdrawals_by_account == h.state.withdrawals_by_account


def test_a_refused_report_changes_nothing_and_the_chain_must_match() -> None:
    h, account, _ = setup()
    huge = 2**62
    deposit(h, account, 0, amount=huge)
    h.ok(
        ReportDeposit,
        chain="Solana",
        tx_id="tx9",
        output_index=0,
        account_id=account,
        asset_id=0,
        amount_atomic=1,
        confirmations=2,
    )  # now the balance is 1: crediting 2**62 more overflows
    h.reject(
        ReportDeposit,
        RejectCode.VALUE_TOO_LARGE,
        "largest amount",
        chain="Solana",
        tx_id="tx1",
        output_index=0,
        account_id=account,
        asset_id=0,
        amount_atomic=huge,
        confirmations=2,
    )
    assert h.state.deposits[1].confirmations == 0
    h.reject(
        ReportDeposit,
        RejectCode.DEPOSIT_MISMATCH,
        "arrives on Solana",
        chain="Ethereum",
        tx_id="tx2",
        output_index=0,
        account_id=account,
        asset_id=0,
        amount_atomic=USDC,
        confirmations=2,
    )


def test_auto_approval_never_bypasses_the_two_person_rule() -> None:
    h = Harness()
    h.ok(
        ListAsset,
        symbol="USDC",
        decimals=6,
        chain="Solana",
        withdrawal_auto_approve_atomic=10_000 * USDC,
        two_person_min_atomic=500 * USDC,
    )
    account = h.new_account()
    deposit(h, account, 2, amount=2_000 * USDC)
    (event,) = request(h, account, 600 * USDC)
    assert event.status == WithdrawalStatus.REQUESTED
    (event,) = request(h, account, 100 * USDC)
    assert event.status == WithdrawalStatus.APPROVED


def test_minimum_deposit_and_withdrawal() -> None:
    """Below the asset's minimum: a deposit is recorded as rejected (visible, never credited,
    whatever is reported later); a withdrawal request is refused. At the minimum both pass."""
    h = Harness()
    h.ok(
        ListAsset,
        symbol="USDC",
        decimals=6,
        chain="Solana",
        confirmations_required=2,
        withdrawal_fee_atomic=USDC,
        deposit_min_atomic=5 * USDC,
        withdrawal_min_atomic=2 * USDC,
    )
    account = h.new_account()
    small = deposit(h, account, 0, tx="dust", amount=5 * USDC - 1)
    assert [e.status for e in small] == [DepositStatus.REJECTED]
    assert deposit(h, account, 2, tx="dust", amount=5 * USDC - 1) == []  # confirmed later: still nothing
    assert h.balance(account, "USDC") == 0
    assert h.state.deposits[1].status == DepositStatus.REJECTED
    deposit(h, account, 2, tx="enough", amount=5 * USDC)
    assert h.balance(account, "USDC") == 5 * USDC
    h.reject(
        RequestWithdrawal,
        RejectCode.WITHDRAWAL_TOO_SMALL,
        "the minimum withdrawal is 2 USDC",
        account_id=account,
        asset_id=0,
        amount_atomic=2 * USDC - 1,
        address=ADDRESS,
    )
    events = h.ok(RequestWithdrawal, account_id=account, asset_id=0, amount_atomic=2 * USDC, address=ADDRESS)
    assert [e.amount_atomic for e in events if isinstance(e, WithdrawalUpdated)] == [2 * USDC]
    h.reject(
        ListAsset,
        RejectCode.ASSET_CONFIG_INVALID,
        "must not be negative",
        symbol="SOL",
        decimals=9,
        withdrawal_min_atomic=-1,
    )
    assert h.audit() == []
    restored = decode_state(encode_state(h.state))
    assert (restored.assets[0].deposit_min_atomic, restored.assets[0].withdrawal_min_atomic) == (5 * USDC, 2 * USDC)
