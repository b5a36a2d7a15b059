"""Determinism: one command log gives the same events and state hash in every process.

A seeded generator builds a log of a few thousand commands (listings, accounts, credits,
limit and market orders of every kind, batches, cancels, ticks and checkpoints), applying
it in this process through a Harness. The log is written to a file and replayed by
`python -m keel.testing.replay` in fresh interpreters with PYTHONHASHSEED 0, 12345 and
random; each must print the same digest of all events, the same state and section hashes
and the same full-state image as this process. The Checkpoint commands in the log make
each replay check its state hash along the way, too.

Separately, section hashes are a multiset hash: they must not depend on the order in
which entities are visited or on the insertion history of the state's dicts.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.core import canonical
from keel.core.commands import (
    CancelAllOrders,
    CancelOrder,
    Credit,
    PlaceOrder,
    PlaceOrders,
    Tick,
)
from keel.core.events import CheckpointPassed, CommandRejected, Event, OrderAccepted, TradeExecuted, encode_events
from keel.core.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from keel.testing.harness import Harness
from keel.testing.replay import read_commands, replay, summarize, write_commands

SEED = 20_251_125
COMMANDS = 3_000
CHECKPOINT_EVERY = 250
MIDS = {"SOL_USDC": 10_000, "BTC_USDC": 600_000, "ETH_USDC": 300_000}
REPO = Path(__file__).resolve().parents[2]


def build_log(seed: int = SEED, commands: int = COMMANDS) -> Harness:
    """Return a Harness that applied a seeded pseudo-random sequence of commands."""
    rng = random.Random(seed)
    h = Harness()
    h.list_defaults()
    accounts = [h.new_account(USDC=5_000 * 10**6, SOL=50 * 10**9, BTC=10**7, ETH=2 * 10**8) for _ in range(6)]
    market_ids = [h.market(symbol) for symbol in MIDS]
    mids = list(MIDS.values())
    placed: list[tuple[int, int, int]] = []  # (account, market, order id) of accepted orders

    def order_fields(account_id: int) -> dict[str, Any]:
        index = rng.randrange(len(market_ids))
        mid = mids[index]
        side = rng.choice((Side.BUY, Side.SELL))
        fields: dict[str, Any] = {
            "account_id": account_id,
            "market_id": market_ids[index],
            "side": side,
            "self_trade_prevention": rng.choice(list(SelfTradePrevention)),
            "client_id": rng.choice((-1, -1, -1, rng.randrange(1, 20))),
        }
        kind = rng.random()
        if kind < 0.85:
            time_in_force = rng.choice((TimeInForce.GTC,) * 4 + (TimeInForce.IOC, TimeInForce.FOK))
            fields.update(
                order_type=OrderType.LIMIT,
                time_in_force=time_in_force,
                # mostly on the order's own side of the mid (resting), sometimes through it
                price_ticks=mid + (1 if side == Side.SELL else -1) * rng.randint(-6, 20),
                quantity_steps=rng.randint(1, 60),
                post_only=time_in_force == TimeInForce.GTC and rng.random() < 0.2,
            )
        elif kind < 0.94:
            fields.update(order_type=OrderType.MARKET, quantity_steps=rng.randint(1, 15))
        else:
            fields.update(order_type=OrderType.MARKET, quote_quantity_atomic=rng.randint(1, 100) * 1_000_000)
        return fields

    def remember(events: list[Event]) -> None:
        for event in events:
            if isinstance(event, OrderAccepted):
                placed.append((event.account_id, event.market_id, event.order_id))

    while h.state.seq_last < commands:
        seq = h.state.seq_last + 1
        if seq % CHECKPOINT_EVERY == 0:
            h.apply(h.engine.checkpoint_command(seq, seq * h.timestamp_step_ns))
            continue
        for index in range(len(mids)):  # the mids wander, so prices move and bands matter
            mids[index] += rng.choice((-1, 0, 0, 0, 0, 1)) * (1 + mids[index] // 100_000)
        account_id = rng.choice(accounts)
        roll = rng.random()
        if roll < 0.55:
            remember(h.submit(PlaceOrder, **order_fields(account_id)))
        elif roll < 0.65:
            items = tuple(
                PlaceOrder(seq=0, timestamp_ns=0, **order_fields(account_id)) for _ in range(rng.randint(1, 6))
            )
            remember(h.submit(PlaceOrders, account_id=account_id, orders=items))
        elif roll < 0.85 and placed:
            owner, market_id, order_id = rng.choice(placed)
            h.submit(CancelOrder, account_id=owner, market_id=market_id, order_id=order_id)
        elif roll < 0.9:
            h.submit(
                CancelOrder, account_id=account_id, market_id=rng.choice(market_ids), client_id=rng.randrange(1, 20)
            )
        elif roll < 0.93:
            h.submit(CancelAllOrders, account_id=account_id, market_id=rng.choice(market_ids))
        elif roll < 0.97:
            asset_id = rng.randrange(len(h.state.assets))
            h.submit(Credit, account_id=account_id, asset_id=asset_id, amount_atomic=rng.randint(0, 10**9))
        else:
            h.submit(Tick)
    return h


@pytest.fixture(scope="module")
def harness() -> Harness:
    return build_log()


@pytest.fixture(scope="module")
def expected(harness: Harness) -> dict[str, object]:
    digest = hashlib.sha256()
    for events in harness.events:
        digest.update(encode_events(events))
    return summarize(harness.engine, digest.hexdigest(), len(harness.log))


@pytest.fixture(scope="module")
def log_path(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("determinism") / "commands.bin")
    assert write_commands(path, harness.log) == len(harness.log)
    return path


def test_the_log_exercises_the_engine(harness: Harness) -> None:
    """The generated log is worth replaying: it trades, rejects and passes checkpoints."""
    events = [event for command_events in harness.events for event in command_events]
    assert len(harness.log) == COMMANDS
    assert sum(isinstance(event, TradeExecuted) for event in events) > 300
    assert sum(isinstance(event, CommandRejected) for event in events) > 100
    assert sum(isinstance(event, CheckpointPassed) for event in events) == COMMANDS // CHECKPOINT_EVERY
    assert len(harness.state.orders) > 20


def test_the_log_file_round_trips(harness: Harness, log_path: str) -> None:
    assert list(read_commands(log_path)) == harness.log


def test_replay_in_this_process_matches(log_path: str, expected: dict[str, object]) -> None:
    assert replay(read_commands(log_path)) == expected


@pytest.mark.parametrize("hash_seed", ["0", "12345", "random"])
def test_replay_in_a_fresh_process_matches(hash_seed: str, log_path: str, expected: dict[str, object]) -> None:
    """A fresh interpreter with another string hash seed reproduces events and hashes exactly."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-m", "keel.testing.replay", log_path],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == expected


