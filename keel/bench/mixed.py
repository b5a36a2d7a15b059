"""`keel bench engine --mixed`: spot and perpetuals together through the real `Engine.apply`.

The exchange: USDC and 50 assets A00..A49; a perpetual on each (A00_USDC_PERP..., listed
with `ListMarket kind=PERP`, so an account can hold 50 positions) and spot markets on the
first five (A00_USDC...). Every market has a tick of 0.01 USDC and a step of 0.01, fees
2 and 5 bps; the perpetuals have the default margin functions (initial 2%, maintenance
1.25% at these sizes), hourly funding capped at 1%. 10,000 accounts are funded first: 99
in 100 with 1,000,000 USDC and 10,000 of each spot asset, and 1 in 100, the *leveraged*
accounts, with 100 USDC only.

The flow (a seeded `random.Random`: generated here, never in keel/core) is made of client
operations (ops) and, between them, the commands a node injects:

- an op is spot (40%) or perpetual (60%), in a market and for an account drawn
  uniformly; it is a resting limit order behind the fair price (50%), an aggressive order
  (15%: a market order by quantity or a limit order through the fair price, which trades
  and may rest) or a cancel by client id of an earlier order of the same kind (35%;
  refused when that order has filled already). Quantities are 1 to 100 steps; every
  order uses self-trade prevention ALLOW (accounts are drawn at random, as in the spot
  benchmark). A leveraged account's perpetual op is always a market order of 200 to 500
  steps in its own direction on its own market, so it soon holds a position at up to 50x
  (orders beyond its initial margin are refused) and is liquidated when its mark moves
  against it; its spot ops go to its neighbour, a funded account;
- every 2,000 ops a `SetIndexPrices` moves 5 random assets by up to 0.5% (a random walk
  of the fair price, which the orders follow);
- every 10,000 ops a `Tick`. Read as an exchange doing 10,000 ops a second, that is the
  node's one Tick a second and each asset re-priced every two seconds. Each Tick moves
  exchange time on by 6 minutes, though, so that every tenth one crosses an hourly
  funding time and pays funding in all 50 perpetuals (time is compressed for funding).

ops/s counts client ops; commands/s counts every command applied (ops, index updates and
Ticks). As in `keel bench engine`, commands are built before the clock starts, the timed
loop is `apply`, a look at the events (a rejection, a liquidation) and the incremental
state hash about every 10,000 commands; each run is a fresh process; the median is
reported. Index updates and Ticks are also timed one by one. The same generator without
perpetual ops and index updates (the spot-only flow, same accounts, markets and Ticks)
runs beside it for the ratio. After the clock stops each run checks
`keel.core.invariants.audit` and that the incremental state hash equals a full recompute;
runs use different PYTHONHASHSEEDs and must end in the same state hash.

The margin check is timed apart (`margin` workers, fresh processes too): in a state of N
accounts holding about five positions each (N is a tenth of the accounts, then all of
them), `keel.core.perps.check_order_margin` for one more buy step by an account holding
1, 10 and 50 positions, and a whole resting perpetual `PlaceOrder` by the same accounts;
and, since the engine looks for accounts to liquidate at every index update and Tick,
one of each is timed at N accounts too.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

from keel.core import canonical
from keel.core.commands import (
    CancelOrder,
    Command,
    CreateAccount,
    Credit,
    ListAsset,
    ListMarket,
    PlaceOrder,
    SetIndexPrices,
    Tick,
)
from keel.core.engine import Engine
from keel.core.events import CommandRejected, FundingSettled, LiquidationStarted
from keel.core.invariants import audit
from keel.core.markets import MarketKind
from keel.core.orders import OrderType, SelfTradePrevention
from keel.core.perps import check_order_margin

ACCOUNTS = 10_000
PERP_MARKETS = 50
SPOT_MARKETS = 5
LEVERAGED_EVERY = 100  # every 100th account is a leveraged one
USDC_DECIMALS = 6
BASE_DECIMALS = 8
TICK_ATOMIC = 10_000  # 0.01 USDC
STEP_ATOMIC = 1_000_000  # 0.01 of a base unit: one lot is 100 atomic USDC
RICH_USDC_ATOMIC = 10**12  # 1,000,000 USDC
RICH_BASE_ATOMIC = 10**12  # 10,000 units of each spot asset
LEVERAGED_USDC_ATOMIC = 100 * 10**USDC_DECIMALS
SPOT_SHARE_PERCENT = 40
INDEX_EVERY = 2_000  # ops between index updates
INDEX_ASSETS_PER_UPDATE = 5
INDEX_STEP_BPS_MAX = 50
TICK_EVERY = 10_000  # ops between Ticks
TICK_NS = 360 * 10**9  # 6 minutes of exchange time per Tick
FUNDING_INTERVAL_NS = 3_600 * 10**9
CHECKPOINT_EVERY = 10_000
MARGIN_POSITIONS = (1, 10, 50)
BACKGROUND_POSITIONS = 5  # positions of every account in the margin workers' states

_USDC = 0
_ALLOW = int(SelfTradePrevention.ALLOW)
_LIMIT = int(OrderType.LIMIT)
_MARKET = int(OrderType.MARKET)


def asset_id_of(index: int) -> int:
    """Asset A<index>'s id (USDC is 0)."""
    return 1 + index


