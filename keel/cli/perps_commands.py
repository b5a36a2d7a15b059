"""`keel index set` and `keel account show`: the operator's view of perpetuals and margin.

`index set` logs one `SetIndexPrices` command through the node of a data directory (so it
is durable, replayed and hashed like any other command) and reports what it did: the
index and mark of each perpetual on the re-priced assets and any liquidation it started.
It needs the directory to itself: while `keel serve` (or any other writer) holds the
directory's lock it refuses and says so, and nothing is logged.

`account show` is read-only: it recovers the state from the log without taking the lock,
so it works beside a serving node (it sees every durable record), and prints balances,
positions and the account's margin. Every figure comes from the core's own functions
(keel.core.perps); this module converts integers to decimals and does nothing else.

Exit codes: 0 done; 1 the directory cannot be used (missing, locked, corrupt) or the
engine refused the command; 2 a bad argument (malformed SYMBOL=PRICE, unknown asset or
account, a price that is not a positive decimal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from keel.cli.node_commands import DATA_HELP, console, fail, progress_bar
from keel.core.accounts import SYSTEM_ACCOUNT_NAMES, Account
from keel.core.commands import SetIndexPrices
from keel.core.errors import KeelError, Rejected
from keel.core.events import CommandRejected, LiquidationStarted, MarkPriceChanged
from keel.core.markets import Market, MarketKind
from keel.core.money import div_floor, format_decimal, parse_decimal
from keel.core.perps import (
    equity_atomic,
    initial_requirement_atomic,
    maintenance_requirement_atomic,
    unrealized_pnl_atomic,
)
from keel.core.positions import Position
from keel.core.state import ExchangeState
from keel.node.node import LOCK_NAME, DataDirError, Node

FRACTION_DECIMALS = 4  # margin fractions are shown to 1/10,000 (0.01%)


@dataclass(frozen=True, slots=True)
class IndexPrice:
    """One parsed SYMBOL=PRICE argument."""

    symbol: str
    asset_id: int
    text: str
    price_atomic: int


def _split_assignment(argument: str) -> tuple[str, str]:
    symbol, equals, price = argument.partition("=")
    if not equals or not symbol or not price:
        raise fail(f"expected SYMBOL=PRICE (e.g. SOL=142.5), not {argument!r}", 2)
    return symbol.strip().upper(), price.strip()


def _open_for_writing(data: Path) -> Node:
    """Open the directory with its lock, or explain why that is impossible (exit 1)."""
    try:
        return Node.open(data)
    except DataDirError as error:
        if LOCK_NAME in str(error):
            raise fail(
                f"{data} is in use by another keel process (a node serving it holds {LOCK_NAME}); "
                f"`keel index set` logs its command through its own node, so it needs the directory to itself: "
                f"stop the serving node and run it again"
            ) from None
        raise fail(str(error)) from None
    except (KeelError, OSError, ValueError) as error:  # a corrupt log, a database down: a message
        raise fail(str(error)) from None


def parse_index_prices(state: ExchangeState, arguments: list[str]) -> list[IndexPrice]:
    """Return the SYMBOL=PRICE arguments as prices in margin-asset atomic units per whole unit.

    Exits with code 2 naming the first argument that is not usable."""
    margin_asset_id = state.margin_asset_id
    if margin_asset_id < 0:
        raise fail("no perpetual market is listed, so there is no margin asset to give index prices in", 2)
    margin = state.assets[margin_asset_id]
    prices: list[IndexPrice] = []
    for argument in arguments:
        symbol, text = _split_assignment(argument)
        asset_id = state.asset_ids_by_symbol.get(symbol)
        if asset_id is None:
            listed = ", ".join(asset.symbol for asset in state.assets)
            raise fail(f"unknown asset {symbol} (listed: {listed})", 2)
        if asset_id == margin_asset_id:
            raise fail(f"{symbol} is the margin asset: prices are in {symbol}, so its own price is always 1", 2)
        if any(price.asset_id == asset_id for price in prices):
            raise fail(f"{symbol} is priced twice", 2)
        try:
            price_atomic = parse_decimal(text, margin.decimals, field=f"{symbol} price")
        except Rejected as rejected:
            raise fail(f"{rejected.message} (a price in {margin.symbol}, e.g. {symbol}=142.5)", 2) from None
        if price_atomic <= 0:
            raise fail(f"{symbol} price must be positive, got {text}", 2)
        prices.append(IndexPrice(symbol, asset_id, text, price_atomic))
    return prices


def _price_text(state: ExchangeState, market: Market, ticks: int) -> str:
    return format_decimal(ticks * market.tick_atomic, state.assets[market.quote_asset_id].decimals)


def _margin_text(state: ExchangeState, amount_atomic: int) -> str:
    return format_decimal(amount_atomic, state.assets[state.margin_asset_id].decimals)


def _asset_text(state: ExchangeState, asset_id: int, amount_atomic: int) -> str:
    return format_decimal(amount_atomic, state.assets[asset_id].decimals)


def index_set(
    prices: list[str] = typer.Argument(..., metavar="SYMBOL=PRICE...", help="Index prices, e.g. SOL=142.5 BTC=97000."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Set index prices (in the margin asset, USDC by default) as one logged SetIndexPrices command.

    Prints the index and mark of each perpetual on those assets and any liquidation it caused."""
    node = _open_for_writing(data)
    try:
        state = node.engine.state
        parsed = parse_index_prices(state, prices)  # decide before anything is logged
        command = SetIndexPrices(
            seq=0, timestamp_ns=0, prices=tuple((price.asset_id, price.price_atomic) for price in parsed)
        )
        try:
            outcome = node.start().call(command)
        except KeelError as error:
            raise fail(f"the node could not log the command: {error}") from None
    finally:
        node.close()  # the sequencer stops once the command is durable
    first = outcome.events[0] if outcome.events else None
    if isinstance(first, CommandRejected):
        raise fail(f"the engine refused the index prices (code {first.code}): {first.message}")
    margin_symbol = state.assets[state.margin_asset_id].symbol
    changed = {event.market_id for event in outcome.events if isinstance(event, MarkPriceChanged)}
    asset_ids = {price.asset_id for price in parsed}
    markets = [
        market for market in state.markets if market.kind == MarketKind.PERP and market.base_asset_id in asset_ids
    ]
    liquidations = [event for event in outcome.events if isinstance(event, LiquidationStarted)]
    report: dict[str, Any] = {
        "seq": outcome.seq,
        "timestamp_ns": outcome.timestamp_ns,
        "prices": {price.symbol: _margin_text(state, price.price_atomic) for price in parsed},
        "markets": [
            {
                "symbol": market.symbol,
                "index": _price_text(state, market, market.index_ticks),
                "mark": _price_text(state, market, market.mark_ticks),
                "changed": market.market_id in changed,
            }
            for market in markets
        ],
        "liquidations": [
            {
                "account_id": event.account_id,
                "equity": _margin_text(state, event.equity_atomic),
                "maintenance": _margin_text(state, event.maintenance_atomic),
            }
            for event in liquidations
        ],
    }
    if json_output:
        typer.echo(json.dumps(report))
        return
    console.print(
        f"seq {outcome.seq}: index price "
        + ", ".join(f"{symbol} {price} {margin_symbol}" for symbol, price in report["prices"].items()),
        highlight=False,
    )
    if markets:
        table = Table("perpetual", f"index ({margin_symbol})", f"mark ({margin_symbol})", "mark changed")
        for row in report["markets"]:
            table.add_row(row["symbol"], row["index"], row["mark"], "yes" if row["changed"] else "no")
        console.print(table)
    else:
        console.print("no perpetual is listed on these assets (the index still values them as collateral)")
    if not liquidations:
        console.print("no account fell below its maintenance margin")
        return
    table = Table("account", f"equity ({margin_symbol})", f"maintenance margin ({margin_symbol})")
    for row in report["liquidations"]:
        table.add_row(str(row["account_id"]), row["equity"], row["maintenance"])
    console.print(f"[bold red]{len(liquidations)} liquidation(s) started[/]", highlight=False)
    console.print(table)


