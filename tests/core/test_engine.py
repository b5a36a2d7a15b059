"""Tests of keel.core.engine: log position rules, dispatch, batches, and the command/event encodings."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from keel.core import canonical, limits
from keel.core.accounts import EXTERNAL_ACCOUNT_ID
from keel.core.commands import (
    Adjust,
    BorrowLend,
    CancelAllOrders,
    CancelMaintenance,
    CancelOrder,
    CancelWithdrawal,
    Checkpoint,
    Command,
    CreateAccount,
    Credit,
    FreezeWithdrawals,
    ListAsset,
    ListMarket,
    PlaceOrder,
    PlaceOrders,
    RejectDeposit,
    ReportDeposit,
    RequestWithdrawal,
    ScheduleMaintenance,
    SetIndexPrices,
    SetLeverageLimit,
    SetMarketState,
    Tick,
    UpdateWithdrawal,
    decode_command,
    encode_command,
)
from keel.core.engine import Engine
from keel.core.errors import CheckpointMismatch, RejectCode
from keel.core.events import (
    AccountCreated,
    Adjusted,
    AssetListed,
    BorrowLendChanged,
    CheckpointPassed,
    CommandRejected,
    DepositUpdated,
    EntryReason,
    Event,
    FundingSettled,
    InterestAccrued,
    LedgerPosted,
    LeverageLimitSet,
    LiquidationStarted,
    MaintenanceCancelled,
    MaintenanceScheduled,
    MaintenanceStepApplied,
    MaintenanceStepBlocked,
    MarketListed,
    MarketStateChanged,
    MarkPriceChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    PositionChanged,
    TradeExecuted,
    TriggerAccepted,
    TriggerFailed,
    TriggerFired,
    WithdrawalsFrozen,
    WithdrawalUpdated,
    decode_events,
    encode_events,
)
from keel.core.orders import EndReason
from keel.testing.harness import Harness, StateImage, state_except_position

BUY, SELL = 0, 1
LIMIT, MARKET = 0, 1
IOC = 1


def snapshot(h: Harness) -> StateImage:
    return state_except_position(h.state)


def reject(h: Harness, command_type: type, code: RejectCode, phrase: str, **fields: Any) -> CommandRejected:
    return h.reject(command_type, code, phrase, **fields)


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.list_defaults()
    return harness


def item(
    account_id: int, market_id: int, side: int, price_ticks: int, quantity_steps: int, **fields: Any
) -> PlaceOrder:
    """Return a limit PlaceOrder for a batch (its own seq and timestamp are ignored by the engine)."""
    return PlaceOrder(
        seq=0,
        timestamp_ns=0,
        account_id=account_id,
        market_id=market_id,
        side=side,
        order_type=LIMIT,
        price_ticks=price_ticks,
        quantity_steps=quantity_steps,
        **fields,
    )


# ---- the log position -----------------------------------------------------------------


def test_seq_must_follow_the_last_applied() -> None:
    """A command whose seq is not last + 1 (a gap or a repeat) fails an assertion and changes nothing."""
    engine = Engine()
    with pytest.raises(AssertionError, match="does not follow 0"):
        engine.apply(Tick(seq=2, timestamp_ns=10))
    with pytest.raises(AssertionError):
        engine.apply(Tick(seq=0, timestamp_ns=10))
    assert (engine.state.seq_last, engine.state.timestamp_ns_last) == (0, 0)
    assert engine.apply(Tick(seq=1, timestamp_ns=10)) == []
    with pytest.raises(AssertionError, match="does not follow 1"):
        engine.apply(Tick(seq=1, timestamp_ns=10))
    with pytest.raises(AssertionError):
        engine.apply(Tick(seq=3, timestamp_ns=10))
    assert (engine.state.seq_last, engine.state.timestamp_ns_last) == (1, 10)


def test_timestamps_may_repeat_but_never_go_backwards() -> None:
    """An equal timestamp is accepted; an earlier one fails an assertion and leaves the position as it was."""
    engine = Engine()
    engine.apply(Tick(seq=1, timestamp_ns=1_000))
    engine.apply(Tick(seq=2, timestamp_ns=1_000))
    with pytest.raises(AssertionError, match="backwards"):
        engine.apply(Tick(seq=3, timestamp_ns=999))
    assert (engine.state.seq_last, engine.state.timestamp_ns_last) == (2, 1_000)
    engine.apply(Tick(seq=3, timestamp_ns=5_000))
    assert (engine.state.seq_last, engine.state.timestamp_ns_last) == (3, 5_000)


def test_tick_moves_only_the_log_position(h: Harness) -> None:
    """A Tick has no events and changes nothing but seq_last and timestamp_ns_last."""
    before = snapshot(h)
    seq = h.state.seq_last
    assert h.submit(Tick) == []
    assert snapshot(h) == before
    assert h.state.seq_last == seq + 1
    assert h.state.timestamp_ns_last == (seq + 1) * h.timestamp_step_ns
    assert h.audit() == []


def test_rejected_command_still_advances_the_log_position(h: Harness) -> None:
    """A refused command consumes its seq and timestamp: the position section changes, nothing else."""
    position_before = canonical.entity_map(h.state, "position")
    seq = h.state.seq_last
    reject(
        h,
        PlaceOrder,
        RejectCode.UNKNOWN_ACCOUNT,
        "account 7 does not exist",
        account_id=7,
        market_id=0,
        side=BUY,
        order_type=LIMIT,
        price_ticks=100,
        quantity_steps=100,
    )
    assert h.state.seq_last == seq + 1
    assert canonical.entity_map(h.state, "position") != position_before
    assert h.audit() == []


# ---- dispatch -------------------------------------------------------------------------


def test_every_command_type_reaches_its_handler() -> None:
    """Each command type yields the events of its own handler, in order."""
    h = Harness()
    assert h.submit(ListAsset, symbol="USDC", decimals=6) == [AssetListed(0, "USDC", 6)]
    assert h.submit(ListAsset, symbol="SOL", decimals=9) == [AssetListed(1, "SOL", 9)]
    assert h.submit(
        ListMarket,
        symbol="SOL_USDC",
        base_asset_id=1,
        quote_asset_id=0,
        tick_atomic=10_000,
        step_atomic=10_000_000,
        quantity_min_steps=1,
        quantity_max_steps=0,
        notional_min_atomic=1_000_000,
        fee_maker_bps=2,
        fee_taker_bps=5,
    ) == [MarketListed(0, "SOL_USDC")]
    assert h.submit(CreateAccount) == [AccountCreated(1)]
    credit_seq = h.state.seq_last + 1
    assert h.submit(Credit, account_id=1, asset_id=0, amount_atomic=50_000_000) == [
        LedgerPosted(
            1, int(EntryReason.DEPOSIT), credit_seq, ((EXTERNAL_ACCOUNT_ID, 0, -50_000_000), (1, 0, 50_000_000))
        )
    ]
    placed = h.submit(
        PlaceOrder, account_id=1, market_id=0, side=BUY, order_type=LIMIT, price_ticks=10_000, quantity_steps=10
    )
    assert placed == [OrderAccepted(1, 1, 0, BUY, LIMIT, 0, 10_000, 10, 0, -1, False, 0)]
    batch = h.submit(PlaceOrders, account_id=1, orders=(item(1, 0, BUY, 9_000, 10), item(1, 0, BUY, 8_000, 10)))
    assert [type(event) for event in batch] == [OrderAccepted, OrderAccepted]
    assert h.submit(CancelOrder, account_id=1, market_id=0, order_id=1) == [
        OrderCancelled(1, 1, 0, int(EndReason.USER_CANCEL), 10)
    ]
    assert h.submit(CancelAllOrders, account_id=1, market_id=0) == [
        OrderCancelled(2, 1, 0, int(EndReason.USER_CANCEL), 10),
        OrderCancelled(3, 1, 0, int(EndReason.USER_CANCEL), 10),
    ]
    assert h.submit(Tick) == []
    assert h.audit() == []


def test_replaying_the_log_gives_the_same_events_and_state_hash(h: Harness) -> None:
    """A second engine fed the same commands produces identical events and an identical state hash."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    market = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=a, market_id=market, side=SELL, order_type=LIMIT, price_ticks=10_000, quantity_steps=30)
    h.ok(PlaceOrder, account_id=b, market_id=market, side=BUY, order_type=LIMIT, price_ticks=10_001, quantity_steps=50)
    h.ok(PlaceOrder, account_id=a, market_id=market, side=SELL, order_type=MARKET, quantity_steps=5)
    h.ok(CancelAllOrders, account_id=b, market_id=market)
    replica = Engine()
    replayed = [replica.apply(command) for command in h.log]
    assert replayed == h.events
    assert canonical.state_hash(replica.state) == canonical.state_hash(h.state)
    assert replica.state_hash() == h.engine.state_hash() == canonical.state_hash(h.state)
    assert h.audit() == []