def perp_market_id(index: int) -> int:
    return index


def spot_market_id(index: int) -> int:
    return PERP_MARKETS + index


def start_price_ticks(index: int) -> int:
    """Asset A<index> starts at 100.00 + index (in ticks of 0.01 USDC)."""
    return 10_000 + 100 * index


def is_leveraged(account_id: int) -> bool:
    return account_id % LEVERAGED_EVERY == 0


class Stamped(TypedDict):
    seq: int
    timestamp_ns: int


class Stamp:
    """Sequence numbers and timestamps for generated commands: time is the seq in ns plus
    TICK_NS per Tick so far, so it never goes backwards."""

    def __init__(self) -> None:
        self.seq = 0
        self.ticks = 0

    def next(self) -> Stamped:
        self.seq += 1
        return {"seq": self.seq, "timestamp_ns": self.seq + self.ticks * TICK_NS}


def listing_commands(stamp: Stamp) -> list[Command]:
    """USDC and A00..A49; a perpetual on each asset, spot markets on the first five."""
    commands: list[Command] = [ListAsset(**stamp.next(), symbol="USDC", decimals=USDC_DECIMALS)]
    commands += [
        ListAsset(**stamp.next(), symbol=f"A{index:02d}", decimals=BASE_DECIMALS, collateral_weight_bps=9_000)
        for index in range(PERP_MARKETS)
    ]
    grid = {
        "quote_asset_id": _USDC,
        "tick_atomic": TICK_ATOMIC,
        "step_atomic": STEP_ATOMIC,
        "quantity_min_steps": 1,
        "quantity_max_steps": 0,
        "notional_min_atomic": 0,
        "fee_maker_bps": 2,
        "fee_taker_bps": 5,
    }
    for index in range(PERP_MARKETS):
        commands.append(
            ListMarket(
                **stamp.next(),
                symbol=f"A{index:02d}_USDC_PERP",
                base_asset_id=asset_id_of(index),
                kind=int(MarketKind.PERP),
                imf_base_e9=20_000_000,  # 2%
                imf_factor_e9=127_500,
                mmf_base_e9=12_500_000,  # 1.25%
                mmf_factor_e9=76_500,
                funding_interval_ns=FUNDING_INTERVAL_NS,
                funding_cap_bps=100,
                **grid,
            )
        )
    for index in range(SPOT_MARKETS):
        commands.append(
            ListMarket(**stamp.next(), symbol=f"A{index:02d}_USDC", base_asset_id=asset_id_of(index), **grid)
        )
    return commands


