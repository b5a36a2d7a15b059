"""Tests of keel.core.matching: order entry, holds, fees, matching, self-trade prevention and cancels.

Every expected amount is computed by hand in a comment, never by calling the engine's
own helpers. Units on SOL_USDC: one lot (1 tick x 1 step) is 100 atomic USDC, so
notional_atomic = price_ticks x quantity_steps x 100, and one step is 10_000_000 atomic
SOL. Default fees: maker 2 bps, taker 5 bps, each rounded up once per order and role on
the order's cumulative notional. Holdings are written (USDC balance, USDC locked,
SOL balance, SOL locked).
"""

from __future__ import annotations

from typing import Any

import pytest

from keel.core import canonical, matching
from keel.core.accounts import FEE_ACCOUNT_ID
from keel.core.commands import CancelAllOrders, CancelOrder, ListMarket, PlaceOrder, SetMarketState
from keel.core.errors import RejectCode, Rejected
from keel.core.events import (
    CommandRejected,
    EntryReason,
    Event,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    TradeExecuted,
)
from keel.core.ledger import is_balanced
from keel.core.markets import MarketState, price_ticks_from_decimal, quantity_steps_from_decimal
from keel.core.orders import EndReason
from keel.testing.harness import Harness, StateImage, state_except_position

BUY, SELL = 0, 1
LIMIT, MARKET = 0, 1
GTC, IOC, FOK = 0, 1, 2
REJECT_TAKER, REJECT_MAKER, REJECT_BOTH, ALLOW = 0, 1, 2, 3
USER_CANCEL = int(EndReason.USER_CANCEL)
IMMEDIATE_OR_CANCEL = int(EndReason.IMMEDIATE_OR_CANCEL)
SELF_TRADE_PREVENTION = int(EndReason.SELF_TRADE_PREVENTION)
NO_LIQUIDITY = int(EndReason.NO_LIQUIDITY)
INSUFFICIENT_FUNDS = int(EndReason.INSUFFICIENT_FUNDS)
SOL_USDC = 0

# ---- helpers ----------------------------------------------------------------------------


def snapshot(h: Harness) -> StateImage:
    return state_except_position(h.state)


def reject(h: Harness, command_type: type, code: RejectCode, phrase: str, **fields: Any) -> CommandRejected:
    return h.reject(command_type, code, phrase, **fields)


def order(
    account: int, side: int, price_ticks: int = 0, quantity_steps: int = 0, *, market: int = SOL_USDC, **fields: Any
) -> dict[str, Any]:
    """Return PlaceOrder fields; a limit GTC order unless `fields` say otherwise."""
    return {
        "account_id": account,
        "market_id": market,
        "side": side,
        "order_type": fields.pop("order_type", LIMIT),
        "price_ticks": price_ticks,
        "quantity_steps": quantity_steps,
        **fields,
    }


def place(
    h: Harness, account: int, side: int, price_ticks: int = 0, quantity_steps: int = 0, **fields: Any
) -> list[Event]:
    """Place an order that must be accepted; return its events."""
    return h.ok(PlaceOrder, **order(account, side, price_ticks, quantity_steps, **fields))


def rest(h: Harness, account: int, side: int, price_ticks: int, quantity_steps: int, **fields: Any) -> int:
    """Place an order that must rest without trading; return its order id."""
    events = place(h, account, side, price_ticks, quantity_steps, **fields)
    assert len(events) == 1, events
    assert isinstance(events[0], OrderAccepted)
    order_id: int = events[0].order_id
    assert order_id in h.state.orders
    return order_id


def reject_order(
    h: Harness,
    code: RejectCode,
    phrase: str,
    account: int,
    side: int,
    price_ticks: int = 0,
    quantity_steps: int = 0,
    **fields: Any,
) -> CommandRejected:
    """Place an order that must be refused with `code`, changing nothing."""
    return reject(h, PlaceOrder, code, phrase, **order(account, side, price_ticks, quantity_steps, **fields))


def trades_of(events: list[Event]) -> list[tuple[int, int, int, int, int]]:
    """Return (maker order id, price, quantity, taker fee, maker fee) of each trade, in order."""
    return [
        (event.maker_order_id, event.price_ticks, event.quantity_steps, event.fee_taker_atomic, event.fee_maker_atomic)
        for event in events
        if isinstance(event, TradeExecuted)
    ]


def holdings(h: Harness, account: int, base: str = "SOL") -> tuple[int, int, int, int]:
    """Return (USDC balance, USDC locked, base balance, base locked)."""
    return (h.balance(account, "USDC"), h.locked(account, "USDC"), h.balance(account, base), h.locked(account, base))


def fees(h: Harness) -> int:
    """Return the fee account's USDC balance."""
    return h.balance(FEE_ACCOUNT_ID, "USDC")


def list_market(h: Harness, symbol: str, **fields: Any) -> int:
    """List a SOL/USDC market with the default grid and the given overrides; return its id."""
    h.ok(ListMarket, **h.sol_market_fields(symbol, **fields))
    return h.market(symbol)


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.list_defaults()
    assert harness.market("SOL_USDC") == SOL_USDC
    return harness


# ---- resting orders and holds ----------------------------------------------------------


def test_gtc_buy_that_cannot_trade_rests_holding_cost_plus_maker_fee(h: Harness) -> None:
    """A GTC buy with nothing to cross rests at once and holds exactly its cost plus the rounded-up maker fee."""
    # cost 10_001 x 7 x 100 = 7_000_700; maker fee ceil(7_000_700 x 2 / 10_000) = ceil(1_400.14) = 1_401
    # hold 7_000_700 + 1_401 = 7_002_101
    buyer = h.new_account(USDC=7_002_100)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "insufficient funds: the order needs 7.002101 USDC, 7.0021 USDC is available",
        buyer,
        BUY,
        10_001,
        7,
    )
    buyer = h.new_account(USDC=7_002_101)
    events = place(h, buyer, BUY, 10_001, 7, client_id=5)
    assert events == [OrderAccepted(1, buyer, SOL_USDC, BUY, LIMIT, GTC, 10_001, 7, 0, 5, False, REJECT_TAKER)]
    assert holdings(h, buyer) == (7_002_101, 7_002_101, 0, 0)
    assert h.available(buyer, "USDC") == 0
    resting = h.state.orders[1]
    assert (resting.open_steps, resting.filled_steps, resting.hold_atomic) == (7, 0, 7_002_101)
    assert h.state.books[SOL_USDC].best_bid() == 10_001
    assert h.audit() == []


def test_gtc_sell_rests_holding_its_base(h: Harness) -> None:
    """A resting sell holds exactly its open quantity of base and no quote."""
    seller = h.new_account(SOL=70_000_000)
    order_id = rest(h, seller, SELL, 10_001, 7)
    # 7 steps x 10_000_000 = 70_000_000 atomic SOL
    assert holdings(h, seller) == (0, 0, 70_000_000, 70_000_000)
    assert h.state.orders[order_id].hold_atomic == 70_000_000
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 0.01 SOL, 0 SOL is available",
        seller,
        SELL,
        10_002,
        1,
    )
    assert h.audit() == []


def test_crossing_gtc_buy_holds_taker_bound_plus_one_then_rests_with_maker_hold(h: Harness) -> None:
    """A GTC buy that may take and rest needs cost + taker fee + 1 at entry; what rests then holds the maker bound."""
    seller = h.new_account(SOL=30_000_000)
    ask = rest(h, seller, SELL, 10_000, 3)
    # Entry hold: cost 10_001 x 7 x 100 = 7_000_700, taker fee ceil(7_000_700 x 5 / 10_000) = ceil(3_500.35)
    # = 3_501, plus 1 for the second rounding: 7_000_700 + 3_501 + 1 = 7_004_202.
    buyer = h.new_account(USDC=7_004_201)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 7.004202 USDC, 7.004201 USDC is available",
        buyer,
        BUY,
        10_001,
        7,
    )
    buyer = h.new_account(USDC=7_004_202)
    entry = h.state.entry_id_next
    events = place(h, buyer, BUY, 10_001, 7)
    bid = events[0].order_id
    # 3 steps trade at the maker's 10_000: notional 10_000 x 3 x 100 = 3_000_000,
    # taker fee ceil(3_000_000 x 5 / 10_000) = 1_500, maker fee ceil(3_000_000 x 2 / 10_000) = 600.
    assert events == [
        OrderAccepted(bid, buyer, SOL_USDC, BUY, LIMIT, GTC, 10_001, 7, 0, -1, False, REJECT_TAKER),
        TradeExecuted(1, SOL_USDC, 10_000, 3, bid, ask, buyer, seller, BUY, 1_500, 600),
        LedgerPosted(
            entry,
            int(EntryReason.TRADE),
            1,
            (
                (buyer, 1, 30_000_000),  # 3 steps of SOL
                (seller, 1, -30_000_000),
                (buyer, 0, -3_001_500),  # 3_000_000 + 1_500
                (seller, 0, 2_999_400),  # 3_000_000 - 600
                (FEE_ACCOUNT_ID, 0, 2_100),  # 1_500 + 600
            ),
        ),
    ]
    # The 4 open steps rest at 10_001 with the maker bound: 10_001 x 4 x 100 = 4_000_400
    # + ceil(4_000_400 x 2 / 10_000) = ceil(800.08) = 801 -> 4_001_201.
    # USDC balance 7_004_202 - 3_001_500 = 4_002_702; available 4_002_702 - 4_001_201 = 1_501.
    assert holdings(h, buyer) == (4_002_702, 4_001_201, 30_000_000, 0)
    assert holdings(h, seller) == (2_999_400, 0, 0, 0)
    assert fees(h) == 2_100
    resting = h.state.orders[bid]
    assert (resting.open_steps, resting.filled_steps, resting.hold_atomic) == (4, 3, 4_001_201)
    assert h.state.markets[SOL_USDC].last_price_ticks == 10_000
    assert h.state.markets[SOL_USDC].volume_steps == 3
    # The resting remainder is then taken: the maker fee is exactly what the hold kept back.
    # notional 4_000_400, maker fee 801 (above), taker fee ceil(4_000_400 x 5 / 10_000) = ceil(2_000.2) = 2_001.
    seller2 = h.new_account(SOL=40_000_000)
    events = place(h, seller2, SELL, 10_001, 4)
    assert trades_of(events) == [(bid, 10_001, 4, 2_001, 801)]
    # buyer: 4_002_702 - 4_000_400 - 801 = 1_501, nothing locked
    assert holdings(h, buyer) == (1_501, 0, 70_000_000, 0)
    # seller2: 4_000_400 - 2_001 = 3_998_399
    assert holdings(h, seller2) == (3_998_399, 0, 0, 0)
    # fees: 2_100 + 2_001 + 801 = 4_902
    assert fees(h) == 4_902
    assert h.state.orders == {}
    assert h.audit() == []