def test_checkpoint_that_matches_passes(h: Harness) -> None:
    """A Checkpoint carrying the hash the state will have after it yields CheckpointPassed with that hash."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    h.ok(PlaceOrder, account_id=a, market_id=0, side=SELL, order_type=LIMIT, price_ticks=10_000, quantity_steps=30)
    h.ok(PlaceOrder, account_id=a, market_id=0, side=BUY, order_type=LIMIT, price_ticks=9_000, quantity_steps=30)
    stamp = h.next_stamp()
    checkpoint = h.engine.checkpoint_command(stamp["seq"], stamp["timestamp_ns"])
    before = snapshot(h)
    events = h.apply(checkpoint)
    assert events == [CheckpointPassed(canonical.state_hash(h.state))]
    assert checkpoint.state_hash == canonical.state_hash(h.state)
    assert checkpoint.section_hashes == tuple(canonical.section_hashes(h.state)[s] for s in canonical.SECTIONS)
    assert snapshot(h) == before
    assert h.state.seq_last == stamp["seq"]
    assert h.audit() == []


def test_checkpoint_that_differs_stops_and_names_the_section(h: Harness) -> None:
    """A Checkpoint whose hash the state does not reproduce raises CheckpointMismatch naming the differing sections."""
    a = h.new_account(USDC=1_000_000_000)
    stamp = h.next_stamp()
    good = h.engine.checkpoint_command(stamp["seq"], stamp["timestamp_ns"])
    hashes = list(good.section_hashes)
    hashes[canonical.SECTIONS.index("accounts")] = bytes(32)
    bad = msgspec.structs.replace(good, state_hash=bytes(32), section_hashes=tuple(hashes))
    with pytest.raises(CheckpointMismatch) as caught:
        h.engine.apply(bad)
    assert caught.value.sections == ["accounts"]
    assert caught.value.seq == stamp["seq"]
    assert caught.value.expected == bytes(32)
    assert caught.value.found == good.state_hash
    assert "sections that differ: accounts" in str(caught.value)
    assert h.balance(a, "USDC") == 1_000_000_000
    assert h.audit() == []


# ---- batches --------------------------------------------------------------------------


def test_batch_places_each_item_independently(h: Harness) -> None:
    """In a batch, refused items are reported with their index while the other items are placed in order."""
    a = h.new_account(USDC=25_000_000)
    b = h.new_account(USDC=1_000_000_000)
    market = h.market("SOL_USDC")
    seq = h.state.seq_last + 1
    events = h.submit(
        PlaceOrders,
        account_id=a,
        orders=(
            # Nothing to cross, so it holds the maker bound at once:
            # 10_000 x 10 x 100 = 10_000_000 + ceil(10_000_000 x 2 / 10_000) = 10_002_000
            item(a, market, BUY, 10_000, 10, client_id=1),
            # same client id as item 0, which is now open
            item(a, market, BUY, 9_000, 10, client_id=1),
            # 10_000 x 20 x 100 = 20_000_000 + 4_000 = 20_004_000 > 25_000_000 - 10_002_000 = 14_998_000
            item(a, market, BUY, 10_000, 20),
            # another account's order inside a's batch
            item(b, market, BUY, 9_000, 10),
            # 9_000 x 10 x 100 = 9_000_000 + 1_800 = 9_001_800 <= 14_998_000
            item(a, market, BUY, 9_000, 10, client_id=2),
        ),
    )
    assert [type(event) for event in events] == [
        OrderAccepted,
        CommandRejected,
        CommandRejected,
        CommandRejected,
        OrderAccepted,
    ]
    assert isinstance(events[0], OrderAccepted)
    assert isinstance(events[4], OrderAccepted)
    assert (events[0].order_id, events[0].client_id) == (1, 1)
    assert (events[4].order_id, events[4].client_id) == (2, 2)
    rejected = [event for event in events if isinstance(event, CommandRejected)]
    assert [(RejectCode(event.code), event.item) for event in rejected] == [
        (RejectCode.DUPLICATE_CLIENT_ID, 1),
        (RejectCode.INSUFFICIENT_AVAILABLE, 2),
        (RejectCode.ORDER_MALFORMED, 3),
    ]
    assert "client id 1" in rejected[0].message
    assert rejected[1].message == ("insufficient funds: the order needs 20.004 USDC, 14.998 USDC is available")
    assert "same account" in rejected[2].message
    # Resting holds: 10_002_000 and 9_001_800 (above).
    assert h.locked(a, "USDC") == 10_002_000 + 9_001_800
    assert h.balance(a, "USDC") == 25_000_000
    assert h.account(b).orders_open == {}
    # Items take the batch's seq and timestamp, not their own zeros.
    for order in h.state.orders.values():
        assert order.created_seq == seq
        assert order.created_ns == seq * h.timestamp_step_ns
    assert h.audit() == []


def test_batch_items_see_the_effects_of_earlier_items(h: Harness) -> None:
    """Items apply in order: a later item can trade against a resting order placed by an earlier one."""
    seller = h.new_account(SOL=1_000_000_000)
    buyer = h.new_account(USDC=1_000_000_000)
    market = h.market("SOL_USDC")
    h.ok(PlaceOrders, account_id=seller, orders=(item(seller, market, SELL, 10_000, 10),))
    events = h.submit(
        PlaceOrders,
        account_id=buyer,
        orders=(item(buyer, market, BUY, 10_000, 4), item(buyer, market, BUY, 10_000, 4, time_in_force=IOC)),
    )
    trades = [event for event in events if isinstance(event, TradeExecuted)]
    assert [(trade.quantity_steps, trade.maker_order_id) for trade in trades] == [(4, 1), (4, 1)]
    assert h.state.orders[1].open_steps == 2
    assert h.audit() == []


@pytest.mark.parametrize("count", [0, limits.batch_orders_max + 1])
def test_batch_size_limits(h: Harness, count: int) -> None:
    """An empty batch or one above limits.batch_orders_max is refused as a whole, placing nothing."""
    a = h.new_account(USDC=10_000_000_000)
    orders = tuple(item(a, 0, BUY, 1_000 + index, 10) for index in range(count))
    reject(h, PlaceOrders, RejectCode.BATCH_TOO_LARGE, "a batch holds 1 to 20 orders", account_id=a, orders=orders)
    assert h.audit() == []


def test_batch_of_the_largest_size_is_accepted(h: Harness) -> None:
    """A batch of exactly limits.batch_orders_max items places every one."""
    a = h.new_account(USDC=10_000_000_000)
    orders = tuple(item(a, 0, BUY, 1_000 + index, 10) for index in range(limits.batch_orders_max))
    events = h.ok(PlaceOrders, account_id=a, orders=orders)
    assert len(events) == limits.batch_orders_max
    assert len(h.account(a).orders_open) == limits.batch_orders_max
    assert h.audit() == []


def test_batch_of_only_rejected_items_changes_nothing(h: Harness) -> None:
    """A batch whose every item is refused reports each one and leaves the state as it was."""
    a = h.new_account(USDC=100)
    before = snapshot(h)
    events = h.submit(PlaceOrders, account_id=a, orders=(item(a, 0, BUY, 10_000, 10), item(a, 99, BUY, 10_000, 10)))
    assert [(type(event), event.code, event.item) for event in events if isinstance(event, CommandRejected)] == [
        (CommandRejected, RejectCode.INSUFFICIENT_AVAILABLE, 0),
        (CommandRejected, RejectCode.UNKNOWN_MARKET, 1),
    ]
    assert len(events) == 2
    assert snapshot(h) == before
    assert h.audit() == []


# ---- encodings ------------------------------------------------------------------------

ALL_COMMANDS: list[Command] = [
    ListAsset(seq=1, timestamp_ns=10, symbol="USDC", decimals=6),
    ListMarket(
        seq=2,
        timestamp_ns=20,
        symbol="SOL_USDC",
        base_asset_id=1,
        quote_asset_id=0,
        tick_atomic=10_000,
        step_atomic=10_000_000,
        quantity_min_steps=1,
        quantity_max_steps=5_000,
        notional_min_atomic=1_000_000,
        fee_maker_bps=-1,
        fee_taker_bps=5,
        band_low_bps=9_000,
        band_high_bps=11_000,
        impact_low_bps=9_800,
        impact_high_bps=10_200,
    ),
    CreateAccount(seq=3, timestamp_ns=30),
    Credit(seq=4, timestamp_ns=40, account_id=1, asset_id=0, amount_atomic=2**62),
    PlaceOrder(
        seq=5,
        timestamp_ns=50,
        account_id=1,
        market_id=0,
        side=1,
        order_type=0,
        time_in_force=2,
        price_ticks=2**40,
        quantity_steps=7,
        post_only=True,
        self_trade_prevention=3,
        client_id=2**32 - 1,
    ),
    PlaceOrder(seq=6, timestamp_ns=60, account_id=1, market_id=0, side=0, order_type=1, quote_quantity_atomic=5_000),
    PlaceOrders(
        seq=7,
        timestamp_ns=70,
        account_id=1,
        orders=(
            PlaceOrder(
                seq=0, timestamp_ns=0, account_id=1, market_id=0, side=0, order_type=0, price_ticks=1, quantity_steps=2
            ),
            PlaceOrder(seq=0, timestamp_ns=0, account_id=2, market_id=3, side=1, order_type=1, quantity_steps=9),
        ),
    ),
    CancelOrder(seq=8, timestamp_ns=80, account_id=1, market_id=0, order_id=12),
    CancelOrder(seq=9, timestamp_ns=90, account_id=1, market_id=0, client_id=77),
    CancelAllOrders(seq=10, timestamp_ns=100, account_id=1, market_id=0),
    Tick(seq=11, timestamp_ns=2**63 - 1),
    Checkpoint(
        seq=12, timestamp_ns=2**63 - 1, state_hash=bytes(range(32)), section_hashes=(b"\x01" * 32, b"\xff" * 32)
    ),
    SetIndexPrices(seq=13, timestamp_ns=2**63 - 1, prices=((1, 150_000_000), (2, 2**62))),
    SetMarketState(seq=14, timestamp_ns=2**63 - 1, market_id=-1, state=4, reason="upgrade", operator="ops"),
    ScheduleMaintenance(
        seq=15,
        timestamp_ns=2**63 - 1,
        announcement="10:00-12:00 UTC",
        operator="ops",
        steps=((10, (), 4), (20, (0, 3), 1), (30, (), 0)),
    ),
    CancelMaintenance(seq=16, timestamp_ns=2**63 - 1, schedule_id=1, reason="postponed", operator="ops"),
    ReportDeposit(
        seq=17,
        timestamp_ns=2**63 - 1,
        chain="Solana",
        tx_id="5h3x",
        output_index=2,
        account_id=1,
        asset_id=0,
        amount_atomic=10**6,
        confirmations=3,
    ),
    RejectDeposit(seq=18, timestamp_ns=2**63 - 1, deposit_id=1, reason="sanctioned", operator="ops"),
    RequestWithdrawal(seq=19, timestamp_ns=2**63 - 1, account_id=1, asset_id=0, amount_atomic=5, address="So1"),
    UpdateWithdrawal(seq=20, timestamp_ns=2**63 - 1, withdrawal_id=1, action=2, operator="ops", tx_id="abc"),
    CancelWithdrawal(seq=21, timestamp_ns=2**63 - 1, account_id=1, withdrawal_id=1),
    FreezeWithdrawals(seq=22, timestamp_ns=2**63 - 1, frozen=True, reason="audit", operator="auditor"),
    Adjust(seq=23, timestamp_ns=2**63 - 1, account_id=1, asset_id=0, amount_atomic=-7, incident="INC-1", operator="o"),
    BorrowLend(seq=24, timestamp_ns=2**63 - 1, account_id=1, asset_id=0, side=1, amount_atomic=10**6),
    SetLeverageLimit(seq=25, timestamp_ns=2**63 - 1, account_id=1, leverage_limit=10),
]

ALL_EVENTS: list[Event] = [
    AssetListed(0, "USDC", 6),
    MarketListed(0, "SOL_USDC"),
    AccountCreated(1),
    OrderAccepted(1, 1, 0, 0, 0, 0, 10_000, 10, 0, 42, True, 1),
    TradeExecuted(1, 0, 10_000, 10, 2, 1, 2, 1, 1, 5_000, -200),
    OrderCancelled(1, 1, 0, int(EndReason.USER_CANCEL), 3),
    OrderExpired(2, 2, 0, int(EndReason.NO_LIQUIDITY), 10),
    LedgerPosted(1, int(EntryReason.TRADE), 1, ((1, 1, 5), (2, 1, -5), (1, 0, -7), (2, 0, 6), (-2, 0, 1))),
    CommandRejected(int(RejectCode.SELF_TRADE), "order would trade with your own resting order", 3),
    CommandRejected(int(RejectCode.UNKNOWN_ORDER), "no such order"),
    CheckpointPassed(bytes(range(32))),
    PositionChanged(1, 3, 5, -2, -2_000, 37, 9),
    MarkPriceChanged(3, 15_000, 15_010),
    FundingSettled(3, -12_500, 15_010, 15_000, 88, 87, 4),
    LiquidationStarted(7, -5, 1_125_000),
    MarketStateChanged(0, 0, 4, "upgrade", "ops"),
    MaintenanceScheduled(1, "10:00-12:00 UTC", "ops", ((10, (), 4), (20, (0, 3), 1))),
    MaintenanceCancelled(1, "postponed", "ops"),
    MaintenanceStepApplied(1, 0, 4),
    MaintenanceStepBlocked(1, 1, "index not refreshed"),
    DepositUpdated(1, 1, 0, 10**6, "Solana", "5h3x", 2, 3, 2),
    WithdrawalUpdated(1, 1, 0, 5, 1, 3, "Solana", "So1", "abc", "ops", ""),
    WithdrawalsFrozen(True, "audit", "auditor"),
    Adjusted(1, 0, -7, "INC-1", "o"),
    BorrowLendChanged(1, 0, 0, 500, 0, 500),
    InterestAccrued(0, 50_000_000, 500, 1_000, 3, 2, 1, ((1, -3), (2, 2), (-2, 1))),
    TriggerAccepted(9, 1, 3, 9_500, 1),
    TriggerFired(9, 1, 3, 9_499),
    TriggerFailed(9, 1, 3, int(RejectCode.INSUFFICIENT_MARGIN), "insufficient margin"),
    LeverageLimitSet(1, 10),
]


def test_every_command_type_is_covered() -> None:
    """The round-trip list below names every member of the Command union."""
    assert {type(command) for command in ALL_COMMANDS} == set(Command.__args__)  # type: ignore[attr-defined]


def test_every_event_type_is_covered() -> None:
    """The round-trip list below names every member of the Event union."""
    assert {type(event) for event in ALL_EVENTS} == set(Event.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda command: type(command).__name__)
def test_command_round_trip(command: Command) -> None:
    """decode_command(encode_command(c)) == c, and re-encoding gives the same bytes."""
    data = encode_command(command)
    decoded = decode_command(data)
    assert decoded == command
    assert type(decoded) is type(command)
    assert encode_command(decoded) == data


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: type(event).__name__)
def test_event_round_trip(event: Event) -> None:
    """decode_events(encode_events([e])) == [e], and re-encoding gives the same bytes."""
    data = encode_events([event])
    decoded = decode_events(data)
    assert decoded == [event]
    assert type(decoded[0]) is type(event)
    assert encode_events(decoded) == data


def test_event_list_round_trip() -> None:
    """A list of events of every type round-trips as a whole, in order."""
    assert decode_events(encode_events(ALL_EVENTS)) == ALL_EVENTS
    assert decode_events(encode_events([])) == []


def test_encoding_is_array_like_with_integer_tags() -> None:
    """Commands and events encode as msgpack arrays whose first element is the public integer tag."""
    assert msgspec.msgpack.decode(encode_command(Tick(seq=1, timestamp_ns=2))) == [9, 1, 2]
    assert msgspec.msgpack.decode(encode_command(CreateAccount(seq=3, timestamp_ns=4))) == [3, 3, 4]
    assert msgspec.msgpack.decode(encode_events([AccountCreated(5)])) == [[3, 5]]


def test_session_events_round_trip(h: Harness) -> None:
    """Every command of a real session and every event it produced round-trips through the encodings."""
    a = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    b = h.new_account(USDC=1_000_000_000, SOL=10_000_000_000)
    h.ok(PlaceOrder, account_id=a, market_id=0, side=SELL, order_type=LIMIT, price_ticks=10_000, quantity_steps=30)
    h.ok(PlaceOrder, account_id=b, market_id=0, side=BUY, order_type=MARKET, quantity_steps=40)
    h.submit(CancelOrder, account_id=b, market_id=0, order_id=99)
    for command, events in zip(h.log, h.events, strict=True):
        assert decode_command(encode_command(command)) == command
        assert decode_events(encode_events(events)) == events
    assert h.audit() == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x93\x63\x01\x02",  # tag 99 does not exist
        b"\x92\x09\x01",  # a Tick missing its timestamp
        b"\xc1",  # never used in msgpack
        msgspec.msgpack.encode([9, "one", 2]),  # a string where seq must be an integer
    ],
)
def test_decode_command_rejects_malformed_bytes(data: bytes) -> None:
    """Malformed bytes raise a msgspec error; they are never decoded into a command."""
    with pytest.raises(msgspec.DecodeError):
        decode_command(data)


def test_decode_events_rejects_malformed_bytes() -> None:
    """Bytes that are not a list of known events raise a msgspec error."""
    with pytest.raises(msgspec.DecodeError):
        decode_events(msgspec.msgpack.encode([[99, 1]]))
    with pytest.raises(msgspec.DecodeError):
        decode_events(msgspec.msgpack.encode([3, 5]))


@pytest.mark.parametrize(
    ("command", "added"),
    [
        (ALL_COMMANDS[0], 2),  # ListAsset before the minimum deposit and withdrawal
        (next(c for c in ALL_COMMANDS if isinstance(c, ScheduleMaintenance)), 1),  # before cancel_orders_steps
    ],
    ids=["ListAsset", "ScheduleMaintenance"],
)
def test_a_command_logged_before_its_newest_fields_still_decodes(command: Command, added: int) -> None:
    """msgspec writes `seq` and `timestamp_ns` after a command's own fields, so an older log
    holds shorter arrays: they decode with the newest fields' defaults (commands.py)."""
    raw = msgspec.msgpack.decode(encode_command(command))
    older = raw[: -2 - added] + raw[-2:]
    assert decode_command(msgspec.msgpack.encode(older)) == command
