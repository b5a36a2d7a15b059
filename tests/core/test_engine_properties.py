"""Property test: random command sequences keep every invariant and match the naive model.

A Hypothesis state machine drives a Harness (default assets, two markets, five funded
accounts, one of several fee schedules including a maker rebate) with limit orders (GTC,
IOC, FOK, post-only, every self-trade prevention mode, client ids from a small pool so
duplicates happen), market orders by quantity and by quote quantity, cancels by id (open
and bogus), by client id and of everything, credits, order batches, ticks, and a
drifting mid price so that orders cross often. Accounts are
funded generously but not without limit, so funds rejections happen as well.

After every step: the invariant audit is clean (conservation, locked == holds, balance ==
ledger sum, book structure), every asset's balances over all accounts (system accounts
included) sum to zero, and the engine's trades, cancels, expiries, order ids, books and
last prices equal those of keel.testing.model, a deliberately naive reimplementation;
every trade's fees and ledger lines are what the fee rules give; and the engine's
incrementally kept state hash equals a full recompute.
A command that changed nothing (every event a rejection, or no event) must leave every
canonical section but "position" as it was.

KEEL_LONG_TESTS=1 runs many more and longer examples.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from keel.core import canonical
from keel.core.commands import CancelAllOrders, CancelOrder, Credit, PlaceOrder, PlaceOrders, Tick
from keel.core.errors import RejectCode
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
from keel.core.orders import EndReason, OrderType, SelfTradePrevention, Side, TimeInForce
from keel.testing.harness import DEFAULT_ASSETS, DEFAULT_MARKETS, FEE_MAKER_BPS, FEE_TAKER_BPS, Harness
from keel.testing.model import (
    Cancelled,
    Expired,
    Happening,
    ModelMarket,
    OrderRequest,
    Outcome,
    SpotModel,
    Trade,
)

LONG = os.environ.get("KEEL_LONG_TESTS") == "1"

MARKETS = ("SOL_USDC", "BTC_USDC")
MID_START = {"SOL_USDC": 10_000, "BTC_USDC": 600_000}  # 100 USDC, 60,000 USDC
ACCOUNTS = 5
FUNDING = {"USDC": 3_000 * 10**6, "SOL": 20 * 10**9, "BTC": 5 * 10**6}  # 3,000 USDC, 20 SOL, 0.05 BTC
BPS_PER_UNIT = 10_000
FEE_ACCOUNT = -2
BATCH_STRANGER_MESSAGE = "every order in a batch must be for the same account"
NON_POSITION_SECTIONS = tuple(section for section in canonical.SECTIONS if section != "position")

# (maker, taker) bps: the harness default most often; no fees; a maker rebate; high fees.
FEE_SCHEDULES = st.sampled_from(
    [(FEE_MAKER_BPS, FEE_TAKER_BPS), (FEE_MAKER_BPS, FEE_TAKER_BPS), (0, 0), (-3, 7), (25, 40), (1_000, 1_000)]
)
accounts = st.integers(0, ACCOUNTS - 1)
markets = st.sampled_from(MARKETS)
sides = st.sampled_from([Side.BUY, Side.SELL])
time_in_forces = st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])
stps = st.sampled_from(list(SelfTradePrevention))
client_ids = st.one_of(st.just(-1), st.integers(1, 4))
# Mostly small, sometimes large enough that funds run out.
quantities = st.one_of(st.integers(1, 30), st.integers(1, 30), st.integers(100, 3_000))
# Mostly a few ticks either side of the mid (so orders cross), sometimes a percentage
# far enough out to hit the price band.
offsets_ticks = st.integers(-12, 12)
offsets_percent = st.one_of(st.just(0), st.just(0), st.just(0), st.sampled_from([-40, -24, -10, 10, 24, 40]))


def _model_markets() -> list[ModelMarket]:
    """Derive each market's lot and filters from the harness's listing table."""
    decimals = dict(DEFAULT_ASSETS)
    result = []
    for market_id, (_symbol, base, _quote, tick, step, min_steps, min_notional) in enumerate(DEFAULT_MARKETS):
        lot, remainder = divmod(tick * step, 10 ** decimals[base])
        assert remainder == 0
        result.append(ModelMarket(market_id, lot, min_steps, 0, min_notional))
    return result


def _happenings(events: list[Event]) -> list[Happening]:
    """Return the engine's trades, cancels and expiries in the model's terms."""
    found: list[Happening] = []
    for event in events:
        if isinstance(event, TradeExecuted):
            found.append(
                Trade(
                    event.maker_order_id,
                    event.taker_order_id,
                    event.maker_account_id,
                    event.taker_account_id,
                    event.price_ticks,
                    event.quantity_steps,
                )
            )
        elif isinstance(event, OrderCancelled):
            found.append(Cancelled(event.order_id, event.reason, event.cancelled_steps))
        elif isinstance(event, OrderExpired):
            found.append(Expired(event.order_id, event.reason, event.cancelled_steps))
    return found


class TradeChecker:
    """Check each trade's fees and ledger lines against the rules, from first principles.

    Fees are charged on an order's cumulative notional per role, rounded up once per
    role and order (matching.py): a fill adds ceil((before + notional) x bps / 10,000)
    - ceil(before x bps / 10,000). A trade's entry moves base from seller to buyer,
    quote from buyer (notional + fee) to seller (notional - fee), and both fees to the
    fee account (-2)."""

    def __init__(self, fee_maker_bps: int, fee_taker_bps: int) -> None:
        self.fee_maker_bps = fee_maker_bps
        self.fee_taker_bps = fee_taker_bps
        decimals = dict(DEFAULT_ASSETS)
        asset_ids = {symbol: asset_id for asset_id, (symbol, _) in enumerate(DEFAULT_ASSETS)}
        # market id -> (lot, step, base asset id, quote asset id)
        self.markets: dict[int, tuple[int, int, int, int]] = {}
        for market_id, (_symbol, base, quote, tick, step, _, _) in enumerate(DEFAULT_MARKETS):
            self.markets[market_id] = (tick * step // 10 ** decimals[base], step, asset_ids[base], asset_ids[quote])
        self.notional_taker: dict[int, int] = {}  # by order id
        self.notional_maker: dict[int, int] = {}

    @staticmethod
    def fee_increase(before: int, added: int, bps: int) -> int:
        return -(-(before + added) * bps // BPS_PER_UNIT) + (-before * bps // BPS_PER_UNIT)

    def check(self, events: list[Event]) -> None:
        for index, event in enumerate(events):
            if not isinstance(event, TradeExecuted):
                continue
            lot, step, base, quote = self.markets[event.market_id]
            notional = event.price_ticks * event.quantity_steps * lot
            taker_before = self.notional_taker.get(event.taker_order_id, 0)
            maker_before = self.notional_maker.get(event.maker_order_id, 0)
            assert event.fee_taker_atomic == self.fee_increase(taker_before, notional, self.fee_taker_bps), event
            assert event.fee_maker_atomic == self.fee_increase(maker_before, notional, self.fee_maker_bps), event
            self.notional_taker[event.taker_order_id] = taker_before + notional
            self.notional_maker[event.maker_order_id] = maker_before + notional
            if event.taker_side == Side.BUY:
                buyer, seller = event.taker_account_id, event.maker_account_id
                fee_buyer, fee_seller = event.fee_taker_atomic, event.fee_maker_atomic
            else:
                buyer, seller = event.maker_account_id, event.taker_account_id
                fee_buyer, fee_seller = event.fee_maker_atomic, event.fee_taker_atomic
            entry = events[index + 1]
            assert isinstance(entry, LedgerPosted), events[index : index + 2]
            assert entry.reason == EntryReason.TRADE, entry
            assert entry.reference == event.trade_id, entry
            base_atomic = event.quantity_steps * step
            assert entry.lines == (
                (buyer, base, base_atomic),
                (seller, base, -base_atomic),
                (buyer, quote, -(notional + fee_buyer)),
                (seller, quote, notional - fee_seller),
                (FEE_ACCOUNT, quote, fee_buyer + fee_seller),
            ), (event, entry)

    def taker_quote_atomic(self, events: list[Event]) -> int:
        """Return what the taker of these events paid (buy: notional and fees) or raised (sell: notional)."""
        total = 0
        for event in events:
            if isinstance(event, TradeExecuted):
                notional = event.price_ticks * event.quantity_steps * self.markets[event.market_id][0]
                total += notional + (event.fee_taker_atomic if event.taker_side == Side.BUY else 0)
        return total


def _split_batch(events: list[Event], items: int) -> list[list[Event]]:
    """Split a batch's events into one list per item, in item order.

    A refused item is one CommandRejected naming its index; an accepted one starts
    with OrderAccepted and runs until the next item's first event."""
    groups: list[list[Event]] = [[] for _ in range(items)]
    index = -1
    for event in events:
        if isinstance(event, CommandRejected):
            assert event.item > index, (event, index)
            index = event.item
        elif isinstance(event, OrderAccepted):
            index += 1
        assert 0 <= index < items, (event, index)
        groups[index].append(event)
    return groups


