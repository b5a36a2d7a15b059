"""Borrowing and lending: the pool, the margin rule on borrows, interest over a day, and
the exact margin debit of a user who borrows USDC to buy SOL."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.core import canonical
from keel.core.accounts import FEE_ACCOUNT_ID, LENDING_POOL_ACCOUNT_ID
from keel.core.commands import (
    BorrowLend,
    PlaceOrder,
    Tick,
)
from keel.core.errors import RejectCode
from keel.core.events import BorrowLendChanged, EntryReason, InterestAccrued, LedgerPosted
from keel.core.lending import BorrowLendSide, borrow_rate_e9
from keel.core.perps import equity_atomic, initial_requirement_atomic
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000
HOUR_NS = 3_600_000_000_000
BORROW, LEND = int(BorrowLendSide.BORROW), int(BorrowLendSide.LEND)


def setup() -> Harness:
    """The margin tests' exchange (Harness.list_margin_defaults): USDC borrowable (10%
    initial, 5% maintenance on a borrow) at 5% a year at zero utilization, +15% up to 80%
    utilization, +100% above; a 10% spread. SOL at 100."""
    h = Harness(timestamp_step_ns=HOUR_NS // 4)
    h.list_margin_defaults()
    return h


def test_lend_then_borrow_moves_value_through_the_pool() -> None:
    h = setup()
    lender = h.new_account(USDC=10_000 * USDC)
    borrower = h.new_account(SOL=10 * SOL)
    events = h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=5_000 * USDC)
    assert events[-1] == BorrowLendChanged(lender, 0, LEND, 5_000 * USDC, 5_000 * USDC, 0)
    entry = events[0]
    assert isinstance(entry, LedgerPosted) and entry.reason == EntryReason.BORROW_LEND
    assert entry.lines == ((LENDING_POOL_ACCOUNT_ID, 0, 5_000 * USDC), (lender, 0, -5_000 * USDC))
    h.ok(BorrowLend, account_id=borrower, asset_id=0, side=BORROW, amount_atomic=300 * USDC)
    assert h.balance(borrower, "USDC") == 300 * USDC
    assert h.account(borrower).borrowed[0] == 300 * USDC
    assert h.balance(LENDING_POOL_ACCOUNT_ID, "USDC") == 4_700 * USDC
    assert h.audit() == []


def test_borrow_needs_liquidity_margin_and_an_enabled_asset() -> None:
    h = setup()
    lender = h.new_account(USDC=1_000 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=1_000 * USDC)
    poor = h.new_account(SOL=1 * SOL)  # collateral 90 USDC
    h.reject(
        BorrowLend,
        RejectCode.POOL_INSUFFICIENT,
        "pool holds 1000 USDC",
        account_id=poor,
        asset_id=0,
        side=BORROW,
        amount_atomic=1_001 * USDC,
    )
    # 90 USDC of SOL collateral: borrowing 800 USDC needs 80 of initial margin; equity stays 90: fine
    h.ok(BorrowLend, account_id=poor, asset_id=0, side=BORROW, amount_atomic=800 * USDC)
    assert equity_atomic(h.state, h.account(poor)) == 90 * USDC
    assert initial_requirement_atomic(h.state, h.account(poor)) == 80 * USDC
    # 100 more would need 90 of margin on 900 borrowed, still 90 of equity: fine; 101 more is not
    h.reject(
        BorrowLend,
        RejectCode.INSUFFICIENT_MARGIN,
        "needs 90.1 USDC of initial margin",
        account_id=poor,
        asset_id=0,
        side=BORROW,
        amount_atomic=101 * USDC,
    )
    h.reject(
        BorrowLend,
        RejectCode.BORROW_NOT_ENABLED,
        "SOL cannot be borrowed",
        account_id=lender,
        asset_id=1,
        side=BORROW,
        amount_atomic=1,
    )
    assert h.audit() == []


def test_lend_repays_a_borrow_first_and_borrow_redeems_a_lend_first() -> None:
    h = setup()
    lender = h.new_account(USDC=1_000 * USDC)
    user = h.new_account(USDC=100 * USDC, SOL=5 * SOL)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=1_000 * USDC)
    h.ok(BorrowLend, account_id=user, asset_id=0, side=BORROW, amount_atomic=50 * USDC)
    events = h.ok(BorrowLend, account_id=user, asset_id=0, side=LEND, amount_atomic=80 * USDC)
    assert events[-1] == BorrowLendChanged(user, 0, LEND, 80 * USDC, 30 * USDC, 0)  # 50 repaid, 30 lent
    events = h.ok(BorrowLend, account_id=user, asset_id=0, side=BORROW, amount_atomic=40 * USDC)
    assert events[-1] == BorrowLendChanged(user, 0, BORROW, 40 * USDC, 0, 10 * USDC)  # 30 redeemed, 10 borrowed
    assert h.audit() == []


def test_interest_over_a_day_balances_borrowers_lenders_and_the_spread() -> None:
    h = setup()
    lender_a = h.new_account(USDC=3_000 * USDC)
    lender_b = h.new_account(USDC=1_000 * USDC)
    borrower = h.new_account(SOL=100 * SOL)
    h.ok(BorrowLend, account_id=lender_a, asset_id=0, side=LEND, amount_atomic=3_000 * USDC)
    h.ok(BorrowLend, account_id=lender_b, asset_id=0, side=LEND, amount_atomic=1_000 * USDC)
    h.ok(BorrowLend, account_id=borrower, asset_id=0, side=BORROW, amount_atomic=2_000 * USDC)
    # utilization 50%: 5% + 15% x 50/80 = 14.375% a year
    assert borrow_rate_e9(h.state, 0, 2_000 * USDC, 4_000 * USDC) == 143_750_000
    rounds = []
    while len(rounds) < 24:
        rounds += [e for e in h.ok(Tick) if isinstance(e, InterestAccrued)]
        assert h.audit() == []
    first = rounds[0]
    # an hour on 2,000 USDC at 14.375%/year: ceil(2,000,000,000 x 0.14375 / 8,760) = 32,820
    assert first.paid_atomic == 32_820
    # lenders get 90%: 29,538 shared 3:1 rounding down: 22,153 and 7,384; the fee account the rest
    assert first.payments == ((borrower, -32_820), (lender_a, 22_153), (lender_b, 7_384), (FEE_ACCOUNT_ID, 3_283))
    assert sum(amount for _, amount in first.payments) == 0
    paid = sum(r.paid_atomic for r in rounds)
    assert h.account(borrower).borrowed[0] == 2_000 * USDC + paid
    assert h.account(lender_a).lent[0] + h.account(lender_b).lent[0] == 4_000 * USDC + sum(
        r.to_lenders_atomic for r in rounds
    )
    assert h.balance(FEE_ACCOUNT_ID, "USDC") == sum(r.spread_atomic for r in rounds)
    entries = [
        e for events in h.events for e in events if isinstance(e, LedgerPosted) and e.reason == EntryReason.INTEREST
    ]
    assert len(entries) == 24


def test_a_user_who_borrows_usdc_to_buy_sol_sees_the_exact_margin_debit() -> None:
    h = setup()
    lender = h.new_account(USDC=10_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=10_000 * USDC)
    # Buy 5 SOL at 100 with 100 USDC of one's own and 400 borrowed: the debit is 400.00 USDC
    h.ok(BorrowLend, account_id=buyer, asset_id=0, side=BORROW, amount_atomic=400 * USDC)
    spot = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=seller, market_id=spot, side=1, order_type=0, price_ticks=10_000, quantity_steps=500)
    h.ok(PlaceOrder, account_id=buyer, market_id=spot, side=0, order_type=0, price_ticks=10_000, quantity_steps=500)
    account = h.account(buyer)
    assert account.borrowed[0] == 400 * USDC  # the margin debit: exactly what was borrowed
    assert h.balance(buyer, "USDC") == 0 and h.balance(buyer, "SOL") == 5 * SOL
    # equity: 5 SOL x 100 x 0.9 - 400 = 50 USDC; initial margin 10% of 400 = 40
    assert equity_atomic(h.state, account) == 50 * USDC
    assert initial_requirement_atomic(h.state, account) == 40 * USDC
    assert h.audit() == []


def test_a_spot_buy_is_credited_only_what_it_can_buy_not_the_whole_opposite_level() -> None:
    """The spot margin check counts what an order can fill at once, at most its own
    quantity: a 4 SOL buy facing a 20 SOL ask is credited 4 SOL at the index (x 0.9), not 20."""
    h = setup()
    lender = h.new_account(USDC=1_000 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=1_000 * USDC)
    seller = h.new_account(SOL=20 * SOL)
    user = h.new_account(USDC=100 * USDC)
    h.ok(BorrowLend, account_id=user, asset_id=0, side=BORROW, amount_atomic=400 * USDC)
    spot = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=seller, market_id=spot, side=1, order_type=0, price_ticks=11_000, quantity_steps=2_000)
    # 500 - 440 held - 400 borrowed = -340, plus 4 SOL x 100 x 0.9 = 360: equity 20 < 10% of 400
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "equity would be 20 USDC, below its initial margin of 40 USDC",
        account_id=user,
        market_id=spot,
        side=0,
        order_type=0,
        price_ticks=11_000,
        quantity_steps=400,
    )
    assert h.audit() == []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # account
            st.sampled_from(["perp", "spot", "auto", "lend", "borrow", "index", "tick", "deposit", "cancel"]),
            st.integers(0, 1),  # side
            st.integers(9_000, 11_000),  # price ticks / index
            st.integers(1, 300),  # steps / amount units
        ),
        max_size=50,
    )
)
def test_random_margin_flow_keeps_every_invariant(actions: list[tuple[int, str, int, int, int]]) -> None:
    """Orders on spot (some with automatic borrowing and lending: flags from the amount)
    and perpetuals, lends and borrows, index moves, hourly interest and funding Ticks,
    deposits and cancels across accounts: after every step every invariant
    holds (no account below maintenance, pool == lent - borrowed, ledger sums, positions
    net to zero, ...) and the incremental hash equals the full one."""
    h = setup()
    accounts = h.margin_accounts()
    for action in actions:
        h.submit_margin_action(accounts, action)
        assert h.audit() == []
        assert h.engine.state_hash() == canonical.state_hash(h.state)
