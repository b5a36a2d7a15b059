"""Take-profit and stop-loss attached to a perpetual order (triggers.py): created as a
one-cancels-the-other pair of reduce-only triggers at the parent's first fill, nothing
when it never fills, refused at entry with stable codes and no state change, carried by
snapshots, the state hash and replay. Every figure is worked out by hand in the comments;
SOL_USDC_PERP here has tick 0.01, step 0.01 SOL, lot 100 atomic units and no fees."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from keel.core import canonical
from keel.core.commands import CancelOrder, PlaceOrder, SetIndexPrices
from keel.core.engine import Engine
from keel.core.errors import RejectCode
from keel.core.events import (
    CommandRejected,
    Event,
    MarkPriceChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    PositionChanged,
    TradeExecuted,
    TriggerAccepted,
    TriggerFailed,
    TriggerFired,
)
from keel.core.orders import Attachment, EndReason
from keel.core.snapshot import decode_state, encode_state
from keel.core.triggers import TriggerBy
from keel.testing.harness import Harness, state_except_position

USDC = 1_000_000
LAST, MARK, INDEX = int(TriggerBy.LAST_PRICE), int(TriggerBy.MARK_PRICE), int(TriggerBy.INDEX_PRICE)
OCO = int(EndReason.ONE_CANCELS_OTHER)
LONG = os.environ.get("KEEL_LONG_TESTS") == "1"


def setup() -> tuple[Harness, int, int, int, int]:
    """A perpetual with index and mark 100.00 and three accounts of 10,000 USDC."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    a, b, c = (h.new_account(USDC=10_000 * USDC) for _ in range(3))
    return h, perp, a, b, c


def limit(h: Harness, account: int, market: int, side: int, price: int, steps: int, **extra: Any) -> list[Event]:
    return h.ok(
        PlaceOrder,
        account_id=account,
        market_id=market,
        side=side,
        order_type=0,
        price_ticks=price,
        quantity_steps=steps,
        **extra,
    )