def test_maker_fee_zero_market_adds_no_extra_unit(h: Harness) -> None:
    """With a maker fee of 0 a crossing GTC buy holds cost + taker fee only, and rests holding its bare cost."""
    market = list_market(h, "SOLZ_USDC", fee_maker_bps=0, fee_taker_bps=5)
    seller = h.new_account(SOL=30_000_000)
    rest(h, seller, SELL, 10_000, 3, market=market)
    # cost 10_001 x 7 x 100 = 7_000_700 + ceil(3_500.35) = 3_501 -> 7_004_201, no extra unit
    buyer = h.new_account(USDC=7_004_201)
    events = place(h, buyer, BUY, 10_001, 7, market=market)
    # 3_000_000 notional, taker fee 1_500, maker fee 0
    assert trades_of(events) == [(1, 10_000, 3, 1_500, 0)]
    # balance 7_004_201 - 3_001_500 = 4_002_701; rests holding 10_001 x 4 x 100 = 4_000_400
    assert holdings(h, buyer) == (4_002_701, 4_000_400, 30_000_000, 0)
    assert holdings(h, seller) == (3_000_000, 0, 0, 0)
    assert h.audit() == []


# ---- priority and price ----------------------------------------------------------------


def test_better_price_first_then_oldest_first_at_the_makers_price(h: Harness) -> None:
    """A buy fills the best ask first, then same-price asks oldest first, each trade at the maker's price."""
    a = h.new_account(SOL=200_000_000)
    b = h.new_account(SOL=200_000_000)
    c = h.new_account(SOL=100_000_000)
    ask_a = rest(h, a, SELL, 10_000, 20)
    ask_b = rest(h, b, SELL, 10_000, 20)
    ask_c = rest(h, c, SELL, 9_990, 10)  # newest, but the best price
    # entry hold: 10_000 x 40 x 100 = 40_000_000 + ceil(20_000) + 1 = 40_020_001
    taker = h.new_account(USDC=40_020_001)
    events = place(h, taker, BUY, 10_000, 40)
    # C: 9_990 x 10 x 100 = 9_990_000; taker fee so far ceil(4_995) = 4_995; maker fee ceil(1_998) = 1_998
    # A: 10_000 x 20 x 100 = 20_000_000; taker cumulative 29_990_000 -> 14_995, so +10_000; maker 4_000
    # B: 10_000 x 10 x 100 = 10_000_000; taker cumulative 39_990_000 -> 19_995, so +5_000; maker 2_000
    assert trades_of(events) == [
        (ask_c, 9_990, 10, 4_995, 1_998),
        (ask_a, 10_000, 20, 10_000, 4_000),
        (ask_b, 10_000, 10, 5_000, 2_000),
    ]
    assert not any(isinstance(event, OrderExpired) for event in events)
    # taker pays 39_990_000 + 19_995 = 40_009_995 of 40_020_001 -> 10_006 left, gets 40 steps
    assert holdings(h, taker) == (10_006, 0, 400_000_000, 0)
    assert holdings(h, a) == (19_996_000, 0, 0, 0)  # 20_000_000 - 4_000
    assert holdings(h, b) == (9_998_000, 0, 100_000_000, 100_000_000)  # 10_000_000 - 2_000; 10 steps rest
    assert holdings(h, c) == (9_988_002, 0, 0, 0)  # 9_990_000 - 1_998
    assert fees(h) == 27_993  # 19_995 + 1_998 + 4_000 + 2_000
    assert list(h.state.orders) == [ask_b]
    assert h.state.orders[ask_b].open_steps == 10
    assert h.state.markets[SOL_USDC].last_price_ticks == 10_000
    assert h.state.markets[SOL_USDC].volume_steps == 40
    assert h.audit() == []


def test_sell_fills_highest_bid_first_at_the_makers_price(h: Harness) -> None:
    """A sell below the bids trades at each bid's own price, best first; a partly filled bid keeps an exact hold."""
    x = h.new_account(USDC=10_002_000)  # 10_000 x 10 x 100 = 10_000_000 + maker 2_000
    y = h.new_account(USDC=10_052_010)  # 10_050 x 10 x 100 = 10_050_000 + maker 2_010
    bid_x = rest(h, x, BUY, 10_000, 10)
    bid_y = rest(h, y, BUY, 10_050, 10)
    assert holdings(h, x) == (10_002_000, 10_002_000, 0, 0)
    assert holdings(h, y) == (10_052_010, 10_052_010, 0, 0)
    seller = h.new_account(SOL=150_000_000)
    events = place(h, seller, SELL, 9_900, 15)
    # Y: 10_050 x 10 x 100 = 10_050_000; taker ceil(5_025) = 5_025; maker 2_010
    # X: 10_000 x 5 x 100 = 5_000_000; taker cumulative 15_050_000 -> 7_525, so +2_500; maker 1_000
    assert trades_of(events) == [(bid_y, 10_050, 10, 5_025, 2_010), (bid_x, 10_000, 5, 2_500, 1_000)]
    # seller receives 15_050_000 - 7_525 = 15_042_475
    assert holdings(h, seller) == (15_042_475, 0, 0, 0)
    assert holdings(h, y) == (0, 0, 100_000_000, 0)  # 10_052_010 - 10_050_000 - 2_010
    # X: paid 5_000_000 + 1_000; its 5 open steps hold 5_000_000 + ceil(10_000_000 x 2 / 10_000)
    # - ceil(5_000_000 x 2 / 10_000) = 5_000_000 + 2_000 - 1_000 = 5_001_000
    assert holdings(h, x) == (5_001_000, 5_001_000, 50_000_000, 0)
    assert h.state.orders[bid_x].hold_atomic == 5_001_000
    assert fees(h) == 10_535  # 7_525 + 2_010 + 1_000
    assert h.state.markets[SOL_USDC].last_price_ticks == 10_000
    assert h.audit() == []


# ---- time in force ---------------------------------------------------------------------


def test_ioc_partial_fill_expires_the_remainder(h: Harness) -> None:
    """An IOC buy takes what crosses and its remainder expires (IMMEDIATE_OR_CANCEL); its hold has no extra unit."""
    seller = h.new_account(SOL=200_000_000)
    ask = rest(h, seller, SELL, 10_000, 20)
    # IOC cannot rest: hold 10_000 x 50 x 100 = 50_000_000 + ceil(25_000) = 50_025_000, no +1
    taker = h.new_account(USDC=50_025_000)
    events = place(h, taker, BUY, 10_000, 50, time_in_force=IOC)
    taker_order = events[0].order_id
    # 20 steps: notional 20_000_000, taker fee 10_000, maker fee 4_000
    assert trades_of(events) == [(ask, 10_000, 20, 10_000, 4_000)]
    assert events[-1] == OrderExpired(taker_order, taker, SOL_USDC, IMMEDIATE_OR_CANCEL, 30)
    assert len(events) == 4
    # 50_025_000 - 20_000_000 - 10_000 = 30_015_000; nothing locked
    assert holdings(h, taker) == (30_015_000, 0, 200_000_000, 0)
    assert holdings(h, seller) == (19_996_000, 0, 0, 0)
    assert h.state.orders == {}
    assert h.audit() == []


def test_ioc_that_crosses_nothing_expires_whole(h: Harness) -> None:
    """An IOC limit that does not cross expires in full and leaves balances and book as they were."""
    seller = h.new_account(SOL=100_000_000)
    ask = rest(h, seller, SELL, 10_000, 10)
    buyer = h.new_account(USDC=50_000_000)
    events = place(h, buyer, BUY, 9_999, 10, time_in_force=IOC)
    assert events[1:] == [OrderExpired(events[0].order_id, buyer, SOL_USDC, IMMEDIATE_OR_CANCEL, 10)]
    assert holdings(h, buyer) == (50_000_000, 0, 0, 0)
    assert list(h.state.orders) == [ask]
    assert h.audit() == []


def test_fok_that_can_fill_fills_completely(h: Harness) -> None:
    """A FOK buy that the book can fill within its limit trades every step across levels and nothing expires."""
    a = h.new_account(SOL=200_000_000)
    b = h.new_account(SOL=200_000_000)
    ask_a = rest(h, a, SELL, 10_000, 20)
    ask_b = rest(h, b, SELL, 10_010, 20)
    # FOK cannot rest: hold 10_010 x 30 x 100 = 30_030_000 + ceil(15_015) = 30_045_015
    taker = h.new_account(USDC=30_045_015)
    events = place(h, taker, BUY, 10_010, 30, time_in_force=FOK)
    # A: 20_000_000 notional, taker 10_000, maker 4_000
    # B: 10_010 x 10 x 100 = 10_010_000; taker cumulative 30_010_000 -> 15_005, so +5_005; maker 2_002
    assert trades_of(events) == [(ask_a, 10_000, 20, 10_000, 4_000), (ask_b, 10_010, 10, 5_005, 2_002)]
    assert not any(isinstance(event, OrderExpired) for event in events)
    # 30_045_015 - 30_010_000 - 15_005 = 20_010
    assert holdings(h, taker) == (20_010, 0, 300_000_000, 0)
    assert holdings(h, b) == (10_007_998, 0, 100_000_000, 100_000_000)  # 10_010_000 - 2_002
    assert fees(h) == 21_007  # 15_005 + 4_000 + 2_002
    assert h.audit() == []


def test_fok_that_cannot_fill_is_rejected_and_changes_nothing(h: Harness) -> None:
    """A FOK larger than what crosses within its limit is FILL_OR_KILL_UNFILLABLE and trades nothing."""
    a = h.new_account(SOL=200_000_000)
    b = h.new_account(SOL=200_000_000)
    rest(h, a, SELL, 10_000, 20)
    rest(h, b, SELL, 10_010, 20)
    taker = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    phrase = "fill-or-kill order cannot be filled completely"
    code = RejectCode.FILL_OR_KILL_UNFILLABLE
    reject_order(h, code, phrase, taker, BUY, 10_010, 41, time_in_force=FOK)  # 40 steps exist
    reject_order(h, code, phrase, taker, BUY, 10_000, 21, time_in_force=FOK)  # 20 steps at or below 10_000
    reject_order(h, code, phrase, taker, SELL, 9_000, 2, time_in_force=FOK)  # no bids at all
    reject_order(h, code, phrase, taker, BUY, 9_999, 2, time_in_force=FOK)  # nothing crosses
    assert h.audit() == []