class EngineMachine(RuleBasedStateMachine):
    """Apply generated commands; after each one, every invariant holds and the model agrees."""

    @initialize(fees=FEE_SCHEDULES)
    def genesis(self, fees: tuple[int, int]) -> None:
        fee_maker_bps, fee_taker_bps = fees
        self.h = Harness()
        self.h.list_defaults(fee_maker_bps=fee_maker_bps, fee_taker_bps=fee_taker_bps)
        self.model = SpotModel(_model_markets())
        self.trades = TradeChecker(fee_maker_bps, fee_taker_bps)
        self.accounts = [self.h.new_account(**FUNDING) for _ in range(ACCOUNTS)]
        self.market_ids = {symbol: self.h.market(symbol) for symbol in MARKETS}
        self.mid = dict(MID_START)
        # A small ladder either side of each mid, so that the first takers meet liquidity.
        for market, mid in MID_START.items():
            for level in range(1, 4):
                for index, side in ((0, Side.BUY), (1, Side.SELL)):
                    price = mid - level if side == Side.BUY else mid + level
                    request = OrderRequest(
                        account_id=self.accounts[index + level % 2 * 2],
                        market_id=self.market_ids[market],
                        side=side,
                        price_ticks=price,
                        quantity_steps=10 * level,
                    )
                    self.expect_order(request, self.submit(PlaceOrder, **vars(request)))

    # ---- submission and comparison ------------------------------------------------------

    def submit(self, command_type: type, **fields: object) -> list[Event]:
        """Apply a command; if it changed nothing, check that the state did not change."""
        state = self.h.state
        before = {section: canonical.entity_map(state, section) for section in NON_POSITION_SECTIONS}
        events = self.h.submit(command_type, **fields)
        self.trades.check(events)
        if all(isinstance(event, CommandRejected) for event in events):
            for section in NON_POSITION_SECTIONS:
                after = canonical.entity_map(state, section)
                assert after == before[section], (
                    f"{command_type.__name__} changed nothing ({events}) but section {section!r} changed"
                )
        return events

    def expect_order(self, request: OrderRequest, events: list[Event]) -> None:
        """Check the engine's events for one modelled order against the model, and apply it."""
        rejected = [event for event in events if isinstance(event, CommandRejected)]
        engine_code = RejectCode(rejected[0].code) if rejected else None
        model_code = self.model.decide(request)
        if model_code is not None:
            assert engine_code == model_code, (request, events, model_code)
            return
        if engine_code is RejectCode.INSUFFICIENT_AVAILABLE:
            self.model.skip_for_funds()
            return
        assert engine_code is None, (request, events)
        outcome = self.model.place(request)
        accepted = [event for event in events if isinstance(event, OrderAccepted)]
        assert [event.order_id for event in accepted] == [outcome.order_id], (request, events, outcome)
        assert _happenings(events) == outcome.happenings, (request, events, outcome)

    def observe_unmodelled(self, events: list[Event]) -> None:
        """Bring the model up to date with an order it does not model (by quote quantity).

        Such an order never pays (buy) or raises (sell) more than its quote quantity."""
        accepted = [event for event in events if isinstance(event, OrderAccepted)]
        if not accepted:
            return
        budget = accepted[0].quote_quantity_atomic
        assert self.trades.taker_quote_atomic(events) <= budget, events
        happenings = _happenings(events)
        trades = [happening for happening in happenings if isinstance(happening, Trade)]
        cancels = [happening for happening in happenings if isinstance(happening, Cancelled)]
        for cancel in cancels:  # only self-trade prevention cancels resting orders here
            assert cancel.reason == EndReason.SELF_TRADE_PREVENTION, events
        self.model.observe_unmodelled(accepted[0].order_id, trades, cancels)

    def price(self, market: str, offset_ticks: int, offset_percent: int) -> int:
        mid = self.mid[market]
        return max(1, mid + offset_ticks + mid * offset_percent // 100)

    # ---- rules --------------------------------------------------------------------------

    @rule(market=markets, delta=st.integers(-40, 40))
    def tick(self, market: str, delta: int) -> None:
        """Let time pass (a Tick changes nothing yet) and move one market's mid price."""
        assert self.submit(Tick) == []
        start = MID_START[market]
        self.mid[market] = min(max(self.mid[market] + delta, start * 8 // 10), start * 12 // 10)

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        offset_ticks=offsets_ticks,
        offset_percent=offsets_percent,
        quantity=quantities,
        tif=time_in_forces,
        post_only=st.booleans(),
        stp=stps,
        client_id=client_ids,
    )
    def place_limit(
        self,
        account: int,
        market: str,
        side: Side,
        offset_ticks: int,
        offset_percent: int,
        quantity: int,
        tif: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention,
        client_id: int,
    ) -> None:
        request = OrderRequest(
            account_id=self.accounts[account],
            market_id=self.market_ids[market],
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=tif,
            price_ticks=self.price(market, offset_ticks, offset_percent),
            quantity_steps=quantity,
            post_only=post_only and tif == TimeInForce.GTC,
            self_trade_prevention=stp,
            client_id=client_id,
        )
        self.expect_order(request, self.submit(PlaceOrder, **vars(request)))

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        distance_ticks=st.integers(0, 15),
        distance_percent=st.one_of(st.just(0), st.just(0), st.just(0), st.integers(4, 8)),
        quantity=st.integers(1, 40),
        post_only=st.booleans(),
        stp=stps,
        client_id=client_ids,
    )
    def place_resting(
        self,
        account: int,
        market: str,
        side: Side,
        distance_ticks: int,
        distance_percent: int,
        quantity: int,
        post_only: bool,
        stp: SelfTradePrevention,
        client_id: int,
    ) -> None:
        # A GTC order on its own side of the mid: the liquidity the takers meet. Some rest
        # 4-8% away, beyond a market order's impact band (3%), so that bands stop takers.
        sign = -1 if side == Side.BUY else 1
        request = OrderRequest(
            account_id=self.accounts[account],
            market_id=self.market_ids[market],
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price_ticks=self.price(market, sign * distance_ticks, sign * distance_percent),
            quantity_steps=quantity,
            post_only=post_only,
            self_trade_prevention=stp,
            client_id=client_id,
        )
        self.expect_order(request, self.submit(PlaceOrder, **vars(request)))

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        quantity=quantities,
        tif=time_in_forces,
        stp=stps,
        client_id=client_ids,
    )
    def place_market(
        self,
        account: int,
        market: str,
        side: Side,
        quantity: int,
        tif: TimeInForce,
        stp: SelfTradePrevention,
        client_id: int,
    ) -> None:
        request = OrderRequest(
            account_id=self.accounts[account],
            market_id=self.market_ids[market],
            side=side,
            order_type=OrderType.MARKET,
            time_in_force=tif,
            quantity_steps=quantity,
            self_trade_prevention=stp,
            client_id=client_id,
        )
        self.expect_order(request, self.submit(PlaceOrder, **vars(request)))

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        quote_atomic=st.one_of(st.integers(500_000, 200_000_000), st.integers(1_000_000_000, 5_000_000_000)),
        steps_at_mid=st.one_of(st.just(0), st.integers(1, 80)),
        stp=stps,
    )
    def place_market_by_quote(
        self, account: int, market: str, side: Side, quote_atomic: int, steps_at_mid: int, stp: SelfTradePrevention
    ) -> None:
        if steps_at_mid:
            # The exact value of whole steps at the mid price: budgets that run out exactly.
            quote_atomic = steps_at_mid * self.mid[market] * self.trades.markets[self.market_ids[market]][0]
        events = self.submit(
            PlaceOrder,
            account_id=self.accounts[account],
            market_id=self.market_ids[market],
            side=side,
            order_type=OrderType.MARKET,
            quote_quantity_atomic=quote_atomic,
            self_trade_prevention=stp,
        )
        self.observe_unmodelled(events)

    @precondition(lambda self: any(self.model.resting.values()))
    @rule(data=st.data())
    def cancel_open(self, data: st.DataObject) -> None:
        resting = [order for orders in self.model.resting.values() for order in orders]
        order = data.draw(st.sampled_from(resting))
        account_id = order.account_id
        market_id = order.market_id
        if data.draw(st.integers(0, 9)) == 0:  # someone else's order: not theirs to cancel
            account_id = self.accounts[(self.accounts.index(account_id) + 1) % ACCOUNTS]
        events = self.submit(CancelOrder, account_id=account_id, market_id=market_id, order_id=order.order_id)
        self.expect_cancel(self.model.cancel(account_id, market_id, order_id=order.order_id), events)

    @rule(
        account=accounts,
        market=markets,
        by_client_id=st.booleans(),
        order_id=st.integers(-1, 400),
        client_id=st.integers(1, 5),
    )
    def cancel_by_id_or_client_id(
        self, account: int, market: str, by_client_id: bool, order_id: int, client_id: int
    ) -> None:
        """Cancel by an arbitrary order id (mostly not open, some malformed) or client id."""
        account_id, market_id = self.accounts[account], self.market_ids[market]
        if by_client_id:
            events = self.submit(CancelOrder, account_id=account_id, market_id=market_id, client_id=client_id)
            self.expect_cancel(self.model.cancel(account_id, market_id, client_id=client_id), events)
        else:
            events = self.submit(CancelOrder, account_id=account_id, market_id=market_id, order_id=order_id)
            self.expect_cancel(self.model.cancel(account_id, market_id, order_id=order_id), events)

    @rule(account=accounts, market=markets)
    def cancel_all(self, account: int, market: str) -> None:
        account_id, market_id = self.accounts[account], self.market_ids[market]
        events = self.submit(CancelAllOrders, account_id=account_id, market_id=market_id)
        self.expect_cancel(self.model.cancel_all(account_id, market_id), events)

    def expect_cancel(self, outcome: Outcome, events: list[Event]) -> None:
        rejected = [RejectCode(event.code) for event in events if isinstance(event, CommandRejected)]
        if outcome.rejected is not None:
            assert rejected == [outcome.rejected], (events, outcome)
        else:
            assert rejected == [], (events, outcome)
            assert _happenings(events) == outcome.happenings, (events, outcome)

    @rule(
        account=accounts,
        asset=st.sampled_from([symbol for symbol, _ in DEFAULT_ASSETS]),
        amount=st.one_of(st.just(0), st.integers(1, 10**9), st.integers(10**9, 10**11)),
    )
    def credit(self, account: int, asset: str, amount: int) -> None:
        events = self.submit(
            Credit, account_id=self.accounts[account], asset_id=self.h.asset(asset), amount_atomic=amount
        )
        rejected = [RejectCode(event.code) for event in events if isinstance(event, CommandRejected)]
        assert rejected == ([RejectCode.AMOUNT_NOT_POSITIVE] if amount == 0 else []), events

    @rule(
        account=accounts,
        items=st.lists(
            st.tuples(
                markets,
                sides,
                st.sampled_from(["limit", "limit", "limit", "market", "quote", "stranger"]),
                offsets_ticks,
                quantities,
                time_in_forces,
                st.booleans(),
                stps,
                client_ids,
            ),
            min_size=0,
            max_size=5,
        ),
    )
    def place_batch(self, account: int, items: list[tuple[Any, ...]]) -> None:
        account_id = self.accounts[account]
        orders = []
        kinds = []
        for market, side, kind, offset, quantity, tif, post_only, stp, client_id in items:
            fields: dict[str, Any] = {
                "account_id": account_id,
                "market_id": self.market_ids[market],
                "side": side,
                "self_trade_prevention": stp,
                "client_id": client_id,
            }
            if kind in ("limit", "stranger"):
                fields.update(
                    order_type=OrderType.LIMIT,
                    time_in_force=tif,
                    price_ticks=self.price(market, offset, 0),
                    quantity_steps=quantity,
                    post_only=post_only and tif == TimeInForce.GTC,
                )
                if kind == "stranger":  # a batch item for another account is refused alone
                    fields["account_id"] = self.accounts[(account + 1) % ACCOUNTS]
            elif kind == "market":
                fields.update(order_type=OrderType.MARKET, time_in_force=tif, quantity_steps=quantity)
            else:
                fields.update(order_type=OrderType.MARKET, quote_quantity_atomic=quantity * 1_000_000)
            orders.append(PlaceOrder(seq=0, timestamp_ns=0, **fields))
            kinds.append(kind)
        events = self.submit(PlaceOrders, account_id=account_id, orders=tuple(orders))
        if not orders:
            assert [RejectCode(event.code) for event in events if isinstance(event, CommandRejected)] == [
                RejectCode.BATCH_TOO_LARGE
            ]
            return
        for index, (kind, order, group) in enumerate(
            zip(kinds, orders, _split_batch(events, len(orders)), strict=True)
        ):
            if kind == "stranger":
                assert group == [CommandRejected(RejectCode.ORDER_MALFORMED, BATCH_STRANGER_MESSAGE, index)], group
            elif kind == "quote":
                self.observe_unmodelled(group)
            else:
                request = OrderRequest(
                    account_id=order.account_id,
                    market_id=order.market_id,
                    side=order.side,
                    order_type=order.order_type,
                    time_in_force=order.time_in_force,
                    price_ticks=order.price_ticks,
                    quantity_steps=order.quantity_steps,
                    post_only=order.post_only,
                    self_trade_prevention=order.self_trade_prevention,
                    client_id=order.client_id,
                )
                self.expect_order(request, group)

    # ---- invariants ---------------------------------------------------------------------

    @invariant()
    def audit_is_clean(self) -> None:
        assert self.h.audit() == []

    @invariant()
    def incremental_hash_equals_full_recompute(self) -> None:
        engine = self.h.engine
        assert engine.section_hashes() == canonical.section_hashes(self.h.state)
        assert engine.state_hash() == canonical.state_hash(self.h.state)

    @invariant()
    def every_asset_sums_to_zero(self) -> None:
        state = self.h.state
        for asset in state.assets:
            total = sum(account.balances[asset.asset_id] for account in state.accounts.values())
            assert total == 0, f"{asset.symbol}: balances of all accounts sum to {total}"

    @invariant()
    def books_equal_the_model(self) -> None:
        state = self.h.state
        for market_id in self.market_ids.values():
            book = state.books[market_id]
            for side in (Side.BUY, Side.SELL):
                engine_view = tuple(
                    (order.order_id, order.account_id, order.price_ticks, order.open_steps)
                    for order in book.live_orders(side)
                )
                assert engine_view == self.model.book(market_id, side), (market_id, side)
            assert state.markets[market_id].last_price_ticks == self.model.markets[market_id].last_price_ticks
        assert state.order_id_next == self.model.order_id_next
        assert len(state.orders) == sum(len(orders) for orders in self.model.resting.values())


