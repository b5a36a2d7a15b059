"""Perpetual positions and settlements in the history views, from a real engine's events.

Each test runs commands through the core's test harness (keel.testing.harness: a real
Engine, SOL_USDC_PERP on SOL_USDC's grid, a lot of 100 atomic USDC), projects the
commands it logged into a store on each backend, and checks the `perp_positions` and
`settlements` rows with amounts worked out by hand. The same commands projected one per
transaction and all in one give the same store, which is what a rebuild relies on (the
whole-session rebuild equality is test_projection.py's and test_catchup.py's).

- a long partly closed, then flipped through zero into a short: two runs, fees and
  realized PnL where they belong, average entry and closing prices;
- a long liquidated through the book at a loss bigger than its balance, the deficit
  taken from the short (adl), and the same with the insurance fund paying it instead.
"""

from __future__ import annotations

from typing import Any

from keel.core.accounts import FEE_ACCOUNT_ID, INSURANCE_ACCOUNT_ID
from keel.core.commands import PlaceOrder, SetIndexPrices
from keel.core.events import LiquidationStarted, PositionChanged
from keel.testing.harness import Harness
from keel.views import Item, PerpPosition, Projector, Settlement, SettlementSource, StoreSettings, open_store

USDC = 1_000_000  # atomic units
USDC_ID = 0
PNL, ADL, INSURANCE = (int(SettlementSource.REALIZED_PNL), int(SettlementSource.ADL), int(SettlementSource.INSURANCE))
OPEN = -1


def harness(fee_maker_bps: int = 0, fee_taker_bps: int = 0) -> tuple[Harness, int]:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=fee_maker_bps, fee_taker_bps=fee_taker_bps)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    return h, perp


def order(h: Harness, account: int, market: int, side: int, price: int, steps: int) -> list[Any]:
    return h.ok(
        PlaceOrder,
        account_id=account,
        market_id=market,
        side=side,
        order_type=0,
        price_ticks=price,
        quantity_steps=steps,
        self_trade_prevention=3,
    )


def items(h: Harness) -> list[Item]:
    logged = zip(h.log, h.events, strict=True)
    return [(command.seq, command.timestamp_ns, command, events) for command, events in logged]


def change_of(h: Harness, account: int) -> tuple[int, int]:
    """(seq, event index) of the account's last PositionChanged."""
    for seq, _, _, events in reversed(items(h)):
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if isinstance(event, PositionChanged) and event.account_id == account:
                return seq, index
    raise AssertionError(f"no position change of account {account}")


def ns(seq: int) -> int:
    return seq * 1_000_000  # the harness's clock: 1 ms per seq


def project(store_settings: StoreSettings, h: Harness) -> None:
    """Project the harness's commands one per transaction (so positions opened by earlier
    batches are read back from the store), and check that projecting them all at once into
    another store (the rebuild's sibling) gives the same rows."""
    logged = items(h)
    with open_store(store_settings) as store:
        projector = Projector(store)
        for item in logged:
            projector.apply([item])
        one_by_one = store.dump()
    with open_store(store_settings.staging()) as store:
        assert Projector(store).apply(logged) == len(logged)
        assert store.dump() == one_by_one


def positions(store_settings: StoreSettings, account: int, **filters: Any) -> list[PerpPosition]:
    with open_store(store_settings, create=False) as store:
        return store.perp_positions(account, **filters)


def settlements(store_settings: StoreSettings, account: int, **filters: Any) -> list[Settlement]:
    with open_store(store_settings, create=False) as store:
        return store.settlements(account, **filters)