def of(kind: type, events: list[Event]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def test_a_long_whose_take_profit_fires_and_cancels_its_stop_loss() -> None:
    h, perp, a, b, c = setup()
    limit(h, b, perp, 1, 10_000, 100)  # order 1: b offers 1 SOL at 100.00
    # Order 2: a buys 1 SOL at 100.00 with a market take-profit at 105.00 on the last price
    # and a market stop-loss at 95.00 on the mark.
    events = limit(
        h,
        a,
        perp,
        0,
        10_000,
        100,
        take_profit_trigger_ticks=10_500,
        stop_loss_trigger_ticks=9_500,
        stop_loss_trigger_by=MARK,
    )
    # The fill creates them right after its own events: take-profit 3, stop-loss 4, each
    # the other's sibling: sells, reduce-only, market orders for the whole 1 SOL.
    assert [type(event).__name__ for event in events] == [
        "OrderAccepted",
        "TradeExecuted",
        "PositionChanged",
        "PositionChanged",
        "LedgerPosted",
        "TriggerAccepted",
        "TriggerAccepted",
    ]
    assert events[-2:] == [
        TriggerAccepted(3, a, perp, 10_500, LAST, 2, 1, 1, 0, 100, 0, 4),
        TriggerAccepted(4, a, perp, 9_500, MARK, 2, 1, 1, 0, 100, 0, 3),
    ]
    take_profit, stop_loss = h.state.triggers[3], h.state.triggers[4]
    assert take_profit.fires_upward and not stop_loss.fires_upward
    assert take_profit.order.reduce_only and take_profit.order.quantity_steps == 100
    assert h.account(a).positions[perp].size_steps == 100
    assert h.audit() == []
    # c bids 1.01 SOL at 105.00 (order 5); b sells it 0.01 SOL (order 6): the last price is
    # 105.00, the take-profit fires and sells a's 1 SOL at 105.00 to c, then the stop-loss
    # is cancelled. a realizes 100 x (105.00 - 100.00) x 0.01 = +5 USDC.
    limit(h, c, perp, 0, 10_500, 101)
    events = limit(h, b, perp, 1, 10_500, 1)
    fired = events.index(TriggerFired(3, a, perp, 10_500))
    assert events[fired + 1] == OrderAccepted(3, a, perp, 1, 1, 0, 0, 100, 0, -1, False, 0)
    assert of(TradeExecuted, events[fired:])[0].quantity_steps == 100
    assert events[-1] == OrderCancelled(4, a, perp, OCO, 100)
    (closing,) = [event for event in of(PositionChanged, events) if event.account_id == a]
    assert (closing.size_before_steps, closing.size_after_steps) == (100, 0)
    assert closing.realized_pnl_atomic == 5 * USDC
    assert h.balance(a, "USDC") == 10_005 * USDC
    assert perp not in h.account(a).positions
    assert not h.state.triggers
    assert h.audit() == []


def test_a_stop_loss_on_the_mark_fires_when_the_index_moves_it() -> None:
    h, perp, a, b, c = setup()
    limit(h, b, perp, 1, 10_000, 100)
    limit(
        h,
        a,
        perp,
        0,
        10_000,
        100,
        take_profit_trigger_ticks=11_000,
        take_profit_limit_ticks=10_990,
        stop_loss_trigger_ticks=9_500,
        stop_loss_trigger_by=MARK,
    )
    assert h.state.triggers[3].order.order_type == 0 and h.state.triggers[3].order.price_ticks == 10_990
    limit(h, c, perp, 0, 9_400, 100)  # a bid at 94.00 to close into
    # Index 96: a bid and no ask, so the mark is the index, 96.00: above 95.00, nothing fires.
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 96 * USDC),))
    assert of(MarkPriceChanged, events) == [MarkPriceChanged(perp, 9_600, 9_600)]
    assert not of(TriggerFired, events)
    # Index 95: mark 95.00 reaches the stop: a sells 1 SOL at market, at c's 94.00, and
    # realizes 100 x (94.00 - 100.00) x 0.01 = -6 USDC; the take-profit (3) is cancelled.
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 95 * USDC),))
    assert of(TriggerFired, events) == [TriggerFired(4, a, perp, 9_500)]
    (trade,) = of(TradeExecuted, events)
    assert (trade.price_ticks, trade.quantity_steps, trade.taker_order_id) == (9_400, 100, 4)
    assert events[-1] == OrderCancelled(3, a, perp, OCO, 100)
    assert h.balance(a, "USDC") == 9_994 * USDC
    assert perp not in h.account(a).positions
    assert not h.state.triggers
    assert h.audit() == []


def test_a_short_mirrors_the_sides() -> None:
    h, perp, a, b, _ = setup()
    limit(h, b, perp, 0, 10_000, 50)  # order 1: a bid for a to sell into
    # a sells 0.5 SOL at market: its take-profit (on the mark) must be below the mark,
    # 100.00, and its stop-loss (on the index) above the index, 100.00.
    events = h.ok(
        PlaceOrder,
        account_id=a,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=50,
        take_profit_trigger_ticks=9_000,
        take_profit_trigger_by=MARK,
        stop_loss_trigger_ticks=10_500,
        stop_loss_trigger_by=INDEX,
    )
    accepted = of(TriggerAccepted, events)
    assert [(e.order_id, e.side, e.trigger_by, e.quantity_steps) for e in accepted] == [
        (3, 0, MARK, 50),
        (4, 0, INDEX, 50),
    ]
    assert not h.state.triggers[3].fires_upward and h.state.triggers[4].fires_upward
    assert h.account(a).positions[perp].size_steps == -50
    assert h.audit() == []


def test_a_parent_that_never_fills_creates_nothing() -> None:
    h, perp, a, _, _ = setup()
    attached = {"take_profit_trigger_ticks": 10_500, "stop_loss_trigger_ticks": 9_500}
    # A resting buy at 99.00 carries its attachment; cancelled unfilled, nothing is created.
    events = limit(h, a, perp, 0, 9_900, 100, **attached)
    (order_id,) = [event.order_id for event in of(OrderAccepted, events)]
    assert h.state.orders[order_id].attached == Attachment(10_500, 0, 0, 9_500, 0, 0)
    assert h.ok(CancelOrder, account_id=a, market_id=perp, order_id=order_id) == [
        OrderCancelled(order_id, a, perp, int(EndReason.USER_CANCEL), 100)
    ]
    # An IOC buy with nothing to take expires at once: nothing either.
    events = limit(h, a, perp, 0, 9_900, 100, time_in_force=1, **attached)
    assert of(OrderExpired, events) and not of(TriggerAccepted, events)
    assert not h.state.triggers
    assert h.state.order_id_next == 3  # no ids were taken for children
    assert h.audit() == []