def test_post_only_rests_holding_the_maker_bound(h: Harness) -> None:
    """A post-only buy that does not cross rests and holds cost + maker fee, with no extra unit."""
    seller = h.new_account(SOL=60_000_000)
    rest(h, seller, SELL, 10_002, 5)
    # 10_001 x 7 x 100 = 7_000_700 + ceil(1_400.14) = 1_401 -> 7_002_101
    buyer = h.new_account(USDC=7_002_101)
    events = place(h, buyer, BUY, 10_001, 7, post_only=True)
    assert events == [OrderAccepted(2, buyer, SOL_USDC, BUY, LIMIT, GTC, 10_001, 7, 0, -1, True, REJECT_TAKER)]
    assert holdings(h, buyer) == (7_002_101, 7_002_101, 0, 0)
    seller_order = rest(h, seller, SELL, 10_002, 1, post_only=True)
    assert h.state.orders[seller_order].post_only is True
    assert h.audit() == []


def test_post_only_that_would_take_is_rejected(h: Harness) -> None:
    """A post-only order that would match at once is POST_ONLY_WOULD_TAKE and creates nothing."""
    seller = h.new_account(SOL=200_000_000)
    buyer = h.new_account(USDC=1_000_000_000)
    rest(h, seller, SELL, 10_000, 20)
    rest(h, buyer, BUY, 9_990, 20)
    reject_order(
        h,
        RejectCode.POST_ONLY_WOULD_TAKE,
        "post-only order would immediately match at 100",
        buyer,
        BUY,
        10_000,
        5,
        post_only=True,
    )
    reject_order(
        h,
        RejectCode.POST_ONLY_WOULD_TAKE,
        "would immediately match at 99.9",
        seller,
        SELL,
        9_000,
        5,
        post_only=True,
    )
    assert h.audit() == []


# ---- market orders ---------------------------------------------------------------------


def test_market_buy_by_quantity(h: Harness) -> None:
    """A market buy by quantity sweeps asks best first within its impact bound and holds its worst case at entry."""
    a = h.new_account(SOL=200_000_000)
    b = h.new_account(SOL=200_000_000)
    ask_a = rest(h, a, SELL, 10_000, 20)
    ask_b = rest(h, b, SELL, 10_100, 20)
    # impact bound floor(10_000 x 10_300 / 10_000) = 10_300; hold 10_300 x 30 x 100 = 30_900_000
    # + ceil(30_900_000 x 5 / 10_000) = 15_450 -> 30_915_450
    buyer = h.new_account(USDC=30_915_449)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 30.91545 USDC, 30.915449 USDC is available",
        buyer,
        BUY,
        0,
        30,
        order_type=MARKET,
    )
    buyer = h.new_account(USDC=30_915_450)
    events = place(h, buyer, BUY, 0, 30, order_type=MARKET)
    assert events[0] == OrderAccepted(3, buyer, SOL_USDC, BUY, MARKET, GTC, 0, 30, 0, -1, False, REJECT_TAKER)
    # A: 20_000_000, taker 10_000, maker 4_000
    # B: 10_100 x 10 x 100 = 10_100_000; taker cumulative 30_100_000 -> 15_050, so +5_050; maker 2_020
    assert trades_of(events) == [(ask_a, 10_000, 20, 10_000, 4_000), (ask_b, 10_100, 10, 5_050, 2_020)]
    assert len(events) == 5  # accepted, two trades, two ledger entries: nothing left to expire
    # 30_915_450 - 30_100_000 - 15_050 = 800_400
    assert holdings(h, buyer) == (800_400, 0, 300_000_000, 0)
    assert holdings(h, a) == (19_996_000, 0, 0, 0)
    assert holdings(h, b) == (10_097_980, 0, 100_000_000, 100_000_000)  # 10_100_000 - 2_020
    assert fees(h) == 21_070  # 15_050 + 4_000 + 2_020
    assert h.state.markets[SOL_USDC].last_price_ticks == 10_100
    assert h.audit() == []


def test_market_sell_by_quantity(h: Harness) -> None:
    """A market sell by quantity sweeps bids best first and a partly filled maker bid keeps an exact hold."""
    a = h.new_account(USDC=20_004_000)  # 10_000 x 20 x 100 = 20_000_000 + maker 4_000
    b = h.new_account(USDC=19_803_960)  # 9_900 x 20 x 100 = 19_800_000 + maker 3_960
    bid_a = rest(h, a, BUY, 10_000, 20)
    bid_b = rest(h, b, BUY, 9_900, 20)
    # a sell holds its base: 30 x 10_000_000 = 300_000_000
    seller = h.new_account(SOL=299_999_999)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 0.3 SOL, 0.299999999 SOL is available",
        seller,
        SELL,
        0,
        30,
        order_type=MARKET,
    )
    seller = h.new_account(SOL=300_000_000)
    events = place(h, seller, SELL, 0, 30, order_type=MARKET)
    # A: 20_000_000, taker 10_000, maker 4_000
    # B: 9_900 x 10 x 100 = 9_900_000; taker cumulative 29_900_000 -> 14_950, so +4_950; maker 1_980
    assert trades_of(events) == [(bid_a, 10_000, 20, 10_000, 4_000), (bid_b, 9_900, 10, 4_950, 1_980)]
    # seller receives 29_900_000 - 14_950 = 29_885_050
    assert holdings(h, seller) == (29_885_050, 0, 0, 0)
    assert holdings(h, a) == (0, 0, 200_000_000, 0)  # 20_004_000 - 20_000_000 - 4_000
    # B paid 9_900_000 + 1_980 -> 9_901_980 left; its 10 open steps hold 9_900_000
    # + ceil(19_800_000 x 2 / 10_000) - ceil(9_900_000 x 2 / 10_000) = 9_900_000 + 3_960 - 1_980 = 9_901_980
    assert holdings(h, b) == (9_901_980, 9_901_980, 100_000_000, 0)
    assert fees(h) == 20_930  # 14_950 + 4_000 + 1_980
    assert h.audit() == []


def test_market_buy_by_quote_quantity_spends_at_most_the_budget_fee_included(h: Harness) -> None:
    """A market buy by quote quantity holds its budget and buys only the steps it pays for, taker fee included."""
    seller = h.new_account(SOL=500_000_000)
    ask = rest(h, seller, SELL, 10_000, 50)
    buyer = h.new_account(USDC=29_999_999)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 30 USDC, 29.999999 USDC is available",
        buyer,
        BUY,
        order_type=MARKET,
        quote_quantity_atomic=30_000_000,
    )
    buyer = h.new_account(USDC=30_000_000)
    events = place(h, buyer, BUY, order_type=MARKET, quote_quantity_atomic=30_000_000)
    taker_order = events[0].order_id
    assert events[0] == OrderAccepted(taker_order, buyer, SOL_USDC, BUY, MARKET, GTC, 0, 0, 30_000_000, -1, False, 0)
    # 30 steps would cost 30_000_000 + 15_000 > 30_000_000; 29 steps cost 29_000_000 + ceil(14_500) = 29_014_500.
    assert trades_of(events) == [(ask, 10_000, 29, 14_500, 5_800)]
    # The 985_500 left buys no further step (1_000_000 each): the rest of the 30-step bound expires.
    assert events[-1] == OrderExpired(taker_order, buyer, SOL_USDC, INSUFFICIENT_FUNDS, 1)
    # 30_000_000 - 29_014_500 = 985_500, nothing locked
    assert holdings(h, buyer) == (985_500, 0, 290_000_000, 0)
    # seller: 29_000_000 - 5_800; 21 steps still rest
    assert holdings(h, seller) == (28_994_200, 0, 210_000_000, 210_000_000)
    assert fees(h) == 20_300  # 14_500 + 5_800
    assert h.audit() == []


def test_market_sell_by_quote_quantity_raises_at_most_the_quote_amount(h: Harness) -> None:
    """A market sell by quote quantity holds base for its impact-bound worst case and sells until the amount is met."""
    buyer = h.new_account(USDC=50_010_000)  # 10_000 x 50 x 100 = 50_000_000 + maker 10_000
    bid = rest(h, buyer, BUY, 10_000, 50)
    # impact bound ceil(10_000 x 9_700 / 10_000) = 9_700; at most 30_500_000 // (9_700 x 100) = 31 steps
    # hold 31 x 10_000_000 = 310_000_000 atomic SOL
    seller = h.new_account(SOL=309_999_999)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 0.31 SOL, 0.309999999 SOL is available",
        seller,
        SELL,
        order_type=MARKET,
        quote_quantity_atomic=30_500_000,
    )
    seller = h.new_account(SOL=310_000_000)
    events = place(h, seller, SELL, order_type=MARKET, quote_quantity_atomic=30_500_000)
    taker_order = events[0].order_id
    # 30_500_000 // 1_000_000 = 30 steps at 10_000: notional 30_000_000, taker 15_000, maker 6_000
    assert trades_of(events) == [(bid, 10_000, 30, 15_000, 6_000)]
    assert events[-1] == OrderExpired(taker_order, seller, SOL_USDC, INSUFFICIENT_FUNDS, 1)
    # seller: 30_000_000 - 15_000 = 29_985_000; 31 - 30 = 1 step of SOL left, unlocked
    assert holdings(h, seller) == (29_985_000, 0, 10_000_000, 0)
    # buyer paid 30_006_000 -> 20_004_000; 20 open steps hold 20_000_000 + ceil(50_000_000 x 2 / 10_000)
    # - ceil(30_000_000 x 2 / 10_000) = 20_000_000 + 10_000 - 6_000 = 20_004_000
    assert holdings(h, buyer) == (20_004_000, 20_004_000, 300_000_000, 0)
    assert fees(h) == 21_000
    assert h.audit() == []


