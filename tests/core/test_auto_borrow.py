"""Automatic borrowing and lending of spot orders (issue 5; matching.py, "Automatic
borrowing and lending"): hand-computed borrows, redeems, repayments and lends, the
refusals that leave state unchanged, old PlaceOrder encodings, and replay to the same
state hash. Fees are zero so every amount can be checked by hand; the audit is clean
after every step."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.core import canonical
from keel.core.accounts import LENDING_POOL_ACCOUNT_ID
from keel.core.commands import (
    BorrowLend,
    CancelOrder,
    ListAsset,
    ListMarket,
    PlaceOrder,
    PlaceOrders,
    SetIndexPrices,
    decode_command,
    encode_command,
)
from keel.core.engine import Engine
from keel.core.errors import RejectCode
from keel.core.events import (
    BorrowLendChanged,
    EntryReason,
    Event,
    LedgerPosted,
    OrderAccepted,
    TradeExecuted,
    TriggerAccepted,
)
from keel.core.lending import BorrowLendSide
from keel.core.orders import AutoMargin
from keel.core.perps import equity_atomic, initial_requirement_atomic
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000
BORROW, LEND = int(BorrowLendSide.BORROW), int(BorrowLendSide.LEND)
AUTO_BORROW = int(AutoMargin.BORROW)
AUTO_REPAY = int(AutoMargin.BORROW_REPAY)
AUTO_LEND = int(AutoMargin.LEND)
AUTO_REDEEM = int(AutoMargin.LEND_REDEEM)
POOL = LENDING_POOL_ACCOUNT_ID


def setup(*, sol_borrowable: bool = True) -> Harness:
    """USDC borrowable at 10% initial / 5% maintenance margin; SOL (weight 0.9, index 100)
    borrowable at 20% / 10% unless told otherwise; a fee-free SOL_USDC and a perpetual
    (which makes USDC the margin asset)."""
    h = Harness()
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    sol_borrow = {"borrow_imf_bps": 2_000, "borrow_mmf_bps": 1_000} if sol_borrowable else {}
    h.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000, **sol_borrow)
    h.ok(ListMarket, **h.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
    h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h


def order(h: Harness, account_id: int, side: int, price: int, steps: int, **extra: Any) -> dict[str, Any]:
    """PlaceOrder fields for a GTC limit order on SOL_USDC (price in ticks of 0.01 USDC,
    quantity in steps of 0.01 SOL)."""
    return {
        "account_id": account_id,
        "market_id": h.market("SOL_USDC"),
        "side": side,
        "order_type": 0,
        "price_ticks": price,
        "quantity_steps": steps,
        **extra,
    }


def pool_moves(events: list[Event]) -> list[tuple[LedgerPosted, BorrowLendChanged]]:
    """Return the (borrow_lend entry, BorrowLendChanged) pairs among a command's events."""
    pairs = []
    for index, event in enumerate(events):
        if isinstance(event, BorrowLendChanged):
            entry = events[index - 1]
            assert isinstance(entry, LedgerPosted) and entry.reason == EntryReason.BORROW_LEND
            pairs.append((entry, event))
    return pairs


def lender_with(h: Harness, symbol: str, amount: int) -> int:
    lender = h.new_account(**{symbol: amount})
    h.ok(BorrowLend, account_id=lender, asset_id=h.asset(symbol), side=LEND, amount_atomic=amount)
    return lender


def test_a_buy_with_auto_borrow_borrows_exactly_the_shortfall_of_its_hold() -> None:
    """100 USDC of one's own buys 5 SOL at 100 (500 USDC): the order borrows 400 USDC
    first, in one borrow_lend entry, then trades; the margin debit is exactly 400 USDC."""
    h = setup()
    lender_with(h, "USDC", 10_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 500))
    events = h.ok(PlaceOrder, **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW))
    seq = h.state.seq_last
    ((entry, moved),) = pool_moves(events)
    assert entry.reference == seq
    assert entry.lines == ((POOL, 0, -400 * USDC), (buyer, 0, 400 * USDC))
    assert moved == BorrowLendChanged(buyer, 0, BORROW, 400 * USDC, 0, 400 * USDC)
    # the borrow comes before the order: its entry, its event, then OrderAccepted and the trade
    kinds = [type(event) for event in events]
    assert kinds.index(BorrowLendChanged) < kinds.index(OrderAccepted) < kinds.index(TradeExecuted)
    account = h.account(buyer)
    assert account.borrowed[0] == 400 * USDC
    assert h.balance(buyer, "USDC") == 0 and h.balance(buyer, "SOL") == 5 * SOL
    assert h.locked(buyer, "USDC") == 0
    assert h.balance(POOL, "USDC") == 9_600 * USDC
    # equity 5 SOL x 100 x 0.9 - 400 = 50 USDC; initial margin 10% of 400 = 40 USDC
    assert equity_atomic(h.state, account) == 50 * USDC
    assert initial_requirement_atomic(h.state, account) == 40 * USDC
    assert h.audit() == []


