"""The order book of one market: price levels in price-time priority.

Each side maps a price (ticks) to a `Level`: a FIFO deque of resting orders plus the
level's open quantity and live-order count. A heap per side finds the best price (bids
stored negated). Cancels are lazy, as in `../shared/bench/reference_book.py`: a cancelled
order gets `open_steps = 0` and stays in its deque until it reaches the front, where the
matching loop drops it, or until the cancels in its level outnumber the live orders by a
margin and the level's deque is compacted in place (matching._compact: a long-lived order
behind a quote that is placed and cancelled again and again must not grow its level
without bound); a level whose live count reaches zero is removed from its side at once,
and its heap entry is dropped when it surfaces. So "the book holds exactly the
open orders, each once, in price-time order" reads: the live (open_steps > 0) orders of
all levels are exactly the market's open orders, each in the level of its price, in
order of arrival.

Imports: orders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import heappop, heappush

from keel.core.orders import Order


class Level:
    __slots__ = ("key", "live", "open_steps", "orders")

    def __init__(self, key: tuple[int, int, int]) -> None:
        self.key = key  # (market_id, side, price_ticks): its identity in the state hash
        self.orders: deque[Order] = deque()
        self.open_steps = 0
        self.live = 0


class Book:
    """Both sides of one market's book."""

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids", "in_ask_heap", "in_bid_heap", "market_id")

    def __init__(self, market_id: int) -> None:
        self.market_id = market_id
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []
        # Membership only (never iterated): which heap keys are present.
        self.in_bid_heap: set[int] = set()
        self.in_ask_heap: set[int] = set()

    def best_bid(self) -> int:
        """Return the best bid price in ticks, or 0 when there are no bids."""
        heap, levels = self.bid_heap, self.bids
        while heap:
            price = -heap[0]
            if price in levels:
                return price
            self.in_bid_heap.discard(heappop(heap))
        return 0

    def best_ask(self) -> int:
        """Return the best ask price in ticks, or 0 when there are no asks."""
        heap, levels = self.ask_heap, self.asks
        while heap:
            price = heap[0]
            if price in levels:
                return price
            self.in_ask_heap.discard(heappop(heap))
        return 0

    def add_level(self, side: int, price: int) -> Level:
        """Return a new empty level at `price` on `side`, registered for best-price lookup."""
        level = Level((self.market_id, side, price))
        if side == 0:
            self.bids[price] = level
            if -price not in self.in_bid_heap:
                self.in_bid_heap.add(-price)
                heappush(self.bid_heap, -price)
        else:
            self.asks[price] = level
            if price not in self.in_ask_heap:
                self.in_ask_heap.add(price)
                heappush(self.ask_heap, price)
        return level

    def levels_sorted(self, side: int) -> list[tuple[int, Level]]:
        """Return a side's levels best first (bids descending, asks ascending)."""
        levels = self.bids if side == 0 else self.asks
        return sorted(levels.items(), reverse=(side == 0))

    def live_orders(self, side: int) -> Iterator[Order]:
        """Yield a side's live orders in price-time priority."""
        for _, level in self.levels_sorted(side):
            for order in level.orders:
                if order.open_steps > 0:
                    yield order