def test_market_buy_by_quote_stops_when_the_budget_is_spent_exactly(h: Harness) -> None:
    """A market buy by quote quantity never spends more than its budget, even when a fill uses it up exactly."""
    s1 = h.new_account(SOL=10_000_000)
    s2 = h.new_account(SOL=1_000_000_000)
    rest(h, s1, SELL, 10_000, 1)
    rest(h, s2, SELL, 10_300, 100)
    # Budget = 1 step at 10_000 plus 33 steps at 10_300, fee included:
    # notional 1_000_000 + 10_300 x 33 x 100 = 1_000_000 + 33_990_000 = 34_990_000,
    # taker fee ceil(34_990_000 x 5 / 10_000) = 17_495 -> budget 35_007_495.
    # The step bound is 35_007_495 // (10_000 x 100) = 35, two more than the budget buys.
    buyer = h.new_account(USDC=35_007_495)
    events = place(h, buyer, BUY, order_type=MARKET, quote_quantity_atomic=35_007_495)
    # fill 1: 1_000_000, taker fee ceil(500) = 500; fill 2: 33 steps, 33_990_000, cumulative fee 17_495 -> +16_995
    assert trades_of(events) == [(1, 10_000, 1, 500, 200), (2, 10_300, 33, 16_995, 6_798)]
    assert holdings(h, buyer) == (0, 0, 340_000_000, 0)
    assert h.audit() == []


def test_market_sell_by_quote_stops_when_the_amount_is_raised_exactly(h: Harness) -> None:
    """A market sell by quote quantity never sells for more than its amount, even when a fill reaches it exactly."""
    b1 = h.new_account(USDC=1_000_000_000)
    b2 = h.new_account(USDC=1_000_000_000)
    rest(h, b1, BUY, 10_000, 33)
    rest(h, b2, BUY, 9_990, 5)
    # Quote amount 33_000_000 = 10_000 x 33 x 100 exactly. The step bound at the impact price
    # ceil(10_000 x 9_700 / 10_000) = 9_700 is 33_000_000 // 970_000 = 34: one step of slack.
    seller = h.new_account(SOL=340_000_000)
    events = place(h, seller, SELL, order_type=MARKET, quote_quantity_atomic=33_000_000)
    # 33 steps at 10_000 raise exactly 33_000_000 (taker fee 16_500, maker fee 6_600); no second trade.
    assert trades_of(events) == [(1, 10_000, 33, 16_500, 6_600)]
    # 33_000_000 - 16_500 = 32_983_500; 34 - 33 = 1 step unsold
    assert holdings(h, seller) == (32_983_500, 0, 10_000_000, 0)
    assert h.audit() == []


def test_market_order_on_an_empty_book_is_accepted_then_expires(h: Harness) -> None:
    """A market order that finds no opposite orders is accepted and expires at once (NO_LIQUIDITY), holding nothing."""
    buyer = h.new_account(USDC=50_000_000, SOL=100_000_000)
    events = place(h, buyer, BUY, 0, 10, order_type=MARKET)
    assert events == [
        OrderAccepted(1, buyer, SOL_USDC, BUY, MARKET, GTC, 0, 10, 0, -1, False, REJECT_TAKER),
        OrderExpired(1, buyer, SOL_USDC, NO_LIQUIDITY, 10),
    ]
    events = place(h, buyer, SELL, order_type=MARKET, quote_quantity_atomic=5_000_000)
    assert events == [
        OrderAccepted(2, buyer, SOL_USDC, SELL, MARKET, GTC, 0, 0, 5_000_000, -1, False, REJECT_TAKER),
        OrderExpired(2, buyer, SOL_USDC, NO_LIQUIDITY, 0),
    ]
    # the other side's resting orders do not count as liquidity for it
    rest(h, buyer, BUY, 9_000, 10)
    events = place(h, buyer, BUY, 0, 3, order_type=MARKET)
    assert events[1:] == [OrderExpired(4, buyer, SOL_USDC, NO_LIQUIDITY, 3)]
    # 9_000 x 10 x 100 = 9_000_000 + ceil(1_800) = 9_001_800 locked by the resting bid only
    assert holdings(h, buyer) == (50_000_000, 9_001_800, 100_000_000, 0)
    assert h.state.trade_id_next == 1
    assert h.audit() == []


def test_market_buy_stops_at_the_impact_band(h: Harness) -> None:
    """A market buy trades no ask above best ask x 10_300 / 10_000; deeper asks stay untouched and the rest expires."""
    a = h.new_account(SOL=100_000_000)
    b = h.new_account(SOL=100_000_000)
    c = h.new_account(SOL=100_000_000)
    ask_a = rest(h, a, SELL, 10_000, 10)
    ask_b = rest(h, b, SELL, 10_300, 10)  # exactly at the bound floor(10_000 x 10_300 / 10_000) = 10_300
    ask_c = rest(h, c, SELL, 10_301, 10)  # beyond it
    # hold 10_300 x 40 x 100 = 41_200_000 + ceil(20_600) = 41_220_600
    buyer = h.new_account(USDC=41_220_600)
    events = place(h, buyer, BUY, 0, 40, order_type=MARKET)
    # A: 10_000_000, taker 5_000, maker 2_000
    # B: 10_300_000, taker cumulative 20_300_000 -> 10_150 so +5_150, maker 2_060
    assert trades_of(events) == [(ask_a, 10_000, 10, 5_000, 2_000), (ask_b, 10_300, 10, 5_150, 2_060)]
    expired = events[-1]
    assert isinstance(expired, OrderExpired)
    assert expired.cancelled_steps == 20
    # 41_220_600 - 20_300_000 - 10_150 = 20_910_450
    assert holdings(h, buyer) == (20_910_450, 0, 200_000_000, 0)
    assert holdings(h, c) == (0, 0, 100_000_000, 100_000_000)
    assert list(h.state.orders) == [ask_c]
    assert h.state.orders[ask_c].open_steps == 10
    assert h.audit() == []


def test_market_sell_stops_at_the_impact_band(h: Harness) -> None:
    """A market sell trades no bid below best bid x 9_700 / 10_000; the rest expires."""
    a = h.new_account(USDC=20_000_000)
    b = h.new_account(USDC=20_000_000)
    c = h.new_account(USDC=20_000_000)
    bid_a = rest(h, a, BUY, 10_000, 10)
    bid_b = rest(h, b, BUY, 9_700, 10)  # the bound ceil(10_000 x 9_700 / 10_000) = 9_700
    bid_c = rest(h, c, BUY, 9_699, 10)
    seller = h.new_account(SOL=400_000_000)
    events = place(h, seller, SELL, 0, 40, order_type=MARKET)
    # A: 10_000_000, taker 5_000, maker 2_000
    # B: 9_700_000, taker cumulative 19_700_000 -> 9_850 so +4_850, maker 1_940
    assert trades_of(events) == [(bid_a, 10_000, 10, 5_000, 2_000), (bid_b, 9_700, 10, 4_850, 1_940)]
    expired = events[-1]
    assert isinstance(expired, OrderExpired)
    assert expired.cancelled_steps == 20
    # 19_700_000 - 9_850 = 19_690_150; 20 of 40 steps sold
    assert holdings(h, seller) == (19_690_150, 0, 200_000_000, 0)
    assert list(h.state.orders) == [bid_c]
    assert h.audit() == []


@pytest.mark.parametrize(
    ("side", "best", "inside", "outside"),
    [
        # floor(10_001 x 10_300 / 10_000) = floor(10_301.03) = 10_301
        (BUY, 10_001, 10_301, 10_302),
        # ceil(10_001 x 9_700 / 10_000) = ceil(9_700.97) = 9_701
        (SELL, 10_001, 9_701, 9_700),
    ],
)
def test_impact_bound_rounds_inward(h: Harness, side: int, best: int, inside: int, outside: int) -> None:
    """The impact bound is rounded toward the best price, so a market order never trades beyond the band."""
    maker = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    maker_side = SELL if side == BUY else BUY
    best_order = rest(h, maker, maker_side, best, 10)
    inside_order = rest(h, maker, maker_side, inside, 10)
    outside_order = rest(h, maker, maker_side, outside, 10)
    taker = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    events = place(h, taker, side, 0, 30, order_type=MARKET)
    assert [trade[:3] for trade in trades_of(events)] == [(best_order, best, 10), (inside_order, inside, 10)]
    assert list(h.state.orders) == [outside_order]
    assert h.audit() == []


def test_market_order_stopped_by_the_impact_band_expires_with_price_impact(h: Harness) -> None:
    """The remainder of a market order stopped at its impact band expires with EndReason.PRICE_IMPACT (orders.py)."""
    seller = h.new_account(SOL=200_000_000)
    rest(h, seller, SELL, 10_000, 10)
    rest(h, seller, SELL, 10_301, 10)
    buyer = h.new_account(USDC=1_000_000_000)
    events = place(h, buyer, BUY, 0, 20, order_type=MARKET)
    assert events[-1] == OrderExpired(events[0].order_id, buyer, SOL_USDC, int(EndReason.PRICE_IMPACT), 10)
    assert h.audit() == []


# ---- filters ---------------------------------------------------------------------------


