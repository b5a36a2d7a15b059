"""Liquidation of borrows (liquidation.py steps 5 and 7): an account whose borrows outgrow
its collateral is liquidated even with no perpetual position; its borrows are repaid from
its own balance, then settled with its other collateral, which the insurance fund takes
at the index price less the 1% liquidation fee while taking the borrow over. Hand-computed."""

from __future__ import annotations

from keel.core import canonical
from keel.core.accounts import INSURANCE_ACCOUNT_ID, LENDING_POOL_ACCOUNT_ID
from keel.core.commands import BorrowLend, ListAsset, ListMarket, PlaceOrder, SetIndexPrices
from keel.core.events import BorrowLendChanged, EntryReason, LedgerPosted, LiquidationStarted
from keel.core.lending import BorrowLendSide
from keel.core.liquidation import below_maintenance
from keel.core.perps import equity_atomic, maintenance_requirement_atomic
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000
BORROW, LEND = int(BorrowLendSide.BORROW), int(BorrowLendSide.LEND)


def setup(*, sol_borrowable: bool = False) -> Harness:
    """USDC borrowable at 10% initial / 5% maintenance margin; SOL (collateral weight 90%)
    too when asked, at 20% / 10%. SOL at 100 USDC; no fees."""
    h = Harness()
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    sol_margins = {"borrow_imf_bps": 2_000, "borrow_mmf_bps": 1_000} if sol_borrowable else {}
    h.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000, **sol_margins)
    h.ok(ListMarket, **h.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
    h.list_perp(fee_maker_bps=0, fee_taker_bps=0)  # perps make USDC the margin asset
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h


def borrowed_to_buy_sol(h: Harness) -> int:
    """A lender lends 10,000 USDC; the borrower, with 10 SOL, borrows 800 USDC and buys 8
    SOL more at 100 from a seller. Return the borrower's account id."""
    lender = h.new_account(USDC=10_000 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=LEND, amount_atomic=10_000 * USDC)
    seller = h.new_account(SOL=8 * SOL)
    borrower = h.new_account(SOL=10 * SOL)
    h.ok(BorrowLend, account_id=borrower, asset_id=0, side=BORROW, amount_atomic=800 * USDC)
    spot = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=seller, market_id=spot, side=1, order_type=0, price_ticks=10_000, quantity_steps=800)
    h.ok(PlaceOrder, account_id=borrower, market_id=spot, side=0, order_type=0, price_ticks=10_000, quantity_steps=800)
    return borrower


def test_a_usdc_borrow_whose_sol_collateral_falls_is_settled_with_that_sol() -> None:
    """10 SOL of one's own, 800 USDC borrowed to buy 8 more at 100: 18 SOL, a debit of 800.
    Maintenance: 5% of 800 = 40 USDC. At SOL 50 equity is 18 x 50 x 0.9 - 800 = 10 < 40:
    liquidated. The insurance fund takes SOL worth 800 x 1.01 = 808 USDC at 50, i.e. 16.16
    SOL, and takes the 800 USDC borrow over; the account keeps 1.84 SOL and owes nothing."""
    h = setup()
    borrower = borrowed_to_buy_sol(h)
    account = h.account(borrower)
    assert (h.balance(borrower, "USDC"), h.balance(borrower, "SOL"), account.borrowed[0]) == (0, 18 * SOL, 800 * USDC)

    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 60 * USDC),))  # 18 x 60 x 0.9 - 800 = 172 >= 40
    assert not [e for e in events if isinstance(e, LiquidationStarted)]
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 50 * USDC),))
    started = [e for e in events if isinstance(e, LiquidationStarted)]
    assert started == [LiquidationStarted(borrower, 10 * USDC, 40 * USDC)]
    entries = [e for e in events if isinstance(e, LedgerPosted)]
    assert [(e.reason, e.lines) for e in entries] == [
        (EntryReason.LIQUIDATION, ((borrower, 1, -16_160_000_000), (INSURANCE_ACCOUNT_ID, 1, 16_160_000_000)))
    ]
    moved = [e for e in events if isinstance(e, BorrowLendChanged)]
    assert moved == [
        BorrowLendChanged(borrower, 0, LEND, 800 * USDC, 0, 0, True),
        BorrowLendChanged(INSURANCE_ACCOUNT_ID, 0, BORROW, 800 * USDC, 0, 800 * USDC, True),
    ]
    assert h.balance(borrower, "SOL") == 1_840_000_000 and account.borrowed[0] == 0
    assert not below_maintenance(h.state, account)
    assert equity_atomic(h.state, account) == 82_800_000  # 1.84 x 50 x 0.9
    # The pool still holds what lenders lent less what is borrowed, now by the fund.
    assert h.balance(LENDING_POOL_ACCOUNT_ID, "USDC") == 9_200 * USDC
    assert h.account(INSURANCE_ACCOUNT_ID).borrowed[0] == 800 * USDC
    assert h.audit() == []
    replayed = Harness()
    for command in h.log:
        replayed.apply(command)
    assert canonical.state_hash(replayed.state) == canonical.state_hash(h.state)


