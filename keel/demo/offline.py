"""`keel demo --offline`: a short scripted trading session on the engine, printed with rich.

One `Engine` in this process, driven through `keel.testing.harness.Harness` (which
numbers the commands and keeps the ledger totals): no command log, no sequencer, no
network. Three accounts are funded by operator credits on SOL_USDC; alice rests a sell,
bob crosses it with a limit buy (the trade is at alice's price, not bob's), carol takes
more with a market buy, bob's post-only buy that would take is refused with its stable
code, and a post-only buy that rests is then cancelled. The session prints the trades,
the balances, every ledger line, the invariant audit and the state hash.

Amounts are integers in the engine; this module turns them into decimal strings only
for display (price = price_ticks x tick_atomic quote atomic units, quantity =
quantity_steps x step_atomic base atomic units, both through `format_decimal`), and
turns the script's decimal prices and quantities into ticks and steps with the market's
own conversion, which refuses off-grid values.

Imports: keel.core, keel.testing.harness, rich.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from keel.core.accounts import SYSTEM_ACCOUNT_NAMES
from keel.core.canonical import state_hash
from keel.core.commands import CancelOrder, PlaceOrder
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
from keel.core.markets import Market, price_ticks_from_decimal, quantity_steps_from_decimal
from keel.core.money import format_decimal
from keel.core.orders import OrderType, Side
from keel.core.state import ExchangeState
from keel.testing.harness import Harness

MARKET_SYMBOL = "SOL_USDC"
# Operator credits, in whole units of each asset (converted to atomic units below).
FUNDING_UNITS = {
    "alice": {"SOL": 20},
    "bob": {"USDC": 2_000},
    "carol": {"USDC": 1_000},
}


class _Session:
    """The harness plus what the demo needs to print: names, decimals, an order log."""

    def __init__(self) -> None:
        self.harness = Harness()
        self.harness.list_defaults()
        self.state: ExchangeState = self.harness.engine.state
        self.names: dict[int, str] = dict(SYSTEM_ACCOUNT_NAMES)
        self.ids: dict[str, int] = {}
        self.market: Market = self.state.markets[self.harness.market(MARKET_SYMBOL)]
        self.base = self.state.assets[self.market.base_asset_id]
        self.quote = self.state.assets[self.market.quote_asset_id]
        # (order id or "", account, what was asked, what happened)
        self.order_rows: list[tuple[str, str, str, str]] = []
        self.rejections: list[CommandRejected] = []

    # ---- units, for display only ---------------------------------------------------
    def asset_amount(self, asset_id: int, amount_atomic: int) -> str:
        return format_decimal(amount_atomic, self.state.assets[asset_id].decimals)

    def price(self, price_ticks: int) -> str:
        return format_decimal(price_ticks * self.market.tick_atomic, self.quote.decimals)

    def quantity(self, quantity_steps: int) -> str:
        return format_decimal(quantity_steps * self.market.step_atomic, self.base.decimals)

    # ---- the script ----------------------------------------------------------------
    def fund(self) -> None:
        for name, units in FUNDING_UNITS.items():
            deposits = {
                symbol: amount * 10 ** self.state.assets[self.harness.asset(symbol)].decimals
                for symbol, amount in units.items()
            }
            account_id = self.harness.new_account(**deposits)
            self.ids[name] = account_id
            self.names[account_id] = name

    def place(
        self, name: str, side: Side, order_type: OrderType, quantity: str, price: str = "", *, post_only: bool = False
    ) -> list[Event]:
        """Submit an order given in decimals; record what was asked and what happened."""
        price_ticks = price_ticks_from_decimal(self.market, self.quote.decimals, price) if price else 0
        quantity_steps = quantity_steps_from_decimal(self.market, self.base.decimals, quantity)
        events = self.harness.submit(
            PlaceOrder,
            account_id=self.ids[name],
            market_id=self.market.market_id,
            side=int(side),
            order_type=int(order_type),
            price_ticks=price_ticks,
            quantity_steps=quantity_steps,
            post_only=post_only,
        )
        kind = "post-only limit" if post_only else order_type.name.lower()
        asked = f"{side.name.lower()} {kind} {quantity} {self.base.symbol}"
        if price:
            asked += f" at {price} {self.quote.symbol}"
        self._record(name, asked, events)
        return events

    def cancel(self, name: str, order_id: int) -> list[Event]:
        events = self.harness.submit(
            CancelOrder, account_id=self.ids[name], market_id=self.market.market_id, order_id=order_id
        )
        self._record(name, f"cancel order {order_id}", events)
        return events

    def _record(self, name: str, asked: str, events: list[Event]) -> None:
        order_id = ""
        outcome: list[str] = []
        for event in events:
            if isinstance(event, CommandRejected):
                self.rejections.append(event)
                outcome.append(f"refused: {RejectCode(event.code).name} ({event.code})")
            elif isinstance(event, OrderAccepted):
                order_id = str(event.order_id)
            elif isinstance(event, TradeExecuted):
                # In its own command an order is always the taker.
                outcome.append(
                    f"traded {self.quantity(event.quantity_steps)} at {self.price(event.price_ticks)} "
                    f"(trade {event.trade_id}, {self.names[event.maker_account_id]}'s price)"
                )
            elif isinstance(event, OrderExpired):
                outcome.append(f"remainder {self.quantity(event.cancelled_steps)} expired")
            elif isinstance(event, OrderCancelled):
                order_id = str(event.order_id)
                outcome.append(f"cancelled {self.quantity(event.cancelled_steps)}, hold released")
        if order_id and int(order_id) in self.state.orders:
            resting = self.state.orders[int(order_id)]
            outcome.append(f"rests: {self.quantity(resting.open_steps)} open")
        self.order_rows.append((order_id, name, asked, "; ".join(outcome)))

    # ---- what happened ----------------------------------------------------------------
    def events_of(self, event_type: type) -> list[Any]:
        return [event for events in self.harness.events for event in events if isinstance(event, event_type)]


def _markets_table(session: _Session) -> Table:
    table = Table(title="Markets (listed by operator commands)", title_justify="left")
    for column in ("market", "tick", "step", "minimum order value", "fees maker / taker"):
        table.add_column(column, justify="right" if column != "market" else "left")
    state = session.state
    for market in state.markets:
        base, quote = state.assets[market.base_asset_id], state.assets[market.quote_asset_id]
        table.add_row(
            market.symbol,
            f"{format_decimal(market.tick_atomic, quote.decimals)} {quote.symbol}",
            f"{format_decimal(market.step_atomic, base.decimals)} {base.symbol}",
            f"{format_decimal(market.notional_min_atomic, quote.decimals)} {quote.symbol}",
            f"{market.fee_maker_bps} / {market.fee_taker_bps} bps",
        )
    return table


def _accounts_table(session: _Session) -> Table:
    table = Table(title="Accounts (funded by operator credits)", title_justify="left")
    table.add_column("account")
    table.add_column("id", justify="right")
    table.add_column("credited", justify="right")
    for name, units in FUNDING_UNITS.items():
        credited = ", ".join(f"{amount:,} {symbol}" for symbol, amount in units.items())
        table.add_row(name, str(session.ids[name]), credited)
    return table


def _orders_table(session: _Session) -> Table:
    table = Table(title=f"Orders on {session.market.symbol}", title_justify="left")
    table.add_column("order", justify="right")
    table.add_column("account")
    table.add_column("asked")
    table.add_column("outcome")
    for row in session.order_rows:
        table.add_row(*row)
    return table


def _trades_table(session: _Session) -> Table:
    quote = session.quote.symbol
    table = Table(title="Trades (always at the resting maker's price)", title_justify="left")
    for column in (
        "trade",
        f"price {quote}",
        f"quantity {session.base.symbol}",
        "taker",
        "maker",
        "fees taker / maker",
    ):
        table.add_column(column, justify="left" if column in ("taker", "maker") else "right")
    for trade in session.events_of(TradeExecuted):
        fees = (
            f"{session.asset_amount(session.quote.asset_id, trade.fee_taker_atomic)} / "
            f"{session.asset_amount(session.quote.asset_id, trade.fee_maker_atomic)}"
        )
        table.add_row(
            str(trade.trade_id),
            session.price(trade.price_ticks),
            session.quantity(trade.quantity_steps),
            f"{session.names[trade.taker_account_id]} ({Side(trade.taker_side).name.lower()})",
            session.names[trade.maker_account_id],
            fees,
        )
    return table


def _balances_table(session: _Session) -> Table:
    table = Table(
        title="Balances (balance = available + locked)",
        title_justify="left",
        caption="external: the outside world, minus everything credited in; fees: the fee account",
        caption_justify="left",
    )
    table.add_column("account")
    table.add_column("asset")
    for column in ("balance", "available", "locked"):
        table.add_column(column, justify="right")
    state = session.state
    for account_id, account in state.accounts.items():
        for asset in state.assets:
            balance, locked = account.balances[asset.asset_id], account.locked[asset.asset_id]
            if balance == 0 and locked == 0:
                continue
            table.add_row(
                session.names[account_id],
                asset.symbol,
                format_decimal(balance, asset.decimals),
                format_decimal(balance - locked, asset.decimals),
                format_decimal(locked, asset.decimals),
            )
    return table


def _ledger_table(session: _Session) -> Table:
    table = Table(title="Ledger (each entry's lines sum to zero per asset)", title_justify="left")
    for column in ("entry", "reason", "reference", "account", "asset", "amount"):
        table.add_column(column, justify="right" if column in ("entry", "amount") else "left")
    for entry in session.events_of(LedgerPosted):
        reason = EntryReason(entry.reason)
        reference = f"trade {entry.reference}" if reason is EntryReason.TRADE else f"command {entry.reference}"
        for index, (account_id, asset_id, amount_atomic) in enumerate(entry.lines):
            amount = session.asset_amount(asset_id, amount_atomic)
            table.add_row(
                str(entry.entry_id) if index == 0 else "",
                reason.name.lower() if index == 0 else "",
                reference if index == 0 else "",
                session.names[account_id],
                session.state.assets[asset_id].symbol,
                amount if amount_atomic < 0 else f"+{amount}",
            )
        table.add_section()
    return table


def run_offline_demo(console: Console) -> dict[str, Any]:
    """Run the scripted session, print it to `console`, return a summary for tests.

    The summary holds atomic integers: `balances[name][symbol] = (balance, locked)` for
    every named account (users, `fees`, `external`), the trades as (price_ticks,
    quantity_steps), the rejection code names, the audit findings and the state hash."""
    session = _Session()
    session.fund()
    sell = session.place("alice", Side.SELL, OrderType.LIMIT, "10", "150.00")
    resting_id = next(event.order_id for event in sell if isinstance(event, OrderAccepted))
    assert resting_id in session.state.orders
    session.place("bob", Side.BUY, OrderType.LIMIT, "4", "152.00")
    session.place("carol", Side.BUY, OrderType.MARKET, "3")
    session.place("bob", Side.BUY, OrderType.LIMIT, "1", "150.00", post_only=True)
    bid = session.place("bob", Side.BUY, OrderType.LIMIT, "2", "149.00", post_only=True)
    bid_id = next(event.order_id for event in bid if isinstance(event, OrderAccepted))
    session.cancel("bob", bid_id)

    console.print(
        "[bold]Keel offline demo[/bold]: one engine in this process, no command log, no network. "
        "Each command gets the next sequence number; the engine keeps integers, shown here as decimals."
    )
    console.print(_markets_table(session))
    console.print(_accounts_table(session))
    console.print(_orders_table(session))
    for rejection in session.rejections:
        console.print(
            f"Refused with code {rejection.code} {RejectCode(rejection.code).name}: "
            f"“{rejection.message}”. Nothing changed."
        )
    console.print(_trades_table(session))
    console.print(_balances_table(session))
    console.print(_ledger_table(session))

    findings = session.harness.audit()
    digest = state_hash(session.state).hex()
    if findings:
        console.print("[bold red]invariants: VIOLATED[/bold red]")
        for finding in findings:
            console.print(f"  {finding}")
    else:
        console.print("invariants: all hold (audit checked conservation, locks, ledger sums and the book)")
    console.print(f"state hash: {digest} (after command {session.state.seq_last})")

    state = session.state
    balances = {
        session.names[account_id]: {
            asset.symbol: (account.balances[asset.asset_id], account.locked[asset.asset_id]) for asset in state.assets
        }
        for account_id, account in state.accounts.items()
    }
    return {
        "accounts": dict(session.ids),
        "balances": balances,
        "trades": [(trade.price_ticks, trade.quantity_steps) for trade in session.events_of(TradeExecuted)],
        "rejections": [RejectCode(rejection.code).name for rejection in session.rejections],
        "ledger_entries": len(session.events_of(LedgerPosted)),
        "audit": findings,
        "state_hash": digest,
        "commands": state.seq_last,
    }
