"""Take-profit and stop-loss attached to a perpetual order, through a real `keel serve` and
the pinned ccxt `backpack` class (createOrder's takeProfit and stopLoss params, sent
unmodified as takeProfitTriggerPrice and stopLossTriggerPrice, plus the raw
takeProfitTriggerBy ccxt passes through).

Checked: the parent's answer shows its take-profit and stop-loss (ccxt takeProfitPrice,
stopLossPrice); its fill creates both as pending reduce-only sells (ccxt "open", linked
to the parent by relatedOrderId); an index move takes the mark to the take-profit, which
fires and closes the position while the stop-loss is cancelled; history shows both
outcomes, each still linked to the parent by relatedOrderId; a parent that rested and
then filled keeps its take-profit and stop-loss in history (fetch_closed_orders,
fetch_order), as it showed them while open, and an order without them shows none; a
parent filled in part still shows them in the open-order queries and its cancel's
answer, and a take-profit that fired and rests names its parent there (both read from
history once the engine forgot them); the
engine's refusal of a misplaced stop-loss arrives as INVALID_PRICE (ccxt InvalidOrder),
and a spot order carrying one as INVALID_CLIENT_REQUEST (BadRequest).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ccxt
import pytest
from gateway_support import Api, Key

SOL_PERP = "SOL/USDC:USDC"
# The order object's attached take-profit and stop-loss fields (spec 8.4), in this order.
FIELDS = (
    "takeProfitTriggerPrice",
    "takeProfitLimitPrice",
    "takeProfitTriggerBy",
    "stopLossTriggerPrice",
    "stopLossLimitPrice",
    "stopLossTriggerBy",
)


def client(api: Api, key: Key) -> ccxt.backpack:
    exchange = ccxt.backpack(
        {"apiKey": key.api_key, "secret": key.secret, "urls": {"api": {"public": api.url, "private": api.url}}}
    )
    exchange.load_markets()
    return exchange


def index(api: Api, prices: str) -> None:
    answer = api.signed(api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": prices})
    assert answer.status_code == 200, answer.text


def wait_for(condition: Callable[[], Any], seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_take_profit_fires_on_the_mark_and_cancels_the_stop_loss(api: Api) -> None:
    """Bob buys 1 SOL perpetual at 100 from Alice with a take-profit at 105 on the mark and a
    stop-loss at 95 (on the last price, ccxt's default); Carol bids 1 SOL at 104. The index
    moves to 106: with a bid and no ask the mark is the index, 106, so the take-profit fires
    and sells Bob's 1 SOL at Carol's 104 (+4 USDC), and the stop-loss is cancelled."""
    index(api, "SOL=100")
    alice, bob, carol = (client(api, api.account(USDC="1000")) for _ in range(3))
    alice.create_order(SOL_PERP, "limit", "sell", 1, 100)
    bought = bob.create_order(
        SOL_PERP,
        "limit",
        "buy",
        1,
        100,
        {"takeProfit": {"triggerPrice": 105}, "stopLoss": {"triggerPrice": 95}, "takeProfitTriggerBy": "MarkPrice"},
    )
    assert (bought["status"], bought["filled"]) == ("closed", 1.0)
    info = bought["info"]
    assert (info["takeProfitTriggerPrice"], info["takeProfitLimitPrice"], info["takeProfitTriggerBy"]) == (
        "105",
        None,
        "MarkPrice",
    )
    assert (info["stopLossTriggerPrice"], info["stopLossTriggerBy"]) == ("95", "LastPrice")
    assert (bought["takeProfitPrice"], bought["stopLossPrice"]) == (105.0, 95.0)

    pending = sorted(bob.fetch_open_orders(SOL_PERP), key=lambda order: int(order["id"]))
    assert [(o["side"], o["status"], o["triggerPrice"], o["amount"], o["reduceOnly"]) for o in pending] == [
        ("sell", "open", 105.0, 1.0, True),
        ("sell", "open", 95.0, 1.0, True),
    ]
    assert [o["info"]["relatedOrderId"] for o in pending] == [bought["id"], bought["id"]]
    assert [o["info"]["status"] for o in pending] == ["TriggerPending", "TriggerPending"]
    take_profit, stop_loss = (o["id"] for o in pending)

    carol.create_order(SOL_PERP, "limit", "buy", 1, 104)
    index(api, "SOL=106")
    assert wait_for(lambda: bob.fetch_positions([SOL_PERP]) == []), "the take-profit did not close the position"
    assert bob.fetch_open_orders(SOL_PERP) == []
    [long] = carol.fetch_positions([SOL_PERP])
    assert (long["side"], long["contracts"]) == ("long", "1")

    def ended() -> dict[str, Any]:
        return {o["id"]: o for o in bob.fetch_orders(SOL_PERP) if o["id"] in (take_profit, stop_loss)}

    history = wait_for(lambda: len(ended()) == 2 and ended())
    assert (history[take_profit]["status"], history[take_profit]["filled"]) == ("closed", 1.0)
    assert history[stop_loss]["status"] == "canceled"
    # History links both to the parent as the open-order query did, the one that fired and
    # filled as much as the one cancelled; the parent itself has no related order.
    assert [history[one]["info"]["relatedOrderId"] for one in (take_profit, stop_loss)] == [bought["id"]] * 2
    [parent] = [o for o in bob.fetch_orders(SOL_PERP) if o["id"] == bought["id"]]
    assert "relatedOrderId" in parent["info"] and parent["info"]["relatedOrderId"] is None
    fills = [fill for fill in bob.fetch_my_trades(SOL_PERP) if fill["order"] == take_profit]
    assert [(fill["side"], fill["price"], fill["amount"]) for fill in fills] == [("sell", 104.0, 1.0)]


def test_misplaced_and_spot_attachments_are_refused(api: Api) -> None:
    index(api, "SOL=100")
    dave = client(api, api.account(USDC="1000", SOL="1"))
    with pytest.raises(ccxt.InvalidOrder, match="stop-loss must trigger below its price 100: 101 is not"):
        dave.create_order(SOL_PERP, "limit", "buy", 1, 100, {"stopLoss": {"triggerPrice": 101}})
    with pytest.raises(ccxt.BadRequest, match="take-profit and stop-loss are for perpetual markets"):
        dave.create_order("SOL/USDC", "limit", "sell", 1, 200, {"takeProfit": {"triggerPrice": 150}})
    assert dave.fetch_open_orders() == []


def test_a_resting_parent_shows_its_attachment_until_it_fills(api: Api) -> None:
    index(api, "SOL=100")
    erin = client(api, api.account(USDC="1000"))
    resting = erin.create_order(SOL_PERP, "limit", "buy", 1, 90, {"stopLoss": {"triggerPrice": 85, "price": 84}})
    [shown] = [o for o in erin.fetch_open_orders(SOL_PERP) if o["id"] == resting["id"]]
    assert (shown["stopLossPrice"], shown["takeProfitPrice"]) == (84.0, None)
    info = shown["info"]
    assert (info["stopLossTriggerPrice"], info["stopLossLimitPrice"], info["stopLossTriggerBy"]) == (
        "85",
        "84",
        "LastPrice",
    )
    cancelled = erin.cancel_order(resting["id"], SOL_PERP)
    assert cancelled["status"] == "canceled"
    assert erin.fetch_open_orders(SOL_PERP) == []  # it never filled: nothing was created


def test_a_filled_parent_keeps_its_attachment_in_history(api: Api) -> None:
    """Frank's bid at 100 rests with a take-profit at 110 (limit 109) and a stop-loss at 90
    on the index; Grace then sells into it. The engine forgets the attachment at that fill
    (it becomes two trigger orders), but the closed order in history (fetch_closed_orders
    and fetch_order both read /wapi/v1/history/orders) shows the same terms as while it was
    open; Grace's plain order shows none."""
    index(api, "SOL=100")
    frank, grace = client(api, api.account(USDC="1000")), client(api, api.account(USDC="1000"))
    placed = frank.create_order(
        SOL_PERP,
        "limit",
        "buy",
        1,
        100,
        {
            "takeProfit": {"triggerPrice": 110, "price": 109},
            "stopLoss": {"triggerPrice": 90},
            "stopLossTriggerBy": "IndexPrice",
        },
    )
    [resting] = [o for o in frank.fetch_open_orders(SOL_PERP) if o["id"] == placed["id"]]
    assert resting["status"] == "open"
    assert [resting["info"][field] for field in FIELDS] == ["110", "109", "LastPrice", "90", None, "IndexPrice"]
    assert (resting["takeProfitPrice"], resting["stopLossPrice"]) == (109.0, 90.0)

    sold = grace.create_order(SOL_PERP, "limit", "sell", 1, 100)
    assert sold["status"] == "closed"
    [closed] = wait_for(lambda: [o for o in frank.fetch_closed_orders(SOL_PERP) if o["id"] == placed["id"]])
    fetched = frank.fetch_order(placed["id"], SOL_PERP)
    for order in (closed, fetched):
        assert (order["status"], order["filled"]) == ("closed", 1.0)
        assert [order["info"][field] for field in FIELDS] == [resting["info"][field] for field in FIELDS]
        assert (order["takeProfitPrice"], order["stopLossPrice"]) == (109.0, 90.0)
    [plain] = [o for o in grace.fetch_closed_orders(SOL_PERP) if o["id"] == sold["id"]]
    assert [plain["info"][field] for field in FIELDS] == [None] * 6
    assert (plain["takeProfitPrice"], plain["stopLossPrice"]) == (None, None)
    # The fill created both as pending triggers; none of the other tests should meet them.
    assert len(frank.fetch_open_orders(SOL_PERP)) == 2
    frank.cancel_all_orders(SOL_PERP)
    assert frank.fetch_open_orders(SOL_PERP) == []


def test_open_orders_keep_the_attachment_after_a_fill_and_name_a_fired_childs_parent(api: Api) -> None:
    """Heidi bids 2 SOL at 100 with a take-profit at 102 (limit 101) and a stop-loss at 95;
    Ivan sells her 1. The engine forgets the attachment at that first fill, but the open
    order (fetch_open_orders, fetch_open_order, and the cancel's answer) still shows it, as
    history and the order stream do. Judy and Ken then trade 0.1 at 102: the take-profit
    fires and its limit sell at 101 rests on the book, still naming its parent
    (relatedOrderId) and its trigger (triggerPrice, triggerBy, triggeredAt), while the
    stop-loss is cancelled."""
    index(api, "SOL=100")
    heidi, ivan, judy, ken = (client(api, api.account(USDC="1000")) for _ in range(4))
    parent = heidi.create_order(
        SOL_PERP,
        "limit",
        "buy",
        2,
        100,
        {"takeProfit": {"triggerPrice": 102, "price": 101}, "stopLoss": {"triggerPrice": 95}},
    )
    terms = ["102", "101", "LastPrice", "95", None, "LastPrice"]
    assert ivan.create_order(SOL_PERP, "limit", "sell", 1, 100)["status"] == "closed"

    opened = {order["id"]: order for order in heidi.fetch_open_orders(SOL_PERP)}
    shown = opened.pop(parent["id"])
    assert (shown["status"], shown["filled"], shown["remaining"]) == ("open", 1.0, 1.0)
    assert [shown["info"][field] for field in FIELDS] == terms
    assert shown["info"]["relatedOrderId"] is None
    assert [order["info"]["relatedOrderId"] for order in opened.values()] == [parent["id"]] * 2
    one = heidi.fetch_open_order(parent["id"], SOL_PERP)
    assert [one["info"][field] for field in FIELDS] == terms

    judy.create_order(SOL_PERP, "limit", "sell", 0.1, 102)
    assert ken.create_order(SOL_PERP, "limit", "buy", 0.1, 102)["status"] == "closed"
    rested = wait_for(
        lambda: [
            order
            for order in heidi.fetch_open_orders(SOL_PERP)
            if order["id"] != parent["id"] and order["info"]["status"] == "New"
        ]
    )
    assert len(rested) == 1, heidi.fetch_open_orders(SOL_PERP)
    [child] = rested
    assert (child["side"], child["price"], child["amount"], child["reduceOnly"]) == ("sell", 101.0, 1.0, True)
    assert child["info"]["relatedOrderId"] == parent["id"]
    # Its trigger too, as in history and on the order stream (read from its history row).
    fired = heidi.fetch_open_order(child["id"], SOL_PERP)["info"]
    for shown_child in (child["info"], fired):
        assert (shown_child["triggerPrice"], shown_child["triggerQuantity"], shown_child["triggerBy"]) == (
            "102",
            "1",
            "LastPrice",
        )
        assert isinstance(shown_child["triggeredAt"], int) and shown_child["triggeredAt"] >= shown_child["createdAt"]
    assert {order["id"] for order in heidi.fetch_open_orders(SOL_PERP)} == {parent["id"], child["id"]}

    cancelled = heidi.cancel_order(parent["id"], SOL_PERP)
    assert cancelled["status"] == "canceled"
    assert [cancelled["info"][field] for field in FIELDS] == terms
    heidi.cancel_all_orders(SOL_PERP)
    assert heidi.fetch_open_orders(SOL_PERP) == []
