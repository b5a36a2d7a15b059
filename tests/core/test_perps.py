"""Perpetuals: positions, realized PnL, flips, reduce-only, marks, funding, the margin check.

Numbers are on SOL_USDC_PERP as the harness lists it: tick 0.01 USDC, step 0.01 SOL, so
one tick x one step (the lot) is 100 USDC atomic units (0.0001 USDC); a price of 100.00
is 10,000 ticks and 1 SOL is 100 steps, so 1 SOL at 100.00 is 100,000,000 atomic (100 USDC).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.core import canonical, invariants
from keel.core.accounts import CLEARING_ACCOUNT_ID, FEE_ACCOUNT_ID, INSURANCE_ACCOUNT_ID
from keel.core.commands import CancelOrder, PlaceOrder, SetIndexPrices, Tick
from keel.core.errors import RejectCode
from keel.core.events import (
    EntryReason,
    FundingSettled,
    LedgerPosted,
    MarkPriceChanged,
    OrderCancelled,
    PositionChanged,
)
from keel.core.orders import EndReason
from keel.core.perps import (
    apply_fill,
    equity_atomic,
    fresh_terms,
    initial_requirement_atomic,
    maintenance_requirement_atomic,
)
from keel.core.positions import Position
from keel.core.snapshot import decode_state, encode_state
from keel.testing.harness import Harness

USDC = 1_000_000  # one USDC in atomic units
HOUR_NS = 3_600_000_000_000


def setup(fee_maker_bps: int = 0, fee_taker_bps: int = 0) -> tuple[Harness, int]:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=fee_maker_bps, fee_taker_bps=fee_taker_bps)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h, perp


def order(h: Harness, account: int, market: int, side: int, price: int, steps: int, **extra: object) -> list:
    return h.submit(
        PlaceOrder,
        account_id=account,
        market_id=market,
        side=side,
        order_type=0,
        price_ticks=price,
        quantity_steps=steps,
        self_trade_prevention=3,
        **extra,
    )


def position(h: Harness, account: int, market: int) -> Position | None:
    return h.account(account).positions.get(market)


def test_apply_fill_cost_basis_and_flip() -> None:
    """Growing adds notional; shrinking releases floor(|cost| x q / |size|); a flip reopens at the fill price."""
    p = Position(0, 1)
    assert apply_fill(p, 3, 100, 1) == 0 and (p.size_steps, p.cost_atomic) == (3, 300)
    assert apply_fill(p, 2, 101, 1) == 0 and (p.size_steps, p.cost_atomic) == (5, 502)
    # close 2 of 5 at 110: released floor(502 x 2 / 5) = 200, realized 220 - 200
    assert apply_fill(p, -2, 110, 1) == 20 and (p.size_steps, p.cost_atomic) == (3, 302)
    # sell 5 at 90: closes 3 (releases 302, exit 270: -32), opens a short of 2 at 90
    assert apply_fill(p, -5, 90, 1) == -32 and (p.size_steps, p.cost_atomic) == (-2, -180)
    # buy back 2 at 80: a short gains released - exit = 180 - 160
    assert apply_fill(p, 2, 80, 1) == 20 and (p.size_steps, p.cost_atomic) == (0, 0)
    assert p.realized_pnl_atomic == 20 - 32 + 20


def test_long_then_partial_close_then_flip_settles_exact_pnl() -> None:
    h, perp = setup()
    alice, bob, carol = (h.new_account(USDC=1_000 * USDC) for _ in range(3))
    order(h, bob, perp, 1, 10_000, 100)  # Bob offers 1 SOL at 100.00
    events = order(h, alice, perp, 0, 10_000, 100)
    changes = [e for e in events if isinstance(e, PositionChanged)]
    assert changes == [
        PositionChanged(alice, perp, 0, 100, 100 * USDC, 0, 1),
        PositionChanged(bob, perp, 0, -100, -100 * USDC, 0, 1),
    ]
    assert h.state.markets[perp].open_interest_steps == 100
    # Alice sells 0.4 SOL at 110.00 to Carol: releases 40 USDC of cost for 44: +4 USDC
    order(h, carol, perp, 0, 11_000, 40)
    order(h, alice, perp, 1, 11_000, 40)
    assert h.balance(alice, "USDC") == 1_004 * USDC
    assert (position(h, alice, perp).size_steps, position(h, alice, perp).cost_atomic) == (60, 60 * USDC)
    assert h.balance(CLEARING_ACCOUNT_ID, "USDC") == -4 * USDC
    # Alice sells 1 SOL at 105.00: closes 0.6 (+3 USDC) and opens a 0.4 short, one visible change
    order(h, carol, perp, 0, 10_500, 100)
    events = order(h, alice, perp, 1, 10_500, 100)
    flip = next(e for e in events if isinstance(e, PositionChanged) and e.account_id == alice)
    assert flip == PositionChanged(alice, perp, 60, -40, -42 * USDC, 3 * USDC, flip.trade_id)
    assert h.balance(alice, "USDC") == 1_007 * USDC
    assert position(h, carol, perp).size_steps == 140
    assert position(h, bob, perp).size_steps == -100
    assert h.state.markets[perp].open_interest_steps == 140
    assert h.audit() == []


def test_fees_on_perp_trades_go_to_the_fee_account_in_one_entry() -> None:
    h, perp = setup(fee_maker_bps=2, fee_taker_bps=5)
    maker, taker = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    order(h, maker, perp, 1, 10_000, 100)
    events = order(h, taker, perp, 0, 10_000, 100)
    (entry,) = [e for e in events if isinstance(e, LedgerPosted)]
    # 100 USDC notional: taker pays 0.05, maker 0.02; no PnL yet
    assert entry.reason == EntryReason.TRADE
    assert entry.lines == (
        (taker, 0, -50_000),
        (maker, 0, -20_000),
        (FEE_ACCOUNT_ID, 0, 70_000),
        (CLEARING_ACCOUNT_ID, 0, 0),
    )
    assert h.balance(taker, "USDC") == 1_000 * USDC - 50_000
    assert h.locked(maker, "USDC") == 0  # a perpetual order holds nothing
    assert h.audit() == []


def test_reduce_only_refuses_opening_or_flipping_and_trims_a_resting_order() -> None:
    h, perp = setup()
    alice, bob, carol = (h.new_account(USDC=1_000 * USDC) for _ in range(3))
    base = {"account_id": alice, "market_id": perp, "order_type": 0, "price_ticks": 10_000, "reduce_only": True}
    h.reject(PlaceOrder, RejectCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only", side=1, quantity_steps=10, **base)
    order(h, bob, perp, 1, 10_000, 50)
    order(h, alice, perp, 0, 10_000, 50)  # Alice long 0.5
    h.reject(PlaceOrder, RejectCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only", side=0, quantity_steps=10, **base)
    h.reject(PlaceOrder, RejectCode.REDUCE_ONLY_WOULD_INCREASE, "no larger", side=1, quantity_steps=51, **base)
    # Two resting reduce-only sells of 0.3 each: only 0.5 can ever fill
    order(h, alice, perp, 1, 10_100, 30, reduce_only=True)
    order(h, alice, perp, 1, 10_100, 30, reduce_only=True)
    events = order(h, carol, perp, 0, 10_100, 100)
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert position(h, alice, perp) is None  # flat, no orders left
    assert [c.reason for c in cancelled] == [EndReason.REDUCE_ONLY]
    assert position(h, carol, perp).size_steps == 50
    assert position(h, carol, perp).open_buy_steps == 50  # Carol's remainder rests
    assert h.audit() == []


def test_reduce_only_on_spot_is_malformed() -> None:
    h, _ = setup()
    alice = h.new_account(USDC=1_000 * USDC)
    h.reject(
        PlaceOrder,
        RejectCode.ORDER_MALFORMED,
        "perpetual",
        account_id=alice,
        market_id=h.market("SOL_USDC"),
        side=0,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=1,
        reduce_only=True,
    )


def test_margin_check_refuses_orders_equity_cannot_carry() -> None:
    h, perp = setup()
    alice = h.new_account(USDC=10 * USDC)
    # 2% of 4 SOL at mark 100 is 8 USDC: accepted; then 1 SOL more needs 10 > 10? no: 10 == 10 is fine
    order(h, alice, perp, 0, 9_000, 400)
    account = h.account(alice)
    assert initial_requirement_atomic(h.state, account) == 8 * USDC
    order(h, alice, perp, 0, 9_000, 100)
    assert initial_requirement_atomic(h.state, account) == 10 * USDC
    event = h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "needs 10.04 USDC of initial margin, the account's equity is 10 USDC",
        account_id=alice,
        market_id=perp,
        side=0,
        order_type=0,
        price_ticks=9_000,
        quantity_steps=2,
    )
    assert event.code == RejectCode.INSUFFICIENT_MARGIN
    # A sell does not add to the worst case (it nets against the open buys): accepted
    order(h, alice, perp, 1, 20_000, 300)
    assert h.audit() == []


def test_no_mark_price_no_perp_orders() -> None:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp()
    alice = h.new_account(USDC=100 * USDC)
    h.reject(
        PlaceOrder,
        RejectCode.NO_MARK_PRICE,
        "no mark price",
        account_id=alice,
        market_id=perp,
        side=0,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=1,
    )


def test_mark_is_median_of_index_mid_and_last() -> None:
    h, perp = setup()
    a, b = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    order(h, a, perp, 1, 10_200, 10)
    order(h, b, perp, 0, 10_200, 10)  # last 102.00
    order(h, a, perp, 1, 10_300, 10)  # ask 103
    order(h, b, perp, 0, 10_100, 10)  # bid 101, mid 102
    events = h.ok(Tick)
    assert MarkPriceChanged(perp, 10_000, 10_200) in events
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 101_500_000),))
    assert events == [MarkPriceChanged(perp, 10_150, 10_200)]
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 105 * USDC),))
    assert events == [MarkPriceChanged(perp, 10_500, 10_200)]


def test_funding_round_pays_exactly_with_rounding_to_insurance() -> None:
    h = Harness(timestamp_step_ns=HOUR_NS // 4)
    h.list_defaults()
    perp = h.list_perp(funding_cap_bps=10_000)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    long_, short1, short2, mm = (h.new_account(USDC=1_000 * USDC) for _ in range(4))
    order(h, short1, perp, 1, 10_000, 33)
    order(h, short2, perp, 1, 10_000, 67)
    order(h, long_, perp, 0, 10_000, 100)
    # make the mark 100.03 (index 100): last 100.03 and mid 100.03
    order(h, mm, perp, 1, 10_003, 1)
    order(h, long_, perp, 0, 10_003, 1)
    order(h, mm, perp, 1, 10_004, 1)
    order(h, mm, perp, 0, 10_002, 1)
    events = []
    while not any(isinstance(e, FundingSettled) for e in events):
        events = h.ok(Tick)
    (settled,) = [e for e in events if isinstance(e, FundingSettled)]
    rate = 3 * 10**9 // 10_000  # (10,003 - 10,000) / 10,000 in 1e-9 units = 300,000
    assert (settled.rate_e9, settled.mark_ticks, settled.index_ticks) == (rate, 10_003, 10_000)
    (entry,) = [e for e in events if isinstance(e, LedgerPosted)]
    assert entry.reason == EntryReason.FUNDING
    lines = dict(((account, amount) for account, _, amount in entry.lines))
    # long 1.01 SOL pays ceil(101 x 10,003 x 100 x 0.0003) = ceil(30,309.09) = 30,310
    assert lines[long_] == -30_310
    assert lines[short1] == 33 * 10_003 * 100 * 3 // 10_000  # floor(9,902.97) = 9,902
    assert lines[short2] == 67 * 10_003 * 100 * 3 // 10_000  # floor(20,106.03) = 20,106
    assert lines[mm] == 1 * 10_003 * 100 * 3 // 10_000 + 0  # short 0.01: floor(300.09) = 300
    assert lines[INSURANCE_ACCOUNT_ID] == 30_310 - 9_902 - 20_106 - 300 == 2
    assert settled.paid_atomic == 30_310 and settled.received_atomic == 30_308
    assert h.state.markets[perp].funding_next_ns > h.state.timestamp_ns_last
    assert h.audit() == []


def test_snapshot_round_trip_keeps_positions_and_hash() -> None:
    h, perp = setup()
    a, b = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    order(h, a, perp, 1, 10_000, 100)
    order(h, b, perp, 0, 10_000, 60)
    state = decode_state(encode_state(h.state))
    assert canonical.state_hash(state) == canonical.state_hash(h.state)
    assert state.positions_by_market[perp][a].size_steps == -60
    assert state.positions_by_market[perp][a].open_sell_steps == 40
    # The accounts' margin terms are derived, not in the image: the restore rebuilds them.
    for account_id in (a, b):
        restored, original = state.accounts[account_id], h.account(account_id)
        fresh_terms(h.state, original)
        assert restored.margin_terms == original.margin_terms != {}
        assert (restored.unreal_total, restored.maint_total, restored.init_total) == (
            original.unreal_total,
            original.maint_total,
            original.init_total,
        )
    assert invariants.audit(state) == []


def test_equity_and_maintenance_follow_the_mark() -> None:
    h, perp = setup()
    a, b = h.new_account(USDC=100 * USDC), h.new_account(USDC=100 * USDC)
    order(h, a, perp, 1, 10_000, 100)
    order(h, b, perp, 0, 10_000, 100)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 90 * USDC),))
    assert equity_atomic(h.state, h.account(b)) == 90 * USDC  # long 1 SOL lost 10
    assert equity_atomic(h.state, h.account(a)) == 110 * USDC
    # 1.25% of 90 USDC, rounded up
    assert maintenance_requirement_atomic(h.state, h.account(b)) == 1_125_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # account
            st.integers(0, 1),  # side
            st.integers(9_500, 10_500),  # price
            st.integers(1, 150),  # steps
            st.sampled_from(["limit", "ioc", "cancel", "index", "tick", "reduce"]),
        ),
        max_size=40,
    )
)
def test_random_perp_flow_keeps_every_invariant(actions: list[tuple[int, int, int, int, str]]) -> None:
    h = Harness(timestamp_step_ns=HOUR_NS // 7)
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=2, fee_taker_bps=5)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    accounts = [h.new_account(USDC=500 * USDC) for _ in range(4)]
    for who, side, price, steps, kind in actions:
        account = accounts[who]
        if kind == "cancel":
            open_ids = list(h.account(account).orders_open)
            if open_ids:
                h.submit(CancelOrder, account_id=account, market_id=perp, order_id=open_ids[0])
        elif kind == "index":
            h.ok(SetIndexPrices, prices=((h.asset("SOL"), price * 10_000),))
        elif kind == "tick":
            h.ok(Tick)
        else:
            extra = {"time_in_force": 1} if kind == "ioc" else {}
            if kind == "reduce":
                extra = {"reduce_only": True}
            order(h, account, perp, side, price, steps, **extra)
        assert h.audit() == []
        assert canonical.state_hash(h.state) == h.engine.state_hash()
    # every realized PnL and funding payment is in the ledger: balances equal ledger sums (audit)


@pytest.mark.parametrize("steps", [1, 7, 100])
def test_clearing_mirrors_costs_after_round_trips(steps: int) -> None:
    h, perp = setup()
    a, b = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    for price in (10_000, 10_037, 9_911, 10_202):
        order(h, a, perp, 1, price, steps)
        order(h, b, perp, 0, price, steps)
        order(h, b, perp, 1, price + 3, steps)
        order(h, a, perp, 0, price + 3, steps)
    assert position(h, a, perp) is None and position(h, b, perp) is None
    assert h.balance(CLEARING_ACCOUNT_ID, "USDC") == 0
    assert h.balance(a, "USDC") + h.balance(b, "USDC") == 2_000 * USDC
    assert h.audit() == []


def test_long_falls_into_liquidation_closed_through_the_book_deficit_socialized_when_fund_empty() -> None:
    """Long 1 SOL at 100 with 3 USDC: at mark 98 equity 1 < maintenance 1.225 -> liquidated.
    The only bid is at 96.00, so closing loses 4 USDC: balance -1. The insurance fund is
    empty, so the deficit is taken from the most profitable position (the short)."""
    h, perp = setup()
    long_ = h.new_account(USDC=3 * USDC)
    short = h.new_account(USDC=1_000 * USDC)
    bidder = h.new_account(USDC=1_000 * USDC)
    order(h, short, perp, 1, 10_000, 100)
    order(h, long_, perp, 0, 10_000, 100)
    order(h, bidder, perp, 0, 9_600, 100)
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 98 * USDC),))
    started = [e for e in events if type(e).__name__ == "LiquidationStarted"]
    assert len(started) == 1 and started[0].account_id == long_
    # equity 3 - 2 = 1 USDC; maintenance ceil(98 x 1.25%) = 1.225 USDC
    assert (started[0].equity_atomic, started[0].maintenance_atomic) == (1 * USDC, 1_225_000)
    assert position(h, long_, perp) is None
    assert position(h, bidder, perp).size_steps == 100
    # closed at 96: realized -4 USDC on 3 USDC: the insurance fund is empty, so the
    # deficit of 1 USDC is taken from the most profitable position (the short, +2 at mark 98)
    assert h.balance(long_, "USDC") == 0
    assert h.balance(short, "USDC") == 1_000 * USDC - 1 * USDC
    entries = [e for e in events if isinstance(e, LedgerPosted)]
    assert [e.reason for e in entries] == [EntryReason.LIQUIDATION, EntryReason.ADL]
    assert h.audit() == []


def test_insurance_fund_pays_first_then_nothing_is_socialized() -> None:
    h, perp = setup()
    long_ = h.new_account(USDC=3 * USDC)
    short = h.new_account(USDC=1_000 * USDC)
    bidder = h.new_account(USDC=1_000 * USDC)
    insurance = h.account(INSURANCE_ACCOUNT_ID)
    order(h, short, perp, 1, 10_000, 100)
    order(h, long_, perp, 0, 10_000, 100)
    order(h, bidder, perp, 0, 9_600, 100)
    # Seed the fund with 2 USDC taken from the fee account (no command moves money into
    # the fund yet but funding rounding; the ledger totals are moved alike so audit holds).
    insurance.balances[0] += 2 * USDC
    h.account(FEE_ACCOUNT_ID).balances[0] -= 2 * USDC
    h.ledger.totals[(INSURANCE_ACCOUNT_ID, 0)] = h.ledger.totals.get((INSURANCE_ACCOUNT_ID, 0), 0) + 2 * USDC
    h.ledger.totals[(FEE_ACCOUNT_ID, 0)] = h.ledger.totals.get((FEE_ACCOUNT_ID, 0), 0) - 2 * USDC
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 98 * USDC),))
    entries = [e for e in events if isinstance(e, LedgerPosted)]
    assert [e.reason for e in entries] == [EntryReason.LIQUIDATION, EntryReason.INSURANCE]
    assert entries[1].lines == ((INSURANCE_ACCOUNT_ID, 0, -1 * USDC), (long_, 0, 1 * USDC))
    assert h.balance(short, "USDC") == 1_000 * USDC
    assert h.balance(INSURANCE_ACCOUNT_ID, "USDC") == 1 * USDC
    assert h.audit() == []


def test_adl_when_the_book_is_empty() -> None:
    """No bids: the liquidated long is transferred at the mark to the most profitable short."""
    h, perp = setup()
    long_ = h.new_account(USDC=3 * USDC)
    short_small = h.new_account(USDC=1_000 * USDC)
    short_big = h.new_account(USDC=1_000 * USDC)
    order(h, short_small, perp, 1, 10_000, 30)
    order(h, short_big, perp, 1, 9_900, 70)
    order(h, long_, perp, 0, 10_000, 100)  # fills 70 at 99 then 30 at 100: cost 99.3 USDC
    # short_big (entry 99) gains less than short_small (entry 100) at any mark: ranking
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 97 * USDC),))
    assert any(type(e).__name__ == "LiquidationStarted" for e in events)
    changes = [e for e in events if isinstance(e, PositionChanged)]
    # most profitable first: short_small (+0.9 at 97) then short_big (+1.4)? per account:
    # short_small 30 x (100 - 97) = 0.9 USDC, short_big 70 x (99 - 97) = 1.4 USDC
    assert [c.account_id for c in changes if c.account_id != long_] == [short_big, short_small]
    assert all(c.trade_id == 0 for c in changes)
    assert position(h, long_, perp) is None
    assert position(h, short_big, perp) is None and position(h, short_small, perp) is None
    assert h.state.markets[perp].open_interest_steps == 0
    assert h.audit() == []


def test_a_spot_order_cannot_take_a_margin_account_below_initial_margin() -> None:
    """A resting spot buy holds USDC that then no longer counts as collateral: refused if
    that would leave the account's positions without initial margin."""
    h, perp = setup()
    trader, other = h.new_account(USDC=3 * USDC), h.new_account(USDC=1_000 * USDC)
    order(h, other, perp, 1, 10_000, 100)
    order(h, trader, perp, 0, 10_000, 100)  # long 1 SOL: initial margin 2 USDC, equity 3
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "below its initial margin of 2 USDC",
        account_id=trader,
        market_id=h.market("SOL_USDC"),
        side=0,
        order_type=0,
        price_ticks=5_000,
        quantity_steps=5,  # holds 2.5 USDC; buys 0.05 SOL worth 4.5 x 0.9... at index 100
    )
    assert h.audit() == []