def test_an_order_without_a_shortfall_borrows_nothing() -> None:
    h = setup()
    lender_with(h, "USDC", 1_000 * USDC)
    buyer = h.new_account(USDC=600 * USDC)
    events = h.ok(PlaceOrder, **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW))
    assert pool_moves(events) == []
    assert h.account(buyer).borrowed[0] == 0 and h.locked(buyer, "USDC") == 500 * USDC
    assert h.audit() == []


def test_a_borrow_for_a_resting_order_stays_a_borrow_when_it_is_cancelled() -> None:
    h = setup()
    lender_with(h, "USDC", 1_000 * USDC)
    # A resting order's hold stops counting as collateral and nothing it may buy counts
    # yet: 5 SOL (450 USDC of collateral) carry the 350 USDC borrow.
    buyer = h.new_account(USDC=100 * USDC, SOL=5 * SOL)
    events = h.ok(PlaceOrder, **order(h, buyer, 0, 9_000, 500, auto_margin=AUTO_BORROW))  # 450 USDC, rests
    order_id = next(event.order_id for event in events if isinstance(event, OrderAccepted))
    assert h.account(buyer).borrowed[0] == 350 * USDC
    assert h.balance(buyer, "USDC") == 450 * USDC and h.locked(buyer, "USDC") == 450 * USDC
    h.ok(CancelOrder, account_id=buyer, market_id=h.market("SOL_USDC"), order_id=order_id)
    assert h.account(buyer).borrowed[0] == 350 * USDC
    assert h.available(buyer, "USDC") == 450 * USDC
    assert h.audit() == []


def test_a_sell_with_auto_borrow_borrows_the_base_it_lacks_and_a_buy_back_repays_it() -> None:
    """A short sale: 200 USDC and no SOL sells 1 SOL at 100, borrowing the SOL; buying it
    back with autoBorrowRepay returns it to the pool."""
    h = setup()
    sol = h.asset("SOL")
    lender_with(h, "SOL", 10 * SOL)
    bidder = h.new_account(USDC=1_000 * USDC)
    short = h.new_account(USDC=200 * USDC)
    h.ok(PlaceOrder, **order(h, bidder, 0, 10_000, 100))
    events = h.ok(PlaceOrder, **order(h, short, 1, 10_000, 100, auto_margin=AUTO_BORROW))
    ((entry, moved),) = pool_moves(events)
    assert entry.lines == ((POOL, sol, -1 * SOL), (short, sol, 1 * SOL))
    assert moved == BorrowLendChanged(short, sol, BORROW, 1 * SOL, 0, 1 * SOL)
    account = h.account(short)
    assert account.borrowed[sol] == 1 * SOL
    assert h.balance(short, "SOL") == 0 and h.balance(short, "USDC") == 300 * USDC
    # equity 300 - 100 (1 SOL owed, in full) = 200 USDC; initial margin 20% of 100 = 20 USDC
    assert equity_atomic(h.state, account) == 200 * USDC
    assert initial_requirement_atomic(h.state, account) == 20 * USDC
    assert h.audit() == []
    # buy it back at 90 with autoBorrowRepay: the 1 SOL the fill brings in repays the borrow
    seller = h.new_account(SOL=1 * SOL)
    h.ok(PlaceOrder, **order(h, seller, 1, 9_000, 100))
    events = h.ok(PlaceOrder, **order(h, short, 0, 9_000, 100, auto_margin=AUTO_REPAY))
    ((entry, moved),) = pool_moves(events)
    assert events[-1] is moved  # after the order's own events
    assert entry.lines == ((POOL, sol, 1 * SOL), (short, sol, -1 * SOL))
    assert moved == BorrowLendChanged(short, sol, LEND, 1 * SOL, 0, 0)
    assert account.borrowed[sol] == 0 and h.balance(short, "SOL") == 0
    assert h.balance(short, "USDC") == 210 * USDC  # sold at 100, bought back at 90
    assert h.balance(POOL, "SOL") == 10 * SOL
    assert h.audit() == []


