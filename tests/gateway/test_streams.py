"""The WebSocket streams (spec 11) against the real engine and a real `keel serve`.

First the fold on its own: random commands (limit, market by quantity and by quote,
IOC, FOK, post-only, every self-trade mode, batches, cancels, cancel-all, perpetuals with
index moves and liquidations) go through an engine, and after each one the streams'
mirror must hold exactly the engine's book, its update id must have moved by one exactly
when the book changed, and the order statuses it reports must be those the REST answers
fold (orderbook.py); and every order frame prints an attached take-profit and stop-loss
(a, b, j, k, d, g) and a child's parent (I) as the REST order object of that order does.
Then, over a real socket to a served node: a depth snapshot and gap-free deltas rebuild
the book that REST depth shows at the same update id; the trade stream matches the
fills; the private order stream delivers only the subscriber's orders and refuses a bad
signature; it shows an order's take-profit and stop-loss and their children's parent,
as order history does, also across a restart; unsubscribe stops one stream only;
shutdown closes with 1001.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from gateway_support import Api, Key, keel, start_server, stop_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from keel.core.commands import CancelAllOrders, CancelOrder, PlaceOrder, PlaceOrders, SetIndexPrices, Tick
from keel.core.triggers import TriggerBy
from keel.gateway import shapes
from keel.gateway.client import sign_headers
from keel.gateway.context import build_catalog
from keel.gateway.orderbook import OrderRecord, fold_events
from keel.gateway.shapes import STATUS_OUT
from keel.gateway.streams.mirror import Mirror, Private
from keel.sequencer.sequencer import Published
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000


# ---- the fold against the engine ---------------------------------------------------------
def _engine_book(harness: Harness, market_id: int) -> tuple[dict[int, int], dict[int, int]]:
    book = harness.state.books[market_id]
    return (
        {price: level.open_steps for price, level in book.bids.items()},
        {price: level.open_steps for price, level in book.asks.items()},
    )


def _random_order(rng: random.Random, account_id: int, market_id: int) -> dict[str, Any]:
    side = rng.randrange(2)
    kind = rng.random()
    fields: dict[str, Any] = {
        "account_id": account_id,
        "market_id": market_id,
        "side": side,
        "self_trade_prevention": rng.randrange(3),
    }
    if kind < 0.7:
        fields.update(
            order_type=0,
            time_in_force=rng.choice((0, 0, 0, 1, 2)),
            price_ticks=rng.randrange(9_900, 10_100),
            quantity_steps=rng.randrange(1, 40),
            post_only=rng.random() < 0.1,
        )
        if rng.random() < 0.2:
            fields["client_id"] = rng.randrange(1, 1_000_000)
    elif kind < 0.85:
        fields.update(order_type=1, quantity_steps=rng.randrange(1, 60))
    else:
        fields.update(order_type=1, quote_quantity_atomic=rng.randrange(1, 40) * 10 * USDC)
    if rng.random() < 0.1 and not fields.get("quote_quantity_atomic"):  # a trigger order (spot: last price only)
        fields.update(trigger_price_ticks=rng.randrange(9_900, 10_100), trigger_by=rng.choice((0, 0, 1, 2)))
    return fields


class _Checked:
    """An engine and a mirror side by side: `apply` runs a command through both and checks
    books, update ids, tracked orders and the statuses the stream reports."""

    def __init__(self, harness: Harness, market_ids: tuple[int, ...]) -> None:
        self.harness = harness
        self.market_ids = market_ids
        self.mirror = Mirror.seeded(harness.state)
        self.mirror.format_of = lambda market_id: build_catalog(harness.state).markets[market_id]
        self.records: dict[int, OrderRecord] = {}  # what the REST answers fold
        self.statuses: dict[int, str] = {}  # the last status the stream reported per order
        self.kinds: Counter[str] = Counter()
        self.order_frames: list[dict[str, Any]] = []  # every order update, in order

    def apply(self, command: Any) -> list[Any]:
        harness, mirror = self.harness, self.mirror
        before = [_engine_book(harness, market_id) for market_id in self.market_ids]
        ids_before = [mirror.markets[market_id].update_id for market_id in self.market_ids]
        events = harness.apply(command)
        self.kinds.update(type(event).__name__ for event in events)
        fold = mirror.fold([Published(command.seq, command.timestamp_ns, command, events)])
        accepted: list[OrderRecord] = []
        own = (
            (command,)
            if isinstance(command, PlaceOrder)
            else command.orders
            if isinstance(command, PlaceOrders)
            else ()
        )
        fold_events(events, command.timestamp_ns, self.records, accepted, own)
        for target, data in fold.frames:
            if isinstance(target, Private) and target.kind == "orderUpdate":
                self.order_frames.append(data)
                self.statuses[int(data["i"])] = data["X"]
                self.kinds[data["e"] + ":" + data["O"]] += 1
        for record in accepted:
            assert record.order_id in self.statuses, (command, record)
        for order_id, status in self.statuses.items():
            if order_id in self.records:
                assert status == STATUS_OUT[self.records[order_id].status], (command, order_id, events)
        for position, market_id in enumerate(self.market_ids):
            market = mirror.markets[market_id]
            engine_bids, engine_asks = _engine_book(harness, market_id)
            assert market.sides[0] == engine_bids, (command, events)
            assert market.sides[1] == engine_asks, (command, events)
            changed = before[position] != (engine_bids, engine_asks)
            assert market.update_id == ids_before[position] + (1 if changed else 0), (command, events)
            assert market.update_id_at(command.seq) == market.update_id
            assert market.update_id_at(command.seq - 1) == ids_before[position]
        assert sorted(mirror.orders) == sorted(harness.state.orders), command
        assert sorted(mirror.triggers) == sorted(harness.state.triggers), command
        for order_id, live in mirror.orders.items():
            assert live.record.filled_steps == harness.state.orders[order_id].filled_steps
        held = {
            (account_id, market_id): (position.size_steps, position.cost_atomic)
            for market_id, positions in enumerate(harness.state.positions_by_market)
            for account_id, position in positions.items()
            if position.size_steps
        }
        assert {key: (one.size_steps, one.cost_atomic) for key, one in mirror.positions.items()} == held
        return events


def test_the_mirror_follows_the_engine_exactly() -> None:
    """After every command the mirror's book equals the engine's, the update id moves by
    one exactly when some level changed, the orders it tracks are the engine's open orders
    with the same executed quantity, its positions are the engine's, and each order's
    last streamed status is the one the REST answers fold. A scripted liquidation (its
    closing order trades through the book) comes first, then 1,500 random commands."""
    rng = random.Random(20_260_707)
    harness = Harness()
    harness.list_defaults()
    perp = harness.list_perp()
    spot = harness.market("SOL_USDC")
    sol = harness.asset("SOL")
    harness.ok(SetIndexPrices, prices=((sol, 100 * USDC),))
    accounts = [harness.new_account(USDC=2_000_000 * USDC, SOL=20_000 * SOL) for _ in range(4)]
    thin = harness.new_account(USDC=300 * USDC)
    reckless = harness.new_account(USDC=300 * USDC)
    checked = _Checked(harness, (spot, perp))

    def order(account_id: int, side: int, price_ticks: int, quantity_steps: int, **extra: Any) -> None:
        fields = {"market_id": perp, "order_type": 0, "price_ticks": price_ticks, **extra}
        checked.apply(
            PlaceOrder(
                **harness.next_stamp(), account_id=account_id, side=side, quantity_steps=quantity_steps, **fields
            )
        )

    order(accounts[0], 1, 10_000, 10_000)  # 100 SOL offered at 100
    order(thin, 0, 10_000, 10_000)  # the thin account buys it all: 10,000 USDC on 300 of margin
    for step in range(4):
        order(accounts[1], 0, 9_900 - 50 * step, 3_000)  # bids to close into
    events = checked.apply(SetIndexPrices(**harness.next_stamp(), prices=((sol, 97 * USDC),)))
    assert any(type(event).__name__ == "LiquidationStarted" for event in events)
    assert checked.kinds["orderFill:LIQUIDATION_AUTOCLOSE"] >= 1
    # A batch that leaves its own account below maintenance (it buys far above the mark):
    # the engine's closing order follows the batch's items in the same command.
    order(accounts[0], 1, 11_000, 2_800)
    buy = PlaceOrder(seq=0, timestamp_ns=0, account_id=reckless, market_id=perp, side=0, order_type=0)
    batch = (msgspec.structs.replace(buy, price_ticks=11_000, quantity_steps=2_800),)
    events = checked.apply(PlaceOrders(**harness.next_stamp(), account_id=reckless, orders=batch))
    assert [type(event).__name__ for event in events].count("LiquidationStarted") == 1
    assert checked.kinds["orderAccepted:LIQUIDATION_AUTOCLOSE"] >= 2

    index = 97 * USDC
    for _ in range(1_500):
        account_id = rng.choice(accounts)
        market_id = rng.choice((spot, spot, perp))
        roll = rng.random()
        command: Any
        if roll < 0.6:
            command = PlaceOrder(**harness.next_stamp(), **_random_order(rng, account_id, market_id))
        elif roll < 0.7:
            items = tuple(
                PlaceOrder(seq=0, timestamp_ns=0, **_random_order(rng, account_id, market_id))
                for _ in range(rng.randrange(2, 6))
            )
            command = PlaceOrders(**harness.next_stamp(), account_id=account_id, orders=items)
        elif roll < 0.85:
            open_ids = sorted(harness.state.accounts[account_id].orders_open) + [
                trigger.order_id for trigger in harness.state.triggers.values() if trigger.account_id == account_id
            ]
            order_id = rng.choice(open_ids) if open_ids else 1
            open_order = harness.state.orders.get(order_id)
            trigger = harness.state.triggers.get(order_id)
            command = CancelOrder(
                **harness.next_stamp(),
                account_id=account_id,
                market_id=open_order.market_id
                if open_order is not None
                else trigger.market_id
                if trigger is not None
                else market_id,
                order_id=order_id,
            )
        elif roll < 0.9:
            command = CancelAllOrders(**harness.next_stamp(), account_id=account_id, market_id=market_id)
        elif roll < 0.97:
            index = max(50 * USDC, index + rng.randrange(-3, 4) * USDC)
            command = SetIndexPrices(**harness.next_stamp(), prices=((sol, index),))
        else:
            command = Tick(**harness.next_stamp())
        checked.apply(command)
    assert harness.audit() == []
    kinds = checked.kinds
    for kind in ("TradeExecuted", "OrderCancelled", "OrderExpired", "PositionChanged", "MarkPriceChanged"):
        assert kinds[kind] >= 50, kinds
    for kind in ("orderAccepted:USER", "orderFill:USER", "orderCancelled:USER", "orderExpired:USER"):
        assert kinds[kind] >= 50, kinds
    for kind in ("TriggerAccepted", "TriggerFired", "triggerPlaced:USER"):
        assert kinds[kind] >= 10, kinds
    assert checked.mirror.positions, "the random flow should leave some perpetual positions open"


# The order stream's keys for an attached take-profit and stop-loss (spec 11.3), and the
# order object's fields (spec 8.4) they must print exactly as.
ATTACHED_KEYS = (
    ("a", "takeProfitTriggerPrice"),
    ("b", "stopLossTriggerPrice"),
    ("j", "takeProfitLimitPrice"),
    ("k", "stopLossLimitPrice"),
    ("d", "takeProfitTriggerBy"),
    ("g", "stopLossTriggerBy"),
    ("I", "relatedOrderId"),
)


def test_order_frames_carry_the_attachment_and_the_parent_as_the_order_object_does() -> None:
    """A perpetual bid rests with a take-profit at 110.00 (limit 109.50, mark price) and a
    market stop-loss at 90.00 (last price); a batch's second item carries only a stop-loss
    at 91.00 (limit 90.50, index price). The bid fills in two trades as a maker, which
    creates its take-profit and stop-loss; the index then takes the mark to 111, the
    take-profit fires (a limit sell at 109.50 that rests) and the stop-loss is cancelled,
    and a buyer fills it. Every order frame must print the keys a, b, j, k, d, g and I as
    the REST order object of that order (the answers' fold) prints takeProfit*,
    stopLoss* and relatedOrderId: present exactly when that field is not null, with the
    same string. So the parent shows its terms on every frame, after its first fill too
    (as history does), and each child shows its parent's id from pending to filled or
    cancelled. Mirrors seeded from the engine on the way carry the same."""
    harness = Harness()
    harness.list_defaults()
    perp = harness.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    sol = harness.asset("SOL")
    harness.ok(SetIndexPrices, prices=((sol, 100 * USDC),))
    a, b, c = (harness.new_account(USDC=100_000 * USDC) for _ in range(3))
    checked = _Checked(harness, (perp,))
    market = build_catalog(harness.state).markets[perp]
    last, mark, index = int(TriggerBy.LAST_PRICE), int(TriggerBy.MARK_PRICE), int(TriggerBy.INDEX_PRICE)

    def order(account_id: int, side: int, price_ticks: int, quantity_steps: int, **extra: Any) -> PlaceOrder:
        return PlaceOrder(
            **harness.next_stamp(),
            account_id=account_id,
            market_id=perp,
            side=side,
            order_type=0,
            price_ticks=price_ticks,
            quantity_steps=quantity_steps,
            **extra,
        )

    checked.apply(
        order(
            a,
            0,
            10_000,
            100,
            take_profit_trigger_ticks=11_000,
            take_profit_limit_ticks=10_950,
            take_profit_trigger_by=mark,
            stop_loss_trigger_ticks=9_000,
            stop_loss_trigger_by=last,
        )
    )
    parent = max(checked.records)
    bid = PlaceOrder(seq=0, timestamp_ns=0, account_id=a, market_id=perp, side=0, order_type=0, quantity_steps=10)
    batch = (
        msgspec.structs.replace(bid, price_ticks=9_500),
        msgspec.structs.replace(
            bid,
            price_ticks=9_600,
            stop_loss_trigger_ticks=9_100,
            stop_loss_limit_ticks=9_050,
            stop_loss_trigger_by=index,
        ),
    )
    checked.apply(PlaceOrders(**harness.next_stamp(), account_id=a, orders=batch))
    plain, stop_only = parent + 1, parent + 2
    seeded = Mirror.seeded(harness.state)  # a restart before the fill: the engine still holds the terms
    assert seeded.orders[parent].record.take_profit_trigger_ticks == 11_000

    checked.apply(order(b, 1, 10_000, 40))  # fills 0.4 of the parent: its first fill creates both children
    take_profit, stop_loss = sorted(checked.mirror.triggers)
    assert (take_profit, stop_loss) == (stop_only + 2, stop_only + 3)
    seeded = Mirror.seeded(harness.state)  # a restart with both children pending
    assert [seeded.triggers[one].record.parent_order_id for one in (take_profit, stop_loss)] == [parent, parent]
    checked.apply(order(b, 1, 10_000, 60))  # fills the rest: nothing more is created
    checked.apply(SetIndexPrices(**harness.next_stamp(), prices=((sol, 111 * USDC),)))
    assert stop_loss not in checked.mirror.triggers and take_profit in checked.mirror.orders
    checked.apply(order(c, 0, 10_950, 100))

    frames = checked.order_frames
    for data in frames:
        shown = shapes.order(checked.records[int(data["i"])], market)
        for key, field in ATTACHED_KEYS:
            assert data.get(key) == shown[field], (key, data, shown)
    parent_frames = [data for data in frames if data["i"] == str(parent)]
    assert [(data["e"], data["X"]) for data in parent_frames] == [
        ("orderAccepted", "New"),
        ("orderFill", "PartiallyFilled"),
        ("orderFill", "Filled"),
    ]
    for data in parent_frames:
        assert {key: data[key] for key in "abjdg"} == {
            "a": "110",
            "b": "90",
            "j": "109.5",
            "d": "MarkPrice",
            "g": "LastPrice",
        }
        assert "k" not in data and "I" not in data
    (stop_only_frame,) = [data for data in frames if data["i"] == str(stop_only)]
    assert {key: stop_only_frame.get(key) for key in "abjkdgI"} == {
        "a": None,
        "b": "91",
        "j": None,
        "k": "90.5",
        "d": None,
        "g": "IndexPrice",
        "I": None,
    }
    assert not {"a", "b", "j", "k", "d", "g", "I"} & {key for data in frames if data["i"] == str(plain) for key in data}
    children = [data for data in frames if data["i"] in (str(take_profit), str(stop_loss))]
    assert [(data["i"], data["e"], data["X"], data["P"], data["Y"]) for data in children] == [
        (str(take_profit), "orderAccepted", "TriggerPending", "110", "1"),
        (str(stop_loss), "orderAccepted", "TriggerPending", "90", "1"),
        (str(take_profit), "triggerPlaced", "New", "110", "1"),
        (str(stop_loss), "orderCancelled", "Cancelled", "90", "1"),
        (str(take_profit), "orderFill", "Filled", "110", "1"),
    ]
    for data in children:
        assert data["I"] == str(parent)
        assert not {"a", "b", "j", "k", "d", "g"} & set(data)


# ---- a real socket against a real server ---------------------------------------------------
class Socket:
    """A WebSocket client of the streams: subscribe, read frames, keep what is not asked for."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.held: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any]) -> None:
        self.connection.send(json.dumps(body))

    def subscribe(self, *streams: str, key: Key | None = None, signature: list[str] | None = None) -> None:
        body: dict[str, Any] = {"method": "SUBSCRIBE", "params": list(streams)}
        if key is not None:
            headers = sign_headers(key.api_key, key.secret, "subscribe", None)
            body["signature"] = [headers[name] for name in ("X-API-Key", "X-Signature", "X-Timestamp", "X-Window")]
        if signature is not None:
            body["signature"] = signature
        self.send(body)

    def unsubscribe(self, *streams: str) -> None:
        self.send({"method": "UNSUBSCRIBE", "params": list(streams)})

    def read(self, timeout: float = 5.0) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.connection.recv(timeout=timeout))
        return frame

    def take(self, stream: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Return the data of the next `count` frames of `stream` (others are held)."""
        found = [frame["data"] for frame in self.held if frame.get("stream") == stream][:count]
        self.held = [frame for frame in self.held if frame.get("stream") != stream or frame["data"] not in found]
        deadline = time.monotonic() + timeout
        while len(found) < count:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.get("stream") == stream:
                found.append(frame["data"])
            else:
                self.held.append(frame)
        return found

    def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Return every frame that arrives until none has for `seconds`."""
        frames = [*self.held]
        self.held = []
        while True:
            try:
                frames.append(self.read(seconds))
            except TimeoutError:
                return frames


@contextmanager
def socket_to(api: Api) -> Iterator[Socket]:
    with connect(api.url.replace("http://", "ws://") + "/ws", open_timeout=5) as connection:
        yield Socket(connection)


def _place(api: Api, key: Key, symbol: str, side: str, price: str, quantity: str, **extra: Any) -> dict[str, Any]:
    answer = api.order(key, symbol=symbol, side=side, orderType="Limit", price=price, quantity=quantity, **extra)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _cancel(api: Api, key: Key, symbol: str, order_id: str) -> None:
    answer = api.signed(key, "DELETE", "/api/v1/order", "orderCancel", {"symbol": symbol, "orderId": order_id})
    assert answer.status_code == 200, answer.text


def _apply(book: dict[str, dict[Decimal, Decimal]], data: dict[str, Any]) -> None:
    for side in ("a", "b"):
        for price, quantity in data[side]:
            if Decimal(quantity) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(quantity)


def _rest_book(api: Api, symbol: str) -> tuple[dict[str, dict[Decimal, Decimal]], int]:
    body = api.get("/api/v1/depth", symbol=symbol).json()
    book = {
        short: {Decimal(price): Decimal(quantity) for price, quantity in body[name]}
        for short, name in (("a", "asks"), ("b", "bids"))
    }
    return book, int(body["lastUpdateId"])


def test_depth_snapshot_and_gap_free_deltas_rebuild_the_book(api: Api) -> None:
    """Subscribe, take the snapshot, apply every delta checking U = previous u + 1 while
    orders rest, trade (partly and fully, several levels at once), are cancelled one by one
    and all together; the rebuilt book is the engine's book (REST depth) at the same update id."""
    alice = api.account(USDC="100000", ETH="100")
    bob = api.account(USDC="100000", ETH="100")
    symbol = "ETH_USDC"
    with socket_to(api) as socket:
        socket.subscribe(f"depth.{symbol}")
        (snapshot,) = socket.take(f"depth.{symbol}", 1)
        assert snapshot["e"] == "depthSnapshot"
        book: dict[str, dict[Decimal, Decimal]] = {"a": {}, "b": {}}
        _apply(book, snapshot)
        last = snapshot["u"]
        resting = [_place(api, alice, symbol, "Bid", f"{2000 + step}", "0.5")["id"] for step in range(5)]
        asks = [_place(api, bob, symbol, "Ask", f"{2010 + step}", "0.25")["id"] for step in range(5)]
        _place(api, bob, symbol, "Ask", "2003", "0.7")  # takes 2004 and part of 2003
        _place(api, alice, symbol, "Bid", "2012", "0.6")  # takes 2010, 2011 and part of 2012
        _cancel(api, alice, symbol, resting[0])
        _cancel(api, bob, symbol, asks[4])
        batch = [
            {"symbol": symbol, "side": "Bid", "orderType": "Limit", "price": f"{1990 + n}", "quantity": "0.1"}
            for n in range(3)
        ]
        answer = api.signed(alice, "POST", "/api/v1/orders", "orderExecute", batch)
        assert answer.status_code == 200, answer.text
        answer = api.signed(alice, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": symbol})
        assert answer.status_code == 200, answer.text
        _place(api, bob, symbol, "Ask", "2050", "1")
        changes = 0
        for frame in socket.quiet():
            assert frame["stream"] == f"depth.{symbol}", frame
            data = frame["data"]
            assert (data["e"], data["s"]) == ("depth", symbol)
            assert data["U"] == last + 1, (data, last)
            assert data["u"] >= data["U"]
            changes += data["u"] - data["U"] + 1
            last = data["u"]
            _apply(book, data)
        assert changes >= 15
        rest, update_id = _rest_book(api, symbol)
        assert update_id == last
        assert book == rest
        assert book["b"] == {} and set(book["a"]) == {Decimal(2012), Decimal(2013), Decimal(2050)}


def test_trade_stream_matches_the_fills(api: Api) -> None:
    """Every trade print is a fill both accounts see in their history: same id, price,
    quantity, and `m` (buyer is maker) true exactly when the maker bought."""
    maker = api.account(USDC="100000", BTC="2")
    taker = api.account(USDC="100000", BTC="2")
    symbol = "BTC_USDC"
    with socket_to(api) as socket:
        socket.subscribe(f"trade.{symbol}")
        _place(api, maker, symbol, "Bid", "60000", "0.01")
        _place(api, maker, symbol, "Bid", "60000.5", "0.01")
        _place(api, maker, symbol, "Ask", "60100", "0.02")
        sold = _place(api, taker, symbol, "Ask", "59000", "0.015", timeInForce="IOC")
        bought = _place(api, taker, symbol, "Bid", "60100", "0.005")
        prints = socket.take(f"trade.{symbol}", 3)
        assert socket.quiet() == []
    assert [(one["p"], one["q"], one["m"]) for one in prints] == [
        ("60000.5", "0.01", True),
        ("60000", "0.005", True),
        ("60100", "0.005", False),
    ]
    assert [one["a"] for one in prints[:2]] == [sold["id"], sold["id"]]
    assert prints[2]["b"] == bought["id"]
    assert all(isinstance(one["t"], int) and isinstance(one["E"], int) and one["s"] == symbol for one in prints)
    public = api.get("/api/v1/trades", symbol=symbol).json()
    assert [(one["id"], one["price"], one["quantity"], one["isBuyerMaker"]) for one in reversed(public)] == [
        (one["t"], one["p"], one["q"], one["m"]) for one in prints
    ]
    for key in (maker, taker):
        fills = api.signed(key, "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll", {"symbol": symbol}).json()
        assert sorted(fill["tradeId"] for fill in fills) == [one["t"] for one in prints]
        for fill in fills:
            (print_,) = [one for one in prints if one["t"] == fill["tradeId"]]
            assert (fill["price"], fill["quantity"]) == (print_["p"], print_["q"])
            assert fill["orderId"] in (print_["a"], print_["b"])


def _signature(key: Key, **sign: Any) -> list[str]:
    headers = sign_headers(key.api_key, key.secret, "subscribe", None, **sign)
    return [headers[name] for name in ("X-API-Key", "X-Signature", "X-Timestamp", "X-Window")]


def test_private_order_stream_is_the_subscribers_own(api: Api) -> None:
    """A signed account.orderUpdate delivers the subscriber's orders only (accepted, fills
    with running totals, cancelled, expired with its reason), none of another account's;
    bad, forged, expired or missing signatures get an error frame and subscribe nothing,
    and the socket's public streams keep working."""
    alice = api.account(USDC="10000", SOL="100")
    bob = api.account(USDC="10000", SOL="100")
    symbol = "SOL_USDC"
    with socket_to(api) as socket:
        socket.subscribe(f"trade.{symbol}")
        wrong = _signature(alice)
        wrong[1] = base64.b64encode(bytes(64)).decode()
        socket.subscribe("account.orderUpdate", signature=wrong)
        socket.subscribe(
            "account.orderUpdate", signature=_signature(alice, timestamp_ms=int(time.time() * 1000) - 60_000)
        )
        socket.subscribe("account.orderUpdate")
        forged = _signature(alice)
        forged[0] = bob.api_key  # alice's signature presented with bob's key
        socket.subscribe("account.orderUpdate", signature=forged)
        socket.subscribe("account.orderUpdate", "nonsense.SOL_USDC", key=alice)
        errors = [socket.read() for _ in range(5)]
        assert [error["error"]["code"] for error in errors] == [4001, 4002, 4002, 4001, 4006]
        assert all(error["id"] is None and error["error"]["message"] for error in errors)
        _place(api, bob, symbol, "Ask", "100", "1")  # no subscription took: nothing private comes
        assert [frame["stream"] for frame in socket.quiet()] == []

        socket.subscribe("account.orderUpdate", key=alice)
        socket.subscribe(f"account.orderUpdate.{symbol}", key=bob)
        bid = _place(api, alice, symbol, "Bid", "99", "2", clientId=7)
        _place(api, bob, symbol, "Ask", "99", "0.5")
        _place(api, bob, symbol, "Ask", "99", "1.5")
        _cancel(api, alice, symbol, _place(api, alice, symbol, "Bid", "90", "1")["id"])
        ioc = _place(api, alice, symbol, "Bid", "100", "3", timeInForce="IOC")
        frames = socket.quiet()
    mine = [frame["data"] for frame in frames if frame["stream"] == "account.orderUpdate"]
    theirs = [frame["data"] for frame in frames if frame["stream"] == f"account.orderUpdate.{symbol}"]
    trades = [frame["data"] for frame in frames if frame["stream"] == f"trade.{symbol}"]
    assert len(trades) == 3  # two fills of alice's bid, one of her IOC against bob's first ask
    assert [(one["e"], one["X"], one["z"]) for one in mine if one["i"] == bid["id"]] == [
        ("orderAccepted", "New", "0"),
        ("orderFill", "PartiallyFilled", "0.5"),
        ("orderFill", "Filled", "2"),
    ]
    first = next(one for one in mine if one["i"] == bid["id"])
    assert (first["c"], first["S"], first["o"], first["f"], first["p"], first["q"], first["O"]) == (
        7,
        "Bid",
        "LIMIT",
        "GTC",
        "99",
        "2",
        "USER",
    )
    fill = [one for one in mine if one["e"] == "orderFill" and one["i"] == bid["id"]][1]
    assert (fill["l"], fill["L"], fill["m"], fill["N"], fill["Z"]) == ("1.5", "99", True, "USDC", "198")
    assert [one["e"] for one in mine if one["i"] not in (bid["id"], ioc["id"])] == ["orderAccepted", "orderCancelled"]
    assert [(one["e"], one["X"]) for one in mine if one["i"] == ioc["id"]] == [
        ("orderAccepted", "New"),
        ("orderFill", "PartiallyFilled"),
        ("orderExpired", "Expired"),
    ]
    assert mine[-1]["R"] == "ImmediateOrCancel" and mine[-1]["z"] == "1"
    assert {one["i"] for one in mine} == {bid["id"], ioc["id"], mine[-4]["i"]}
    assert all(one["E"] >= 10**15 for one in mine)  # µs
    # bob's stream: his own orders only, never alice's
    assert {one["S"] for one in theirs} == {"Ask"}
    assert not {one["i"] for one in theirs} & {one["i"] for one in mine}


def test_order_stream_and_history_show_an_attachment_and_its_children(api: Api) -> None:
    """Bob's perpetual bid at 100 carries a take-profit at 110 (limit 109.5, mark price)
    and a stop-loss at 90 (limit 89.5, index price); Alice sells into it. On Bob's order
    stream the bid's orderAccepted and its Filled orderFill carry a/b/j/k/d/g with the
    strings of the REST order object's takeProfit*/stopLoss*; the fill then brings the
    take-profit and the stop-loss as orderAccepted (TriggerPending, reduce-only sells of
    the whole quantity) with `I` the bid's id; and order history shows both with
    relatedOrderId the bid's id, and the bid with none."""
    answer = api.signed(api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": "SOL=100"})
    assert answer.status_code == 200, answer.text
    alice = api.account(USDC="10000")
    bob = api.account(USDC="10000")
    symbol = "SOL_USDC_PERP"
    attached = {
        "takeProfitTriggerPrice": "110",
        "takeProfitLimitPrice": "109.5",
        "takeProfitTriggerBy": "MarkPrice",
        "stopLossTriggerPrice": "90",
        "stopLossLimitPrice": "89.5",
        "stopLossTriggerBy": "IndexPrice",
    }
    with socket_to(api) as socket:
        socket.subscribe("account.orderUpdate", key=bob)
        assert socket.quiet(0.2) == []
        placed = _place(api, bob, symbol, "Bid", "100", "1", **attached)
        assert {field: placed[field] for field in attached} == attached
        _place(api, alice, symbol, "Ask", "100", "1")
        frames = socket.quiet()
    mine = [frame["data"] for frame in frames if frame["stream"] == "account.orderUpdate"]
    parent = [one for one in mine if one["i"] == placed["id"]]
    assert [(one["e"], one["X"]) for one in parent] == [("orderAccepted", "New"), ("orderFill", "Filled")]
    for one in parent:
        assert {key: one[key] for key in "abjkdg"} == {
            "a": "110",
            "b": "90",
            "j": "109.5",
            "k": "89.5",
            "d": "MarkPrice",
            "g": "IndexPrice",
        }
        assert {key: one[key] for key, field in ATTACHED_KEYS[:-1]} == {
            key: placed[field] for key, field in ATTACHED_KEYS[:-1]
        }
        assert "I" not in one
    children = [one for one in mine if one["i"] != placed["id"]]
    assert [(one["e"], one["X"], one["S"], one["P"], one["p"], one["Y"], one["r"]) for one in children] == [
        ("orderAccepted", "TriggerPending", "Ask", "110", "109.5", "1", True),
        ("orderAccepted", "TriggerPending", "Ask", "90", "89.5", "1", True),
    ]
    assert [one["I"] for one in children] == [placed["id"]] * 2
    assert all(not {"a", "b", "j", "k", "d", "g"} & set(one) for one in children)

    history = api.signed(bob, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", {"symbol": symbol}).json()
    related = {order["id"]: order["relatedOrderId"] for order in history}
    assert related == {placed["id"]: None, children[0]["i"]: placed["id"], children[1]["i"]: placed["id"]}
    answer = api.signed(bob, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": symbol})
    assert answer.status_code == 200, answer.text


def test_a_restart_keeps_the_attachment_and_the_parent_on_order_frames(tmp_path: Any) -> None:
    """Bob's perpetual bid for 1 SOL at 100 (take-profit 110 limit 109.5 on the mark,
    market stop-loss 90) fills 0.4; the index then takes the mark to 111, so the
    take-profit fires and rests as a sell of the 0.4 held at 109.5, and the stop-loss is
    cancelled. Then `keel serve` restarts, and the engine it recovers holds neither the
    bid's terms (forgotten at its first fill) nor the resting take-profit's parent and
    trigger. The bid's last fill and the take-profit's fill, after the restart, must
    still show them on Bob's order stream, as history does."""
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    symbol = "SOL_USDC_PERP"
    server = start_server(data_dir, "--ip-rate=0", "--key-rate=0")
    try:
        api = Api(server)

        def index(prices: str) -> None:
            answer = api.signed(
                api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": prices}
            )
            assert answer.status_code == 200, answer.text

        index("SOL=100")
        alice, bob, carol = (api.account(USDC="10000") for _ in range(3))
        placed = _place(
            api,
            bob,
            symbol,
            "Bid",
            "100",
            "1",
            takeProfitTriggerPrice="110",
            takeProfitLimitPrice="109.5",
            takeProfitTriggerBy="MarkPrice",
            stopLossTriggerPrice="90",
        )
        _place(api, alice, symbol, "Ask", "100", "0.4")
        index("SOL=111")
        [take_profit] = [order for order in api.open_orders(bob, symbol) if order["side"] == "Ask"]
        assert (take_profit["side"], take_profit["price"], take_profit["quantity"]) == ("Ask", "109.5", "0.4")
        api.http.close()
    finally:
        code, _, stderr = stop_server(server)
    assert code == 0, stderr

    server = start_server(data_dir, "--ip-rate=0", "--key-rate=0")
    try:
        api = Api(server)
        with socket_to(api) as socket:
            socket.subscribe("account.orderUpdate", key=bob)
            assert socket.quiet(0.2) == []
            _place(api, alice, symbol, "Ask", "100", "0.6")
            _place(api, carol, symbol, "Bid", "109.5", "0.4")
            frames = [frame["data"] for frame in socket.quiet()]
        api.http.close()
    finally:
        code, _, stderr = stop_server(server)
    assert code == 0, stderr
    assert [(one["i"], one["e"], one["X"]) for one in frames] == [
        (placed["id"], "orderFill", "Filled"),
        (take_profit["id"], "orderFill", "Filled"),
    ]
    bid, sold = frames
    assert {key: bid.get(key) for key in "abjkdgI"} == {
        "a": "110",
        "b": "90",
        "j": "109.5",
        "k": None,
        "d": "MarkPrice",
        "g": "LastPrice",
        "I": None,
    }
    assert sold["I"] == placed["id"]
    assert (sold["P"], sold["B"], sold["Y"]) == ("110", "MarkPrice", "0.4")  # its trigger, from history too
    assert not {"a", "b", "j", "k", "d", "g"} & set(sold)


def test_unsubscribe_stops_that_stream_only(api: Api) -> None:
    """After UNSUBSCRIBE of depth, trades and the book ticker still come and depth does not."""
    alice = api.account(USDC="100000", ETH="10")
    bob = api.account(USDC="100000", ETH="10")
    symbol = "ETH_USDC"
    with socket_to(api) as socket:
        socket.subscribe(f"depth.{symbol}", f"trade.{symbol}", f"bookTicker.{symbol}")
        socket.take(f"depth.{symbol}", 1)
        socket.take(f"bookTicker.{symbol}", 1)
        socket.unsubscribe(f"depth.{symbol}", "never.subscribed")
        assert socket.quiet(0.2) == []
        _place(api, alice, symbol, "Bid", "1950", "0.1")
        _place(api, bob, symbol, "Ask", "1950", "0.1", timeInForce="IOC")
        frames = socket.quiet()
    assert [frame["stream"] for frame in frames] == [f"bookTicker.{symbol}", f"trade.{symbol}", f"bookTicker.{symbol}"]
    assert (frames[0]["data"]["b"], frames[0]["data"]["B"], frames[2]["data"]["b"]) == ("1950", "0.1", None)


def test_client_ping_is_answered_and_shutdown_closes_with_1001(tmp_path: Any) -> None:
    """The server answers a client's Ping with a Pong, and SIGTERM closes every socket
    with 1001 (going away) before the server stops cleanly."""
    data_dir = tmp_path / "data"
    assert keel("init", "--data", str(data_dir)).returncode == 0
    server = start_server(data_dir)
    try:
        with connect(server.url.replace("http://", "ws://") + "/ws", open_timeout=5) as connection:
            connection.send(json.dumps({"method": "SUBSCRIBE", "params": ["trade.SOL_USDC"]}))
            assert connection.ping().wait(2)
            code, stdout, stderr = stop_server(server)
            with pytest.raises(ConnectionClosed) as closed:
                connection.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert code == 0, stderr
        assert "stopped" in stdout
    finally:
        if server.process.poll() is None:
            server.process.kill()