def test_a_partly_filled_parent_creates_them_once_and_they_trim_to_the_position() -> None:
    h, perp, a, b, c = setup()
    limit(h, b, perp, 1, 10_000, 40)  # order 1: 0.4 SOL offered at 100.00
    # Order 2 buys 1 SOL at 100.00: 0.4 fills at once, 0.6 rests. Children 3 and 4 are
    # for the whole 1 SOL, limit sells at 109.00 (TP) and 90.00 (SL).
    events = limit(
        h,
        a,
        perp,
        0,
        10_000,
        100,
        take_profit_trigger_ticks=11_000,
        take_profit_limit_ticks=10_900,
        stop_loss_trigger_ticks=9_100,
        stop_loss_limit_ticks=9_000,
    )
    assert [(e.order_id, e.quantity_steps, e.order_type, e.price_ticks) for e in of(TriggerAccepted, events)] == [
        (3, 100, 0, 10_900),
        (4, 100, 0, 9_000),
    ]
    assert h.state.orders[2].attached is None and h.state.orders[2].open_steps == 60
    # 0.2 more fills (order 5, b): no more children.
    events = limit(h, b, perp, 1, 10_000, 20)
    assert not of(TriggerAccepted, events)
    assert sorted(h.state.triggers) == [3, 4]
    # The rest is cancelled: a is long 0.6 SOL, and the triggers stay, for 1 SOL.
    h.ok(CancelOrder, account_id=a, market_id=perp, order_id=2)
    assert h.account(a).positions[perp].size_steps == 60
    # c bids 1 SOL at 109.00 (order 6) and 0.01 SOL at 110.00 (order 7); b sells c that
    # 0.01 SOL (order 8), so the last price is 110.00.
    limit(h, c, perp, 0, 10_900, 100)
    limit(h, c, perp, 0, 11_000, 1)
    events = limit(h, b, perp, 1, 11_000, 1)
    # The take-profit fires: a limit sell of what the position holds, 0.6 SOL, at 109.00,
    # fills against c's bid; the stop-loss is cancelled.
    assert of(TriggerFired, events) == [TriggerFired(3, a, perp, 11_000)]
    placed = [event for event in of(OrderAccepted, events) if event.order_id == 3]
    assert placed == [OrderAccepted(3, a, perp, 1, 0, 0, 10_900, 60, 0, -1, False, 0)]
    assert events[-1] == OrderCancelled(4, a, perp, OCO, 100)
    assert perp not in h.account(a).positions
    # a: 0.6 SOL bought at 100.00, sold at 109.00: +5.4 USDC.
    assert h.balance(a, "USDC") == 10_005_400_000
    assert h.audit() == []


def test_a_resting_parent_filled_by_another_account_creates_them_in_that_command() -> None:
    h, perp, a, b, _ = setup()
    limit(h, a, perp, 0, 9_900, 100, take_profit_trigger_ticks=10_500, stop_loss_trigger_ticks=9_500)
    limit(h, a, perp, 0, 9_800, 100, stop_loss_trigger_ticks=9_000)  # order 2: a stop-loss only
    # b sells 2 SOL at market: fills order 1 (99.00) then order 2 (98.00). Children are
    # created in the order of the fills: 3 and 4 for order 1, then 5 for order 2.
    events = h.ok(PlaceOrder, account_id=b, market_id=perp, side=1, order_type=1, quantity_steps=200)
    accepted = of(TriggerAccepted, events)
    assert [(e.order_id, e.parent_order_id, e.sibling_order_id) for e in accepted] == [
        (4, 1, 5),
        (5, 1, 4),
        (6, 2, 0),
    ]
    # (order 3 is b's market order, taken before the fills)
    assert of(OrderAccepted, events)[0].order_id == 3
    assert h.account(a).positions[perp].size_steps == 200
    assert h.audit() == []