def test_auto_borrow_repay_on_a_later_sell_repays_up_to_what_the_fills_bring_in() -> None:
    h = setup()
    lender_with(h, "USDC", 10_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    bidder = h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 500))
    h.ok(PlaceOrder, **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW))
    # sell 2 SOL at 110: 220 USDC come in and repay 220 of the 400 borrowed
    h.ok(PlaceOrder, **order(h, bidder, 0, 11_000, 200))
    events = h.ok(PlaceOrder, **order(h, buyer, 1, 11_000, 200, auto_margin=AUTO_REPAY))
    ((entry, moved),) = pool_moves(events)
    assert entry.lines == ((POOL, 0, 220 * USDC), (buyer, 0, -220 * USDC))
    assert moved == BorrowLendChanged(buyer, 0, LEND, 220 * USDC, 0, 180 * USDC)
    # the other 3 SOL at 110: 330 USDC in, 180 repay the rest, 150 stay in the balance
    h.ok(PlaceOrder, **order(h, bidder, 0, 11_000, 300))
    events = h.ok(PlaceOrder, **order(h, buyer, 1, 11_000, 300, auto_margin=AUTO_REPAY))
    ((_, moved),) = pool_moves(events)
    assert moved == BorrowLendChanged(buyer, 0, LEND, 180 * USDC, 0, 0)
    assert h.balance(buyer, "USDC") == 150 * USDC and h.balance(buyer, "SOL") == 0
    assert h.balance(POOL, "USDC") == 10_000 * USDC
    assert h.audit() == []


def test_auto_lend_repays_the_borrow_and_lends_the_rest_of_the_proceeds() -> None:
    h = setup()
    lender_with(h, "USDC", 10_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    bidder = h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 500))
    h.ok(PlaceOrder, **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW))
    h.ok(PlaceOrder, **order(h, bidder, 0, 11_000, 500))
    events = h.ok(PlaceOrder, **order(h, buyer, 1, 11_000, 500, auto_margin=AUTO_LEND))  # 550 USDC in
    ((_, moved),) = pool_moves(events)
    assert moved == BorrowLendChanged(buyer, 0, LEND, 550 * USDC, 150 * USDC, 0)  # 400 repaid, 150 lent
    assert h.balance(buyer, "USDC") == 0 and h.account(buyer).lent[0] == 150 * USDC
    assert h.audit() == []


def test_auto_lend_redeem_redeems_the_lend_first_and_auto_borrow_borrows_only_the_rest() -> None:
    h = setup()
    lender_with(h, "USDC", 1_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    user = h.new_account(USDC=400 * USDC)
    h.ok(BorrowLend, account_id=user, asset_id=0, side=LEND, amount_atomic=300 * USDC)  # 100 left
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 1_000))
    # 2 SOL for 200 USDC: 100 available, 100 redeemed from the 300 lent
    events = h.ok(PlaceOrder, **order(h, user, 0, 10_000, 200, auto_margin=AUTO_REDEEM))
    ((entry, moved),) = pool_moves(events)
    assert entry.lines == ((POOL, 0, -100 * USDC), (user, 0, 100 * USDC))
    assert moved == BorrowLendChanged(user, 0, BORROW, 100 * USDC, 200 * USDC, 0)
    # 3 SOL for 300 USDC with autoLendRedeem alone: 0 available + 200 lent is short
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "the order needs 300 USDC",
        **order(h, user, 0, 10_000, 300, auto_margin=AUTO_REDEEM),
    )
    # with autoBorrow as well: redeem the 200 lent, borrow 100
    events = h.ok(PlaceOrder, **order(h, user, 0, 10_000, 300, auto_margin=AUTO_REDEEM | AUTO_BORROW))
    ((_, moved),) = pool_moves(events)
    assert moved == BorrowLendChanged(user, 0, BORROW, 300 * USDC, 0, 100 * USDC)
    assert h.balance(user, "SOL") == 5 * SOL and h.balance(user, "USDC") == 0
    assert h.audit() == []