def test_any_price_before_the_first_trade_then_the_band_applies(h: Harness) -> None:
    """Before any trade any price goes; after one, prices outside 7_500..12_500 bps of it are PRICE_OUT_OF_BAND."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    rest(h, a, BUY, 1, 10_000)  # 1 x 10_000 x 100 = 1_000_000: the minimum notional
    rest(h, a, SELL, 1_000_000, 1)
    place(h, a, SELL, 10_000, 1)
    events = place(h, b, BUY, 10_000, 1)
    assert len(trades_of(events)) == 1
    assert h.state.markets[SOL_USDC].last_price_ticks == 10_000
    phrase = "is too far from the last traded price 100 of SOL_USDC (allowed 75 to 125)"
    # 7_499 x 10_000 < 10_000 x 7_500
    reject_order(h, RejectCode.PRICE_OUT_OF_BAND, phrase, b, BUY, 7_499, 200)
    reject_order(h, RejectCode.PRICE_OUT_OF_BAND, phrase, b, SELL, 7_499, 200)
    # 12_501 x 10_000 > 10_000 x 12_500
    reject_order(h, RejectCode.PRICE_OUT_OF_BAND, phrase, b, SELL, 12_501, 100)
    reject_order(h, RejectCode.PRICE_OUT_OF_BAND, phrase, b, BUY, 12_501, 100, time_in_force=IOC)
    # the edges are inside the band
    rest(h, b, BUY, 7_500, 200)
    rest(h, b, SELL, 12_500, 100)
    assert h.audit() == []


def test_quantity_minimum_and_maximum(h: Harness) -> None:
    """Orders below the market's minimum or above its maximum quantity are refused; the edges are accepted."""
    market = list_market(h, "SOLQ_USDC", quantity_min_steps=5, quantity_max_steps=100, notional_min_atomic=0)
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    below = "quantity 0.04 SOL is below the minimum of 0.05 SOL for SOLQ_USDC"
    above = "quantity 1.01 SOL is above the maximum of 1 SOL for SOLQ_USDC"
    reject_order(h, RejectCode.QUANTITY_BELOW_MINIMUM, below, a, BUY, 10_000, 4, market=market)
    reject_order(h, RejectCode.QUANTITY_ABOVE_MAXIMUM, above, a, SELL, 10_000, 101, market=market)
    reject_order(h, RejectCode.QUANTITY_BELOW_MINIMUM, below, a, BUY, 0, 4, market=market, order_type=MARKET)
    rest(h, a, BUY, 10_000, 5, market=market)
    reject_order(h, RejectCode.QUANTITY_ABOVE_MAXIMUM, above, a, BUY, 0, 101, market=market, order_type=MARKET)
    rest(h, a, SELL, 10_001, 100, market=market)
    assert h.audit() == []


def test_notional_minimum(h: Harness) -> None:
    """A limit order worth less than 1 USDC, or a quote quantity below it, is NOTIONAL_BELOW_MINIMUM."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    phrase = "is below the minimum of 1 USDC for SOL_USDC"
    # 100 x 99 x 100 = 990_000 < 1_000_000
    reject_order(h, RejectCode.NOTIONAL_BELOW_MINIMUM, phrase, a, BUY, 100, 99)
    reject_order(h, RejectCode.NOTIONAL_BELOW_MINIMUM, phrase, a, SELL, 9_999, 1)  # 999_900
    reject_order(h, RejectCode.NOTIONAL_BELOW_MINIMUM, phrase, a, BUY, order_type=MARKET, quote_quantity_atomic=999_999)
    rest(h, a, BUY, 100, 100)  # 100 x 100 x 100 = 1_000_000: exactly the minimum
    rest(h, a, SELL, 20_000, 1)  # 2_000_000
    reject_order(h, RejectCode.NOTIONAL_BELOW_MINIMUM, phrase, a, BUY, order_type=MARKET, quote_quantity_atomic=999_999)
    # 1_500_000 // (20_000 x 100) = 0 steps at the best ask
    reject_order(
        h,
        RejectCode.QUANTITY_BELOW_MINIMUM,
        "quote quantity 1.5 USDC is less than one step (0.01 SOL) of SOL_USDC",
        a,
        BUY,
        order_type=MARKET,
        quote_quantity_atomic=1_500_000,
    )
    assert h.audit() == []


@pytest.mark.parametrize(
    ("text", "ticks"),
    [("100.01", 10_001), ("100", 10_000), ("0.01", 1), ("100.010000", 10_001), ("12345.67", 1_234_567)],
)
def test_price_from_decimal_on_tick(h: Harness, text: str, ticks: int) -> None:
    """A decimal price on the 0.01 USDC tick converts exactly to ticks."""
    assert price_ticks_from_decimal(h.state.markets[SOL_USDC], 6, text) == ticks


@pytest.mark.parametrize(
    ("text", "code", "phrase"),
    [
        ("100.005", RejectCode.PRICE_OFF_TICK, "price 100.005 is not a multiple of the tick size of SOL_USDC"),
        ("0.001", RejectCode.PRICE_OFF_TICK, "not a multiple of the tick size"),
        ("100.0000001", RejectCode.DECIMAL_TOO_PRECISE, "price 100.0000001 has more than 6 decimal places"),
        ("1e2", RejectCode.DECIMAL_MALFORMED, "price '1e2' is not a decimal number"),
        ("-100", RejectCode.DECIMAL_MALFORMED, "is not a decimal number"),
        ("", RejectCode.DECIMAL_MALFORMED, "price must be a decimal number"),
        ("0", RejectCode.PRICE_NOT_POSITIVE, "price must be positive"),
        ("0.00", RejectCode.PRICE_NOT_POSITIVE, "price must be positive"),
    ],
)
def test_price_from_decimal_refused(h: Harness, text: str, code: RejectCode, phrase: str) -> None:
    """Off-tick, too precise, malformed or zero prices are refused with their own code, never rounded."""
    with pytest.raises(Rejected) as caught:
        price_ticks_from_decimal(h.state.markets[SOL_USDC], 6, text)
    assert caught.value.code is code
    assert phrase in caught.value.message


@pytest.mark.parametrize(("text", "steps"), [("1.5", 150), ("0.01", 1), ("2", 200), ("0.010000000", 1)])
def test_quantity_from_decimal_on_step(h: Harness, text: str, steps: int) -> None:
    """A decimal quantity on the 0.01 SOL step converts exactly to steps."""
    assert quantity_steps_from_decimal(h.state.markets[SOL_USDC], 9, text) == steps


@pytest.mark.parametrize(
    ("text", "code", "phrase"),
    [
        ("0.015", RejectCode.QUANTITY_OFF_STEP, "quantity 0.015 is not a multiple of the step size of SOL_USDC"),
        ("0.000000001", RejectCode.QUANTITY_OFF_STEP, "not a multiple of the step size"),
        ("0.0000000001", RejectCode.DECIMAL_TOO_PRECISE, "quantity 0.0000000001 has more than 9 decimal places"),
        ("1,5", RejectCode.DECIMAL_MALFORMED, "quantity '1,5' is not a decimal number"),
        ("-1", RejectCode.DECIMAL_MALFORMED, "is not a decimal number"),
        ("0", RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive"),
    ],
)
def test_quantity_from_decimal_refused(h: Harness, text: str, code: RejectCode, phrase: str) -> None:
    """Off-step, too precise, malformed or zero quantities are refused with their own code, never rounded."""
    with pytest.raises(Rejected) as caught:
        quantity_steps_from_decimal(h.state.markets[SOL_USDC], 9, text)
    assert caught.value.code is code
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("fields", "code", "phrase"),
    [
        (
            {"side": 2, "price_ticks": 10_000, "quantity_steps": 1},
            RejectCode.ORDER_MALFORMED,
            "side must be Bid or Ask",
        ),
        ({"time_in_force": 3, "price_ticks": 10_000, "quantity_steps": 1}, RejectCode.ORDER_MALFORMED, "time in force"),
        (
            {"self_trade_prevention": 4, "price_ticks": 10_000, "quantity_steps": 1},
            RejectCode.ORDER_MALFORMED,
            "unknown self-trade prevention mode",
        ),
        ({"order_type": 2, "price_ticks": 10_000, "quantity_steps": 1}, RejectCode.ORDER_MALFORMED, "order type"),
        (
            {"post_only": True, "time_in_force": IOC, "price_ticks": 10_000, "quantity_steps": 1},
            RejectCode.ORDER_MALFORMED,
            "post-only orders must be GTC",
        ),
        (
            {"price_ticks": 10_000, "quantity_steps": 1, "quote_quantity_atomic": 5},
            RejectCode.ORDER_MALFORMED,
            "a limit order takes a quantity, not a quote quantity",
        ),
        (
            {"price_ticks": 0, "quantity_steps": 1},
            RejectCode.PRICE_NOT_POSITIVE,
            "a limit order needs a positive price",
        ),
        ({"price_ticks": -5, "quantity_steps": 1}, RejectCode.PRICE_NOT_POSITIVE, "positive price"),
        ({"price_ticks": 10_000, "quantity_steps": 0}, RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive"),
        ({"price_ticks": 10_000, "quantity_steps": -1}, RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive"),
        ({"price_ticks": 2**40 + 1, "quantity_steps": 1}, RejectCode.VALUE_TOO_LARGE, "price is too large"),
        ({"price_ticks": 10_000, "quantity_steps": 2**40 + 1}, RejectCode.VALUE_TOO_LARGE, "quantity is too large"),
        (
            {"price_ticks": 10_000, "quantity_steps": 1, "client_id": 2**32},
            RejectCode.CLIENT_ID_INVALID,
            "client id 4294967296 is not a uint32",
        ),
        (
            {"price_ticks": 10_000, "quantity_steps": 1, "client_id": -2},
            RejectCode.CLIENT_ID_INVALID,
            "is not a uint32",
        ),
        (
            {"order_type": MARKET, "price_ticks": 10_000, "quantity_steps": 1},
            RejectCode.ORDER_MALFORMED,
            "a market order takes no price",
        ),
        (
            {"order_type": MARKET, "post_only": True, "quantity_steps": 1},
            RejectCode.ORDER_MALFORMED,
            "a market order cannot be post-only",
        ),
        (
            {"order_type": MARKET, "quantity_steps": 1, "quote_quantity_atomic": 1_000_000},
            RejectCode.ORDER_MALFORMED,
            "exactly one of quantity and quote quantity",
        ),
        ({"order_type": MARKET}, RejectCode.ORDER_MALFORMED, "exactly one of quantity and quote quantity"),
        ({"order_type": MARKET, "quantity_steps": -3}, RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive"),
        (
            {"order_type": MARKET, "quote_quantity_atomic": -3},
            RejectCode.QUANTITY_NOT_POSITIVE,
            "quantity must be positive",
        ),
        (
            {"order_type": MARKET, "quote_quantity_atomic": 2**62 + 1},
            RejectCode.VALUE_TOO_LARGE,
            "quote quantity is too large",
        ),
    ],
)
def test_malformed_orders_rejected(h: Harness, fields: dict[str, Any], code: RejectCode, phrase: str) -> None:
    """Orders whose fields contradict each other or leave their ranges are refused with a precise code."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    rest(h, a, SELL, 10_000, 1)  # so that market orders meet a book
    side = fields.pop("side", BUY)
    reject_order(h, code, phrase, a, side, **fields)
    assert h.audit() == []