def test_a_failed_fire_leaves_the_sibling_pending() -> None:
    h, perp, a, b, c = setup()
    limit(h, b, perp, 1, 10_000, 100)
    limit(
        h,
        a,
        perp,
        0,
        10_000,
        100,
        take_profit_trigger_ticks=10_500,
        take_profit_trigger_by=INDEX,
        stop_loss_trigger_ticks=9_500,
        stop_loss_trigger_by=INDEX,
    )
    # a closes the position itself (sells 1 SOL to c at 100.00).
    limit(h, c, perp, 0, 10_000, 100)
    h.ok(PlaceOrder, account_id=a, market_id=perp, side=1, order_type=1, quantity_steps=100)
    assert perp not in h.account(a).positions
    # Index 105: the take-profit fires with no position to reduce and is refused; the
    # stop-loss stays pending.
    events = h.ok(SetIndexPrices, prices=((h.asset("SOL"), 105 * USDC),))
    (failed,) = of(TriggerFailed, events)
    assert failed.order_id == 3 and failed.code == RejectCode.REDUCE_ONLY_WOULD_INCREASE
    assert sorted(h.state.triggers) == [4]
    assert h.audit() == []


def test_every_refusal_changes_nothing() -> None:
    h, perp, a, _, _ = setup()
    spot = h.market("SOL_USDC")

    def refuse(code: RejectCode, phrase: str, **fields: Any) -> None:
        command = {
            "account_id": a,
            "market_id": perp,
            "side": 0,
            "order_type": 0,
            "price_ticks": 10_000,
            "quantity_steps": 100,
            "take_profit_trigger_ticks": 10_500,
        }
        command.update(fields)
        h.reject(PlaceOrder, code, phrase, **command)

    refuse(RejectCode.UNKNOWN_ACCOUNT, "does not exist", account_id=99)
    refuse(RejectCode.UNKNOWN_MARKET, "does not exist", market_id=99)
    refuse(RejectCode.ORDER_MALFORMED, "perpetual markets", market_id=spot)
    refuse(RejectCode.ORDER_MALFORMED, "reduce-only order cannot", reduce_only=True)
    refuse(
        RejectCode.ORDER_MALFORMED,
        "quantity, not quote quantity",
        order_type=1,
        price_ticks=0,
        quantity_steps=0,
        quote_quantity_atomic=100 * USDC,
    )
    refuse(RejectCode.ORDER_MALFORMED, "trigger order cannot", trigger_price_ticks=9_000)
    refuse(RejectCode.ORDER_MALFORMED, "take-profit trigger by", take_profit_trigger_by=3)
    refuse(RejectCode.ORDER_MALFORMED, "needs a stop-loss trigger price", stop_loss_limit_ticks=9_000)
    refuse(
        RejectCode.ORDER_MALFORMED,
        "needs a take-profit trigger price",
        take_profit_trigger_ticks=0,
        take_profit_trigger_by=MARK,
    )
    refuse(RejectCode.PRICE_NOT_POSITIVE, "trigger price must be positive", take_profit_trigger_ticks=-1)
    refuse(RejectCode.PRICE_NOT_POSITIVE, "limit price must be positive", take_profit_limit_ticks=-5)
    refuse(RejectCode.VALUE_TOO_LARGE, "too large", take_profit_trigger_ticks=10**15)
    refuse(RejectCode.ORDER_MALFORMED, "side must be", side=2)  # the order's own shape first
    # Wrong sides: for a buy at 100.00 the take-profit is above and the stop-loss below.
    refuse(
        RejectCode.TRIGGER_PRICE_WRONG_SIDE,
        "take-profit must trigger above its price 100",
        take_profit_trigger_ticks=10_000,
    )
    refuse(RejectCode.TRIGGER_PRICE_WRONG_SIDE, "stop-loss must trigger below", stop_loss_trigger_ticks=10_100)
    refuse(RejectCode.TRIGGER_PRICE_WRONG_SIDE, "sell order's take-profit must trigger below", side=1)
    # A market order is placed against the trigger-by reference now: no last price yet.
    refuse(RejectCode.NO_MARK_PRICE, "has no last price", order_type=1, price_ticks=0)
    refuse(
        RejectCode.TRIGGER_PRICE_WRONG_SIDE,
        "above the mark price 100",
        order_type=1,
        price_ticks=0,
        take_profit_trigger_by=MARK,
        take_profit_trigger_ticks=9_900,
    )
    # The order's own refusals come after and change nothing either.
    refuse(RejectCode.INSUFFICIENT_MARGIN, "insufficient margin", quantity_steps=10_000_000)
    # The trigger limit (100) counts two for every order still carrying an attachment:
    # 49 resting parents and two triggers leave room for no other parent or trigger.
    for _ in range(49):
        limit(h, a, perp, 0, 9_000, 2, take_profit_trigger_ticks=10_500)
    for _ in range(2):
        h.ok(
            PlaceOrder,
            account_id=a,
            market_id=perp,
            side=0,
            order_type=1,
            quantity_steps=1,
            trigger_price_ticks=9_000,
            trigger_by=MARK,
        )
    refuse(RejectCode.OPEN_ORDER_LIMIT, "at most 100 triggers")
    h.reject(
        PlaceOrder,
        RejectCode.OPEN_ORDER_LIMIT,
        "at most 100 triggers",
        account_id=a,
        market_id=perp,
        side=0,
        order_type=1,
        quantity_steps=1,
        trigger_price_ticks=9_000,
        trigger_by=MARK,
    )
    assert h.audit() == []


