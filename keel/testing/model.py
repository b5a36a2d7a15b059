"""A deliberately naive reference model of spot order entry and matching, as an oracle.

The engine (keel/core/matching.py) is written for speed: heaps of price levels, deques,
lazy deletion, fast paths. This model is written to be obviously right instead: per
market one plain list of resting orders, and every decision is a linear scan for the
best order (best price, then earliest arrival). The property tests drive both with the
same commands and require the same outcome.

What it predicts for an order: accepted or refused (with the RejectCode, for the codes
it models), the trades (maker, taker, price, quantity) in order, resting orders
cancelled by self-trade prevention, the taker's expiry, and the resting book and last
trade price afterwards. It does not model balances, holds or fees (the invariant audit
covers those), and so not INSUFFICIENT_AVAILABLE: the caller tells it when the engine
refused for funds (`skip_for_funds`). Orders by quote quantity are not modelled either:
the caller replays the engine's events for those (`observe_unmodelled`).

Rules, from the module docstring of matching.py and spec sections 5.1 and 8.2:

- checks in this order: quantity filters, minimum notional and price band (limit
  orders; the band is against the last trade price, none before the first trade),
  duplicate open client id (per account, across markets), open-order limit (orders
  that may rest), post-only would take, self-trade at entry (RejectTaker and the very
  first would-be maker is the taker's own), fill-or-kill cannot fill completely;
- order ids count from 1 over accepted orders only;
- a taker trades with the best resting order (best price, then earliest arrival) while
  that price is within its limit, always at the maker's price; a market order's limit
  is its impact bound: a buy trades at prices <= floor(best ask x impact_high / 10,000),
  a sell at prices >= ceil(best bid x impact_low / 10,000), taken at entry;
- self-trade prevention on meeting its own resting order: RejectTaker ends the taker,
  RejectMaker cancels the resting order and goes on, RejectBoth cancels it and ends the
  taker, Allow trades;
- a GTC limit remainder rests unless self-trade prevention ended the taker; any other
  remainder expires (IOC; self-trade prevention; a market order stopped by its impact
  band while liquidity remains beyond it: PRICE_IMPACT, per orders.EndReason); a market
  order that finds the opposite side empty is accepted and expires at once
  (NO_LIQUIDITY) with its whole quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.core.errors import RejectCode
from keel.core.orders import EndReason, OrderType, SelfTradePrevention, Side, TimeInForce

BPS = 10_000
FILLS_PER_COMMAND_MAX = 5_000  # limits.fills_per_command_max, restated
ORDERS_OPEN_PER_ACCOUNT_MAX = 2_000  # limits.orders_open_per_account_max, restated
NO_CLIENT_ID = -1


@dataclass
class ModelMarket:
    """The parts of a market's configuration the matching rules read."""

    market_id: int
    lot_atomic: int  # quote atomic value of one tick x one step
    quantity_min_steps: int
    quantity_max_steps: int  # 0: none
    notional_min_atomic: int
    band_low_bps: int = 7_500
    band_high_bps: int = 12_500
    impact_low_bps: int = 9_700
    impact_high_bps: int = 10_300
    last_price_ticks: int = 0  # 0: no trade yet


@dataclass
class RestingOrder:
    order_id: int
    account_id: int
    market_id: int
    side: int
    price_ticks: int
    open_steps: int
    arrival: int
    client_id: int


@dataclass(frozen=True)
class OrderRequest:
    """An order as the model sees it (PlaceOrder without seq, timestamp, quote quantity)."""

    account_id: int
    market_id: int
    side: int
    order_type: int = OrderType.LIMIT
    time_in_force: int = TimeInForce.GTC
    price_ticks: int = 0
    quantity_steps: int = 0
    post_only: bool = False
    self_trade_prevention: int = SelfTradePrevention.REJECT_TAKER
    client_id: int = NO_CLIENT_ID


@dataclass(frozen=True)
class Trade:
    maker_order_id: int
    taker_order_id: int
    maker_account_id: int
    taker_account_id: int
    price_ticks: int
    quantity_steps: int