def test_open_interest_limit_refuses_orders_that_could_grow_it() -> None:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(open_interest_max_steps=150)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    a, b = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    order(h, a, perp, 1, 10_000, 100)
    order(h, b, perp, 0, 10_000, 100)  # open interest 100
    h.reject(
        PlaceOrder,
        RejectCode.OPEN_INTEREST_LIMIT,
        "open interest limit",
        account_id=a,
        market_id=perp,
        side=1,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=51,
    )
    order(h, a, perp, 1, 10_000, 50)
    events = order(h, b, perp, 0, 10_000, 30, reduce_only=False)
    assert events and h.audit() == []
    order(h, a, perp, 0, 10_000, 100, reduce_only=True)  # reducing always passes


def test_an_index_move_of_a_collateral_asset_can_liquidate() -> None:
    """Alice's collateral is mostly ETH: ETH falling takes her below maintenance even
    though no perpetual's mark moved."""
    h, perp = setup()
    h.ok(SetIndexPrices, prices=((h.asset("ETH"), 3_000 * USDC),))
    alice = h.new_account(USDC=1 * USDC, ETH=2_000_000)  # 0.02 ETH = 60 USDC
    bob = h.new_account(USDC=1_000 * USDC)
    order(h, bob, perp, 1, 10_000, 100)
    order(h, alice, perp, 0, 10_000, 100)  # long 1 SOL at 100: maintenance 1.25 USDC
    order(h, bob, perp, 0, 9_900, 100)  # a bid to close into
    events = h.ok(SetIndexPrices, prices=((h.asset("ETH"), 10 * USDC),))
    assert any(type(e).__name__ == "LiquidationStarted" and e.account_id == alice for e in events)
    assert position(h, alice, perp) is None
    assert h.audit() == []


def test_a_bankrupt_accounts_deficit_is_taken_from_who_deleveraging_paid() -> None:
    """No bids: the long is deleveraged at the mark, far below its bankruptcy price; the
    short it was transferred to realized that gain, so the short covers the deficit."""
    h, perp = setup()
    long_ = h.new_account(USDC=3 * USDC)
    short = h.new_account(USDC=1_000 * USDC)
    order(h, short, perp, 1, 10_000, 100)
    order(h, long_, perp, 0, 10_000, 100)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 80 * USDC),))  # mark 80: the long lost 20 on 3
    assert position(h, long_, perp) is None and position(h, short, perp) is None
    assert h.balance(long_, "USDC") == 0  # the 17 USDC deficit was covered
    assert h.balance(short, "USDC") == 1_000 * USDC + 20 * USDC - 17 * USDC
    assert h.audit() == []
