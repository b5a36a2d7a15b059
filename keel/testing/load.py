"""A seeded stream of valid commands for a running node: accounts, credits, orders, cancels.

`LoadGenerator` makes the commands a busy exchange sees, in roughly a busy exchange's
mix: new accounts and their funding, limit orders around a wandering mid (mostly
resting, some crossing, some IOC or post-only), market orders, batches, cancels of
orders it saw accepted, and cancel-all. Every command is well formed for the markets
in the state it starts from; a few are refused by the engine (a cancel of an order that
has since filled, a post-only that would take), as real traffic is.

Account ids are predicted (the engine numbers accounts in command order, and this
generator is the node's only client), so an account is funded and used as soon as it is
asked for. Order ids are learnt from the events of acknowledged outcomes (`observe`,
called from the sequencer's committer thread), so the generator never reads the
engine's state while the sequencer owns it; it reads the state once, before the node
starts, to continue where an earlier process left off. Only tests use this module.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable

from keel.core.accounts import is_user_account
from keel.core.commands import (
    CancelAllOrders,
    CancelOrder,
    Command,
    CreateAccount,
    Credit,
    PlaceOrder,
    PlaceOrders,
)
from keel.core.events import AccountCreated, Event, OrderAccepted
from keel.core.orders import OrderType, Side, TimeInForce
from keel.core.state import ExchangeState

# Mid prices in ticks for the default markets (keel.node.config.DEFAULT_MARKETS); any
# other market starts at MID_TICKS_OTHER unless it has traded.
MID_TICKS = {"SOL_USDC": 10_000, "BTC_USDC": 600_000, "ETH_USDC": 300_000}
MID_TICKS_OTHER = 10_000
ACCOUNTS_MIN = 4
ORDERS_KNOWN_MAX = 2_000
# Whole units credited to a new account, per asset symbol (others get FUNDING_UNITS_OTHER).
FUNDING_UNITS = {"USDC": 200_000, "SOL": 2_000, "BTC": 4, "ETH": 60}
FUNDING_UNITS_OTHER = 1_000


class LoadGenerator:
    """Commands for the markets of `state`, continuing from the accounts and orders it holds."""

    def __init__(self, rng: random.Random, state: ExchangeState) -> None:
        assert state.markets, "the state lists no market to trade"
        self.rng = rng
        self._lock = threading.Lock()
        self.accounts: list[int] = [account_id for account_id in state.accounts if is_user_account(account_id)]
        self.orders: deque[tuple[int, int, int]] = deque(
            ((order.account_id, order.market_id, order_id) for order_id, order in state.orders.items()),
            maxlen=ORDERS_KNOWN_MAX,
        )
        self.credits: deque[Credit] = deque()
        self.markets = [market.market_id for market in state.markets]
        self.mids = [
            market.last_price_ticks or MID_TICKS.get(market.symbol, MID_TICKS_OTHER) for market in state.markets
        ]
        self.funding = [
            FUNDING_UNITS.get(asset.symbol, FUNDING_UNITS_OTHER) * 10**asset.decimals for asset in state.assets
        ]
        self.account_id_next = state.account_id_next

    def observe(self, events: Iterable[Event]) -> None:
        """Learn the ids of accepted orders from an acknowledged outcome's events."""
        with self._lock:
            for event in events:
                if isinstance(event, OrderAccepted):
                    self.orders.append((event.account_id, event.market_id, event.order_id))
                elif isinstance(event, AccountCreated):
                    assert event.account_id in self.accounts, f"account {event.account_id} was not predicted"

    def next_command(self) -> Command:
        """Return the next command (seq and timestamp 0: the sequencer stamps it)."""
        rng = self.rng
        if self.credits:
            return self.credits.popleft()
        if len(self.accounts) < ACCOUNTS_MIN or rng.random() < 0.01:
            return self._create_account()
        self._walk_mids()
        account_id = rng.choice(self.accounts)
        roll = rng.random()
        if roll < 0.03:
            asset_id = rng.randrange(len(self.funding))
            amount_atomic = rng.randint(1, 1_000) * max(1, self.funding[asset_id] // 10_000)
            return Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=amount_atomic)
        if roll < 0.60:
            return self._limit_order(account_id)
        if roll < 0.70:
            index = rng.randrange(len(self.markets))
            return PlaceOrder(
                seq=0,
                timestamp_ns=0,
                account_id=account_id,
                market_id=self.markets[index],
                side=rng.choice((Side.BUY, Side.SELL)),
                order_type=OrderType.MARKET,
                quantity_steps=rng.randint(5, 30),
            )
        if roll < 0.90:
            with self._lock:
                known = self.orders.popleft() if self.orders and rng.random() < 0.5 else None
                if known is None and self.orders:
                    known = self.orders.pop()
            if known is not None:
                owner, market_id, order_id = known
                return CancelOrder(seq=0, timestamp_ns=0, account_id=owner, market_id=market_id, order_id=order_id)
            return self._limit_order(account_id)
        if roll < 0.93:
            return CancelAllOrders(seq=0, timestamp_ns=0, account_id=account_id, market_id=rng.choice(self.markets))
        items = tuple(self._limit_order(account_id) for _ in range(rng.randint(2, 4)))
        return PlaceOrders(seq=0, timestamp_ns=0, account_id=account_id, orders=items)

    def commands(self, count: int) -> list[Command]:
        """Return the next `count` commands (cancels name only orders observed so far)."""
        return [self.next_command() for _ in range(count)]

    def _create_account(self) -> CreateAccount:
        # The engine gives the next account number; fund the account right after it.
        account_id = self.account_id_next
        self.account_id_next += 1
        with self._lock:
            self.accounts.append(account_id)
        for asset_id, amount_atomic in enumerate(self.funding):
            self.credits.append(
                Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=amount_atomic)
            )
        return CreateAccount(seq=0, timestamp_ns=0)

    def _walk_mids(self) -> None:
        rng = self.rng
        for index, mid in enumerate(self.mids):
            step = rng.choice((-1, 0, 0, 0, 0, 1)) * (1 + mid // 20_000)
            self.mids[index] = max(100, mid + step)

    def _limit_order(self, account_id: int) -> PlaceOrder:
        rng = self.rng
        index = rng.randrange(len(self.markets))
        mid = self.mids[index]
        side = rng.choice((Side.BUY, Side.SELL))
        # Mostly on the order's own side of the mid, so books fill up; a fifth cross it.
        offset = rng.randint(-1 - mid // 2_000, 1 + mid // 300)
        price_ticks = mid + offset if side == Side.SELL else mid - offset
        time_in_force = rng.choice((TimeInForce.GTC,) * 12 + (TimeInForce.IOC, TimeInForce.FOK))
        return PlaceOrder(
            seq=0,
            timestamp_ns=0,
            account_id=account_id,
            market_id=self.markets[index],
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=time_in_force,
            price_ticks=max(1, price_ticks),
            quantity_steps=rng.randint(5, 60),
            post_only=time_in_force == TimeInForce.GTC and rng.random() < 0.15,
        )
