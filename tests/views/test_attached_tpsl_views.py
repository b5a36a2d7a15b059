"""History views of the take-profit and stop-loss attached to perpetual orders (schema
version 6): an order's row keeps the terms its command gave it for its whole life (the
engine forgets them at the first fill, when it creates them as trigger orders of their
own), a batch item's terms go to that item's order, the children and every other order
carry none; each child's row names its parent (schema version 7, the API's
relatedOrderId), also after it fired or was cancelled, and no other row names one; and
projecting the same log command by command or all at once, on either backend, gives the
same rows.

The engine is the real one (keel.testing.harness); SOL_USDC_PERP has tick 0.01 USDC,
step 0.01 SOL and no fees. Order ids:

| order | what |
|---:|---|
| 1 | b sells 1 SOL at 100.00 |
| 2 | a buys it with a market take-profit at 105.00 (last price) and a stop-loss at 95.00, limit 94.00 (mark): Filled |
| 3, 4 | a's take-profit and stop-loss, created by order 2's fill |
| 5, 6 | c's batch: a bid at 99.00, and one at 98.00 with a take-profit at 102.00 limit 103.00 (last price) |
| 7, 8 | c bids 1.01 SOL at 105.00; b sells it 0.01: the last price 105.00 fires 3 (Filled by 7), 4 is cancelled |
| - | c cancels order 6: a later batch updates the row it loads from the store |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keel.core.commands import CancelOrder, PlaceOrder, PlaceOrders, SetIndexPrices
from keel.core.orders import EndReason, OrderStatus
from keel.core.triggers import TriggerBy
from keel.testing.harness import Harness
from keel.views import Item, Projector, StoreSettings, open_store, schema

USDC = 1_000_000
LAST, MARK = int(TriggerBy.LAST_PRICE), int(TriggerBy.MARK_PRICE)
NONE = (0, 0, -1, 0, 0, -1)
ATTACHED = (
    "take_profit_trigger_ticks",
    "take_profit_limit_ticks",
    "take_profit_trigger_by",
    "stop_loss_trigger_ticks",
    "stop_loss_limit_ticks",
    "stop_loss_trigger_by",
)


def _limit(account_id: int, market_id: int, side: int, price: int, steps: int, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "market_id": market_id,
        "side": side,
        "order_type": 0,
        "price_ticks": price,
        "quantity_steps": steps,
        **extra,
    }


def session() -> tuple[list[Item], int]:
    """Run the table of the module docstring on a real engine; return its items and c."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((h.asset("SOL"), 100 * USDC),))
    a, b, c = (h.new_account(USDC=10_000 * USDC) for _ in range(3))
    h.ok(PlaceOrder, **_limit(b, perp, 1, 10_000, 100))
    h.ok(
        PlaceOrder,
        **_limit(
            a,
            perp,
            0,
            10_000,
            100,
            take_profit_trigger_ticks=10_500,
            stop_loss_trigger_ticks=9_500,
            stop_loss_limit_ticks=9_400,
            stop_loss_trigger_by=MARK,
        ),
    )
    assert sorted(h.state.triggers) == [3, 4]
    stamp = h.next_stamp()
    h.apply(
        PlaceOrders(
            **stamp,
            account_id=c,
            orders=(
                PlaceOrder(**stamp, **_limit(c, perp, 0, 9_900, 10)),
                PlaceOrder(
                    **stamp,
                    **_limit(c, perp, 0, 9_800, 10, take_profit_trigger_ticks=10_200, take_profit_limit_ticks=10_300),
                ),
            ),
        )
    )
    h.ok(PlaceOrder, **_limit(c, perp, 0, 10_500, 101))
    h.ok(PlaceOrder, **_limit(b, perp, 1, 10_500, 1))
    assert h.state.triggers == {}
    h.ok(CancelOrder, account_id=c, market_id=perp, order_id=6)
    pairs = zip(h.log, h.events, strict=True)
    return [(command.seq, command.timestamp_ns, command, events) for command, events in pairs], c


def project(settings: StoreSettings, items: list[Item], *, one_by_one: bool) -> dict[str, list[tuple[Any, ...]]]:
    store = open_store(settings)
    try:
        projector = Projector(store)
        for start in range(0, len(items), 1 if one_by_one else len(items)):
            projector.apply(items[start : start + (1 if one_by_one else len(items))])
        return store.dump()
    finally:
        store.close()


def test_orders_keep_their_take_profit_and_stop_loss_for_their_whole_life(
    store_settings: StoreSettings, tmp_path: Path
) -> None:
    items, c = session()
    dump = project(store_settings, items, one_by_one=True)
    columns = schema.ORDERS.column_names
    status, attached = columns.index("status"), [columns.index(name) for name in ATTACHED]
    assert {row[0]: (row[status], tuple(row[i] for i in attached)) for row in dump["orders"]} == {
        1: (int(OrderStatus.FILLED), NONE),
        2: (int(OrderStatus.FILLED), (10_500, 0, LAST, 9_500, 9_400, MARK)),
        3: (int(OrderStatus.FILLED), NONE),  # the take-profit: a child carries none
        4: (int(OrderStatus.CANCELLED), NONE),
        5: (int(OrderStatus.NEW), NONE),
        6: (int(OrderStatus.CANCELLED), (10_200, 10_300, LAST, 0, 0, -1)),
        7: (int(OrderStatus.FILLED), NONE),
        8: (int(OrderStatus.FILLED), NONE),
    }
    ended = {row[0]: row[columns.index("end_reason")] for row in dump["orders"]}
    assert (ended[4], ended[6]) == (int(EndReason.ONE_CANCELS_OTHER), int(EndReason.USER_CANCEL))
    # Order 2's fill created 3 and 4: they keep its id, 3 after it fired and filled, 4 after
    # it was cancelled; no other order has a parent.
    parent = columns.index("parent_order_id")
    assert {row[0]: row[parent] for row in dump["orders"]} == {1: 0, 2: 0, 3: 2, 4: 2, 5: 0, 6: 0, 7: 0, 8: 0}

    store = open_store(store_settings, create=False)
    try:
        (record,) = store.orders(c, order_id=6)
        assert (record.take_profit_trigger_ticks, record.take_profit_limit_ticks, record.take_profit_trigger_by) == (
            10_200,
            10_300,
            LAST,
        )
        assert (record.stop_loss_trigger_ticks, record.stop_loss_limit_ticks, record.stop_loss_trigger_by) == (0, 0, -1)
        assert record.parent_order_id == 0
        take_profit = store.order(3)
        assert take_profit is not None
        assert (take_profit.parent_order_id, take_profit.status) == (2, int(OrderStatus.FILLED))
        # What the streams recall at a start (several ids at once, any account's; unknown ids left out).
        assert store.orders_by_id([4, 99, 2, 4]) == [store.order(2), store.order(4)]
    finally:
        store.close()

    # The same log in one batch, into a fresh store: the same rows.
    assert project(StoreSettings("sqlite", str(tmp_path / "whole.sqlite")), items, one_by_one=False) == dump