def test_auto_borrow_alone_also_redeems_first_so_no_account_both_lends_and_borrows() -> None:
    h = setup()
    lender_with(h, "USDC", 1_000 * USDC)
    user = h.new_account(USDC=400 * USDC, SOL=5 * SOL)
    h.ok(BorrowLend, account_id=user, asset_id=0, side=LEND, amount_atomic=300 * USDC)
    events = h.ok(PlaceOrder, **order(h, user, 0, 10_000, 500, auto_margin=AUTO_BORROW))  # rests
    ((_, moved),) = pool_moves(events)
    assert moved == BorrowLendChanged(user, 0, BORROW, 400 * USDC, 0, 100 * USDC)
    assert h.audit() == []


def test_refusals_leave_state_unchanged() -> None:
    h = setup(sol_borrowable=False)
    lender_with(h, "USDC", 300 * USDC)
    lender_with(h, "SOL", 10 * SOL)
    seller = h.new_account(SOL=20 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 2_000))
    h.reject(
        PlaceOrder,
        RejectCode.POOL_INSUFFICIENT,
        "the USDC lending pool holds 300 USDC, less than the 400 USDC asked",
        **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW),
    )
    lender_with(h, "USDC", 10_000 * USDC)
    # 10 SOL for 1,000 USDC: borrow 900; equity 10 x 100 x 0.9 - 900 = 0 < 10% of 900
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_MARGIN,
        "insufficient margin",
        **order(h, buyer, 0, 10_000, 1_000, auto_margin=AUTO_BORROW),
    )
    h.reject(
        PlaceOrder,
        RejectCode.BORROW_NOT_ENABLED,
        "SOL cannot be borrowed",
        **order(h, buyer, 1, 10_000, 100, auto_margin=AUTO_BORROW),
    )
    h.reject(
        PlaceOrder,
        RejectCode.ORDER_MALFORMED,
        "SOL_USDC_PERP is a perpetual",
        account_id=buyer,
        market_id=h.market("SOL_USDC_PERP"),
        side=0,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=100,
        auto_margin=AUTO_BORROW,
    )
    h.reject(
        PlaceOrder,
        RejectCode.ORDER_MALFORMED,
        "unknown automatic borrow and lend flags 16",
        **order(h, buyer, 0, 10_000, 100, auto_margin=16),
    )
    h.reject(
        PlaceOrder,
        RejectCode.ORDER_MALFORMED,
        "is a perpetual",
        account_id=buyer,
        market_id=h.market("SOL_USDC_PERP"),
        side=0,
        order_type=0,
        price_ticks=10_000,
        quantity_steps=100,
        trigger_price_ticks=9_000,
        auto_margin=AUTO_REPAY,
    )
    # without auto-borrow the shortfall is refused as before
    h.reject(
        PlaceOrder,
        RejectCode.INSUFFICIENT_AVAILABLE,
        "insufficient funds",
        **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_REPAY | AUTO_LEND),
    )
    assert h.audit() == []


def test_no_borrow_without_a_margin_asset() -> None:
    h = Harness()
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    h.ok(ListAsset, symbol="SOL", decimals=9)
    h.ok(ListMarket, **h.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
    lender_with(h, "USDC", 1_000 * USDC)
    buyer = h.new_account(USDC=100 * USDC)
    h.reject(
        PlaceOrder,
        RejectCode.BORROW_NOT_ENABLED,
        "no margin asset yet",
        **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW),
    )


def test_a_spot_trigger_order_borrows_when_it_fires() -> None:
    h = setup()
    lender_with(h, "USDC", 1_000 * USDC)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    other = h.new_account(USDC=1_000 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 100))
    h.ok(PlaceOrder, **order(h, other, 0, 10_000, 100))  # last price 100.00
    events = h.ok(PlaceOrder, **order(h, buyer, 0, 10_100, 200, trigger_price_ticks=10_100, auto_margin=AUTO_BORROW))
    assert any(isinstance(event, TriggerAccepted) for event in events) and not pool_moves(events)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_100, 300))
    events = h.ok(PlaceOrder, **order(h, other, 0, 10_100, 100))  # last price 101.00: it fires
    ((_, moved),) = pool_moves(events)
    # 2 SOL at 101.00 = 202 USDC held; 100 available: 102 borrowed
    assert moved == BorrowLendChanged(buyer, 0, BORROW, 102 * USDC, 0, 102 * USDC)
    assert h.audit() == []


