"""Simulated market makers for the served demo: they keep the books and charts alive.

An `IndexWalk` moves one reference price per base asset (SOL, BTC, ETH) by a small
random step every half second, pulled gently back toward where it started so that a
demo left running for hours stays near the index logged at start (which the perpetuals'
marks and funding use). Each `MarketMaker` is one account with its own API key and
client: every cycle it goes through every market, cancels its quotes there (one
`DELETE /api/v1/orders`) and posts a fresh ladder of post-only bids and asks around the
reference price (one `POST /api/v1/orders` batch), and now and then sends a small market
order that trades against the best quote of another maker (or of the user), so there
are trades, tickers and candles. The makers start their cycles staggered, so while one
replaces its quotes the others' stay in the book and it is never empty.

Everything goes through the real, signed REST API, as any client's orders do: the
makers have no back door into the node. Prices are floats only inside this simulation;
what is sent is a decimal string on the market's grid (a whole number of ticks and
steps), as the gateway requires.

Imports: keel.demo.client.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final

from keel.demo.client import ApiError, SignedClient

LEVELS: Final = 5  # quotes per side per market and maker: 2 x 5 = 10 orders, one batch (at most 20)
CYCLE_S: Final = 1.5  # a maker requotes every market once per cycle
TAKE_PROBABILITY: Final = 0.25  # per maker, market and cycle: about 0.5 trades/s per market with 3 makers
WALK_INTERVAL_S: Final = 0.5
WALK_STEP_BPS: Final = 4.0  # standard deviation of one step of the reference price
WALK_REVERSION: Final = 0.01  # share of the distance back to the start closed per step
LEVEL_NOTIONAL: Final = 1_500.0  # quote units (USDC) per quote, before a random factor 0.5 to 1.5
ERRORS_SHOWN: Final = 5  # per maker: later failures are counted, not printed


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What a maker needs of a market, from GET /api/v1/markets."""

    symbol: str
    base: str
    is_perp: bool
    tick: Decimal
    step: Decimal
    quantity_min: Decimal


def market_specs(markets: list[dict[str, Any]]) -> list[MarketSpec]:
    """Return the markets of a GET /api/v1/markets answer that the makers can quote."""
    specs = []
    for market in markets:
        filters = market["filters"]
        specs.append(
            MarketSpec(
                symbol=market["symbol"],
                base=market["baseSymbol"],
                is_perp=market["marketType"] == "PERP",
                tick=Decimal(filters["price"]["tickSize"]),
                step=Decimal(filters["quantity"]["stepSize"]),
                quantity_min=Decimal(filters["quantity"]["minQuantity"]),
            )
        )
    return specs


class IndexWalk:
    """Reference prices per base asset: a mean-reverting random walk in log price."""

    def __init__(self, start: dict[str, float], rng: random.Random) -> None:
        self.start = dict(start)
        self._prices = dict(start)
        self._rng = rng
        self._lock = threading.Lock()

    def price(self, base: str) -> float:
        with self._lock:
            return self._prices[base]

    def step(self) -> None:
        """Move every price one step: a normal step of WALK_STEP_BPS, plus reversion toward its start."""
        with self._lock:
            for base, price in self._prices.items():
                pull = WALK_REVERSION * math.log(self.start[base] / price)
                move = self._rng.gauss(0.0, WALK_STEP_BPS / 10_000)
                self._prices[base] = price * math.exp(pull + move)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(WALK_INTERVAL_S):
            self.step()


def _on_grid(value: float, unit: Decimal) -> Decimal:
    """Return value rounded down to a whole number of `unit` (a tick or a step), as a decimal."""
    units = int((Decimal(repr(value)) / unit).to_integral_value(rounding=ROUND_FLOOR))
    return Decimal(units) * unit  # an integer times the unit: written with exactly the unit's decimals