def _entry_price_ticks(position: Position, market: Market) -> int:
    # |cost| / |size| in ticks, to the nearest tick (halves up): display only (perps.py).
    per_tick = abs(position.size_steps) * market.lot_atomic
    return div_floor(2 * abs(position.cost_atomic) + per_tick, 2 * per_tick)


def _fraction_text(numerator: int, denominator: int) -> str:
    # Rounded down to FRACTION_DECIMALS places; display only (the engine compares the integers).
    return format_decimal(div_floor(numerator * 10**FRACTION_DECIMALS, denominator), FRACTION_DECIMALS)


def account_report(state: ExchangeState, account: Account) -> dict[str, Any]:
    """Return the account's balances, positions and margin as decimal strings (one dict for
    both the table and --json). Assets shown: those with a balance or lock, and the margin asset."""
    margin_asset_id = state.margin_asset_id
    balances = [
        {
            "asset": asset.symbol,
            "balance": _asset_text(state, asset.asset_id, account.balances[asset.asset_id]),
            "locked": _asset_text(state, asset.asset_id, account.locked[asset.asset_id]),
            "available": _asset_text(state, asset.asset_id, account.available(asset.asset_id)),
        }
        for asset in state.assets
        if account.balances[asset.asset_id] or account.locked[asset.asset_id] or asset.asset_id == margin_asset_id
    ]
    report: dict[str, Any] = {
        "account_id": account.account_id,
        "name": SYSTEM_ACCOUNT_NAMES.get(account.account_id, "user"),
        "seq": state.seq_last,
        "balances": balances,
        "positions": [],
        "margin": None,
    }
    if margin_asset_id < 0:
        return report  # no perpetual is listed: there is no margin to show
    notional_atomic = 0
    for market_id in sorted(account.positions):
        position = account.positions[market_id]
        market = state.markets[market_id]
        base_decimals = state.assets[market.base_asset_id].decimals
        size = position.size_steps
        notional_atomic += abs(size) * market.mark_ticks * market.lot_atomic
        report["positions"].append(
            {
                "market": market.symbol,
                "side": "Long" if size > 0 else "Short" if size < 0 else "Flat",
                "size": format_decimal(size * market.step_atomic, base_decimals),
                "entry_price": _price_text(state, market, _entry_price_ticks(position, market)) if size else None,
                "mark": _price_text(state, market, market.mark_ticks),
                "unrealized_pnl": _margin_text(state, unrealized_pnl_atomic(position, market) if size else 0),
                "realized_pnl": _margin_text(state, position.realized_pnl_atomic),
                "funding": _margin_text(state, position.funding_atomic),
                "open_buys": format_decimal(position.open_buy_steps * market.step_atomic, base_decimals),
                "open_sells": format_decimal(position.open_sell_steps * market.step_atomic, base_decimals),
            }
        )
    equity = equity_atomic(state, account)
    initial = initial_requirement_atomic(state, account)
    maintenance = maintenance_requirement_atomic(state, account)
    report["margin"] = {
        "asset": state.assets[margin_asset_id].symbol,
        "equity": _margin_text(state, equity),
        "initial": _margin_text(state, initial),
        "maintenance": _margin_text(state, maintenance),
        "headroom": _margin_text(state, equity - initial),
        "position_notional": _margin_text(state, notional_atomic),
        "margin_fraction": _fraction_text(equity, notional_atomic) if notional_atomic else None,
        "initial_fraction": _fraction_text(initial, notional_atomic) if notional_atomic else None,
        "maintenance_fraction": _fraction_text(maintenance, notional_atomic) if notional_atomic else None,
        "below_maintenance": notional_atomic > 0 and equity < maintenance,
        "leverage_limit": account.leverage_limit or None,  # set by the user (PATCH /api/v1/account)
    }
    return report