def test_market_not_open_rejects_orders(h: Harness) -> None:
    """Orders on a market that is not open are MARKET_NOT_OPEN."""
    a = h.new_account(USDC=1_000_000_000)
    h.ok(SetMarketState, market_id=SOL_USDC, state=MarketState.CLOSED, reason="test", operator="ops")
    reject_order(h, RejectCode.MARKET_NOT_OPEN, "SOL_USDC is closed: no new orders", a, BUY, 10_000, 1)
    assert h.audit() == []


# ---- fees ------------------------------------------------------------------------------


def test_negative_maker_fee_pays_a_rebate_rounded_toward_zero(h: Harness) -> None:
    """With maker -1 bps the maker is paid ceil(-notional / 10_000), i.e. rounded toward zero, and holds no fee."""
    market = list_market(h, "SOLR_USDC", fee_maker_bps=-1, fee_taker_bps=5)
    # a rebate market's resting buy holds its bare cost: 10_001 x 7 x 100 = 7_000_700
    buyer = h.new_account(USDC=7_000_700)
    bid = rest(h, buyer, BUY, 10_001, 7, market=market)
    assert holdings(h, buyer) == (7_000_700, 7_000_700, 0, 0)
    seller = h.new_account(SOL=70_000_000)
    entry = h.state.entry_id_next
    events = place(h, seller, SELL, 10_001, 7, market=market)
    # taker fee ceil(7_000_700 x 5 / 10_000) = ceil(3_500.35) = 3_501
    # maker fee ceil(7_000_700 x -1 / 10_000) = ceil(-700.07) = -700 (toward zero: 700 paid to the maker)
    assert trades_of(events) == [(bid, 10_001, 7, 3_501, -700)]
    assert events[-1] == LedgerPosted(
        entry,
        int(EntryReason.TRADE),
        1,
        (
            (buyer, 1, 70_000_000),
            (seller, 1, -70_000_000),
            (buyer, 0, -7_000_000),  # 7_000_700 - 700
            (seller, 0, 6_997_199),  # 7_000_700 - 3_501
            (FEE_ACCOUNT_ID, 0, 2_801),  # 3_501 - 700
        ),
    )
    assert holdings(h, buyer) == (700, 0, 70_000_000, 0)
    assert holdings(h, seller) == (6_997_199, 0, 0, 0)
    assert fees(h) == 2_801
    assert h.audit() == []


def test_rebate_market_crossing_buy_needs_no_extra_unit(h: Harness) -> None:
    """On a rebate market a crossing GTC buy holds cost + taker fee only; its rest holds its bare cost."""
    market = list_market(h, "SOLR_USDC", fee_maker_bps=-1, fee_taker_bps=5)
    seller = h.new_account(SOL=30_000_000)
    ask = rest(h, seller, SELL, 10_001, 3, market=market)
    # 10_001 x 7 x 100 = 7_000_700 + ceil(3_500.35) = 3_501 -> 7_004_201
    buyer = h.new_account(USDC=7_004_200)
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "needs 7.004201 USDC, 7.0042 USDC is available",
        buyer,
        BUY,
        10_001,
        7,
        market=market,
    )
    buyer = h.new_account(USDC=7_004_201)
    events = place(h, buyer, BUY, 10_001, 7, market=market)
    # 10_001 x 3 x 100 = 3_000_300; taker ceil(1_500.15) = 1_501; maker ceil(-300.03) = -300
    assert trades_of(events) == [(ask, 10_001, 3, 1_501, -300)]
    # 7_004_201 - 3_000_300 - 1_501 = 4_002_400; 4 steps rest holding 10_001 x 4 x 100 = 4_000_400
    assert holdings(h, buyer) == (4_002_400, 4_000_400, 30_000_000, 0)
    assert holdings(h, seller) == (3_000_600, 0, 0, 0)  # 3_000_300 + 300
    assert fees(h) == 1_201  # 1_501 - 300
    assert h.audit() == []


def test_trade_ledger_entry_has_five_balanced_lines(h: Harness) -> None:
    """Each trade posts one balanced TRADE entry of exactly five lines whose reference is the trade id."""
    a = h.new_account(SOL=200_000_000)
    b = h.new_account(SOL=200_000_000)
    rest(h, a, SELL, 10_000, 10)
    rest(h, b, SELL, 10_001, 10)
    buyer = h.new_account(USDC=1_000_000_000)
    entry = h.state.entry_id_next
    events = place(h, buyer, BUY, 10_001, 20)
    trades = [event for event in events if isinstance(event, TradeExecuted)]
    entries = [event for event in events if isinstance(event, LedgerPosted)]
    assert [trade.trade_id for trade in trades] == [1, 2]
    assert [entry_.entry_id for entry_ in entries] == [entry, entry + 1]
    for trade, posted in zip(trades, entries, strict=True):
        assert events.index(posted) == events.index(trade) + 1
        assert posted.reason == EntryReason.TRADE
        assert posted.reference == trade.trade_id
        assert len(posted.lines) == 5
        assert is_balanced(posted.lines)
        assert sum(amount for _, asset, amount in posted.lines if asset == 0) == 0
        assert sum(amount for _, asset, amount in posted.lines if asset == 1) == 0
    # the second trade: 10_001 x 10 x 100 = 10_001_000; taker cumulative 20_001_000 -> ceil(10_000.5) = 10_001,
    # minus 5_000 for the first -> 5_001; maker ceil(2_000.2) = 2_001
    assert entries[1].lines == (
        (buyer, 1, 100_000_000),
        (b, 1, -100_000_000),
        (buyer, 0, -10_006_001),  # 10_001_000 + 5_001
        (b, 0, 9_998_999),  # 10_001_000 - 2_001
        (FEE_ACCOUNT_ID, 0, 7_002),  # 5_001 + 2_001
    )
    assert h.audit() == []


# ---- cancels ---------------------------------------------------------------------------


def test_cancel_by_order_id_releases_the_hold(h: Harness) -> None:
    """Cancelling a resting order by id removes it from the book and releases exactly its hold."""
    buyer = h.new_account(USDC=10_000_000)
    bid = rest(h, buyer, BUY, 10_001, 7)
    assert h.locked(buyer, "USDC") == 7_002_101  # 7_000_700 + 1_401
    events = h.ok(CancelOrder, account_id=buyer, market_id=SOL_USDC, order_id=bid)
    assert events == [OrderCancelled(bid, buyer, SOL_USDC, USER_CANCEL, 7)]
    assert holdings(h, buyer) == (10_000_000, 0, 0, 0)
    assert h.state.orders == {}
    assert h.state.books[SOL_USDC].bids == {}
    assert h.audit() == []


def test_cancel_partly_filled_order_cancels_only_the_open_steps(h: Harness) -> None:
    """A partly filled order cancels its open steps only and releases its remaining hold."""
    buyer = h.new_account(USDC=10_002_000)  # 10_000 x 10 x 100 + maker 2_000
    bid = rest(h, buyer, BUY, 10_000, 10)
    seller = h.new_account(SOL=40_000_000)
    place(h, seller, SELL, 10_000, 4)
    # paid 4_000_000 + 800 -> 6_001_200; holds 6_000_000 + ceil(2_000) - ceil(800) = 6_001_200
    assert holdings(h, buyer) == (6_001_200, 6_001_200, 40_000_000, 0)
    events = h.ok(CancelOrder, account_id=buyer, market_id=SOL_USDC, order_id=bid)
    assert events == [OrderCancelled(bid, buyer, SOL_USDC, USER_CANCEL, 6)]
    assert holdings(h, buyer) == (6_001_200, 0, 40_000_000, 0)
    assert h.audit() == []


def test_cancel_by_client_id(h: Harness) -> None:
    """An order placed with a client id can be cancelled by it; the id is then no longer known."""
    seller = h.new_account(SOL=70_000_000)
    ask = rest(h, seller, SELL, 10_001, 7, client_id=42)
    events = h.ok(CancelOrder, account_id=seller, market_id=SOL_USDC, client_id=42)
    assert events == [OrderCancelled(ask, seller, SOL_USDC, USER_CANCEL, 7)]
    assert holdings(h, seller) == (0, 0, 70_000_000, 0)
    assert h.account(seller).client_orders == {}
    reject(
        h,
        CancelOrder,
        RejectCode.UNKNOWN_ORDER,
        "order with client id 42 is not open in SOL_USDC",
        account_id=seller,
        market_id=SOL_USDC,
        client_id=42,
    )
    assert h.audit() == []


def test_cancel_of_orders_that_are_not_open_is_unknown_order(h: Harness) -> None:
    """Cancelling an unknown, filled, cancelled, another account's, or another market's order is UNKNOWN_ORDER."""
    a = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000, BTC=100_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    filled = rest(h, a, SELL, 10_000, 10, client_id=1)
    place(h, b, BUY, 10_000, 10)
    cancelled = rest(h, a, SELL, 10_500, 10)
    h.ok(CancelOrder, account_id=a, market_id=SOL_USDC, order_id=cancelled)
    others = rest(h, b, BUY, 9_000, 10, client_id=7)
    mine = rest(h, a, BUY, 9_000, 10, client_id=8)

    def refused(phrase: str, **fields: Any) -> None:
        reject(h, CancelOrder, RejectCode.UNKNOWN_ORDER, phrase, **fields)

    refused("order 999 is not open in SOL_USDC", account_id=a, market_id=SOL_USDC, order_id=999)
    refused(f"order {filled} is not open", account_id=a, market_id=SOL_USDC, order_id=filled)
    refused("order with client id 1 is not open", account_id=a, market_id=SOL_USDC, client_id=1)
    refused(f"order {cancelled} is not open", account_id=a, market_id=SOL_USDC, order_id=cancelled)
    refused(f"order {others} is not open", account_id=a, market_id=SOL_USDC, order_id=others)
    refused("order with client id 7 is not open", account_id=a, market_id=SOL_USDC, client_id=7)
    refused(f"order {mine} is not open in BTC_USDC", account_id=a, market_id=h.market("BTC_USDC"), order_id=mine)
    assert set(h.state.orders) == {others, mine}
    assert h.audit() == []


@pytest.mark.parametrize(("order_id", "client_id"), [(1, 5), (-1, -1)])
def test_cancel_needs_exactly_one_id(h: Harness, order_id: int, client_id: int) -> None:
    """A cancel with both an order id and a client id, or with neither, is ORDER_MALFORMED."""
    a = h.new_account(SOL=100_000_000)
    rest(h, a, SELL, 10_000, 10, client_id=5)
    reject(
        h,
        CancelOrder,
        RejectCode.ORDER_MALFORMED,
        "cancel takes exactly one of order id and client id",
        account_id=a,
        market_id=SOL_USDC,
        order_id=order_id,
        client_id=client_id,
    )
    assert h.audit() == []