def test_a_sol_borrow_is_repaid_from_own_sol_first_then_settled_with_usdc() -> None:
    """A short through a borrow: 1,000 USDC of collateral, 15 SOL borrowed at 100 and 13 of
    them sold (2,300 USDC, 2 SOL kept). An asset counts net of its borrow (2 - 15 = -13
    SOL); maintenance is 10% of the borrow's value. At 150: 2,300 - 13 x 150 = 350 >= 225.
    At 160: 2,300 - 2,080 = 220 < 240: liquidated. The 2 SOL repay 2 of the borrow; the
    other 13 SOL (2,080 USDC at 160) are settled with 2,080 x 1.01 = 2,100.80 USDC, which
    the fund takes while taking 13 SOL of borrow over. The account keeps 199.20 USDC."""
    h = setup(sol_borrowable=True)
    lender = h.new_account(SOL=100 * SOL)
    h.ok(BorrowLend, account_id=lender, asset_id=1, side=LEND, amount_atomic=100 * SOL)
    buyer = h.new_account(USDC=10_000 * USDC)
    shorter = h.new_account(USDC=1_000 * USDC)
    h.ok(BorrowLend, account_id=shorter, asset_id=1, side=BORROW, amount_atomic=15 * SOL)
    spot = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=buyer, market_id=spot, side=0, order_type=0, price_ticks=10_000, quantity_steps=1_300)
    h.ok(PlaceOrder, account_id=shorter, market_id=spot, side=1, order_type=1, quantity_steps=1_300)
    account = h.account(shorter)
    assert (h.balance(shorter, "USDC"), h.balance(shorter, "SOL"), account.borrowed[1]) == (
        2_300 * USDC,
        2 * SOL,
        15 * SOL,
    )
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 150 * USDC),))
    assert equity_atomic(h.state, account) == 350 * USDC
    assert maintenance_requirement_atomic(h.state, account) == 225 * USDC
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 160 * USDC),))
    assert [e for e in events if isinstance(e, LiquidationStarted)] == [
        LiquidationStarted(shorter, 220 * USDC, 240 * USDC)
    ]
    entries = [(e.reason, e.lines) for e in events if isinstance(e, LedgerPosted)]
    assert entries == [
        (EntryReason.LIQUIDATION, ((shorter, 1, -2 * SOL), (LENDING_POOL_ACCOUNT_ID, 1, 2 * SOL))),
        (EntryReason.LIQUIDATION, ((shorter, 0, -2_100_800_000), (INSURANCE_ACCOUNT_ID, 0, 2_100_800_000))),
    ]
    moved = [e for e in events if isinstance(e, BorrowLendChanged)]
    assert moved == [
        BorrowLendChanged(shorter, 1, LEND, 2 * SOL, 0, 13 * SOL, True),
        BorrowLendChanged(shorter, 1, LEND, 13 * SOL, 0, 0, True),
        BorrowLendChanged(INSURANCE_ACCOUNT_ID, 1, BORROW, 13 * SOL, 0, 13 * SOL, True),
    ]
    assert (h.balance(shorter, "USDC"), h.balance(shorter, "SOL"), account.borrowed[1]) == (199_200_000, 0, 0)
    assert h.audit() == []


def test_a_borrow_with_no_collateral_left_goes_to_the_insurance_fund() -> None:
    """Collateral worth less than the borrow: all of it goes, and the fund takes the whole
    borrow over (its loss), so the account ends with no borrow at all."""
    h = setup()
    borrower = borrowed_to_buy_sol(h)
    # At 40: 18 SOL are worth 720 USDC; 720 / 1.01 = 712.871287 USDC of the borrow is settled
    # with them, the other 87.128713 is taken over for nothing.
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 40 * USDC),))
    moved = [e for e in events if isinstance(e, BorrowLendChanged)]
    assert [(e.account_id, e.side, e.amount_atomic) for e in moved] == [
        (borrower, LEND, 712_871_287),
        (INSURANCE_ACCOUNT_ID, BORROW, 712_871_287),
        (borrower, LEND, 87_128_713),
        (INSURANCE_ACCOUNT_ID, BORROW, 87_128_713),
    ]
    assert h.balance(borrower, "SOL") == 0 and h.account(borrower).borrowed[0] == 0
    assert h.balance(INSURANCE_ACCOUNT_ID, "SOL") == 18 * SOL
    assert h.account(INSURANCE_ACCOUNT_ID).borrowed[0] == 800 * USDC
    assert h.audit() == []


def test_no_borrow_liquidation_on_a_stale_price() -> None:
    """A perpetual on SOL with a price age limit makes a stale SOL index unusable: a borrow
    against SOL is not liquidated on it (the same rule as for positions)."""
    h = Harness(timestamp_step_ns=60_000_000_000)
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    h.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000, borrow_imf_bps=2_000, borrow_mmf_bps=1_000)
    h.ok(ListMarket, **h.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
    h.list_perp(fee_maker_bps=0, fee_taker_bps=0, price_max_age_ns=120_000_000_000)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    lender = h.new_account(SOL=100 * SOL)
    h.ok(BorrowLend, account_id=lender, asset_id=1, side=LEND, amount_atomic=100 * SOL)
    shorter = h.new_account(USDC=200 * USDC)
    h.ok(BorrowLend, account_id=shorter, asset_id=1, side=BORROW, amount_atomic=8 * SOL)
    account = h.account(shorter)
    h.state.index_prices[1] = 300 * USDC  # as if the price moved, but the index is old now
    h.state.index_updated_ns[1] -= 10 * 60_000_000_000
    assert equity_atomic(h.state, account) < maintenance_requirement_atomic(h.state, account)
    assert not below_maintenance(h.state, account)