def _print_account(report: dict[str, Any]) -> None:
    name = report["name"]
    console.print(
        f"account {report['account_id']}" + ("" if name == "user" else f" ({name})") + f" at seq {report['seq']}",
        highlight=False,
    )
    balances = Table("asset", "balance", "locked", "available", title="Balances", title_justify="left")
    for row in report["balances"]:
        balances.add_row(row["asset"], row["balance"], row["locked"], row["available"])
    console.print(balances)
    margin = report["margin"]
    if margin is None:
        console.print("no perpetual market is listed: no margin to show")
        return
    asset = margin["asset"]
    if report["positions"]:
        positions = Table(
            "market",
            "side",
            "size",
            "entry price",
            "mark",
            f"unrealized PnL ({asset})",
            f"realized PnL ({asset})",
            f"funding ({asset})",
            "open buys",
            "open sells",
            title="Positions",
            title_justify="left",
        )
        for row in report["positions"]:
            positions.add_row(
                row["market"],
                row["side"],
                row["size"].lstrip("-"),
                row["entry_price"] or "-",
                row["mark"],
                row["unrealized_pnl"],
                row["realized_pnl"],
                row["funding"],
                row["open_buys"],
                row["open_sells"],
            )
        console.print(positions)
    else:
        console.print("no positions and no open perpetual orders")
    summary = Table("", asset, title="Margin", title_justify="left", show_header=False)
    summary.add_row("equity", margin["equity"])
    summary.add_row("initial requirement", margin["initial"])
    summary.add_row("maintenance requirement", margin["maintenance"])
    summary.add_row("headroom (equity - initial)", margin["headroom"])
    summary.add_row("leverage limit", f"{margin['leverage_limit']}x" if margin["leverage_limit"] else "none")
    summary.add_row("position notional at the mark", margin["position_notional"])
    if margin["margin_fraction"] is not None:
        summary.add_row(
            "margin fraction (equity / notional)",
            f"{margin['margin_fraction']} (initial {margin['initial_fraction']}, "
            f"maintenance {margin['maintenance_fraction']})",
        )
    else:
        summary.add_row("margin fraction", "- (no position)")
    console.print(summary)
    if margin["below_maintenance"]:
        console.print(
            "[bold red]below maintenance margin[/]: the engine liquidates such an account after every command, "
            "so this should never be seen; run `keel verify --data DIR` and report it"
        )


