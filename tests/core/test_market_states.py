"""Market states: the acceptance table cell by cell, transitions, maintenance schedules,
funding across a halt, cautious reopening of perpetuals and the index move cap."""

from __future__ import annotations

from typing import Any

import pytest

from keel.core import canonical
from keel.core.commands import (
    CancelAllOrders,
    CancelMaintenance,
    CancelOrder,
    PlaceOrder,
    ScheduleMaintenance,
    SetIndexPrices,
    SetMarketState,
    Tick,
)
from keel.core.errors import RejectCode
from keel.core.events import (
    FundingSettled,
    MaintenanceStepApplied,
    MaintenanceStepBlocked,
    MarketStateChanged,
    OrderAccepted,
    OrderCancelled,
)
from keel.core.markets import MarketState
from keel.core.orders import EndReason
from keel.core.snapshot import decode_state, encode_state
from keel.core.triggers import TriggerBy
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000
OPEN, POST_ONLY, LIMIT_ONLY, CANCEL_ONLY, CLOSED = (int(state) for state in MarketState)


def spot() -> tuple[Harness, int, int, int]:
    """A SOL_USDC book with an ask at 100.00 (from `maker`) and a funded `trader`."""
    h = Harness()
    h.list_defaults()
    market = h.market("SOL_USDC")
    maker = h.new_account(SOL=10 * SOL)
    trader = h.new_account(USDC=10_000 * USDC)
    h.ok(
        PlaceOrder,
        account_id=maker,
        market_id=market,
        side=1,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=100,
    )
    return h, market, maker, trader


def set_state(h: Harness, market: int, state: int) -> list[Any]:
    return h.ok(SetMarketState, market_id=market, state=state, reason="test", operator="ops")


# (order fields, what it is) -> expected per state: None = accepted, else the RejectCode
RESTING = {"order_type": 0, "price_ticks": 9_900, "quantity_steps": 2}
TAKING = {"order_type": 0, "price_ticks": 10_000, "quantity_steps": 2}
IOC = {"order_type": 0, "price_ticks": 9_900, "quantity_steps": 2, "time_in_force": 1}
MARKET = {"order_type": 1, "quantity_steps": 2}
POST = {"order_type": 0, "price_ticks": 9_900, "quantity_steps": 2, "post_only": True}
TABLE = [
    # state, RESTING, TAKING, IOC, MARKET, POST
    (OPEN, None, None, None, None, None),
    (POST_ONLY, None, RejectCode.MARKET_POST_ONLY, RejectCode.MARKET_POST_ONLY, RejectCode.MARKET_POST_ONLY, None),
    (LIMIT_ONLY, None, None, None, RejectCode.MARKET_LIMIT_ONLY, None),
    (CANCEL_ONLY, *[RejectCode.MARKET_NOT_OPEN] * 5),
    (CLOSED, *[RejectCode.MARKET_NOT_OPEN] * 5),
]


@pytest.mark.parametrize("row", TABLE, ids=lambda row: MarketState(row[0]).name)
@pytest.mark.parametrize("kind", range(5), ids=["resting", "taking", "ioc", "market", "post-only"])
def test_order_acceptance_table(row: tuple[Any, ...], kind: int) -> None:
    h, market, _, trader = spot()
    state, expected = row[0], row[1 + kind]
    fields = (RESTING, TAKING, IOC, MARKET, POST)[kind]
    if state != OPEN:
        if state == CLOSED:
            set_state(h, market, CLOSED)
        else:
            set_state(h, market, state)
    if expected is None:
        events = h.ok(PlaceOrder, account_id=trader, market_id=market, side=0, **fields)
        assert isinstance(events[0], OrderAccepted)
    else:
        h.reject(
            PlaceOrder, expected, h.state.markets[market].symbol, account_id=trader, market_id=market, side=0, **fields
        )
    assert h.audit() == []


@pytest.mark.parametrize("state", [OPEN, POST_ONLY, LIMIT_ONLY, CANCEL_ONLY])
def test_cancels_are_accepted_in_every_state_but_closed(state: int) -> None:
    h, market, maker, _ = spot()
    (order_id,) = h.account(maker).orders_open
    set_state(h, market, state) if state != OPEN else None
    h.ok(CancelOrder, account_id=maker, market_id=market, order_id=order_id)
    h.ok(CancelAllOrders, account_id=maker, market_id=market)