def setup_commands(accounts: int, stamp: Stamp) -> list[Command]:
    """Listing, `accounts` funded accounts and the first index price of every asset."""
    commands = listing_commands(stamp)
    for account_id in range(1, accounts + 1):
        commands.append(CreateAccount(**stamp.next()))
        if is_leveraged(account_id):
            commands.append(
                Credit(**stamp.next(), account_id=account_id, asset_id=_USDC, amount_atomic=LEVERAGED_USDC_ATOMIC)
            )
            continue
        commands.append(Credit(**stamp.next(), account_id=account_id, asset_id=_USDC, amount_atomic=RICH_USDC_ATOMIC))
        for index in range(SPOT_MARKETS):
            commands.append(
                Credit(
                    **stamp.next(), account_id=account_id, asset_id=asset_id_of(index), amount_atomic=RICH_BASE_ATOMIC
                )
            )
    commands.append(
        SetIndexPrices(
            **stamp.next(),
            prices=tuple((asset_id_of(index), start_price_ticks(index) * TICK_ATOMIC) for index in range(PERP_MARKETS)),
        )
    )
    return commands


@dataclass
class Flow:
    """A generated flow: segments of plain ops, with each index update and Tick a segment of its own."""

    segments: list[tuple[bool, list[Command]]] = field(default_factory=list)
    ops: int = 0
    spot_ops: int = 0
    perp_ops: int = 0
    index_updates: int = 0
    ticks: int = 0

    @property
    def commands(self) -> int:
        return self.ops + self.index_updates + self.ticks


def generate_flow(n: int, seed: int, accounts: int, stamp: Stamp, *, perps: bool = True) -> Flow:
    """Return n ops (spot and, with `perps`, perpetual) with the index updates and Ticks between them."""
    rng = random.Random(seed)
    fair = [start_price_ticks(index) for index in range(PERP_MARKETS)]
    # Orders that may still be open, per kind: (account, market, client id); cancels pick from them.
    open_spot: list[tuple[int, int, int]] = []
    open_perp: list[tuple[int, int, int]] = []
    client_id = 0
    flow = Flow()
    plain: list[Command] = []
    for op in range(n):
        if op and op % INDEX_EVERY == 0 and perps:
            moved = sorted(rng.sample(range(PERP_MARKETS), INDEX_ASSETS_PER_UPDATE))
            for index in moved:
                step = fair[index] * rng.randint(-INDEX_STEP_BPS_MAX, INDEX_STEP_BPS_MAX) // 10_000
                fair[index] = max(100, fair[index] + step)
            flow.segments.append((False, plain))
            plain = []
            prices = tuple((asset_id_of(index), fair[index] * TICK_ATOMIC) for index in moved)
            flow.segments.append((True, [SetIndexPrices(**stamp.next(), prices=prices)]))
            flow.index_updates += 1
        if op and op % TICK_EVERY == 0:
            flow.segments.append((False, plain))
            plain = []
            stamp.ticks += 1
            flow.segments.append((True, [Tick(**stamp.next())]))
            flow.ticks += 1
        is_perp = perps and rng.randrange(100) >= SPOT_SHARE_PERCENT
        account_id = rng.randint(1, accounts)
        if is_perp:
            flow.perp_ops += 1
            if is_leveraged(account_id):
                index = (account_id // LEVERAGED_EVERY) % PERP_MARKETS
                plain.append(
                    PlaceOrder(
                        **stamp.next(),
                        account_id=account_id,
                        market_id=perp_market_id(index),
                        side=(account_id // LEVERAGED_EVERY) % 2,
                        order_type=_MARKET,
                        quantity_steps=rng.randint(200, 500),
                        self_trade_prevention=_ALLOW,
                    )
                )
                continue
            index = rng.randrange(PERP_MARKETS)
            market_id = perp_market_id(index)
            pool = open_perp
        else:
            flow.spot_ops += 1
            if is_leveraged(account_id):  # it holds no spot assets: its neighbour trades instead
                account_id -= 1
            index = rng.randrange(SPOT_MARKETS)
            market_id = spot_market_id(index)
            pool = open_spot
        kind = rng.randrange(100)
        if kind < 35 and pool:
            position = rng.randrange(len(pool))
            owner, pool_market, pool_client = pool[position]
            pool[position] = pool[-1]
            pool.pop()
            plain.append(CancelOrder(**stamp.next(), account_id=owner, market_id=pool_market, client_id=pool_client))
            continue
        side = rng.randrange(2)
        quantity = rng.randint(1, 100)
        client_id += 1
        if kind < 85:  # resting, behind the fair price
            offset = rng.randint(1, 50)
            price = fair[index] - offset if side == 0 else fair[index] + offset
            order_type = _LIMIT
        elif kind < 93:  # through the fair price: trades with what rests there, may rest
            offset = rng.randint(0, 10)
            price = fair[index] + offset if side == 0 else fair[index] - offset
            order_type = _LIMIT
        else:
            price = 0
            order_type = _MARKET
        plain.append(
            PlaceOrder(
                **stamp.next(),
                account_id=account_id,
                market_id=market_id,
                side=side,
                order_type=order_type,
                price_ticks=price,
                quantity_steps=quantity,
                self_trade_prevention=_ALLOW,
                client_id=client_id if order_type == _LIMIT else -1,
            )
        )
        if order_type == _LIMIT:
            pool.append((account_id, market_id, client_id))
    flow.segments.append((False, plain))
    flow.ops = n
    return flow


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(values) * 1e3, 3), "max": round(max(values) * 1e3, 3)}