@dataclass(frozen=True)
class Cancelled:
    """A resting order taken out of the book (owner's cancel, or self-trade prevention)."""

    order_id: int
    reason: int  # EndReason
    cancelled_steps: int


@dataclass(frozen=True)
class Expired:
    """A taker's unfilled remainder ended by rule."""

    order_id: int
    reason: int  # EndReason
    cancelled_steps: int


Happening = Trade | Cancelled | Expired


@dataclass
class Outcome:
    """What one command did: refused (code), or accepted with its happenings in order."""

    rejected: RejectCode | None = None
    order_id: int = 0  # the new order's id, for an accepted order
    happenings: list[Happening] = field(default_factory=list)


BookView = tuple[tuple[int, int, int, int], ...]  # (order id, account, price, open) best first


class SpotModel:
    """The reference model: markets, resting orders in plain lists, and counters."""

    def __init__(self, markets: list[ModelMarket]) -> None:
        self.markets = {market.market_id: market for market in markets}
        self.resting: dict[int, list[RestingOrder]] = {market.market_id: [] for market in markets}
        self.order_id_next = 1
        self.arrival_next = 0

    # ---- queries ----------------------------------------------------------------------

    def open_orders(self, account_id: int) -> list[RestingOrder]:
        """Return the account's resting orders in every market, oldest first."""
        found = [order for orders in self.resting.values() for order in orders if order.account_id == account_id]
        return sorted(found, key=lambda order: order.arrival)

    def book(self, market_id: int, side: int) -> BookView:
        """Return one side of a book in priority order: best price first, then arrival."""
        orders = sorted((order for order in self.resting[market_id] if order.side == side), key=self._priority)
        return tuple((order.order_id, order.account_id, order.price_ticks, order.open_steps) for order in orders)

    def best_maker(self, orders: list[RestingOrder], taker_side: int) -> RestingOrder | None:
        """Return the resting order a taker of `taker_side` would meet first, or None."""
        best: RestingOrder | None = None
        for order in orders:
            if order.side != taker_side and (best is None or self._priority(order) < self._priority(best)):
                best = order
        return best

    @staticmethod
    def _priority(order: RestingOrder) -> tuple[int, int]:
        """Return a sort key, smallest first: best price (highest bid, lowest ask), then arrival."""
        return (-order.price_ticks if order.side == Side.BUY else order.price_ticks, order.arrival)

    # ---- orders -----------------------------------------------------------------------

    def decide(self, request: OrderRequest) -> RejectCode | None:
        """Return why the engine must refuse this order (None: it must accept, funds allowing)."""
        market = self.markets[request.market_id]
        orders = self.resting[request.market_id]
        quantity = request.quantity_steps
        if quantity < market.quantity_min_steps:
            return RejectCode.QUANTITY_BELOW_MINIMUM
        if market.quantity_max_steps and quantity > market.quantity_max_steps:
            return RejectCode.QUANTITY_ABOVE_MAXIMUM
        best = self.best_maker(orders, request.side)
        if request.order_type == OrderType.LIMIT:
            price = request.price_ticks
            if price * quantity * market.lot_atomic < market.notional_min_atomic:
                return RejectCode.NOTIONAL_BELOW_MINIMUM
            last = market.last_price_ticks
            if last and not (last * market.band_low_bps <= price * BPS <= last * market.band_high_bps):
                return RejectCode.PRICE_OUT_OF_BAND
            crosses = best is not None and self._within(request.side, best.price_ticks, price)
        else:
            crosses = best is not None
        if request.client_id != NO_CLIENT_ID:
            for order in self.open_orders(request.account_id):
                if order.client_id == request.client_id:
                    return RejectCode.DUPLICATE_CLIENT_ID
        if self._may_rest(request) and len(self.open_orders(request.account_id)) >= ORDERS_OPEN_PER_ACCOUNT_MAX:
            return RejectCode.OPEN_ORDER_LIMIT
        if not crosses:
            if request.time_in_force == TimeInForce.FOK:
                return RejectCode.FILL_OR_KILL_UNFILLABLE
            return None
        assert best is not None
        if request.post_only:
            return RejectCode.POST_ONLY_WOULD_TAKE
        if request.self_trade_prevention == SelfTradePrevention.REJECT_TAKER and best.account_id == request.account_id:
            return RejectCode.SELF_TRADE
        if request.time_in_force == TimeInForce.FOK:
            # Match a copy of the book, counting no fill limit (a fill-or-kill order asks
            # whether the liquidity is there, not how many fills it would take).
            copies = [RestingOrder(**vars(order)) for order in orders]
            filled, _, _ = self._match(copies, market, request, 0, self._limit(market, request), fills_max=None)
            if filled < quantity:
                return RejectCode.FILL_OR_KILL_UNFILLABLE
        return None

    def place(self, request: OrderRequest) -> Outcome:
        """Decide, and if the order is accepted apply it: match, then rest or expire."""
        code = self.decide(request)
        if code is not None:
            return Outcome(rejected=code)
        market = self.markets[request.market_id]
        orders = self.resting[request.market_id]
        order_id = self.order_id_next
        self.order_id_next += 1
        outcome = Outcome(order_id=order_id)
        if request.order_type == OrderType.MARKET and self.best_maker(orders, request.side) is None:
            outcome.happenings.append(Expired(order_id, EndReason.NO_LIQUIDITY, request.quantity_steps))
            return outcome
        limit = self._limit(market, request)
        filled, end_reason, happenings = self._match(orders, market, request, order_id, limit, FILLS_PER_COMMAND_MAX)
        outcome.happenings.extend(happenings)
        for happening in happenings:
            if isinstance(happening, Trade):
                market.last_price_ticks = happening.price_ticks
        remaining = request.quantity_steps - filled
        if remaining == 0:
            return outcome
        if self._may_rest(request) and end_reason is None:
            orders.append(
                RestingOrder(
                    order_id,
                    request.account_id,
                    request.market_id,
                    request.side,
                    request.price_ticks,
                    remaining,
                    self.arrival_next,
                    request.client_id,
                )
            )
            self.arrival_next += 1
            return outcome
        if end_reason is None:
            end_reason = EndReason.IMMEDIATE_OR_CANCEL
            if request.order_type == OrderType.MARKET:
                next_maker = self.best_maker(orders, request.side)
                if next_maker is not None and not self._within(request.side, next_maker.price_ticks, limit):
                    end_reason = EndReason.PRICE_IMPACT
        outcome.happenings.append(Expired(order_id, end_reason, remaining))
        return outcome

    def skip_for_funds(self) -> None:
        """Record that the engine refused an order the model accepts, for funds: no change."""

    def observe_unmodelled(self, order_id: int, trades: list[Trade], cancelled: list[Cancelled]) -> None:
        """Replay what the engine did for an order the model does not model (by quote quantity).

        Such an order never rests; its trades reduce makers, self-trade prevention may
        cancel resting orders, and it used up an order id."""
        assert order_id == self.order_id_next, (order_id, self.order_id_next)
        self.order_id_next += 1
        for trade in trades:
            maker = self._find(trade.maker_order_id)
            assert maker is not None, trade
            assert maker.open_steps >= trade.quantity_steps
            maker.open_steps -= trade.quantity_steps
            if maker.open_steps == 0:
                self.resting[maker.market_id].remove(maker)
            self.markets[maker.market_id].last_price_ticks = trade.price_ticks
        for cancel in cancelled:
            order = self._find(cancel.order_id)
            assert order is not None, cancel
            self.resting[order.market_id].remove(order)

    # ---- cancels ----------------------------------------------------------------------

    def cancel(self, account_id: int, market_id: int, *, order_id: int = -1, client_id: int = NO_CLIENT_ID) -> Outcome:
        """Cancel one open order of the account in the market, by order id or client id."""
        if (order_id == -1) == (client_id == NO_CLIENT_ID):
            return Outcome(rejected=RejectCode.ORDER_MALFORMED)
        target = None
        for order in self.open_orders(account_id):
            if (order.order_id == order_id) if client_id == NO_CLIENT_ID else (order.client_id == client_id):
                target = order
        if target is None or target.market_id != market_id:
            return Outcome(rejected=RejectCode.UNKNOWN_ORDER)
        self.resting[market_id].remove(target)
        return Outcome(happenings=[Cancelled(target.order_id, EndReason.USER_CANCEL, target.open_steps)])

    def cancel_all(self, account_id: int, market_id: int) -> Outcome:
        """Cancel every open order of the account in the market, oldest first."""
        outcome = Outcome()
        for order in self.open_orders(account_id):
            if order.market_id == market_id:
                self.resting[market_id].remove(order)
                outcome.happenings.append(Cancelled(order.order_id, EndReason.USER_CANCEL, order.open_steps))
        return outcome

    # ---- helpers ----------------------------------------------------------------------

    def _find(self, order_id: int) -> RestingOrder | None:
        for orders in self.resting.values():
            for order in orders:
                if order.order_id == order_id:
                    return order
        return None

    @staticmethod
    def _may_rest(request: OrderRequest) -> bool:
        return request.order_type == OrderType.LIMIT and request.time_in_force == TimeInForce.GTC

    @staticmethod
    def _within(taker_side: int, maker_price: int, limit: int) -> bool:
        """Return whether a taker with this limit may trade at `maker_price`."""
        return maker_price <= limit if taker_side == Side.BUY else maker_price >= limit

    def _limit(self, market: ModelMarket, request: OrderRequest) -> int:
        """Return the worst price the taker may trade at: its limit, or the impact bound."""
        if request.order_type == OrderType.LIMIT:
            return request.price_ticks
        best = self.best_maker(self.resting[market.market_id], request.side)
        assert best is not None
        if request.side == Side.BUY:
            return best.price_ticks * market.impact_high_bps // BPS  # floor
        return -(-(best.price_ticks * market.impact_low_bps) // BPS)  # ceil

    def _match(
        self,
        orders: list[RestingOrder],
        market: ModelMarket,
        request: OrderRequest,
        order_id: int,
        limit: int,
        fills_max: int | None,
    ) -> tuple[int, int | None, list[Happening]]:
        """Cross the taker against `orders` (changing them); return (filled, end reason, happenings).

        The end reason is None when the taker stopped because it was filled or nothing
        more was within its limit."""
        remaining = request.quantity_steps
        happenings: list[Happening] = []
        fills = 0
        while remaining > 0:
            maker = self.best_maker(orders, request.side)
            if maker is None or not self._within(request.side, maker.price_ticks, limit):
                return request.quantity_steps - remaining, None, happenings
            stp = request.self_trade_prevention
            if maker.account_id == request.account_id and stp != SelfTradePrevention.ALLOW:
                if stp == SelfTradePrevention.REJECT_TAKER:
                    return request.quantity_steps - remaining, EndReason.SELF_TRADE_PREVENTION, happenings
                orders.remove(maker)
                happenings.append(Cancelled(maker.order_id, EndReason.SELF_TRADE_PREVENTION, maker.open_steps))
                if stp == SelfTradePrevention.REJECT_BOTH:
                    return request.quantity_steps - remaining, EndReason.SELF_TRADE_PREVENTION, happenings
                continue
            quantity = min(remaining, maker.open_steps)
            happenings.append(
                Trade(maker.order_id, order_id, maker.account_id, request.account_id, maker.price_ticks, quantity)
            )
            remaining -= quantity
            maker.open_steps -= quantity
            if maker.open_steps == 0:
                orders.remove(maker)
            fills += 1
            if fills_max is not None and fills >= fills_max:
                end = EndReason.FILL_LIMIT if remaining else None
                return request.quantity_steps - remaining, end, happenings
        return request.quantity_steps, None, happenings