def test_closed_refuses_cancels_and_resting_orders_survive() -> None:
    h, market, maker, _ = spot()
    (order_id,) = h.account(maker).orders_open
    set_state(h, market, CLOSED)
    h.reject(CancelOrder, RejectCode.MARKET_NOT_OPEN, "closed", account_id=maker, market_id=market, order_id=order_id)
    h.reject(CancelAllOrders, RejectCode.MARKET_NOT_OPEN, "closed", account_id=maker, market_id=market)
    set_state(h, market, POST_ONLY)
    set_state(h, market, OPEN)
    assert list(h.account(maker).orders_open) == [order_id]  # untouched by the halt


def test_closed_reopens_only_through_post_only() -> None:
    h, market, _, _ = spot()
    set_state(h, market, CLOSED)
    for target in (OPEN, LIMIT_ONLY):
        h.reject(
            SetMarketState,
            RejectCode.MARKET_STATE_TRANSITION,
            "reopens through PostOnly",
            market_id=market,
            state=target,
            reason="r",
            operator="ops",
        )
    events = set_state(h, market, POST_ONLY)
    assert events == [MarketStateChanged(market, CLOSED, POST_ONLY, "test", "ops")]


def test_exchange_wide_state_change_names_every_market() -> None:
    h, _, _, _ = spot()
    events = h.ok(SetMarketState, market_id=-1, state=CANCEL_ONLY, reason="incident 7", operator="alice")
    assert [e.market_id for e in events] == list(range(len(h.state.markets)))
    assert all(e.reason == "incident 7" and e.operator == "alice" for e in events)


def test_state_change_needs_operator_and_reason() -> None:
    h, market, _, _ = spot()
    h.reject(
        SetMarketState, RejectCode.ORDER_MALFORMED, "operator", market_id=market, state=CLOSED, reason="r", operator=""
    )
    h.reject(
        SetMarketState, RejectCode.ORDER_MALFORMED, "reason", market_id=market, state=CLOSED, reason="", operator="o"
    )
    h.reject(
        SetMarketState, RejectCode.UNKNOWN_MARKET, "does not exist", market_id=99, state=1, reason="r", operator="o"
    )


def perp_setup() -> tuple[Harness, int]:
    h = Harness(timestamp_step_ns=60_000_000_000)  # a minute per command
    h.list_defaults()
    perp = h.list_perp(index_move_cap_bps=1_000)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h, perp


def test_scheduled_maintenance_closes_reopens_post_only_then_open_at_logged_ticks() -> None:
    h, perp = perp_setup()
    minute = 60_000_000_000
    now = h.state.timestamp_ns_last + minute  # the schedule command's own time
    h.ok(
        ScheduleMaintenance,
        announcement="maintenance in 2 minutes for 2 minutes, post-only for 2",
        operator="ops",
        steps=((now + 2 * minute, (), CLOSED), (now + 4 * minute, (), POST_ONLY), (now + 8 * minute, (), OPEN)),
    )
    events = h.ok(Tick)  # +1 min: nothing due
    assert not [e for e in events if isinstance(e, MarketStateChanged)]
    events = h.ok(Tick)  # +2 min: closed
    assert {e.state for e in events if isinstance(e, MarketStateChanged)} == {CLOSED}
    h.ok(Tick)
    events = h.ok(Tick)  # +4 min: PostOnly is due, but the perp's index is stale since the close
    blocked = [e for e in events if isinstance(e, MaintenanceStepBlocked)]
    assert blocked and "index price has not been refreshed" in blocked[0].problem
    assert h.state.markets[perp].state == CLOSED
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 101 * USDC),))
    events = h.ok(Tick)
    assert MaintenanceStepApplied(1, 1, POST_ONLY) in events
    assert all(market.state == POST_ONLY for market in h.state.markets)
    while h.state.markets[perp].state != OPEN:
        h.ok(Tick)
    assert not h.state.maintenances[0].active
    # replay reproduces the same state
    h2 = Harness(timestamp_step_ns=60_000_000_000)
    for command in h.log:
        h2.apply(command)
    assert canonical.state_hash(h2.state) == canonical.state_hash(h.state)
    restored = decode_state(encode_state(h.state))
    assert canonical.state_hash(restored) == canonical.state_hash(h.state)