def test_cancel_unknown_account_or_market(h: Harness) -> None:
    """Cancels naming an account or market that does not exist are refused with UNKNOWN_ACCOUNT / UNKNOWN_MARKET."""
    a = h.new_account(SOL=100_000_000)
    ask = rest(h, a, SELL, 10_000, 10)
    reject(
        h, CancelOrder, RejectCode.UNKNOWN_ACCOUNT, "account 9 does not exist", account_id=9, market_id=0, order_id=ask
    )
    reject(
        h, CancelOrder, RejectCode.UNKNOWN_MARKET, "market 9 does not exist", account_id=a, market_id=9, order_id=ask
    )
    reject(h, CancelAllOrders, RejectCode.UNKNOWN_ACCOUNT, "account -2 does not exist", account_id=-2, market_id=0)
    reject(h, CancelAllOrders, RejectCode.UNKNOWN_MARKET, "market -1 does not exist", account_id=a, market_id=-1)
    assert h.audit() == []


def test_cancel_all_cancels_one_market_only(h: Harness) -> None:
    """Cancel-all cancels the account's orders in one market, oldest first, leaving other markets and accounts alone."""
    a = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    other = h.new_account(USDC=1_000_000_000)
    btc = h.market("BTC_USDC")
    bid = rest(h, a, BUY, 9_000, 10)  # 9_000_000 + 1_800 = 9_001_800
    btc_bid = rest(h, a, BUY, 600_000, 100, market=btc)  # BTC lot is 1: 60_000_000 + 12_000 = 60_012_000
    ask = rest(h, a, SELL, 11_000, 10)  # 100_000_000 atomic SOL
    other_bid = rest(h, other, BUY, 9_000, 10)
    assert holdings(h, a) == (1_000_000_000, 69_013_800, 1_000_000_000, 100_000_000)
    events = h.ok(CancelAllOrders, account_id=a, market_id=SOL_USDC)
    assert events == [
        OrderCancelled(bid, a, SOL_USDC, USER_CANCEL, 10),
        OrderCancelled(ask, a, SOL_USDC, USER_CANCEL, 10),
    ]
    assert holdings(h, a) == (1_000_000_000, 60_012_000, 1_000_000_000, 0)
    assert set(h.state.orders) == {btc_bid, other_bid}
    assert h.ok(CancelAllOrders, account_id=a, market_id=SOL_USDC) == []  # nothing left: not an error
    assert h.audit() == []


# ---- client ids and limits -------------------------------------------------------------


def test_duplicate_client_id_rejected_while_open_then_reusable(h: Harness) -> None:
    """A client id in use by an open order of the account is refused; once that order ends the id is free again."""
    a = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    first = rest(h, a, BUY, 9_000, 10, client_id=7)
    phrase = "an open order already has client id 7"
    reject_order(h, RejectCode.DUPLICATE_CLIENT_ID, phrase, a, BUY, 8_000, 10, client_id=7)
    reject_order(h, RejectCode.DUPLICATE_CLIENT_ID, phrase, a, SELL, 12_000, 10, client_id=7, time_in_force=IOC)
    rest(h, b, BUY, 8_000, 10, client_id=7)  # client ids belong to an account
    h.ok(CancelOrder, account_id=a, market_id=SOL_USDC, client_id=7)
    second = rest(h, a, SELL, 11_000, 10, client_id=7)
    assert second != first
    place(h, b, BUY, 11_000, 10)  # fills `second` completely
    assert second not in h.state.orders
    third = rest(h, a, SELL, 11_000, 10, client_id=7)
    assert h.account(a).client_orders[7].order_id == third
    # an order that never rests never holds its client id
    place(h, a, BUY, 9_000, 10, client_id=9, time_in_force=IOC)
    rest(h, a, BUY, 9_000, 10, client_id=9)
    assert h.audit() == []


def test_open_order_limit(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """An account at the open-order limit cannot add a resting order, but can still place IOC and market orders."""
    monkeypatch.setattr(matching, "_OPEN_ORDERS_MAX", 2)
    a = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=1_000_000_000)
    first = rest(h, a, BUY, 9_000, 10)
    rest(h, a, SELL, 11_000, 10)
    rest(h, b, SELL, 10_000, 5)
    phrase = "an account may have at most 2 open orders"
    reject_order(h, RejectCode.OPEN_ORDER_LIMIT, phrase, a, BUY, 9_001, 10)
    reject_order(h, RejectCode.OPEN_ORDER_LIMIT, phrase, a, BUY, 10_000, 1, post_only=False)  # would even fill
    place(h, a, BUY, 10_000, 1, time_in_force=IOC)
    place(h, a, BUY, 0, 1, order_type=MARKET)
    h.ok(CancelOrder, account_id=a, market_id=SOL_USDC, order_id=first)
    rest(h, a, BUY, 9_001, 10)
    assert len(h.account(a).orders_open) == 2
    assert h.audit() == []