def account_show(
    account_id: int = typer.Argument(..., help="The account's id."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show an account: balances, positions and margin (read-only: works beside a serving node)."""
    try:
        with progress_bar("recovering", not json_output) as progress:
            node = Node.open(data, read_only=True, progress=progress)
    except (KeelError, OSError, ValueError) as error:  # a missing directory, a corrupt log: a message
        raise fail(str(error)) from None
    try:
        state = node.engine.state
        account = state.accounts.get(account_id)
        if account is None:
            users = state.account_id_next - 1
            known = f"accounts 1 to {users} exist" if users else "no user account exists yet"
            raise fail(f"no account {account_id} ({known})", 2)
        report = account_report(state, account)
    finally:
        node.close()
    if json_output:
        typer.echo(json.dumps(report))
        return
    _print_account(report)


def register(app: typer.Typer) -> None:
    """Add `keel index set` and `keel account show` to the `keel` app (after the `account` group exists,
    `account show` joins it beside `account create`)."""
    index_app = typer.Typer(help="Index prices of assets (they drive the marks of perpetuals).", no_args_is_help=True)
    index_app.command("set")(index_set)
    app.add_typer(index_app, name="index")
    for group in app.registered_groups:
        if group.name == "account" and group.typer_instance is not None:
            group.typer_instance.command("show")(account_show)
            return
    account_app = typer.Typer(help="User accounts.", no_args_is_help=True)
    account_app.command("show")(account_show)
    app.add_typer(account_app, name="account")
