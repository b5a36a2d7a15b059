"""The liquidation scan's fast paths give the reference numbers: the inlined margin
function of perps.maintenance_and_unrealized equals requirement_atomic summed position by
position, below_maintenance's shortcut never disagrees with equity < maintenance, and the
accounts' cached margin terms equal a valuation afresh."""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.core.commands import PlaceOrder, SetIndexPrices, SetLeverageLimit, Tick
from keel.core.invariants import audit as audit_findings
from keel.core.liquidation import below_maintenance
from keel.core.perps import (
    equity_atomic,
    fresh_terms,
    maintenance_and_unrealized,
    margin_scale,
    margin_totals_full,
    position_terms,
    requirement_atomic,
    unrealized_pnl_atomic,
)
from keel.testing.harness import Harness

USDC = 1_000_000


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 10**6),  # USDC of the long, in whole units
    st.integers(1, 3_000),  # steps traded
    st.integers(1, 400),  # the new index, in whole USDC
    st.integers(0, 2_000_000),  # mmf factor (1e-9)
)
def test_the_inlined_margin_function_and_the_shortcut_agree_with_the_reference(
    usdc: int, steps: int, index: int, factor: int
) -> None:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0, mmf_factor_e9=factor, imf_factor_e9=factor)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    maker = h.new_account(USDC=10**9 * USDC)
    taker = h.new_account(USDC=usdc * USDC)
    fields = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": steps}
    h.ok(PlaceOrder, account_id=maker, side=1, **fields)
    h.submit(PlaceOrder, account_id=taker, side=0, **fields)  # may be refused for margin
    h.submit(SetIndexPrices, prices=((h.asset("SOL"), index * USDC),))
    for account_id in (maker, taker):
        account = h.account(account_id)
        market = h.state.markets[perp]
        decimals = h.state.assets[h.state.margin_asset_id].decimals
        reference = sum(
            requirement_atomic(
                abs(position.size_steps) * market.mark_ticks * market.lot_atomic,
                market.mmf_base_e9,
                market.mmf_factor_e9,
                decimals,
            )
            for position in account.positions.values()
            if position.size_steps
        )
        unrealized = sum(unrealized_pnl_atomic(p, market) for p in account.positions.values() if p.size_steps)
        assert maintenance_and_unrealized(h.state, account) == (reference, unrealized)
        has_position = any(p.size_steps for p in account.positions.values())
        expected = has_position and equity_atomic(h.state, account) < reference
        assert below_maintenance(h.state, account) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3_000),  # steps traded
    st.integers(0, 3_000),  # steps of a resting buy left behind
    st.integers(0, 3_000),  # steps of a resting sell left behind
    st.integers(1, 400),  # the new index, in whole USDC
    st.integers(0, 2_000_000),  # imf and mmf factor (1e-9)
    st.integers(0, 20),  # leverage limit (0: none)
)
def test_cached_margin_terms_follow_fills_orders_marks_and_the_leverage_limit(
    steps: int, buys: int, sells: int, index: int, factor: int, leverage: int
) -> None:
    """The account's cached (unrealized, maintenance, initial) terms, kept up to date by
    perps.position_changed and perps.fresh_terms after mark moves, equal a valuation afresh
    by the reference functions after every kind of change."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0, mmf_factor_e9=factor, imf_factor_e9=factor)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    maker = h.new_account(USDC=10**9 * USDC)
    taker = h.new_account(USDC=10**9 * USDC)
    fields = {"market_id": perp, "order_type": 0, "quantity_steps": steps}
    h.ok(PlaceOrder, account_id=maker, side=1, price_ticks=10_000, **fields)
    h.ok(PlaceOrder, account_id=taker, side=0, price_ticks=10_000, **fields)
    resting = {"account_id": taker, "market_id": perp, "order_type": 0}
    if buys:  # may be refused below the minimum value: then the record is as it was
        h.submit(PlaceOrder, side=0, price_ticks=9_000, quantity_steps=buys, **resting)
    if sells:
        h.submit(PlaceOrder, side=1, price_ticks=11_000, quantity_steps=sells, **resting)
    h.ok(SetLeverageLimit, account_id=taker, leverage_limit=leverage)
    h.submit(SetIndexPrices, prices=((h.asset("SOL"), index * USDC),))
    h.submit(Tick)
    scale = margin_scale(h.state)
    for account_id in (maker, taker):
        account = h.account(account_id)
        assert not [finding for finding in audit_findings(h.state) if "margin" in finding]
        fresh_terms(h.state, account)  # the Tick's mark moves left them stale
        for market_id, position in account.positions.items():
            market = h.state.markets[market_id]
            term = account.margin_terms[market_id]
            valued = position_terms(position, market, scale, account.leverage_limit)
            assert (term.unrealized, term.maintenance, term.initial) == valued
            assert term.mark == market.mark_ticks
        assert (account.unreal_total, account.maint_total, account.init_total) == margin_totals_full(h.state, account)
    assert not [finding for finding in audit_findings(h.state) if "margin" in finding]


def test_margin_terms_stay_out_of_the_cyclic_collector() -> None:
    """Terms are replaced at every fill, order and cancel: neither they nor the account's
    dict of them are tracked by the garbage collector (positions.MarginTerm), which at
    the mixed benchmark's scale ran for 5% of the time while they were tuples."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp()
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    maker = h.new_account(USDC=10**6 * USDC)
    taker = h.new_account(USDC=10**6 * USDC)
    fields = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": 100}
    h.ok(PlaceOrder, account_id=maker, side=1, **fields)
    h.ok(PlaceOrder, account_id=taker, side=0, **fields)
    h.ok(PlaceOrder, account_id=taker, side=0, **{**fields, "price_ticks": 9_000})  # rests
    for account_id in (maker, taker):
        terms = h.account(account_id).margin_terms
        assert terms and not gc.is_tracked(terms)
        assert not any(gc.is_tracked(term) for term in terms.values())