def run_flow_once(n: int, seed: int, accounts: int, perps: bool) -> dict[str, Any]:
    """Set up, generate and replay the flow once in this process; return timings, counts and the end state."""
    engine = Engine()
    stamp = Stamp()
    for command in setup_commands(accounts, stamp):
        events = engine.apply(command)
        assert type(events[0]) is not CommandRejected, events[0]
    flow = generate_flow(n, seed, accounts, stamp, perps=perps)
    engine.state_hash()  # the setup's hashing is not the flow's
    gc.collect()
    gc.freeze()  # setup objects are long-lived; keep the collector off them, as a node does
    apply = engine.apply
    state_hash = engine.state_hash
    rejected, liquidation, funding = CommandRejected, LiquidationStarted, FundingSettled
    rejects = liquidations = funding_rounds = 0
    index_seconds: list[float] = []
    tick_seconds: list[float] = []
    funding_tick_seconds: list[float] = []
    since_hash = 0
    clock = time.perf_counter
    started = clock()
    for special, segment in flow.segments:
        if special:
            command = segment[0]
            before = clock()
            events = apply(command)
            seconds = clock() - before
            if events and type(events[0]) is rejected:  # a Tick may have no events
                rejects += 1
            paid = 0
            for event in events:
                kind = type(event)
                if kind is liquidation:
                    liquidations += 1
                elif kind is funding:
                    paid += 1
            funding_rounds += paid
            if type(command) is Tick:
                (funding_tick_seconds if paid else tick_seconds).append(seconds)
            else:
                index_seconds.append(seconds)
        else:
            for command in segment:
                events = apply(command)
                if type(events[0]) is rejected:
                    rejects += 1
                for event in events:
                    if type(event) is liquidation:
                        liquidations += 1
        since_hash += len(segment)
        if since_hash >= CHECKPOINT_EVERY:
            state_hash()
            since_hash = 0
    elapsed = clock() - started
    incremental = state_hash()
    # ---- correctness, outside the timed part ----
    state = engine.state
    findings = audit(state)
    full = canonical.state_hash(state)
    positions = sum(len(by_account) for by_account in state.positions_by_market)
    return {
        "ops": flow.ops,
        "spot_ops": flow.spot_ops,
        "perp_ops": flow.perp_ops,
        "commands": flow.commands,
        "index_updates": flow.index_updates,
        "ticks": flow.ticks,
        "seconds": elapsed,
        "ops_per_s": flow.ops / elapsed,
        "commands_per_s": flow.commands / elapsed,
        "ops_per_s_excluding_index_and_ticks": flow.ops
        / (elapsed - sum(index_seconds) - sum(tick_seconds) - sum(funding_tick_seconds)),
        "rejects": rejects,
        "liquidations": liquidations,
        "funding_rounds": funding_rounds,
        "index_update_ms": _ms(index_seconds),
        "tick_ms": _ms(tick_seconds),
        "funding_tick_ms": _ms(funding_tick_seconds),
        "state_hash": incremental.hex(),
        "incremental_equals_full": incremental == full,
        "audit_findings": len(findings),
        "audit_first_findings": findings[:5],
        "end_state": {
            "trades": state.trade_id_next - 1,
            "open_orders": len(state.orders),
            "position_records": positions,
            "open_interest_steps": sum(market.open_interest_steps for market in state.markets),
            "ledger_entries": state.entry_id_next - 1,
        },
        "peak_rss_mb": _peak_rss_mb(),
    }