class MarketMaker:
    """One simulated trader with its own account, quoting every market and taking now and then."""

    def __init__(
        self,
        name: str,
        client: SignedClient,
        markets: list[MarketSpec],
        walk: IndexWalk,
        rng: random.Random,
        spread_bps: float,
    ) -> None:
        self.name = name
        self.client = client
        self.markets = markets
        self.walk = walk
        self.rng = rng
        self.spread_bps = spread_bps  # half the distance between its best bid and best ask
        self.cycles = 0
        self.errors = 0
        self.orders_placed = 0
        self.takes = 0
        self.quoted = threading.Event()  # set after the first full cycle

    def _quantity(self, market: MarketSpec, price: float) -> Decimal:
        notional = LEVEL_NOTIONAL * self.rng.uniform(0.5, 1.5)
        return max(_on_grid(notional / price, market.step), market.quantity_min)

    def ladder(self, market: MarketSpec) -> list[dict[str, Any]]:
        """Return LEVELS post-only bids and asks around the reference price, best first."""
        reference = self.walk.price(market.base)
        gap = reference * self.rng.uniform(3.0, 6.0) / 10_000  # between levels
        orders = []
        for level in range(LEVELS):
            offset = reference * self.spread_bps / 10_000 + gap * level
            for side, price in (("Bid", reference - offset), ("Ask", reference + offset)):
                grid_price = _on_grid(price, market.tick)
                if side == "Ask":
                    grid_price += market.tick  # rounded up, so the spread never shrinks below a tick
                orders.append(
                    {
                        "symbol": market.symbol,
                        "side": side,
                        "orderType": "Limit",
                        "price": str(grid_price),
                        "quantity": str(self._quantity(market, price)),
                        "postOnly": True,
                    }
                )
        return orders

    def quote(self, market: MarketSpec) -> None:
        """Replace this maker's quotes in one market: cancel them all, then post a fresh ladder."""
        self.client.request("DELETE", "/api/v1/orders", instruction="orderCancelAll", params={"symbol": market.symbol})
        results = self.client.request("POST", "/api/v1/orders", instruction="orderExecute", params=self.ladder(market))
        self.orders_placed += sum(1 for result in results if result.get("operation") == "Ok")

    def take(self, market: MarketSpec) -> None:
        """Send a small market order, either side, that trades with the best quote opposite."""
        side = self.rng.choice(("Bid", "Ask"))
        reference = self.walk.price(market.base)
        quantity = self._quantity(market, reference) * Decimal(self.rng.choice((1, 1, 2)))
        self.client.request(
            "POST",
            "/api/v1/order",
            instruction="orderExecute",
            params={
                "symbol": market.symbol,
                "side": side,
                "orderType": "Market",
                "quantity": str(quantity),
                # its own quote may be the best one: cancel that and trade with the next
                "selfTradePrevention": "RejectMaker",
            },
        )
        self.takes += 1

    def _failed(self, action: str, error: Exception, stop: threading.Event) -> None:
        if stop.is_set():
            return  # the server is going away: not worth a word
        self.errors += 1
        if self.errors <= ERRORS_SHOWN:
            print(f"market maker {self.name}: {action} failed: {error}", file=sys.stderr, flush=True)

    def run(self, stop: threading.Event, delay_s: float) -> None:
        """Requote every market once per CYCLE_S until `stop` is set; start after `delay_s`."""
        if stop.wait(delay_s):
            return
        while not stop.is_set():
            started = time.monotonic()
            for market in self.markets:
                if stop.is_set():
                    break
                try:
                    self.quote(market)
                    if self.rng.random() < TAKE_PROBABILITY:
                        self.take(market)
                except (ApiError, OSError, ValueError) as error:
                    self._failed(f"{market.symbol}", error, stop)
                    if isinstance(error, OSError):
                        self.client.close()
            self.cycles += 1
            self.quoted.set()
            stop.wait(max(0.0, CYCLE_S - (time.monotonic() - started)))
        self.client.close()