def test_orders_encoded_before_auto_margin_and_before_attachments_still_decode() -> None:
    """msgspec writes `seq` and `timestamp_ns` last, so fields added to PlaceOrder sit
    before them: a log written before `auto_margin` (or before the take-profit and
    stop-loss fields) has shorter arrays, which decode_command reads with the defaults."""
    command = PlaceOrder(seq=7, timestamp_ns=9, account_id=1, market_id=0, side=1, order_type=0, price_ticks=3)
    fields = msgspec.msgpack.decode(encode_command(command))
    assert fields[-3:] == [0, 7, 9]  # auto_margin, then seq and timestamp_ns
    before_auto_margin = msgspec.msgpack.encode(fields[:-3] + fields[-2:])
    assert decode_command(before_auto_margin) == command
    before_attachments = msgspec.msgpack.encode(fields[:-9] + fields[-2:])
    assert decode_command(before_attachments) == command
    first_layout = msgspec.msgpack.encode(fields[:12] + fields[-2:])  # 11 fields, before reduce_only
    assert decode_command(first_layout) == command
    batch = PlaceOrders(seq=8, timestamp_ns=10, account_id=1, orders=(command,))
    raw = msgspec.msgpack.decode(encode_command(batch))
    raw[2] = [item[:-9] + item[-2:] for item in raw[2]]
    assert decode_command(msgspec.msgpack.encode(raw)) == batch
    with pytest.raises(msgspec.ValidationError):
        decode_command(msgspec.msgpack.encode(fields[:3] + fields[-2:]))  # lacks `side`, which has no default


def test_replay_gives_the_same_state_hash() -> None:
    h = setup()
    lender_with(h, "USDC", 10_000 * USDC)
    lender_with(h, "SOL", 10 * SOL)
    seller = h.new_account(SOL=10 * SOL)
    buyer = h.new_account(USDC=100 * USDC)
    h.ok(PlaceOrder, **order(h, seller, 1, 10_000, 500))
    h.ok(PlaceOrder, **order(h, buyer, 0, 10_000, 500, auto_margin=AUTO_BORROW))
    shorter = h.new_account(USDC=2_000 * USDC)
    h.ok(PlaceOrder, **order(h, shorter, 1, 10_500, 300, auto_margin=AUTO_BORROW | AUTO_REPAY))  # borrows 3 SOL, rests
    h.ok(PlaceOrder, **order(h, seller, 0, 10_500, 300, auto_margin=AUTO_LEND))  # lends the 3 SOL it buys
    assert h.account(shorter).borrowed[h.asset("SOL")] == 3 * SOL
    assert h.account(seller).lent[h.asset("SOL")] == 3 * SOL
    assert h.audit() == []
    replica = Engine()
    for command in h.log:
        replica.apply(decode_command(encode_command(command)))
    assert replica.state_hash() == h.engine.state_hash() == canonical.state_hash(h.state)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),  # account
            st.integers(0, 1),  # side
            st.integers(9_000, 11_000),  # price ticks
            st.integers(1, 400),  # steps
            st.integers(0, 15),  # AutoMargin flags
        ),
        max_size=40,
    )
)
def test_random_auto_margin_orders_keep_every_invariant(actions: list[tuple[int, int, int, int, int]]) -> None:
    """Spot orders with random AutoMargin flags across accounts that lend, borrow and
    trade: after each, audit is clean (pool == lent - borrowed, no account both lends and
    borrows an asset, ledger sums) and the incremental hash equals the full one."""
    h = setup()
    lender_with(h, "USDC", 2_000 * USDC)
    lender_with(h, "SOL", 20 * SOL)
    accounts = [
        h.new_account(USDC=(100 + 300 * (n % 3)) * USDC, **({"SOL": 2 * SOL} if n % 2 else {})) for n in range(5)
    ]
    for who, side, price, steps, flags in actions:
        h.submit(PlaceOrder, **order(h, accounts[who], side, price, steps, auto_margin=flags, self_trade_prevention=3))
        assert h.audit() == []
        assert h.engine.state_hash() == canonical.state_hash(h.state)