def test_replay_snapshot_and_state_hash_carry_attachments_and_pairs() -> None:
    h, perp, a, b, _ = setup()
    limit(h, b, perp, 1, 10_000, 40)
    limit(h, a, perp, 0, 10_000, 100, take_profit_trigger_ticks=10_500, stop_loss_trigger_ticks=9_500)
    limit(h, a, perp, 0, 9_900, 100, take_profit_trigger_ticks=10_400, stop_loss_trigger_ticks=9_400)
    assert any(order.attached is not None for order in h.state.orders.values())
    assert h.state.triggers[3].sibling_order_id == 4 and h.state.triggers[3].parent_order_id == 2
    # The incremental hash agrees with a full recompute, and a snapshot restores both.
    assert h.engine.state_hash() == canonical.state_hash(h.state)
    restored = decode_state(encode_state(h.state))
    assert canonical.state_hash(restored) == h.engine.state_hash()
    assert restored.triggers == h.state.triggers
    assert [order.attached for order in restored.orders.values()] == [o.attached for o in h.state.orders.values()]
    # Replaying the log gives the same state hash and the same events.
    replica = Engine()
    replayed = [replica.apply(command) for command in h.log]
    assert replayed == h.events
    assert replica.state_hash() == h.engine.state_hash()
    # The restored state goes on exactly like the original: b fills the resting parent.
    twin = Engine(restored)
    command = PlaceOrder(
        seq=h.state.seq_last + 1,
        timestamp_ns=h.state.timestamp_ns_last + 1,
        account_id=b,
        market_id=perp,
        side=1,
        order_type=1,
        quantity_steps=160,
    )
    assert twin.apply(command) == h.engine.apply(command)
    assert twin.state_hash() == h.engine.state_hash()


# ---- random flows ----------------------------------------------------------------------

sides = st.sampled_from([0, 1])
by = st.sampled_from([LAST, MARK, INDEX])


