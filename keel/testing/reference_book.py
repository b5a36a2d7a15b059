"""Copied unchanged in behaviour from ../shared/bench/reference_book.py (Keel shared benchmark):
the bare price-time book that the shared flow's expected end state comes from. The engine
benchmark times it beside the engine on the same machine, and the property tests use it
as the oracle for book contents."""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush

NAME = "naive-python"
PACKAGE = None  # nothing to install
NOTES = "own baseline: heapq price levels + deque per level, lazy cancel, ints only"


class NaiveEngine:
    __slots__ = ("heaps", "inheap", "levels", "live", "orders", "rejects", "traded_qty", "trades")

    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque], dict[int, deque]] = ({}, {})
        self.live: tuple[dict[int, int], dict[int, int]] = ({}, {})  # live orders per level
        self.heaps: tuple[list[int], list[int]] = ([], [])  # bids negated, asks as is
        self.inheap: tuple[set[int], set[int]] = (set(), set())
        self.orders: dict[int, list[int]] = {}
        self.trades = 0
        self.traded_qty = 0
        self.rejects = 0

    # -- queries -------------------------------------------------------------
    def best(self, side: int) -> int | None:
        """Best price on a side (0 bids, 1 asks), dropping stale heap entries."""
        heap, levels, inheap = self.heaps[side], self.levels[side], self.inheap[side]
        while heap:
            key = heap[0]
            price = -key if side == 0 else key
            if price in levels:
                return price
            heappop(heap)
            inheap.discard(key)
        return None

    # -- commands ------------------------------------------------------------
    def _match(self, side: int, limit: int | None, qty: int) -> int:
        """Cross an incoming order of `side` against the other side; return what is left."""
        other = 1 - side
        levels, live, orders = self.levels[other], self.live[other], self.orders
        while qty:
            best = self.best(other)
            if best is None:
                break
            if limit is not None and (best > limit if side == 0 else best < limit):
                break
            level = levels[best]
            while qty and level:
                maker = level[0]
                open_qty = maker[3]
                if open_qty == 0:  # cancelled earlier
                    level.popleft()
                    continue
                fill = qty if qty < open_qty else open_qty
                qty -= fill
                maker[3] = open_qty - fill
                self.trades += 1
                self.traded_qty += fill
                if open_qty == fill:
                    level.popleft()
                    del orders[maker[0]]
                    live[best] -= 1
            if live[best] == 0:
                del levels[best]
                del live[best]
        return qty

    def _rest(self, oid: int, side: int, price: int, qty: int) -> None:
        order = [oid, side, price, qty]
        self.orders[oid] = order
        levels = self.levels[side]
        level = levels.get(price)
        if level is None:
            levels[price] = deque((order,))
            self.live[side][price] = 1
            key = -price if side == 0 else price
            inheap = self.inheap[side]
            if key not in inheap:
                inheap.add(key)
                heappush(self.heaps[side], key)
        else:
            level.append(order)
            self.live[side][price] += 1

    def new_limit(self, oid: int, side: int, price: int, qty: int, account: int = 0) -> None:
        left = self._match(side, price, qty)
        if left:
            self._rest(oid, side, price, left)

    def new_market(self, oid: int, side: int, price: int, qty: int, account: int = 0) -> None:
        self._match(side, None, qty)  # the unfilled rest is cancelled (IOC)

    def cancel(self, oid: int, side: int = 0, price: int = 0, qty: int = 0, account: int = 0) -> bool:
        order = self.orders.pop(oid, None)
        if order is None:
            self.rejects += 1
            return False
        order[3] = 0
        side, price = order[1], order[2]
        live = self.live[side]
        live[price] -= 1
        if live[price] == 0:
            del live[price]
            del self.levels[side][price]
        return True

    def modify(self, oid: int, side: int, price: int, qty: int, account: int = 0) -> None:
        """Replace: cancel, then the same id at the new price and open qty, at the back."""
        if self.cancel(oid):
            self.new_limit(oid, side, price, qty)

    def summary(self) -> dict:
        bid_n = ask_n = bid_q = ask_q = 0
        for _, side, _, q in self.orders.values():
            if side == 0:
                bid_n += 1
                bid_q += q
            else:
                ask_n += 1
                ask_q += q
        return {
            "trades": self.trades,
            "traded_qty": self.traded_qty,
            "bid_orders": bid_n,
            "bid_qty": bid_q,
            "ask_orders": ask_n,
            "ask_qty": ask_q,
            "rejects": self.rejects,
        }


def make(**_: object) -> NaiveEngine:
    return NaiveEngine()


def version() -> str:
    return "n/a (this harness)"
