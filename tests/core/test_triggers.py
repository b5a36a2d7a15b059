"""Trigger orders: pending until the last, mark or index price reaches them, then placed
with their own id, in order id order; cancellable; refused orders become TriggerFailed."""

from __future__ import annotations

from keel.core import canonical
from keel.core.commands import CancelAllOrders, CancelOrder, PlaceOrder, SetIndexPrices
from keel.core.errors import RejectCode
from keel.core.events import OrderAccepted, OrderCancelled, TradeExecuted, TriggerAccepted, TriggerFailed, TriggerFired
from keel.core.snapshot import decode_state, encode_state
from keel.core.triggers import TriggerBy
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000


def setup() -> tuple[Harness, int, int, int]:
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    a, b = h.new_account(USDC=10_000 * USDC), h.new_account(USDC=10_000 * USDC)
    return h, perp, a, b


def place(h: Harness, account: int, market: int, side: int, price: int, steps: int, **extra: object) -> list:
    return h.submit(
        PlaceOrder,
        account_id=account,
        market_id=market,
        side=side,
        order_type=0,
        price_ticks=price,
        quantity_steps=steps,
        **extra,
    )


def test_a_stop_on_the_mark_waits_then_fires_when_the_index_moves_the_mark() -> None:
    h, perp, a, b = setup()
    place(h, b, perp, 0, 9_400, 100)  # a bid to sell into
    # a stop-loss sell at 95.00 on the mark (now 100): fires when the mark is at or below 95
    events = h.submit(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=100,
        trigger_price_ticks=9_500,
        trigger_by=int(TriggerBy.MARK_PRICE),
    )
    (accepted,) = events
    assert accepted == TriggerAccepted(accepted.order_id, a, perp, 9_500, int(TriggerBy.MARK_PRICE))
    assert h.ok(SetIndexPrices, prices=((h.asset("SOL"), 96 * USDC),))[0].mark_ticks == 9_600
    assert accepted.order_id in h.state.triggers
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 95 * USDC),))
    fired = [e for e in events if isinstance(e, TriggerFired)]
    assert fired == [TriggerFired(accepted.order_id, a, perp, 9_500)]
    placed = next(e for e in events if isinstance(e, OrderAccepted))
    assert placed.order_id == accepted.order_id  # the order keeps the id it was given
    assert any(isinstance(e, TradeExecuted) for e in events)
    assert h.account(a).positions[perp].size_steps == -100
    assert not h.state.triggers
    assert h.audit() == []


def test_triggers_fire_in_order_id_order_and_cascade_on_the_last_price() -> None:
    h, perp, a, b = setup()
    place(h, b, perp, 1, 10_000, 1)
    place(h, a, perp, 0, 10_000, 1)  # a first trade: the last price is 100
    place(h, b, perp, 1, 10_100, 10)
    place(h, b, perp, 1, 10_200, 10)
    first = h.submit(
        PlaceOrder, account_id=a, market_id=perp, side=0, order_type=1, quantity_steps=10, trigger_price_ticks=10_050
    )[0]
    second = h.submit(
        PlaceOrder, account_id=a, market_id=perp, side=0, order_type=1, quantity_steps=10, trigger_price_ticks=10_150
    )[0]
    # a trade at 101 fires the first (last >= 100.50); its fill at 102 then fires the second
    events = place(h, a, perp, 0, 10_100, 10)
    fired = [e.order_id for e in events if isinstance(e, TriggerFired)]
    assert fired == [first.order_id, second.order_id]
    assert h.audit() == []


def test_a_pending_trigger_is_cancelled_like_an_order_and_a_refused_one_fails() -> None:
    h, perp, a, _ = setup()
    pending = h.submit(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=5,
        trigger_price_ticks=9_000,
        trigger_by=int(TriggerBy.INDEX_PRICE),
        client_id=7,
    )[0]
    events = h.ok(CancelOrder, account_id=a, market_id=perp, client_id=7)
    assert events == [OrderCancelled(pending.order_id, a, perp, 0, 5)]
    h.submit(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=5,
        trigger_price_ticks=9_000,
        trigger_by=int(TriggerBy.INDEX_PRICE),
    )
    assert len(h.ok(CancelAllOrders, account_id=a, market_id=perp)) == 1
    # reduce-only with no position: accepted as a trigger, refused when it fires
    failing = h.submit(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=5,
        reduce_only=True,
        trigger_price_ticks=9_900,
        trigger_by=int(TriggerBy.INDEX_PRICE),
    )[0]
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 99 * USDC),))
    (failed,) = [e for e in events if isinstance(e, TriggerFailed)]
    assert failed.order_id == failing.order_id and failed.code == RejectCode.REDUCE_ONLY_WOULD_INCREASE
    assert h.audit() == []


