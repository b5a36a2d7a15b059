"""The account leverage limit (account_settings.py): initial margin of at least 1/limit of
each position's notional and each borrow's value; maintenance unchanged. Hand-computed."""

from __future__ import annotations

from keel.core import canonical
from keel.core.commands import BorrowLend, ListAsset, PlaceOrder, SetIndexPrices, SetLeverageLimit
from keel.core.errors import RejectCode
from keel.core.events import LeverageLimitSet, LiquidationStarted
from keel.core.perps import initial_requirement_atomic, maintenance_requirement_atomic
from keel.core.snapshot import decode_state, encode_state
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000


def setup() -> tuple[Harness, int, int]:
    """SOL_USDC_PERP (initial margin 2% at small sizes) with the index and mark at 100;
    an account holding 100 USDC."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h, perp, h.new_account(USDC=100 * USDC)


def bid(h: Harness, account: int, market: int, steps: int) -> list:
    fields = {"account_id": account, "market_id": market, "side": 0, "order_type": 0, "price_ticks": 9_900}
    return h.submit(PlaceOrder, **fields, quantity_steps=steps)


def test_a_leverage_limit_caps_what_an_order_may_open() -> None:
    """With 100 USDC and a limit of 5, an order may carry at most 500 USDC of notional at
    the mark of 100: 5 SOL (500 steps) is accepted, 5.01 SOL is not (it needs 100.20 USDC
    of initial margin). Without the limit the market's 2% would allow far more."""
    h, perp, account = setup()
    assert [type(e).__name__ for e in bid(h, account, perp, 2_000)] == ["OrderAccepted"]  # 20 SOL without a limit
    h2, perp2, account2 = setup()
    assert h2.ok(SetLeverageLimit, account_id=account2, leverage_limit=5) == [LeverageLimitSet(account2, 5)]
    h2.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "needs 100.2 USDC of initial margin",
        account_id=account2,
        market_id=perp2,
        side=0,
        order_type=0,
        price_ticks=9_900,
        quantity_steps=501,
    )
    assert [type(e).__name__ for e in bid(h2, account2, perp2, 500)] == ["OrderAccepted"]
    account_state = h2.account(account2)
    assert initial_requirement_atomic(h2.state, account_state) == 100 * USDC  # max(2% x 500, 500 / 5)
    assert h2.audit() == []


def test_setting_the_limit_is_checked_and_a_lower_limit_liquidates_no_one() -> None:
    h, perp, account = setup()
    for wrong in (-1, 101):
        h.reject(
            SetLeverageLimit,
            RejectCode.ORDER_MALFORMED,
            "a whole number from 1 to 100",
            account_id=account,
            leverage_limit=wrong,
        )
    h.reject(SetLeverageLimit, RejectCode.UNKNOWN_ACCOUNT, "does not exist", account_id=99, leverage_limit=5)
    maker = h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, account_id=maker, market_id=perp, side=1, order_type=0, price_ticks=10_000, quantity_steps=1_000)
    h.ok(PlaceOrder, account_id=account, market_id=perp, side=0, order_type=0, price_ticks=10_000, quantity_steps=1_000)
    before = maintenance_requirement_atomic(h.state, h.account(account))
    events = h.ok(SetLeverageLimit, account_id=account, leverage_limit=1)  # 10 SOL long at 1x: needs 1,000
    assert events == [LeverageLimitSet(account, 1)]
    assert maintenance_requirement_atomic(h.state, h.account(account)) == before
    refreshed = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    assert not [e for e in refreshed if isinstance(e, LiquidationStarted)]
    # ...but it cannot grow the position any more
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "insufficient margin",
        account_id=account,
        market_id=perp,
        side=0,
        order_type=0,
        price_ticks=9_000,
        quantity_steps=2,
    )
    assert h.ok(SetLeverageLimit, account_id=account, leverage_limit=1) == []  # unchanged: no event
    assert h.ok(SetLeverageLimit, account_id=account, leverage_limit=0) == [LeverageLimitSet(account, 0)]
    assert h.audit() == []


def test_the_limit_applies_to_borrows_and_survives_snapshots_and_replay() -> None:
    """10 SOL at 100 (weight 0.9): 900 USDC of collateral. With a limit of 2 a borrow needs
    initial margin of max(10%, 1/2) of its value: 1,800 USDC may be borrowed (900), 1,801
    may not."""
    h = Harness()
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    h.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000)
    h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((1, 100 * USDC),))
    lender = h.new_account(USDC=10_000 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=1, amount_atomic=10_000 * USDC)
    borrower = h.new_account(SOL=10 * SOL)
    h.ok(SetLeverageLimit, account_id=borrower, leverage_limit=2)
    h.reject(
        BorrowLend,
        RejectCode.INSUFFICIENT_MARGIN,
        "needs 900.5 USDC of initial margin",
        account_id=borrower,
        asset_id=0,
        side=0,
        amount_atomic=1_801 * USDC,
    )
    h.ok(BorrowLend, account_id=borrower, asset_id=0, side=0, amount_atomic=1_800 * USDC)
    assert h.audit() == []
    restored = decode_state(encode_state(h.state))
    assert restored.accounts[borrower].leverage_limit == 2
    assert canonical.state_hash(restored) == canonical.state_hash(h.state)
    replayed = Harness()
    for command in h.log:
        replayed.apply(command)
    assert canonical.state_hash(replayed.state) == canonical.state_hash(h.state)