def test_incremental_state_hash_matches_full_recompute(harness: Harness) -> None:
    assert harness.engine.section_hashes() == canonical.section_hashes(harness.state)
    assert harness.engine.state_hash() == canonical.state_hash(harness.state)


# ---- section hashes do not depend on visiting order or dict history ----------------------


def test_section_hash_is_independent_of_entity_order(harness: Harness) -> None:
    """Summing the entity digests of each section in shuffled order gives the section hash."""
    rng = random.Random(SEED)
    for section in canonical.SECTIONS:
        entities = list(canonical.iter_entities(harness.state, section))
        for _ in range(3):
            rng.shuffle(entities)
            total = sum(canonical.entity_digest(section, key, encoding) for key, encoding in entities)
            assert total % (1 << 256) == canonical.section_hash(harness.state, section), section


def test_state_hash_is_independent_of_dict_insertion_order() -> None:
    """Rebuilding the state's dicts in reverse insertion order leaves the state hash unchanged."""
    h = build_log(seed=SEED + 1, commands=600)
    state = h.state
    before = canonical.state_hash(state)
    sections_before = canonical.section_hashes(state)
    state.accounts = dict(reversed(list(state.accounts.items())))
    state.orders = dict(reversed(list(state.orders.items())))
    for book in state.books:
        book.bids = dict(reversed(list(book.bids.items())))
        book.asks = dict(reversed(list(book.asks.items())))
    assert canonical.section_hashes(state) == sections_before
    assert canonical.state_hash(state) == before


def _credits_in_order(order: tuple[str, ...]) -> Harness:
    h = Harness()
    h.list_defaults()
    account_id = h.new_account()
    amounts = {"USDC": 7_000_000, "SOL": 3 * 10**9, "BTC": 12_345}
    for symbol in order:
        h.ok(Credit, account_id=account_id, asset_id=h.asset(symbol), amount_atomic=amounts[symbol])
    return h


def test_same_balances_by_different_histories_hash_the_same() -> None:
    """Credits applied in a different order reach the same state, with the same hash."""
    first = _credits_in_order(("USDC", "SOL", "BTC"))
    second = _credits_in_order(("BTC", "USDC", "SOL"))
    assert canonical.state_hash(first.state) == canonical.state_hash(second.state)
    assert first.engine.state_hash() == second.engine.state_hash() == canonical.state_hash(first.state)


def _book_built(*, cancel_first: bool) -> Harness:
    """Rest order 2 at 10,001 and order 3 at 10,000 in one batch; order 1 at 10,000 is
    cancelled before the batch (so the 10,000 level is created after the 10,001 one) or
    after it (so the 10,000 level is older). Both end in the same state."""
    h = Harness()
    h.list_defaults()
    first = h.new_account(USDC=10**10)
    second = h.new_account(USDC=10**10)
    sol = h.market("SOL_USDC")

    def item(account_id: int, price_ticks: int) -> PlaceOrder:
        return PlaceOrder(
            seq=0,
            timestamp_ns=0,
            account_id=account_id,
            market_id=sol,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            price_ticks=price_ticks,
            quantity_steps=5,
        )

    def batch() -> None:
        h.ok(PlaceOrders, account_id=second, orders=(item(second, 10_001), item(second, 10_000)))

    def cancel() -> None:
        h.ok(CancelOrder, account_id=first, market_id=sol, order_id=1)

    if cancel_first:
        h.ok(PlaceOrder, **vars_of(item(first, 10_000)))
        cancel()
        batch()
        h.ok(Tick)
    else:
        h.ok(Tick)
        h.ok(PlaceOrder, **vars_of(item(first, 10_000)))
        batch()
        cancel()
    return h


def vars_of(order: PlaceOrder) -> dict[str, object]:
    """Return a batch item's fields without its (ignored) seq and timestamp."""
    fields = {name: getattr(order, name) for name in order.__struct_fields__}
    del fields["seq"], fields["timestamp_ns"]
    return fields


def test_same_book_by_different_histories_hashes_the_same() -> None:
    """Price levels created in a different order (different dict history) hash the same."""
    early = _book_built(cancel_first=False)
    late = _book_built(cancel_first=True)
    sol = early.market("SOL_USDC")
    assert list(early.state.books[sol].bids) == [10_000, 10_001]  # the histories do differ
    assert list(late.state.books[sol].bids) == [10_001, 10_000]
    for section in canonical.SECTIONS:
        assert canonical.entity_map(early.state, section) == canonical.entity_map(late.state, section), section
    assert canonical.state_hash(early.state) == canonical.state_hash(late.state)
    assert early.engine.state_hash() == late.engine.state_hash()
