"""The maintenance drill's two processes (issue 6): build the day, then reopen after it.

    python -m keel.testing.drill build  DIR OUT.json   # world, schedule, Closed, snapshot, picture
    python -m keel.testing.drill reopen DIR PLAN.json OUT.json  # verified open, picture, PostOnly window, Open

The log is SQLite unless KEEL_DRILL_BACKEND=postgres (with KEEL_DRILL_DSN and
KEEL_DRILL_SCHEMA); the history views follow the log's backend.

Each phase is a separate process opening the same data directory (a real stop and
restart). Time is a ManualClock carried across the restart (the reopen phase starts at
the last logged time), so the schedule's steps fall due exactly when the drill says.
The picture of every account (balances, locks, positions with sides, open orders,
deposits and withdrawals, and the complete history in the views) is written to OUT.json
for the test to compare field for field.

Imports: anything (a test tool).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from keel.cli.views_commands import open_node_with_views
from keel.core.commands import (
    CancelAllOrders,
    Command,
    CreateAccount,
    Credit,
    ListAsset,
    PlaceOrder,
    ReportDeposit,
    RequestWithdrawal,
    ScheduleMaintenance,
    SetIndexPrices,
    Tick,
    UpdateWithdrawal,
)
from keel.core.events import AccountCreated, CommandRejected, Event, TradeExecuted
from keel.core.markets import MarketState
from keel.core.transfers import WithdrawalAction
from keel.node.node import Node
from keel.sequencer.sequencer import Sequencer
from keel.testing.clock import ManualClock
from keel.views import ViewsWriter, open_store

MINUTE_NS = 60_000_000_000
USDC = 1_000_000
SOL = 1_000_000_000
ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
ACCOUNTS = 200


def _call(sequencer: Sequencer, command: Command) -> list[Event]:
    return sequencer.call(command).events


def _ok(sequencer: Sequencer, command: Command) -> list[Event]:
    events = _call(sequencer, command)
    rejected = [event for event in events if isinstance(event, CommandRejected)]
    assert not rejected, (command, rejected)
    return events


def _order(account: int, market: int, side: int, price: int, steps: int, **extra: Any) -> PlaceOrder:
    return PlaceOrder(
        seq=0,
        timestamp_ns=0,
        account_id=account,
        market_id=market,
        side=side,
        order_type=0,
        price_ticks=price,
        quantity_steps=steps,
        **extra,
    )


def picture(node: Node, views_store: Any) -> dict[str, Any]:
    """Everything a user could see about every account, engine state and history."""
    state = node.engine.state
    accounts: dict[str, Any] = {}
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        accounts[str(account_id)] = {
            "balances": list(account.balances),
            "locked": list(account.locked),
            "positions": {
                state.markets[market_id].symbol: {
                    "side": "long" if position.size_steps > 0 else "short" if position.size_steps < 0 else "flat",
                    "size": position.size_steps,
                    "entry_cost": position.cost_atomic,
                    "open_buys": position.open_buy_steps,
                    "open_sells": position.open_sell_steps,
                }
                for market_id, position in sorted(account.positions.items())
            },
            "open_orders": [
                [order.order_id, order.market_id, order.side, order.price_ticks, order.open_steps, order.filled_steps]
                for order in sorted(account.orders_open.values(), key=lambda order: order.order_id)
            ],
            "withdrawals": [
                [w.withdrawal_id, w.status, w.amount_atomic, w.tx_id]
                for w in state.withdrawals.values()
                if w.account_id == account_id
            ],
            "deposits": [
                [d.deposit_id, d.status, d.confirmations, d.amount_atomic]
                for d in state.deposits.values()
                if d.account_id == account_id
            ],
        }
    history = {table: [list(row) for row in rows] for table, rows in views_store.dump().items() if table != "position"}
    return {
        "accounts": accounts,
        "markets": {market.symbol: [int(market.state), market.open_interest_steps] for market in state.markets},
        "history": history,
    }


def _position_of(views: Any) -> int:
    return int(views.position().seq)


def build(data_dir: Path, out: Path) -> None:
    clock = ManualClock()
    from keel.node.config import Config
    from keel.node.node import init_data_dir

    config = Config(
        backend=os.environ.get("KEEL_DRILL_BACKEND", "sqlite"),
        dsn=os.environ.get("KEEL_DRILL_DSN", "log.sqlite"),
        schema=os.environ.get("KEEL_DRILL_SCHEMA", "keel"),
        writer="thread",
        tick_interval_ms=10**9,
        checkpoint_every=50,
        snapshot_every=10**9,
    )
    init_data_dir(data_dir, config, clock=clock)
    node, settings, _ = open_node_with_views(data_dir)
    writer = ViewsWriter(open_store(settings, create=False))
    sequencer = node.start(clock, listeners=[writer])
    state = node.engine.state
    rng = random.Random(6)
    usdc, sol = state.asset_ids_by_symbol["USDC"], state.asset_ids_by_symbol["SOL"]
    spot, perp = state.market_ids_by_symbol["SOL_USDC"], state.market_ids_by_symbol["SOL_USDC_PERP"]
    _ok(
        sequencer,
        ListAsset(
            seq=0,
            timestamp_ns=0,
            symbol="USDT",
            decimals=6,
            chain="Solana",
            confirmations_required=2,
            withdrawal_fee_atomic=USDC,
            withdrawal_auto_approve_atomic=100 * USDC,
            two_person_min_atomic=1_000 * USDC,
        ),
    )
    usdt = state.asset_ids_by_symbol["USDT"]
    btc, eth = state.asset_ids_by_symbol["BTC"], state.asset_ids_by_symbol["ETH"]
    _ok(
        sequencer,
        SetIndexPrices(seq=0, timestamp_ns=0, prices=((sol, 100 * USDC), (btc, 60_000 * USDC), (eth, 3_000 * USDC))),
    )
    accounts = []
    for index in range(ACCOUNTS):
        clock.advance(1_000_000)
        created = _ok(sequencer, CreateAccount(seq=0, timestamp_ns=0))
        account = next(event.account_id for event in created if isinstance(event, AccountCreated))
        accounts.append(account)
        thin = index % 5 == 0
        _ok(
            sequencer,
            Credit(
                seq=0, timestamp_ns=0, account_id=account, asset_id=usdc, amount_atomic=(1 if thin else 10_000) * USDC
            ),
        )
        _ok(sequencer, Credit(seq=0, timestamp_ns=0, account_id=account, asset_id=sol, amount_atomic=5 * SOL))
        confirmations = 0 if index % 10 == 3 else 2  # some deposits still in flight at the halt
        _ok(
            sequencer,
            ReportDeposit(
                seq=0,
                timestamp_ns=0,
                chain="Solana",
                tx_id=f"tx{index}",
                output_index=0,
                account_id=account,
                asset_id=usdt,
                amount_atomic=(500 + index) * USDC,
                confirmations=confirmations,
            ),
        )
    # Perpetuals: pairs go long and short; every fifth account is thin on USDC and holds
    # SOL as collateral, so a loss leaves it with a negative USDC balance (a margin debit).
    for left, right in zip(accounts[0::2], accounts[1::2], strict=True):
        steps = rng.randrange(50, 300)
        _ok(sequencer, _order(right, perp, 1, 10_000, steps))
        _ok(sequencer, _order(left, perp, 0, 10_000, steps))
    for account in accounts[::5][:10]:
        # thin accounts (USDC 1) close half their position at a loss to a rich bidder
        size = state.accounts[account].positions[perp].size_steps
        if size > 0:
            _ok(sequencer, _order(accounts[1], perp, 0, 9_700, size // 2))
            _ok(sequencer, _order(account, perp, 1, 9_700, size // 2))
    # Spot trades and resting orders on both sides (accounts with USDC to spare).
    rich = [account for index, account in enumerate(accounts) if index % 5]
    for account in rich[1:60:3]:
        _ok(sequencer, _order(account, spot, 1, rng.randrange(10_050, 10_500), rng.randrange(2, 50)))
        _ok(
            sequencer, _order(rich[rich.index(account) + 1], spot, 0, rng.randrange(9_500, 9_950), rng.randrange(2, 50))
        )
    for account in rich[60:80]:
        best_ask = min(state.books[spot].asks)
        _ok(sequencer, _order(account, spot, 0, best_ask, 3, time_in_force=1))
    for account in rich[80:90]:
        _ok(sequencer, _order(account, perp, 0, 9_900, 10))  # resting perp bids
    # Withdrawals: auto-approved and completed, waiting for an operator, cancelled.
    for n, account in enumerate([a for a in rich[100:] if state.accounts[a].balances[usdt] > 0][:30]):
        events = _ok(
            sequencer,
            RequestWithdrawal(
                seq=0,
                timestamp_ns=0,
                account_id=account,
                asset_id=usdt,
                amount_atomic=(50, 80, 250)[n % 3] * USDC,
                address=ADDRESS,
            ),
        )
        withdrawal_id = events[0].withdrawal_id  # type: ignore[union-attr]
        if n % 3 == 0:
            _ok(
                sequencer,
                UpdateWithdrawal(
                    seq=0,
                    timestamp_ns=0,
                    withdrawal_id=withdrawal_id,
                    action=WithdrawalAction.MARK_SENT,
                    operator="ops",
                    tx_id=f"sig{n}",
                ),
            )
            _ok(
                sequencer,
                UpdateWithdrawal(
                    seq=0,
                    timestamp_ns=0,
                    withdrawal_id=withdrawal_id,
                    action=WithdrawalAction.MARK_COMPLETED,
                    operator="ops",
                ),
            )
    _ok(sequencer, SetIndexPrices(seq=0, timestamp_ns=0, prices=((sol, 98 * USDC),)))
    # The schedule: Closed in 10 minutes for 2 hours, PostOnly for 10 minutes, then Open.
    start = clock.advance(MINUTE_NS)
    closed_at, post_only_at, open_at = start + 10 * MINUTE_NS, start + 130 * MINUTE_NS, start + 140 * MINUTE_NS
    _ok(
        sequencer,
        ScheduleMaintenance(
            seq=0,
            timestamp_ns=0,
            announcement="maintenance: closed 10:00-12:00 UTC, post-only 12:00-12:10",
            operator="ops",
            steps=(
                (closed_at, (), int(MarketState.CLOSED)),
                (post_only_at, (), int(MarketState.POST_ONLY)),
                (open_at, (), int(MarketState.OPEN)),
            ),
        ),
    )
    clock.set_ns(closed_at)
    _ok(sequencer, Tick(seq=0, timestamp_ns=0))
    assert all(market.state == MarketState.CLOSED for market in state.markets)
    refused_while_closed = [
        _call(sequencer, _order(accounts[2], spot, 0, 10_600, 1))[0],
        _call(sequencer, CancelAllOrders(seq=0, timestamp_ns=0, account_id=accounts[1], market_id=spot))[0],
    ]
    assert all(isinstance(event, CommandRejected) for event in refused_while_closed)
    last = sequencer.call(Tick(seq=0, timestamp_ns=0)).seq
    node.close()  # stops the sequencer: everything acknowledged is durable
    writer.wait_until(last, 30)
    writer.close()
    # snapshot and checkpoint, as the procedure does before stopping
    node = Node.open(data_dir)
    try:
        checkpoint_seq, _ = node.snapshot_now(clock)
        checkpoint_hash = node.engine.state_hash().hex()
    finally:
        node.close()
    node, settings, _ = open_node_with_views(data_dir)
    try:
        views = open_store(settings, create=False)
        out.write_text(
            json.dumps(
                {
                    "picture": picture(node, views),
                    "checkpoint_seq": checkpoint_seq,
                    "checkpoint_hash": checkpoint_hash,
                    "clock_ns": clock.now_ns(),
                    "post_only_at": post_only_at,
                    "open_at": open_at,
                    "closed_at": closed_at,
                    "refused_while_closed": [event.code for event in refused_while_closed],  # type: ignore[union-attr]
                    "accounts": accounts,
                }
            )
        )
        views.close()
    finally:
        node.close()


def reopen(data_dir: Path, plan_path: Path, out: Path) -> None:
    plan = json.loads(plan_path.read_text())
    node, settings, _ = open_node_with_views(data_dir)  # verified recovery: refuses on any mismatch
    views = open_store(settings, create=False)
    report = node.report
    result: dict[str, Any] = {
        "recovered_seq": report.last_seq,
        "recovered_hash": report.state_hash.hex(),
        "picture": picture(node, views),
    }
    views.close()
    clock = ManualClock(plan["clock_ns"])
    writer = ViewsWriter(open_store(settings, create=False))
    sequencer = node.start(clock, listeners=[writer])
    state = node.engine.state
    try:
        accounts = plan["accounts"]
        spot, perp = state.market_ids_by_symbol["SOL_USDC"], state.market_ids_by_symbol["SOL_USDC_PERP"]
        ids = state.asset_ids_by_symbol
        refreshed = ((ids["SOL"], 98 * USDC), (ids["BTC"], 60_000 * USDC), (ids["ETH"], 3_000 * USDC))
        clock.set_ns(plan["post_only_at"])
        blocked = _call(sequencer, Tick(seq=0, timestamp_ns=0))  # the perp's index is stale: blocked
        result["blocked_before_index"] = [type(event).__name__ for event in blocked]
        _ok(sequencer, SetIndexPrices(seq=0, timestamp_ns=0, prices=refreshed))
        _ok(sequencer, Tick(seq=0, timestamp_ns=0))
        result["states_in_window"] = sorted({int(market.state) for market in state.markets})
        best_ask = min(state.books[spot].asks)
        taker = _call(sequencer, _order(accounts[2], spot, 0, best_ask, 1))
        maker = _call(sequencer, _order(accounts[2], spot, 0, best_ask - 100, 1))
        perp_taker = _call(
            sequencer,
            PlaceOrder(
                seq=0, timestamp_ns=0, account_id=accounts[4], market_id=perp, side=0, order_type=1, quantity_steps=1
            ),
        )
        result["post_only_taker"] = [type(e).__name__ for e in taker]
        result["post_only_maker"] = [type(e).__name__ for e in maker]
        result["post_only_market"] = [type(e).__name__ for e in perp_taker]
        clock.set_ns(plan["open_at"])
        _ok(sequencer, Tick(seq=0, timestamp_ns=0))
        result["states_after"] = sorted({int(market.state) for market in state.markets})
        after_open = _call(sequencer, _order(accounts[2], spot, 0, best_ask, 1))
        result["open_taker_traded"] = any(isinstance(event, TradeExecuted) for event in after_open)
        last = sequencer.call(Tick(seq=0, timestamp_ns=0)).seq
    finally:
        node.close()
    writer.wait_until(last, 30)
    writer.close()
    out.write_text(json.dumps(result))


def main(argv: list[str]) -> int:
    phase, data_dir = argv[0], Path(argv[1])
    if phase == "build":
        build(data_dir, Path(argv[2]))
    elif phase == "reopen":
        reopen(data_dir, Path(argv[2]), Path(argv[3]))
    else:
        raise SystemExit(f"unknown phase {phase}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
