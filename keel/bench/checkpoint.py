"""`keel bench checkpoint`: what a checkpoint's state hash costs on a large state.

Builds, through `Engine.apply`, a state with N funded accounts and M resting orders on
SOL_USDC (bids below 100, asks above), hashes it once (the first hash after a bulk
load touches every account), then runs intervals of K commands (placements at the
touch that trade, placements that rest, cancels) and times `Engine.state_hash()` after
each: the pause a checkpoint costs the engine. As the sequencer does, the hash is
refreshed `--refreshes` times within each interval (default 2, as keel.toml's
`hash_refreshes`; 0 times the whole interval's hashing at the checkpoint); the
refreshes are timed too. It also times one full recompute
(`canonical.state_hash`, what `keel verify --full` compares against) and checks the two
agree.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

import msgspec

from keel.core import canonical
from keel.core.commands import CancelOrder, Command, CreateAccount, Credit, PlaceOrder
from keel.core.engine import Engine
from keel.core.events import OrderAccepted
from keel.testing.harness import Harness


def _stamp(engine: Engine) -> dict[str, int]:
    # Time is the seq in microseconds: it never goes backwards, whatever came before.
    seq = engine.state.seq_last + 1
    return {"seq": seq, "timestamp_ns": max(seq * 1_000, engine.state.timestamp_ns_last)}


def build(accounts: int, orders: int, progress: Any = None) -> tuple[Engine, list[int]]:
    """Return an engine with `accounts` funded accounts and `orders` resting orders, and the order ids."""
    harness = Harness()
    harness.list_defaults()
    engine = harness.engine
    usdc, sol = harness.asset("USDC"), harness.asset("SOL")
    market = harness.market("SOL_USDC")
    apply = engine.apply
    for index in range(accounts):
        apply(CreateAccount(**_stamp(engine)))
        account_id = index + 1
        apply(Credit(**_stamp(engine), account_id=account_id, asset_id=usdc, amount_atomic=10**12))
        apply(Credit(**_stamp(engine), account_id=account_id, asset_id=sol, amount_atomic=10**12))
        if progress is not None and index % 100_000 == 0:
            progress(index, accounts)
    rng = random.Random(7)
    order_ids: list[int] = []
    for index in range(orders):
        side = index % 2
        price = rng.randint(9_000, 9_990) if side == 0 else rng.randint(10_010, 11_000)
        stamp = _stamp(engine)
        events = apply(
            PlaceOrder(
                seq=stamp["seq"],
                timestamp_ns=stamp["timestamp_ns"],
                account_id=rng.randint(1, accounts),
                market_id=market,
                side=side,
                order_type=0,
                price_ticks=price,
                quantity_steps=rng.randint(1, 100),
            )
        )
        order_ids.extend(event.order_id for event in events if isinstance(event, OrderAccepted))
    return engine, order_ids


def bench_checkpoint(accounts: int, orders: int, interval: int, intervals: int, refreshes: int = 2) -> dict[str, Any]:
    started = time.perf_counter()
    engine, order_ids = build(accounts, orders)
    built = time.perf_counter() - started
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    engine.state_hash()
    first_hash_s = time.perf_counter() - started
    rng = random.Random(11)
    state = engine.state
    timings_ms: list[float] = []
    refresh_ms: list[float] = []
    for _ in range(intervals):
        commands: list[Command] = []
        for _ in range(interval):
            roll = rng.random()
            account_id = rng.randint(1, accounts)
            if roll < 0.3 and state.orders:
                order_id = order_ids[rng.randrange(len(order_ids))]
                order = state.orders.get(order_id)
                if order is not None:
                    commands.append(
                        CancelOrder(seq=0, timestamp_ns=0, account_id=order.account_id, market_id=0, order_id=order_id)
                    )
                    continue
            side = rng.randint(0, 1)
            crossing = roll > 0.85
            if side == 0:
                price = 10_020 if crossing else rng.randint(9_000, 9_990)
            else:
                price = 9_980 if crossing else rng.randint(10_010, 11_000)
            commands.append(
                PlaceOrder(
                    seq=0,
                    timestamp_ns=0,
                    account_id=account_id,
                    market_id=0,
                    side=side,
                    order_type=0,
                    price_ticks=price,
                    quantity_steps=rng.randint(1, 20),
                    time_in_force=1 if crossing else 0,
                )
            )
        refresh_every = max(1, interval // (refreshes + 1))
        for index, command in enumerate(commands, start=1):
            engine.apply(msgspec.structs.replace(command, **_stamp(engine)))
            if refreshes and index % refresh_every == 0 and index // refresh_every <= refreshes:
                started = time.perf_counter()
                engine.refresh_hash()
                refresh_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        engine.state_hash()
        timings_ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    full = canonical.state_hash(state)
    full_s = time.perf_counter() - started
    return {
        "accounts": accounts,
        "resting_orders": len(state.orders),
        "interval_commands": interval,
        "intervals": intervals,
        "refreshes_per_interval": refreshes,
        "checkpoint_hash_ms_median": round(statistics.median(timings_ms), 2),
        "checkpoint_hash_ms_max": round(max(timings_ms), 2),
        "refresh_ms_median": round(statistics.median(refresh_ms), 2) if refresh_ms else None,
        "refresh_ms_max": round(max(refresh_ms), 2) if refresh_ms else None,
        "hashing_ms_per_interval": round((sum(timings_ms) + sum(refresh_ms)) / intervals, 2),
        "first_hash_after_bulk_load_s": round(first_hash_s, 2),
        "full_recompute_s": round(full_s, 2),
        "incremental_equals_full": full == engine.state_hash(),
        "build_s": round(built, 1),
    }