def test_fill_limit_ends_the_taker(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A taker that reaches the fills-per-command limit stops there and its remainder expires with FILL_LIMIT."""
    monkeypatch.setattr(matching, "_FILLS_MAX", 2)
    a = h.new_account(SOL=1_000_000_000)
    for _ in range(3):
        rest(h, a, SELL, 10_000, 10)
    buyer = h.new_account(USDC=1_000_000_000)
    events = place(h, buyer, BUY, 10_000, 30)
    assert [trade[:3] for trade in trades_of(events)] == [(1, 10_000, 10), (2, 10_000, 10)]
    assert events[-1] == OrderExpired(4, buyer, SOL_USDC, int(EndReason.FILL_LIMIT), 10)
    assert list(h.state.orders) == [3]
    assert h.audit() == []


# ---- self-trade prevention -------------------------------------------------------------


def test_reject_taker_at_entry_refuses_the_order(h: Harness) -> None:
    """RejectTaker whose first match would be its own resting order is refused as SELF_TRADE and changes nothing."""
    x = h.new_account(USDC=1_000_000_000, SOL=100_000_000)
    rest(h, x, SELL, 10_000, 10)
    phrase = "order would trade with your own resting order"
    reject_order(h, RejectCode.SELF_TRADE, phrase, x, BUY, 10_000, 5)
    reject_order(h, RejectCode.SELF_TRADE, phrase, x, BUY, 10_500, 50, time_in_force=IOC)
    reject_order(h, RejectCode.SELF_TRADE, phrase, x, BUY, 0, 5, order_type=MARKET)
    assert h.audit() == []


def test_reject_taker_after_fills_expires_the_remainder(h: Harness) -> None:
    """RejectTaker trades with others until it meets its own order, then expires the rest (SELF_TRADE_PREVENTION)."""
    y = h.new_account(SOL=100_000_000)
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    ask_y = rest(h, y, SELL, 10_000, 10)
    ask_x = rest(h, x, SELL, 10_000, 10)
    # entry hold 15_000_000 + 7_500 + 1 = 15_007_501 <= 20_000_000
    events = place(h, x, BUY, 10_000, 15)
    taker = events[0].order_id
    # 10 steps with Y: 10_000_000, taker 5_000, maker 2_000
    assert trades_of(events) == [(ask_y, 10_000, 10, 5_000, 2_000)]
    assert events[-1] == OrderExpired(taker, x, SOL_USDC, SELF_TRADE_PREVENTION, 5)
    # X: 20_000_000 - 10_005_000; its own ask still rests, holding its 100_000_000 SOL
    assert holdings(h, x) == (9_995_000, 0, 200_000_000, 100_000_000)
    assert holdings(h, y) == (9_998_000, 0, 0, 0)
    assert list(h.state.orders) == [ask_x]
    assert h.audit() == []


def test_reject_maker_cancels_own_resting_order_and_goes_on(h: Harness) -> None:
    """RejectMaker cancels the taker's own resting order, trades with the next order and rests its remainder."""
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    y = h.new_account(SOL=100_000_000)
    ask_x = rest(h, x, SELL, 10_000, 10)
    ask_y = rest(h, y, SELL, 10_000, 10)
    events = place(h, x, BUY, 10_000, 15, self_trade_prevention=REJECT_MAKER)
    taker = events[0].order_id
    assert events[1] == OrderCancelled(ask_x, x, SOL_USDC, SELF_TRADE_PREVENTION, 10)
    assert trades_of(events) == [(ask_y, 10_000, 10, 5_000, 2_000)]
    assert len(events) == 4  # accepted, cancelled, trade, ledger
    # X paid 10_005_000; the 5 open steps rest holding 5_000_000 + ceil(1_000) = 5_001_000
    assert holdings(h, x) == (9_995_000, 5_001_000, 200_000_000, 0)
    assert holdings(h, y) == (9_998_000, 0, 0, 0)
    assert list(h.state.orders) == [taker]
    assert h.state.orders[taker].open_steps == 5
    assert h.audit() == []


def test_reject_maker_on_the_sell_side_releases_the_cancelled_bid(h: Harness) -> None:
    """A RejectMaker market sell cancels its own bid (releasing the quote hold) and sells into the next bid."""
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    y = h.new_account(USDC=9_991_998)  # 9_990 x 10 x 100 = 9_990_000 + ceil(1_998) = 9_991_998
    bid_x = rest(h, x, BUY, 10_000, 10)  # holds 10_000_000 + 2_000 = 10_002_000
    bid_y = rest(h, y, BUY, 9_990, 10)
    assert h.locked(x, "USDC") == 10_002_000
    events = place(h, x, SELL, 0, 5, order_type=MARKET, self_trade_prevention=REJECT_MAKER)
    assert events[1] == OrderCancelled(bid_x, x, SOL_USDC, SELF_TRADE_PREVENTION, 10)
    # 9_990 x 5 x 100 = 4_995_000; taker ceil(2_497.5) = 2_498; maker ceil(999) = 999
    assert trades_of(events) == [(bid_y, 9_990, 5, 2_498, 999)]
    # X: 20_000_000 + 4_995_000 - 2_498 = 24_992_502, nothing locked; 5 of 10 steps of SOL sold
    assert holdings(h, x) == (24_992_502, 0, 50_000_000, 0)
    # Y: 9_991_998 - 4_995_999 = 4_995_999; the 5 open steps hold 4_995_000 + ceil(9_990_000 x 2 / 10_000)
    # - ceil(4_995_000 x 2 / 10_000) = 4_995_000 + 1_998 - 999 = 4_995_999
    assert holdings(h, y) == (4_995_999, 4_995_999, 50_000_000, 0)
    assert h.audit() == []


def test_fill_or_kill_counts_only_what_self_trade_prevention_lets_it_take(h: Harness) -> None:
    """A FOK does not count its own resting orders as fillable; RejectMaker cancels them and fills from others."""
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    y = h.new_account(SOL=100_000_000)
    ask_x = rest(h, x, SELL, 10_000, 10)
    ask_y = rest(h, y, SELL, 10_000, 10)
    phrase = "fill-or-kill order cannot be filled completely"
    for stp in (REJECT_MAKER, REJECT_BOTH):
        # 20 steps rest but only Y's 10 may be taken (REJECT_BOTH meets X's own ask first and would stop)
        reject_order(
            h,
            RejectCode.FILL_OR_KILL_UNFILLABLE,
            phrase,
            x,
            BUY,
            10_000,
            15,
            time_in_force=FOK,
            self_trade_prevention=stp,
        )
    events = place(h, x, BUY, 10_000, 10, time_in_force=FOK, self_trade_prevention=REJECT_MAKER)
    assert events[1] == OrderCancelled(ask_x, x, SOL_USDC, SELF_TRADE_PREVENTION, 10)
    assert trades_of(events) == [(ask_y, 10_000, 10, 5_000, 2_000)]
    # 20_000_000 - 10_000_000 - 5_000
    assert holdings(h, x) == (9_995_000, 0, 200_000_000, 0)
    assert h.state.orders == {}
    assert h.audit() == []


def test_reject_both_cancels_own_order_and_ends_the_taker(h: Harness) -> None:
    """RejectBoth trades with others, then cancels its own resting order and expires its own remainder."""
    y = h.new_account(SOL=150_000_000)
    # entry hold 10_000 x 25 x 100 = 25_000_000 + 12_500 + 1 = 25_012_501
    x = h.new_account(USDC=30_000_000, SOL=100_000_000)
    ask_y = rest(h, y, SELL, 10_000, 10)
    ask_x = rest(h, x, SELL, 10_000, 10)
    other = rest(h, y, SELL, 10_000, 5, client_id=3)
    events = place(h, x, BUY, 10_000, 25, self_trade_prevention=REJECT_BOTH)
    taker = events[0].order_id
    assert trades_of(events) == [(ask_y, 10_000, 10, 5_000, 2_000)]
    assert events[-2:] == [
        OrderCancelled(ask_x, x, SOL_USDC, SELF_TRADE_PREVENTION, 10),
        OrderExpired(taker, x, SOL_USDC, SELF_TRADE_PREVENTION, 15),
    ]
    # X paid 10_005_000 of 30_000_000; nothing locked any more; its SOL is free again
    assert holdings(h, x) == (19_995_000, 0, 200_000_000, 0)
    assert list(h.state.orders) == [other]
    assert h.audit() == []


def test_reject_both_with_own_order_first_trades_nothing(h: Harness) -> None:
    """RejectBoth meeting its own order first cancels it and expires the whole taker, with no trade."""
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    y = h.new_account(SOL=100_000_000)
    ask_x = rest(h, x, SELL, 10_000, 10)
    ask_y = rest(h, y, SELL, 10_000, 10)
    events = place(h, x, BUY, 10_000, 10, self_trade_prevention=REJECT_BOTH)
    taker = events[0].order_id
    assert events[1:] == [
        OrderCancelled(ask_x, x, SOL_USDC, SELF_TRADE_PREVENTION, 10),
        OrderExpired(taker, x, SOL_USDC, SELF_TRADE_PREVENTION, 10),
    ]
    assert holdings(h, x) == (20_000_000, 0, 100_000_000, 0)
    assert list(h.state.orders) == [ask_y]
    assert h.audit() == []


def test_allow_trades_with_itself_and_only_fees_move(h: Harness) -> None:
    """With ALLOW an account trades with its own resting order: base and notional net out, it pays both fees."""
    x = h.new_account(USDC=20_000_000, SOL=100_000_000)
    ask = rest(h, x, SELL, 10_000, 10)
    entry = h.state.entry_id_next
    events = place(h, x, BUY, 10_000, 10, self_trade_prevention=ALLOW)
    taker = events[0].order_id
    # 10_000_000 notional: taker 5_000, maker 2_000
    assert events[1:] == [
        TradeExecuted(1, SOL_USDC, 10_000, 10, taker, ask, x, x, BUY, 5_000, 2_000),
        LedgerPosted(
            entry,
            int(EntryReason.TRADE),
            1,
            (
                (x, 1, 100_000_000),
                (x, 1, -100_000_000),
                (x, 0, -10_005_000),
                (x, 0, 9_998_000),
                (FEE_ACCOUNT_ID, 0, 7_000),
            ),
        ),
    ]
    # 20_000_000 - 5_000 - 2_000 = 19_993_000; SOL unchanged
    assert holdings(h, x) == (19_993_000, 0, 100_000_000, 0)
    assert fees(h) == 7_000
    assert h.state.orders == {}
    assert h.audit() == []


# ---- funds and unknown things ----------------------------------------------------------


def test_insufficient_funds_count_what_is_already_locked(h: Harness) -> None:
    """Available = balance - locked: a second order is refused with the exact available amount in the message."""
    a = h.new_account(USDC=10_000_000, SOL=100_000_000)
    rest(h, a, BUY, 9_000, 10)  # locks 9_000_000 + 1_800 = 9_001_800, leaving 998_200
    rest(h, a, SELL, 11_000, 6)  # locks 60_000_000 SOL, leaving 40_000_000
    # 1_000 x 10 x 100 = 1_000_000 + ceil(200) = 1_000_200 > 998_200
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "insufficient funds: the order needs 1.0002 USDC, 0.9982 USDC is available",
        a,
        BUY,
        1_000,
        10,
    )
    reject_order(
        h,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "insufficient funds: the order needs 0.05 SOL, 0.04 SOL is available",
        a,
        SELL,
        11_000,
        5,
    )
    rest(h, a, SELL, 11_000, 4)
    assert h.available(a, "SOL") == 0
    assert h.audit() == []


@pytest.mark.parametrize("account_id", [0, 3, 99, -1, FEE_ACCOUNT_ID])
def test_unknown_account_rejected(h: Harness, account_id: int) -> None:
    """Orders from accounts that do not exist, or from system accounts, are UNKNOWN_ACCOUNT."""
    h.new_account(USDC=1_000_000_000)
    h.new_account(USDC=1_000_000_000)
    reject_order(h, RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} does not exist", account_id, BUY, 10_000, 1)
    assert h.audit() == []


@pytest.mark.parametrize("market_id", [3, 99, -1])
def test_unknown_market_rejected(h: Harness, market_id: int) -> None:
    """Orders for a market that does not exist are UNKNOWN_MARKET."""
    a = h.new_account(USDC=1_000_000_000)
    reject_order(
        h, RejectCode.UNKNOWN_MARKET, f"market {market_id} does not exist", a, BUY, 10_000, 1, market=market_id
    )
    assert h.audit() == []


# ---- cancelled entries in a level's queue ----------------------------------------------


def test_a_quote_churning_behind_a_resting_order_never_grows_its_level() -> None:
    """A market maker placing and cancelling at one price, again and again, behind an order
    that rests there all along: the level's queue stays within twice its live orders plus
    the slack (compacted in place, book.py), the resting order keeps its time priority and
    the state hash is the full recompute's."""
    h = Harness()
    h.list_defaults()
    patient = h.new_account(USDC=10_000_000)
    maker = h.new_account(USDC=1_000_000_000)
    seller = h.new_account(SOL=100_000_000)
    first = rest(h, patient, BUY, 10_000, 1)
    level = h.state.books[SOL_USDC].bids[10_000]
    longest = 0
    for _ in range(500):
        quote = rest(h, maker, BUY, 10_000, 2)
        h.ok(CancelOrder, account_id=maker, market_id=SOL_USDC, order_id=quote)
        longest = max(longest, len(level.orders))
    assert level.live == 1
    assert longest <= 2 * 2 + matching._DEAD_SLACK + 1  # 2 live at most, then the one appended
    assert h.engine.state_hash() == canonical.state_hash(h.state)
    last = rest(h, maker, BUY, 10_000, 2)
    events = place(h, seller, SELL, 10_000, 3)
    assert [trade[0] for trade in trades_of(events)] == [first, last]
    assert h.state.books[SOL_USDC].bids == {}
    assert h.audit() == []


def test_a_self_trade_cancel_that_compacts_the_level_being_matched() -> None:
    """RejectMaker cancels the taker's own orders at the front of a level whose queue is
    mostly cancelled entries: the first cancel compacts the queue under the matching loop,
    which goes on with the same deque and trades with the other account's order behind."""
    h = Harness()
    h.list_defaults()
    x = h.new_account(USDC=100_000_000, SOL=100_000_000)
    y = h.new_account(SOL=100_000_000)
    z = h.new_account(SOL=100_000_000)
    own = [rest(h, x, SELL, 10_000, 1) for _ in range(3)]
    other = rest(h, y, SELL, 10_000, 4)
    level = h.state.books[SOL_USDC].asks[10_000]
    for _ in range(matching._DEAD_SLACK + 4):  # dead entries up to the compaction threshold
        quote = rest(h, z, SELL, 10_000, 1)
        h.ok(CancelOrder, account_id=z, market_id=SOL_USDC, order_id=quote)
    assert len(level.orders) == 4 + matching._DEAD_SLACK + 4  # not yet compacted: 24 <= 2 x 4 + 16
    events = place(h, x, BUY, 10_000, 2, self_trade_prevention=REJECT_MAKER)
    cancelled = [event.order_id for event in events if isinstance(event, OrderCancelled)]
    assert cancelled == own
    assert trades_of(events) == [(other, 10_000, 2, 1_000, 400)]  # 2_000_000 notional: fees 5 and 2 bps
    assert list(level.orders) == [h.state.orders[other]]
    assert level.live == 1 and level.open_steps == 2
    assert h.engine.state_hash() == canonical.state_hash(h.state)
    assert h.audit() == []