EngineMachine.TestCase.settings = settings(
    max_examples=3_000 if LONG else 300,
    stateful_step_count=200 if LONG else 80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineProperties = EngineMachine.TestCase


# ---- regressions: engine bugs this machine found (fixed in da70992) ----------------------


def _sol_market_with_maker() -> tuple[Harness, int, int]:
    h = Harness()
    h.list_defaults()
    maker = h.new_account(USDC=10**12, SOL=10**12)
    return h, h.market("SOL_USDC"), maker


def place_limit(h: Harness, account_id: int, market_id: int, side: Side, price_ticks: int, quantity_steps: int) -> None:
    h.ok(
        PlaceOrder,
        account_id=account_id,
        market_id=market_id,
        side=side,
        order_type=OrderType.LIMIT,
        price_ticks=price_ticks,
        quantity_steps=quantity_steps,
    )


def _taker_trades(events: list[Event]) -> list[tuple[int, int]]:
    return [(event.price_ticks, event.quantity_steps) for event in events if isinstance(event, TradeExecuted)]


def test_market_sell_by_quote_quantity_stops_when_the_quote_quantity_is_raised() -> None:
    """A sell by quote quantity raises at most that quote amount (spec 8.1, `quoteQuantity`).

    SOL_USDC: one step at 10,000 ticks is worth 1,000,000 USDC atomic (1 USDC). Bids: 100
    steps at 10,000 and 10 at 9,900. A market sell for 100 USDC fills the 100 steps at
    10,000 (exactly 100 USDC) and must stop there. (Before the fix it also sold 3 steps at
    9,900: a budget spent to exactly zero no longer bound the order.)"""
    h, sol, maker = _sol_market_with_maker()
    taker = h.new_account(SOL=10**12)
    place_limit(h, maker, sol, Side.BUY, 10_000, 100)
    place_limit(h, maker, sol, Side.BUY, 9_900, 10)
    events = h.ok(
        PlaceOrder,
        account_id=taker,
        market_id=sol,
        side=Side.SELL,
        order_type=OrderType.MARKET,
        quote_quantity_atomic=100_000_000,
    )
    assert _taker_trades(events) == [(10_000, 100)]  # before the fix also (9_900, 3)


def test_market_buy_by_quote_quantity_never_spends_more_than_the_quote_quantity() -> None:
    """A buy by quote quantity spends at most that quote amount, fees included.

    Asks: 2,000 steps at 10,000 ticks and 5 at 10,001. A buy for 2,001 USDC costs exactly
    2,000 x 1 USDC + 5 bps taker fee (1 USDC) = 2,001 USDC for the first level and must stop
    there. (Before the fix it also bought 1 step at 10,001 for 1.0001 USDC + 501 atomic
    fee, and the taker, who held exactly 2,001 USDC, ended at -1,000,601 atomic units.)"""
    h, sol, maker = _sol_market_with_maker()
    budget = 2_001_000_000
    taker = h.new_account(USDC=budget)
    place_limit(h, maker, sol, Side.SELL, 10_000, 2_000)
    place_limit(h, maker, sol, Side.SELL, 10_001, 5)
    events = h.ok(
        PlaceOrder,
        account_id=taker,
        market_id=sol,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quote_quantity_atomic=budget,
    )
    assert _taker_trades(events) == [(10_000, 2_000)]  # before the fix also (10_001, 1)
    assert h.balance(taker, "USDC") == 0  # before the fix -1_000_601
    assert h.audit() == []


def test_market_order_stopped_by_impact_band_expires_with_price_impact() -> None:
    """A market order's remainder that the impact band stopped expires for PRICE_IMPACT.

    Bids: 1 step at 10,000 ticks and 2 at 9,000. A market sell of 5 steps trades 1 at
    10,000; its impact bound is ceil(10,000 x 9,700 / 10,000) = 9,700, so it may not take
    the bid at 9,000 and its 4 remaining steps expire: orders.EndReason documents
    PRICE_IMPACT as "market order stopped at its impact band" (Backpack's "PriceImpact").
    (Before the fix the reason was IMMEDIATE_OR_CANCEL, which reads "the book ran out".)"""
    h, sol, maker = _sol_market_with_maker()
    taker = h.new_account(SOL=10**12)
    place_limit(h, maker, sol, Side.BUY, 10_000, 1)
    place_limit(h, maker, sol, Side.BUY, 9_000, 2)
    events = h.ok(
        PlaceOrder, account_id=taker, market_id=sol, side=Side.SELL, order_type=OrderType.MARKET, quantity_steps=5
    )
    assert _taker_trades(events) == [(10_000, 1)]
    expired = [event for event in events if isinstance(event, OrderExpired)]
    assert [(event.reason, event.cancelled_steps) for event in expired] == [(EndReason.PRICE_IMPACT, 4)]