class AttachedMachine(RuleBasedStateMachine):
    """Random perpetual flows where orders often carry a take-profit and stop-loss (some
    misplaced, so refused): limit and market orders of three accounts around a drifting
    index, cancels of orders and pending triggers. After every step: the audit is clean,
    the incremental state hash equals a full recompute, a refused command changed nothing
    but the log position, every attachment is on an unfilled open order, and every
    pending child is a reduce-only order on the other side of its parent's account."""

    @initialize()
    def genesis(self) -> None:
        h = Harness()
        h.list_defaults()
        self.perp = h.list_perp(fee_maker_bps=2, fee_taker_bps=5)
        h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
        self.accounts = [h.new_account(USDC=2_000 * USDC) for _ in range(3)]
        self.h = h
        self.index = 10_000

    def submit(self, **fields: Any) -> list[Event]:
        before = state_except_position(self.h.state)
        events = self.h.submit(PlaceOrder, market_id=self.perp, **fields)
        if len(events) == 1 and isinstance(events[0], CommandRejected):
            assert state_except_position(self.h.state) == before
        return events

    @staticmethod
    def attachment(draw: st.DataObject, reference: int, side: int) -> dict[str, int]:
        fields: dict[str, int] = {}
        sign = 1 if side == 0 else -1
        if draw.draw(st.booleans()):
            fields["take_profit_trigger_ticks"] = reference + sign * draw.draw(st.integers(-20, 300))
            fields["take_profit_trigger_by"] = draw.draw(by)
            if draw.draw(st.booleans()):
                fields["take_profit_limit_ticks"] = reference + sign * draw.draw(st.integers(0, 300))
        if draw.draw(st.booleans()):
            fields["stop_loss_trigger_ticks"] = reference - sign * draw.draw(st.integers(-20, 300))
            fields["stop_loss_trigger_by"] = draw.draw(by)
            if draw.draw(st.booleans()):
                fields["stop_loss_limit_ticks"] = reference - sign * draw.draw(st.integers(0, 400))
        return fields

    @rule(
        data=st.data(), account=st.integers(0, 2), side=sides, offset=st.integers(-150, 150), steps=st.integers(1, 80)
    )
    def place_limit(self, data: st.DataObject, account: int, side: int, offset: int, steps: int) -> None:
        price = self.index + offset
        self.submit(
            account_id=self.accounts[account],
            side=side,
            order_type=0,
            price_ticks=price,
            quantity_steps=steps,
            time_in_force=data.draw(st.sampled_from([0, 0, 0, 1])),
            **self.attachment(data, price, side),
        )

    @rule(data=st.data(), account=st.integers(0, 2), side=sides, steps=st.integers(1, 80))
    def place_market(self, data: st.DataObject, account: int, side: int, steps: int) -> None:
        self.submit(
            account_id=self.accounts[account],
            side=side,
            order_type=1,
            quantity_steps=steps,
            **self.attachment(data, self.index, side),
        )

    @rule(move=st.integers(-300, 300))
    def move_index(self, move: int) -> None:
        self.index = max(9_000, min(11_000, self.index + move))
        self.h.submit(SetIndexPrices, prices=((self.h.asset("SOL"), self.index * 10_000),))

    @rule(data=st.data())
    def cancel_something(self, data: st.DataObject) -> None:
        ids = sorted(self.h.state.orders) + sorted(self.h.state.triggers)
        if not ids:
            return
        order_id = data.draw(st.sampled_from(ids))
        found = self.h.state.orders.get(order_id) or self.h.state.triggers[order_id]
        self.h.ok(CancelOrder, account_id=found.account_id, market_id=self.perp, order_id=order_id)

    @invariant()
    def audit_is_clean(self) -> None:
        assert self.h.audit() == []

    @invariant()
    def incremental_hash_equals_full_recompute(self) -> None:
        assert self.h.engine.state_hash() == canonical.state_hash(self.h.state)

    @invariant()
    def attachments_and_children_are_consistent(self) -> None:
        state = self.h.state
        for order in state.orders.values():
            if order.attached is not None:
                assert order.filled_steps == 0
        for trigger in state.triggers.values():
            if trigger.parent_order_id:
                assert trigger.order.reduce_only
                assert trigger.order_id > trigger.parent_order_id
                sibling = state.triggers.get(trigger.sibling_order_id)
                if sibling is not None:
                    assert sibling.sibling_order_id == trigger.order_id
                    assert sibling.order.side == trigger.order.side


AttachedMachine.TestCase.settings = settings(
    max_examples=400 if LONG else 40,
    stateful_step_count=60 if LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAttachedFlows = AttachedMachine.TestCase