def test_schedule_that_would_leave_closed_for_open_is_refused_up_front() -> None:
    h, _ = perp_setup()
    now = h.state.timestamp_ns_last + 3_600_000_000_000
    h.reject(
        ScheduleMaintenance,
        RejectCode.MARKET_STATE_TRANSITION,
        "reopens through PostOnly",
        announcement="bad plan",
        operator="ops",
        steps=((now + 10, (), CLOSED), (now + 20, (), OPEN)),
    )
    h.reject(
        ScheduleMaintenance,
        RejectCode.ORDER_MALFORMED,
        "time order",
        announcement="bad plan",
        operator="ops",
        steps=((now + 20, (), CLOSED), (now + 10, (), POST_ONLY)),
    )


def test_cancelled_schedule_applies_no_more_steps() -> None:
    h, perp = perp_setup()
    now = h.state.timestamp_ns_last
    h.ok(ScheduleMaintenance, announcement="a", operator="ops", steps=((now + 120_000_000_000, (), CLOSED),))
    h.ok(CancelMaintenance, schedule_id=1, reason="postponed", operator="ops")
    h.reject(CancelMaintenance, RejectCode.UNKNOWN_SCHEDULE, "not active", schedule_id=1, reason="r", operator="o")
    for _ in range(3):
        h.ok(Tick)
    assert h.state.markets[perp].state == OPEN


def test_no_funding_while_closed() -> None:
    h = Harness(timestamp_step_ns=20 * 60_000_000_000)  # 20 minutes per command
    h.list_defaults()
    perp = h.list_perp()
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    a, b = h.new_account(USDC=1_000 * USDC), h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, account_id=a, market_id=perp, side=1, order_type=0, price_ticks=10_000, quantity_steps=100)
    h.ok(PlaceOrder, account_id=b, market_id=perp, side=0, order_type=0, price_ticks=10_000, quantity_steps=100)
    before = h.balance(a, "USDC"), h.balance(b, "USDC")
    set_state(h, perp, CLOSED)
    rounds = []
    for _ in range(8):  # well over two hours
        rounds += [e for e in h.ok(Tick) if isinstance(e, FundingSettled) and e.market_id == perp]
    assert rounds == []
    assert (h.balance(a, "USDC"), h.balance(b, "USDC")) == before
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    set_state(h, perp, POST_ONLY)
    for _ in range(4):
        rounds += [e for e in h.ok(Tick) if isinstance(e, FundingSettled) and e.market_id == perp]
    assert len(rounds) >= 1
    assert h.audit() == []


def test_an_index_jump_beyond_the_cap_is_refused_and_logged() -> None:
    h, perp = perp_setup()
    event = h.reject(
        SetIndexPrices,
        RejectCode.PRICE_MOVE_TOO_LARGE,
        "more than the 1000 bps SOL_USDC_PERP allows",
        prices=((h.asset("SOL"), 0 + 1),),
    )
    assert "would move from 100 to 0.000001" in event.message
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 110 * USDC),))  # exactly 10%: allowed
    assert h.state.markets[perp].index_ticks == 11_000


def test_a_closed_perpetual_may_go_to_cancel_only_without_a_fresh_index() -> None:
    """The auditor's halt must work during a maintenance: CancelOnly trades nothing."""
    h, perp = perp_setup()
    set_state(h, perp, CLOSED)
    h.reject(
        SetMarketState,
        RejectCode.MARKET_STATE_TRANSITION,
        "not been refreshed",
        market_id=perp,
        state=POST_ONLY,
        reason="r",
        operator="o",
    )
    set_state(h, perp, CANCEL_ONLY)
    assert h.state.markets[perp].state == CANCEL_ONLY