def test_a_long_partly_closed_then_flipped_is_two_runs(store_settings: StoreSettings) -> None:
    """Alice buys 1 SOL at 100.00 from Bob (taker: 0.05 USDC fee), sells 0.4 at 110.00 to
    Carol (+4 USDC, fee 0.022), then sells 1 at 105.00 to Carol: closes 0.6 (+3 USDC, fee
    0.0525 for the whole fill) and opens a 0.4 short at 105.00 (the docs' example)."""
    h, perp = harness(fee_maker_bps=2, fee_taker_bps=5)
    alice, bob, carol = (h.new_account(USDC=1_000 * USDC) for _ in range(3))
    order(h, bob, perp, 1, 10_000, 100)
    order(h, alice, perp, 0, 10_000, 100)
    opened = change_of(h, alice)
    bob_opened = change_of(h, bob)
    order(h, carol, perp, 0, 11_000, 40)
    order(h, alice, perp, 1, 11_000, 40)
    partly = change_of(h, alice)
    order(h, carol, perp, 0, 10_500, 100)
    order(h, alice, perp, 1, 10_500, 100)
    flipped = change_of(h, alice)
    assert h.balance(alice, "USDC") == 1_007 * USDC - 50_000 - 22_000 - 52_500
    project(store_settings, h)

    long_run = (alice, perp, *opened, 0, 0, 100, 100 * USDC, 100, 107 * USDC, 7 * USDC, 124_500, 0, 0)
    short_run = (alice, perp, *flipped, -40, -42 * USDC, 40, 42 * USDC, 0, 0, 0, 0, 0, 0)
    assert positions(store_settings, alice) == [
        PerpPosition(*short_run, OPEN, ns(flipped[0]), 0, flipped[0], ns(flipped[0])),
        PerpPosition(*long_run, flipped[0], ns(opened[0]), ns(flipped[0]), flipped[0], ns(flipped[0])),
    ]
    assert [one.opened_seq for one in positions(store_settings, alice, is_open=False)] == [opened[0]]
    assert [one.opened_seq for one in positions(store_settings, alice, is_open=True)] == [flipped[0]]
    assert positions(store_settings, alice, limit=1, offset=1, descending=False) == positions(
        store_settings, alice, is_open=True
    )
    # Bob's short is still open: 0.02 USDC of maker fee, nothing realized
    [bob_run] = positions(store_settings, bob)
    assert (bob_run.opened_seq, bob_run.opened_index, bob_run.size_steps, bob_run.fees_atomic) == (
        *bob_opened,
        -100,
        20_000,
    )
    assert settlements(store_settings, alice) == [
        Settlement(*flipped, 0, alice, USDC_ID, 3 * USDC, PNL, perp, *opened, ns(flipped[0])),
        Settlement(*partly, 0, alice, USDC_ID, 4 * USDC, PNL, perp, *opened, ns(partly[0])),
    ]
    assert settlements(store_settings, alice, sources=[ADL, INSURANCE]) == []
    assert settlements(store_settings, bob) == []


def liquidated_long(insured: bool) -> tuple[Harness, int, int, int, int]:
    """tests/core/test_perps.py's liquidation: a long of 1 SOL at 100.00 on 3 USDC, closed
    at 96.00 when the index falls to 98: -4 USDC, a deficit of 1 USDC."""
    h, perp = harness()
    long_ = h.new_account(USDC=3 * USDC)
    short = h.new_account(USDC=1_000 * USDC)
    bidder = h.new_account(USDC=1_000 * USDC)
    order(h, short, perp, 1, 10_000, 100)
    order(h, long_, perp, 0, 10_000, 100)
    order(h, bidder, perp, 0, 9_600, 100)
    if insured:  # seeded as the core test does: no command moves money into the fund yet
        h.account(INSURANCE_ACCOUNT_ID).balances[0] += 2 * USDC
        h.account(FEE_ACCOUNT_ID).balances[0] -= 2 * USDC
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 98 * USDC),))
    assert [event.account_id for event in events if isinstance(event, LiquidationStarted)] == [long_]
    return h, perp, long_, short, bidder


def test_a_liquidation_settles_its_loss_and_the_deficit_taken_from_the_short(store_settings: StoreSettings) -> None:
    h, perp, long_, short, bidder = liquidated_long(insured=False)
    seq = h.state.seq_last
    closed = change_of(h, long_)
    project(store_settings, h)
    [run] = positions(store_settings, long_)
    opened = (run.opened_seq, run.opened_index)
    assert run == PerpPosition(
        *(long_, perp, *opened, 0, 0, 100, 100 * USDC, 100, 96 * USDC, -4 * USDC, 0, 0, 100),
        *(seq, ns(opened[0]), ns(seq), seq, ns(seq)),
    )
    [take] = settlements(store_settings, short)
    assert (take.seq, take.account_id, take.amount_atomic, take.source) == (seq, short, -1 * USDC, ADL)
    assert (take.market_id, take.position_seq, take.position_index) == (-1, -1, -1)
    assert settlements(store_settings, long_) == [
        Settlement(seq, take.event_index, 1, long_, USDC_ID, 1 * USDC, ADL, -1, -1, -1, ns(seq)),
        Settlement(*closed, 0, long_, USDC_ID, -4 * USDC, PNL, perp, *opened, ns(seq)),
    ]
    assert settlements(store_settings, long_, sources=[ADL, INSURANCE]) == settlements(store_settings, long_)[:1]
    # the bidder bought the close-out: an open long at 96.00, nothing liquidated
    [bought] = positions(store_settings, bidder)
    assert (bought.size_steps, bought.cost_atomic, bought.liquidated_steps, bought.closed_seq) == (
        100,
        96 * USDC,
        0,
        OPEN,
    )


def test_the_insurance_fund_covering_a_deficit_is_a_settlement(store_settings: StoreSettings) -> None:
    h, _, long_, short, _ = liquidated_long(insured=True)
    seq = h.state.seq_last
    project(store_settings, h)
    [cover, loss] = settlements(store_settings, long_)
    assert (cover.seq, cover.line_no, cover.amount_atomic, cover.source, cover.market_id) == (
        seq,
        1,
        1 * USDC,
        INSURANCE,
        -1,
    )
    assert (loss.amount_atomic, loss.source) == (-4 * USDC, PNL)
    assert settlements(store_settings, short) == []