# ---- the margin check --------------------------------------------------------------------


def _trade(engine: Engine, stamp: Stamp, buyer: int, seller: int, market_id: int, price: int, steps: int) -> None:
    """Cross one perpetual trade: the seller rests, the buyer takes."""
    for account_id, side in ((seller, 1), (buyer, 0)):
        events = engine.apply(
            PlaceOrder(
                **stamp.next(),
                account_id=account_id,
                market_id=market_id,
                side=side,
                order_type=_LIMIT,
                price_ticks=price,
                quantity_steps=steps,
                self_trade_prevention=_ALLOW,
            )
        )
        assert type(events[0]) is not CommandRejected, events[0]


def build_margin_state(accounts: int, seed: int) -> tuple[Engine, Stamp, dict[int, int]]:
    """Return an engine with `accounts` funded accounts holding BACKGROUND_POSITIONS positions each, and
    probe accounts holding 1, 10 and 50 (positions -> account id)."""
    engine = Engine()
    stamp = Stamp()
    for command in setup_commands(accounts, stamp):
        engine.apply(command)
    rng = random.Random(seed)
    rich = [account_id for account_id in range(1, accounts + 1) if not is_leveraged(account_id)]
    for position in range(len(rich) * BACKGROUND_POSITIONS // 2):
        buyer, seller = rng.sample(rich, 2)
        index = position % PERP_MARKETS
        _trade(engine, stamp, buyer, seller, perp_market_id(index), start_price_ticks(index), rng.randint(1, 100))
    counterparty = accounts + 1
    probes: dict[int, int] = {}
    engine.apply(CreateAccount(**stamp.next()))
    engine.apply(Credit(**stamp.next(), account_id=counterparty, asset_id=_USDC, amount_atomic=RICH_USDC_ATOMIC))
    for count in MARGIN_POSITIONS:
        account_id = engine.state.account_id_next
        engine.apply(CreateAccount(**stamp.next()))
        engine.apply(Credit(**stamp.next(), account_id=account_id, asset_id=_USDC, amount_atomic=RICH_USDC_ATOMIC))
        for index in range(count):
            _trade(engine, stamp, account_id, counterparty, perp_market_id(index), start_price_ticks(index), 10)
        assert len(engine.state.accounts[account_id].positions) == count
        probes[count] = account_id
    return engine, stamp, probes


def _per_call_us(timings: Iterator[float], calls: int) -> float:
    return round(statistics.median(timings) / calls * 1e6, 3)


def run_margin_once(accounts: int, seed: int, calls: int, repeats: int) -> dict[str, Any]:
    """Time the margin check and a whole perpetual PlaceOrder at 1, 10 and 50 positions, and one
    index update and one Tick, in a state of `accounts` accounts."""
    engine, stamp, probes = build_margin_state(accounts, seed)
    state = engine.state
    gc.collect()
    gc.freeze()
    market = state.markets[perp_market_id(0)]
    clock = time.perf_counter
    check_us: dict[str, float] = {}
    place_us: dict[str, float] = {}
    for count, account_id in probes.items():
        account = state.accounts[account_id]

        def check_batches(account: Any = account) -> Iterator[float]:
            for _ in range(repeats):
                started = clock()
                for _ in range(calls):
                    check_order_margin(state, account, market, True, 1, False)  # a buy adds to a long
                yield clock() - started

        check_us[str(count)] = _per_call_us(check_batches(), calls)
        placed: list[float] = []
        for attempt in range(max(1, calls // 10) * repeats):
            order = PlaceOrder(
                **stamp.next(),
                account_id=account_id,
                market_id=perp_market_id(0),
                side=0,
                order_type=_LIMIT,
                price_ticks=start_price_ticks(0) - 500,  # rests: nothing is offered that low
                quantity_steps=1,
                self_trade_prevention=_ALLOW,
                client_id=attempt + 1,
            )
            started = clock()
            events = engine.apply(order)
            placed.append(clock() - started)
            assert type(events[0]) is not CommandRejected, events[0]
            engine.apply(
                CancelOrder(**stamp.next(), account_id=account_id, market_id=order.market_id, client_id=attempt + 1)
            )
        place_us[str(count)] = round(statistics.median(placed) * 1e6, 3)
    index_seconds: list[float] = []
    tick_seconds: list[float] = []
    for attempt in range(repeats * 2):
        price = (start_price_ticks(0) + (attempt % 2)) * TICK_ATOMIC
        command: Command = SetIndexPrices(**stamp.next(), prices=((asset_id_of(0), price),))
        started = clock()
        engine.apply(command)
        index_seconds.append(clock() - started)
        command = Tick(**stamp.next())  # no funding is due: marks and the liquidation check only
        started = clock()
        engine.apply(command)
        tick_seconds.append(clock() - started)
    assert not audit(state)
    return {
        "accounts": accounts,
        "position_records": sum(len(by_account) for by_account in state.positions_by_market),
        "margin_check_us": check_us,
        "place_order_us": place_us,
        "index_update_ms": round(statistics.median(index_seconds) * 1e3, 3),
        "tick_ms": round(statistics.median(tick_seconds) * 1e3, 3),
    }


# ---- the parent: fresh processes, medians ----------------------------------------------------


def _run_worker(arguments: list[str], hash_seed: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "keel.bench.mixed", "--worker", *arguments],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED=str(hash_seed)),
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def _consistent(runs: list[dict[str, Any]]) -> bool:
    return all(run["state_hash"] == runs[0]["state_hash"] and run["end_state"] == runs[0]["end_state"] for run in runs)


def _median_margin(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over fresh-process margin runs at one account count."""
    merged: dict[str, Any] = {"accounts": runs[0]["accounts"], "position_records": runs[0]["position_records"]}
    for table in ("margin_check_us", "place_order_us"):
        merged[table] = {key: round(statistics.median(run[table][key] for run in runs), 3) for key in runs[0][table]}
    for figure in ("index_update_ms", "tick_ms"):
        merged[figure] = round(statistics.median(run[figure] for run in runs), 3)
    return merged


def bench_mixed(n: int, runs: int, seed: int, accounts: int = ACCOUNTS) -> dict[str, Any]:
    """Run the mixed flow, the spot-only flow and the margin workers `runs` times each, in fresh processes.

    The mixed and spot-only runs alternate (mixed, spot-only, mixed, ...), so that a
    machine whose speed drifts during the invocation (a shared or throttled guest) moves
    both sides of the ratio alike; each pair's own ratio is reported too."""
    mixed: list[dict[str, Any]] = []
    spot: list[dict[str, Any]] = []
    for run in range(runs):
        mixed.append(_run_worker(["flow", "mixed", str(n), str(seed), str(accounts)], run + 1))
        spot.append(_run_worker(["flow", "spot", str(n), str(seed), str(accounts)], run + 1))
    margin_calls = 20_000 if n >= 100_000 else 500  # a tiny --n is a smoke test: keep it quick
    margin = [
        _median_margin(
            [_run_worker(["margin", str(count), str(seed), str(margin_calls), "5"], run + 1) for run in range(runs)]
        )
        for count in sorted({max(2, accounts // 10), accounts})
    ]
    ops = statistics.median(run["ops_per_s"] for run in mixed)
    spot_ops = statistics.median(run["ops_per_s"] for run in spot)
    first = mixed[0]
    worst = str(MARGIN_POSITIONS[-1])
    reproducible = _consistent(mixed) and _consistent(spot)
    incremental_equals_full = all(run["incremental_equals_full"] for run in mixed + spot)
    audit_ok = all(run["audit_findings"] == 0 for run in mixed + spot)
    return {
        "flow": f"generated mixed n={n} seed={seed} accounts={accounts}",
        "records": first["ops"],
        "commands": first["commands"],
        "runs": runs,
        "ops_per_s": round(ops),
        "ops_per_s_runs": [round(run["ops_per_s"]) for run in mixed],
        "commands_per_s": round(statistics.median(run["commands_per_s"] for run in mixed)),
        "ops_per_s_excluding_index_and_ticks": round(
            statistics.median(run["ops_per_s_excluding_index_and_ticks"] for run in mixed)
        ),
        "spot_only_ops_per_s": round(spot_ops),
        "spot_only_ops_per_s_runs": [round(run["ops_per_s"]) for run in spot],
        "mixed_over_spot_only": round(ops / spot_ops, 3),
        "mixed_over_spot_only_pairs": [
            round(one["ops_per_s"] / other["ops_per_s"], 3) for one, other in zip(mixed, spot, strict=True)
        ],
        "matches_expected": reproducible and incremental_equals_full and audit_ok,
        "reproducible": reproducible,
        "incremental_equals_full": incremental_equals_full,
        "audit_ok": audit_ok,
        "audit_first_findings": [finding for run in mixed + spot for finding in run["audit_first_findings"]][:5],
        "accounts": accounts,
        "spot_share": round(first["spot_ops"] / first["ops"], 3),
        "perp_share": round(first["perp_ops"] / first["ops"], 3),
        "index_updates": first["index_updates"],
        "ticks": first["ticks"],
        "funding_rounds": first["funding_rounds"],
        "liquidations": first["liquidations"],
        "rejects": first["rejects"],
        "index_update_ms": first["index_update_ms"],
        "tick_ms": first["tick_ms"],
        "funding_tick_ms": first["funding_tick_ms"],
        "margin_check_us_by_positions": margin[-1]["margin_check_us"],
        "margin_check_us_by_accounts": {str(run["accounts"]): run["margin_check_us"][worst] for run in margin},
        "place_order_us_by_positions": margin[-1]["place_order_us"],
        "index_update_ms_by_accounts": {str(run["accounts"]): run["index_update_ms"] for run in margin},
        "tick_ms_by_accounts": {str(run["accounts"]): run["tick_ms"] for run in margin},
        "margin": margin,
        "end_state": first["end_state"],
        "state_hash": first["state_hash"],
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in mixed), 1),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) == 6 and arguments[:2] == ["--worker", "flow"]:
        mode, n_text, seed_text, accounts_text = arguments[2:]
        print(json.dumps(run_flow_once(int(n_text), int(seed_text), int(accounts_text), mode == "mixed")))
    elif len(arguments) == 6 and arguments[:2] == ["--worker", "margin"]:
        accounts_text, seed_text, calls_text, repeats_text = arguments[2:]
        print(json.dumps(run_margin_once(int(accounts_text), int(seed_text), int(calls_text), int(repeats_text))))
    else:
        raise SystemExit("usage: python -m keel.bench.mixed --worker flow|margin ... (use `keel bench engine --mixed`)")