def test_trigger_refusals_and_snapshots() -> None:
    h, perp, a, _ = setup()
    h.reject(
        PlaceOrder,
        RejectCode.NO_MARK_PRICE,
        "no last price",
        account_id=a,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=1,
        trigger_price_ticks=10_000,
    )
    h.reject(
        PlaceOrder,
        RejectCode.ORDER_MALFORMED,
        "trigger by",
        account_id=a,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=1,
        trigger_price_ticks=10_000,
        trigger_by=7,
    )
    h.submit(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=1,
        trigger_price_ticks=11_000,
        trigger_by=1,
    )
    restored = decode_state(encode_state(h.state))
    assert canonical.state_hash(restored) == canonical.state_hash(h.state) == h.engine.state_hash()
    assert restored.triggers == h.state.triggers


def test_a_liquidation_cancels_the_accounts_pending_triggers() -> None:
    h, perp, _, b = setup()
    thin = h.new_account(USDC=3 * USDC)
    place(h, b, perp, 1, 10_000, 100)
    place(h, thin, perp, 0, 10_000, 100)  # long 1 SOL on 3 USDC
    place(h, b, perp, 0, 9_600, 100)  # a bid to close into
    pending = h.submit(
        PlaceOrder,
        account_id=thin,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=10,
        trigger_price_ticks=11_000,
        trigger_by=int(TriggerBy.INDEX_PRICE),
    )[0]
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 98 * USDC),))
    assert OrderCancelled(pending.order_id, thin, perp, 8, 10) in events  # EndReason.LIQUIDATION
    assert pending.order_id not in h.state.triggers
    assert h.audit() == []


def test_a_fired_order_queues_behind_orders_that_rested_before_it_fired() -> None:
    """Time priority is arrival in the book: a trigger accepted before a resting order but
    fired after it queues behind it, although its order id is lower. The audit accepts that
    queue, and the state hash covers it: the same orders in another queue order (first and
    last unchanged) are another state, and the audit refuses that one."""
    h, perp, a, b = setup()
    # a limit sell at 101 that waits for the index to fall to 95
    trigger = place(h, a, perp, 1, 10_100, 5, trigger_price_ticks=9_500, trigger_by=int(TriggerBy.INDEX_PRICE))[0]
    assert isinstance(trigger, TriggerAccepted)
    first = place(h, b, perp, 1, 10_100, 3)[0]  # an ask at 101, with a higher id, rests first
    assert isinstance(first, OrderAccepted) and first.order_id > trigger.order_id
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 95 * USDC),))  # fires it: it rests behind
    then = [place(h, b, perp, 1, 10_100, 2)[0].order_id for _ in range(2)]
    level = h.state.books[perp].asks[10_100]
    queue = [first.order_id, trigger.order_id, *then]
    assert [order.order_id for order in level.orders if order.open_steps] == queue
    assert h.audit() == []
    full = canonical.state_hash(h.state)
    assert h.engine.state_hash() == full
    # the fired order and the next one the other way round: same first and last order
    level.orders[1], level.orders[2] = level.orders[2], level.orders[1]
    assert canonical.state_hash(h.state) != full
    assert any("out of time priority" in finding for finding in h.audit())
    level.orders[1], level.orders[2] = level.orders[2], level.orders[1]
    assert canonical.state_hash(h.state) == full
    # a buy takes the orders in the order they arrived
    c = h.new_account(USDC=10_000 * USDC)
    events = place(h, c, perp, 0, 10_100, 12)
    assert [e.maker_order_id for e in events if isinstance(e, TradeExecuted)] == queue
    assert h.audit() == []