def test_no_funding_and_no_liquidation_on_a_stale_index() -> None:
    """With a 10-minute price age limit, an index left alone for longer neither pays
    funding nor liquidates; a fresh update brings both back."""
    h = Harness(timestamp_step_ns=20 * 60_000_000_000)  # 20 minutes per command
    h.list_defaults()
    perp = h.list_perp(price_max_age_ns=10 * 60_000_000_000)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    long_, short = h.new_account(USDC=3 * USDC), h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, account_id=short, market_id=perp, side=1, order_type=0, price_ticks=10_000, quantity_steps=100)
    h.ok(PlaceOrder, account_id=long_, market_id=perp, side=0, order_type=0, price_ticks=10_000, quantity_steps=100)
    for _ in range(6):  # two hours of Ticks on an index 20+ minutes old
        assert not [e for e in h.ok(Tick) if isinstance(e, FundingSettled)]
    # the mark falls with a trade far below (last price), but the index is stale: no liquidation
    assert h.audit() == []
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 97 * USDC),))  # fresh: liquidation runs
    assert any(type(e).__name__ == "LiquidationStarted" for e in events)
    assert h.audit() == []


def test_a_step_that_cancels_orders_cancels_its_markets_orders_and_triggers_only() -> None:
    """Resting orders survive halts unless the schedule says otherwise: a Closed+cancel step
    cancels every order and trigger of its markets (reason ORDER_BOOK_CLOSED, holds
    released), and nothing in the other markets."""
    h, perp = perp_setup()
    spot_market = h.market("SOL_USDC")
    btc_market = h.market("BTC_USDC")
    maker = h.new_account(SOL=10 * SOL, USDC=10_000 * USDC)
    h.ok(
        PlaceOrder,
        account_id=maker,
        market_id=spot_market,
        side=1,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=100,
    )
    h.ok(
        PlaceOrder, account_id=maker, market_id=spot_market, side=0, order_type=0, price_ticks=9_000, quantity_steps=100
    )
    resting_btc = h.ok(
        PlaceOrder, account_id=maker, market_id=btc_market, side=0, order_type=0, price_ticks=500_000, quantity_steps=10
    )
    trader = h.new_account(USDC=10_000 * USDC)
    h.ok(PlaceOrder, account_id=trader, market_id=perp, side=0, order_type=0, price_ticks=9_000, quantity_steps=10)
    h.ok(
        PlaceOrder,
        account_id=trader,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=10,
        trigger_price_ticks=12_000,
        trigger_by=int(TriggerBy.MARK_PRICE),
    )
    assert len(h.state.triggers) == 1
    minute = 60_000_000_000
    now = h.state.timestamp_ns_last + minute
    h.reject(
        ScheduleMaintenance,
        RejectCode.ORDER_MALFORMED,
        "step indexes",
        announcement="bad",
        operator="ops",
        steps=((now + minute, (spot_market, perp), CLOSED),),
        cancel_orders_steps=(1,),
    )
    h.ok(
        ScheduleMaintenance,
        announcement="closing SOL books, orders cancelled",
        operator="ops",
        steps=((now + 2 * minute, (spot_market, perp), CLOSED), (now + 4 * minute, (spot_market,), POST_ONLY)),
        cancel_orders_steps=(0,),
    )
    assert [step.cancel_orders for step in h.state.maintenances[0].steps] == [True, False]
    cancelled: list[OrderCancelled] = []
    while h.state.markets[perp].state != CLOSED:
        cancelled += [e for e in h.ok(Tick) if isinstance(e, OrderCancelled)]
    assert [e.reason for e in cancelled] == [int(EndReason.ORDER_BOOK_CLOSED)] * 4
    assert [e.market_id for e in cancelled] == [spot_market, spot_market, perp, perp]  # orders, then triggers
    assert not h.state.triggers
    sol, usdc = h.asset("SOL"), h.asset("USDC")
    assert h.state.accounts[maker].locked[sol] == 0
    btc_order = next(e for e in resting_btc if isinstance(e, OrderAccepted)).order_id
    assert list(h.state.accounts[maker].orders_open) == [btc_order]  # the other market is untouched
    assert h.state.accounts[maker].locked[usdc] > 0
    assert not h.state.accounts[trader].orders_open
    assert h.audit() == []
    h2 = Harness(timestamp_step_ns=60_000_000_000)
    for command in h.log:
        h2.apply(command)
    assert canonical.state_hash(h2.state) == canonical.state_hash(h.state)
    restored = decode_state(encode_state(h.state))
    assert restored.maintenances[0].steps[0].cancel_orders
