"""The history store's queries, on both backends, over the scripted session's rows.

The session (views_session.py) is applied by the engine alone and projected into a fresh
store; each query is checked against rows worked out from the session's table: owner
and status of one order, every status change, newest-first pagination with limit and
offset, market, order, asset, reason and time filters (half-open), public trades, klines
of every width class and a rolling window exact to the nanosecond; deposit history
(chain deposits with operator credits), withdrawals with every change, funding rounds and
payments, position changes, liquidations, adjustments, market states and maintenance;
and out-of-range arguments are refused with QueryInvalid, never answered with a partial
or unbounded page.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from views_session import (
    BORROW,
    BORROW_RATE_E9,
    CANCELLED,
    DAY_START,
    ETH_USDC,
    EXPIRED,
    FILLED,
    FUNDS_END,
    KIND_BORROW,
    KIND_LEND,
    KIND_REDEEM,
    KIND_REPAY,
    LAST_SEQ,
    LEND,
    NEW,
    NS,
    PF,
    SOL,
    SOL_PERP,
    SOL_USDC,
    T_BASE,
    USDC,
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    expected_dump,
    session_items,
    t,
)

from keel.core.events import EntryReason
from keel.views import (
    KLINE_INTERVALS,
    ORDER_STATUS_NAMES,
    HistoryStore,
    Kline,
    MaintenanceKind,
    Projector,
    QueryInvalid,
    StoreSettings,
    open_store,
)

FEES = -2


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[HistoryStore]:
    with open_store(store_settings) as opened:
        assert Projector(opened).apply(session_items()) == LAST_SEQ
        yield opened


def test_the_engine_alone_projects_the_same_rows_as_the_node(store: HistoryStore) -> None:
    """The items built without a node give exactly the rows the node-driven session gives."""
    assert store.dump() == {name: [tuple(row) for row in rows] for name, rows in expected_dump().items()}
    assert store.position().seq == LAST_SEQ
    assert store.is_current()


def test_one_order_with_its_owner_and_every_status_change(store: HistoryStore) -> None:
    order = store.order(7)
    assert order is not None
    assert (order.account_id, order.status, order.end_reason, order.executed_steps) == (C, EXPIRED, FUNDS_END, 9)
    assert order.quote_quantity_atomic == 10_100_000
    assert order.post_only is False
    assert store.order(999) is None
    assert [update.status for update in store.order_updates(7)] == [NEW, PF, EXPIRED]
    assert [update.status for update in store.order_updates(2)] == [NEW, PF, CANCELLED]
    assert store.order_updates(999) == []
    assert [ORDER_STATUS_NAMES[status] for status in (NEW, PF, FILLED, CANCELLED, EXPIRED)] == [  # type: ignore[index]
        "New",
        "PartiallyFilled",
        "Filled",
        "Cancelled",
        "Expired",
    ]


def test_orders_newest_first_with_pages_and_filters(store: HistoryStore) -> None:
    def ids(**query: object) -> list[int]:
        return [order.order_id for order in store.orders(**query)]  # type: ignore[arg-type]

    assert ids(account_id=A) == [2, 1]
    assert ids(account_id=A, descending=False) == [1, 2]
    assert ids(account_id=B) == [10, 9, 4, 3]
    assert ids(account_id=B, limit=2) == [10, 9]
    assert ids(account_id=B, limit=2, offset=2) == [4, 3]
    assert ids(account_id=B, offset=4) == []
    assert ids(account_id=B, market_id=1) == []
    assert ids(account_id=B, order_id=4) == [4]
    assert ids(account_id=A, order_id=4) == []  # another account's order is not found
    assert ids(account_id=C, start_ns=t(3_620), end_ns=t(3_700)) == [7, 6]  # 3,700 s is excluded
    assert ids(account_id=99) == []


def test_fills_of_an_account_order_and_time_range(store: HistoryStore) -> None:
    fills = store.fills(A)
    assert [(fill.trade_id, fill.is_maker, fill.order_id) for fill in fills] == [
        (5, True, 2),
        (4, True, 2),
        (3, True, 2),
        (2, True, 1),
        (1, True, 1),
    ]
    assert fills[0].fee_atomic == 1_818
    assert fills[0].fee_asset_id == USDC
    assert fills[0].client_id == 22
    assert [fill.trade_id for fill in store.fills(A, order_id=1)] == [2, 1]
    assert [fill.trade_id for fill in store.fills(C, start_ns=t(3_620))] == [5, 4]
    assert [fill.trade_id for fill in store.fills(C, end_ns=t(3_620), descending=False)] == [3]
    assert [fill.is_maker for fill in store.fills(B)] == [False, False]


def test_ledger_lines_by_asset_and_reason(store: HistoryStore) -> None:
    lines = store.ledger(A, asset_id=USDC)
    assert [line.entry_id for line in lines] == [9, 8, 7, 6, 5, 1]
    assert lines[-1].amount_atomic == 10_000_000_000
    assert sum(line.amount_atomic for line in lines) == 10_000_000_000 + 49_990_000 + 149_970_000 + (
        30_293_940 + 20_195_960 + 9_088_182
    )
    deposits = store.ledger(A, reason=int(EntryReason.DEPOSIT))
    assert [(line.entry_id, line.asset_id, line.reference) for line in deposits] == [(2, SOL, 11), (1, USDC, 10)]
    fees = store.ledger(FEES)
    # ETH_USDC's three trades (entries 28 to 26), the interest spread (entry 21), a withdrawal
    # fee (entry 16) and the perpetual trade's fees (entry 13), then the SOL_USDC trades'
    assert [line.amount_atomic for line in fees] == [
        *(10_465, 20_930, 21_000, 100, 1_000_000, 70_000),
        *(6_363, 14_140, 21_210, 105_000, 35_000),
    ]
    assert store.ledger(A, start_ns=t(3_600), end_ns=t(3_621), asset_id=SOL, descending=False)[0].entry_id == 7


def test_public_trades_newest_first(store: HistoryStore) -> None:
    assert [trade.trade_id for trade in store.trades(SOL_USDC)] == [5, 4, 3, 2, 1]
    assert [trade.trade_id for trade in store.trades(SOL_USDC, limit=2, offset=1)] == [4, 3]
    trade = store.trades(SOL_USDC, limit=1)[0]
    assert (trade.price_ticks, trade.quantity_steps, trade.quote_atomic, trade.taker_side) == (10_100, 9, 9_090_000, 0)
    assert store.trades(1) == []


def test_klines_of_each_bar_width_and_calendar_interval(store: HistoryStore) -> None:
    """1m and 3m come from minute bars, 1h from hour bars, 1d, 1w and 1month from day bars."""
    minute = 60 * NS
    assert store.klines(SOL_USDC, "1m", T_BASE) == [
        Kline(t(120), t(180), 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2),
        Kline(t(3_600), t(3_660), 10_100, 10_100, 10_100, 10_100, 50, 50_500_000, 2),
        Kline(t(3_660), t(3_720), 10_100, 10_100, 10_100, 10_100, 9, 9_090_000, 1),
    ]
    assert store.klines(SOL_USDC, "3m", T_BASE) == [
        Kline(T_BASE, t(180), 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2),
        Kline(t(3_600), t(3_780), 10_100, 10_100, 10_100, 10_100, 59, 59_590_000, 3),
    ]
    assert store.klines(SOL_USDC, "1h", T_BASE) == [
        Kline(T_BASE, t(3_600), 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2),
        Kline(t(3_600), t(7_200), 10_100, 10_100, 10_100, 10_100, 59, 59_590_000, 3),
    ]
    day = Kline(DAY_START, DAY_START + 86_400 * NS, 10_000, 10_100, 10_000, 10_100, 259, 259_590_000, 5)
    assert store.klines(SOL_USDC, "1d", 0) == [day]
    monday = DAY_START - 86_400 * NS  # 2023-11-14 was a Tuesday
    week = store.klines(SOL_USDC, "1w", 0)
    assert [(candle.start_ns, candle.end_ns, candle.trades) for candle in week] == [
        (monday, monday + 7 * 86_400 * NS, 5)
    ]
    november, december = 1_698_796_800 * NS, 1_701_388_800 * NS
    assert [(candle.start_ns, candle.end_ns) for candle in store.klines(SOL_USDC, "1month", 0)] == [
        (november, december)
    ]
    # A candle is returned when it starts in [start, end).
    assert [candle.start_ns for candle in store.klines(SOL_USDC, "1m", t(121))] == [t(3_600), t(3_660)]
    assert [candle.start_ns for candle in store.klines(SOL_USDC, "1m", T_BASE, t(3_660))] == [t(120), t(3_600)]
    assert [candle.start_ns for candle in store.klines(SOL_USDC, "1m", T_BASE, limit=1)] == [t(120)]
    assert store.klines(SOL_USDC, "1h", t(7_200)) == []
    assert store.klines(1, "1m", 0) == []
    assert minute == KLINE_INTERVALS["1m"].seconds * NS


def test_a_rolling_window_is_exact_at_any_nanosecond(store: HistoryStore) -> None:
    """Partial minutes at the window's ends come from trades, whole minutes from bars."""
    window = store.window(SOL_USDC, t(150), t(3_670))  # trades at 150, 170, 3,610 and 3,620 s
    assert window == Kline(t(150), t(3_670), 10_000, 10_100, 10_000, 10_100, 250, 250_500_000, 4)
    later = store.window(SOL_USDC, t(150) + 1, t(3_670) + 1)
    assert later is not None
    assert (later.open_ticks, later.volume_steps, later.trades) == (10_000, 209, 4)  # trade 1 out, trade 5 in
    assert store.window(SOL_USDC, t(3_671), t(3_671) + 86_400 * NS) is None
    assert store.window(SOL_USDC, t(3_600), t(3_630)) == Kline(
        t(3_600), t(3_630), 10_100, 10_100, 10_100, 10_100, 50, 50_500_000, 2
    )


def test_deposit_history_joins_chain_deposits_and_operator_credits(store: HistoryStore) -> None:
    """funds_in: chain deposits in any status at the time first reported, and operator
    credits, newest first, paged; a deposit's every change is kept."""
    history = store.funds_in(D)
    assert [(one.deposit_id, one.entry_id, one.status) for one in history] == [(2, -1, 3), (1, 12, 2)]
    assert (history[1].chain, history[1].tx_id, history[1].amount_atomic) == ("Solana", "tx-d", 20_000_000)
    assert [(one.deposit_id, one.entry_id, one.chain) for one in store.funds_in(E)] == [(0, 10, "")]
    assert [one.entry_id for one in store.funds_in(A)] == [2, 1]
    assert [one.asset_id for one in store.funds_in(A, descending=False)] == [USDC, SOL]
    assert [one.entry_id for one in store.funds_in(A, limit=1, offset=1)] == [1]
    assert store.funds_in(D, start_ns=t(3_844)) == store.funds_in(D, limit=1)
    assert [one.deposit_id for one in store.funds_in(D, end_ns=t(3_844))] == [1]
    assert [one.deposit_id for one in store.deposits(D, asset_id=USDC, descending=False)] == [1, 2]
    assert store.deposits(E) == []
    assert [one.entry_id for one in store.credits(F)] == [11]
    deposit = store.deposit(1)
    assert deposit is not None and (deposit.confirmations, deposit.updated_seq) == (2, 37)
    assert store.deposit(3) is None
    assert [(one.seq, one.status, one.confirmations) for one in store.deposit_updates(1)] == [
        (35, 0, 0),
        (36, 1, 1),
        (37, 2, 2),
    ]


def test_withdrawals_of_an_account_or_all_by_status_with_every_change(store: HistoryStore) -> None:
    assert [one.withdrawal_id for one in store.withdrawals(E)] == [2, 1]
    assert [one.withdrawal_id for one in store.withdrawals(None)] == [4, 3, 2, 1]
    assert [one.withdrawal_id for one in store.withdrawals(None, status=6)] == [4]  # Failed
    assert [one.withdrawal_id for one in store.withdrawals(F, withdrawal_id=3)] == [3]
    assert store.withdrawals(E, withdrawal_id=3) == []  # another account's
    assert [one.withdrawal_id for one in store.withdrawals(None, start_ns=t(7_730), end_ns=t(7_830))] == [3, 2]
    completed = store.withdrawal(1)
    assert completed is not None
    assert (completed.status, completed.tx_id, completed.entry_id, completed.fee_atomic) == (3, "sig-1", 16, 1_000_000)
    assert [(one.status, one.operator) for one in store.withdrawal_updates(2)] == [
        (0, ""),
        (0, "alice"),
        (1, "bob"),
        (5, ""),
    ]
    assert [(one.frozen, one.reason) for one in store.withdrawal_freezes()] == [(False, "checked"), (True, "audit")]


def test_funding_positions_liquidations_and_adjustments(store: HistoryStore) -> None:
    rounds = store.funding_rounds(SOL_PERP)
    assert [(one.seq, one.rate_e9, one.entry_id) for one in rounds] == [(80, 0, -1), (79, 0, -1), (46, 10_000_000, 14)]
    assert store.funding_rounds(SOL_USDC) == []
    assert [one.amount_atomic for one in store.funding_payments(D)] == [-1_000_000]
    assert [one.amount_atomic for one in store.funding_payments(E, market_id=SOL_PERP)] == [1_000_000]
    assert store.funding_payments(E, market_id=SOL_USDC) == []
    changes = store.position_changes(D)
    assert [(one.size_before_steps, one.size_after_steps, one.trade_id) for one in changes] == [
        (100, 0, 0),
        (0, 100, 6),
    ]
    assert [one.realized_pnl_atomic for one in store.position_changes(E, descending=False)] == [0, 15_000_000]
    assert [(one.account_id, one.equity_atomic) for one in store.liquidations()] == [(D, 3_950_000)]
    assert store.liquidations(E) == []
    assert [one.amount_atomic for one in store.adjustments(D)] == [-1_000_000, 2_500_000]
    assert [one.incident for one in store.adjustments(limit=1, descending=False)] == ["INC-1"]


def test_market_states_and_maintenance(store: HistoryStore) -> None:
    assert [(one.state_before, one.state) for one in store.market_state_changes(SOL_USDC, descending=False)] == [
        (0, 4),
        (4, 1),
        (1, 0),
    ]
    assert [one.reason for one in store.market_state_changes(SOL_PERP)] == ["maintenance 3 step 1", "oracle"]
    assert len(store.market_state_changes()) == 5
    kinds = [(one.kind, one.step) for one in store.maintenance_events(3, descending=False)]
    assert kinds == [
        (MaintenanceKind.SCHEDULED, -1),
        (MaintenanceKind.STEP_BLOCKED, 0),
        (MaintenanceKind.STEP_APPLIED, 0),
    ]
    assert [one.text for one in store.maintenance_events(2)] == ["postponed", "ETH_USDC maintenance"]
    assert [(one.step, one.market_id, one.state) for one in store.maintenance_steps(1)] == [(0, 0, 1), (1, 0, 0)]
    assert store.maintenance_steps(9) == []


def test_trigger_orders_reduce_only_and_a_withdrawals_client_id(store: HistoryStore) -> None:
    """Order 18 waited as a trigger, fired and filled; 19 was cancelled while pending; 20
    fired and failed. Only the liquidation's closing order (15) is reduce-only."""
    fired = store.order(18)
    assert fired is not None
    assert (fired.status, fired.trigger_price_ticks, fired.trigger_by, fired.triggered_ns) == (
        FILLED,
        299_000,
        0,
        t(14_540),
    )
    assert [ORDER_STATUS_NAMES[one.status] for one in store.order_updates(18)] == [  # type: ignore[index]
        "TriggerPending",
        "New",
        "Filled",
    ]
    assert [ORDER_STATUS_NAMES[one.status] for one in store.order_updates(19)] == ["TriggerPending", "Cancelled"]  # type: ignore[index]
    failed = store.order(20)
    assert failed is not None and ORDER_STATUS_NAMES[failed.status] == "TriggerFailed"  # type: ignore[index]
    assert [one.order_id for one in store.orders(G, market_id=ETH_USDC)] == [22, 19, 18, 16]
    assert [order.order_id for order in store.orders(D) if order.reduce_only] == [15]
    assert store.orders(D)[0].trigger_by == -1
    assert [one.client_id for one in store.withdrawals(F)] == [-1, 7]


def test_borrow_lend_positions_moves_and_interest(store: HistoryStore) -> None:
    """E lent (position 77), then redeemed it into a borrow (82); F borrowed (78), then repaid
    it into a lend (81); one hour of interest between."""
    open_ones = store.borrow_lend_positions(E, is_open=True)
    assert [(one.opened_seq, one.side, one.quantity_atomic) for one in open_ones] == [(82, BORROW, 9_999_101)]
    closed = store.borrow_lend_positions(E, is_open=False)
    assert [(one.opened_seq, one.interest_atomic, one.closed_seq) for one in closed] == [(77, 899, 82)]
    assert [one.opened_seq for one in store.borrow_lend_positions(F, descending=False)] == [78, 81]
    assert [one.opened_seq for one in store.borrow_lend_positions(F, side=LEND)] == [81]
    assert store.borrow_lend_positions(A) == []
    moves = store.borrow_lend_moves(F)
    assert [(one.kind, one.amount_atomic, one.position_seq) for one in moves] == [
        (KIND_LEND, 19_999_001, 81),
        (KIND_REPAY, 100_000_999, 78),
        (KIND_BORROW, 100_000_000, 78),
    ]
    assert [one.part for one in store.borrow_lend_moves(E, kind=KIND_REDEEM)] == [0]
    assert [one.seq for one in store.borrow_lend_moves(E, position_seq=77, descending=False)] == [77, 82]
    assert [(one.rate_e9, one.paid_atomic, one.entry_id) for one in store.interest_rounds(USDC)] == [
        (BORROW_RATE_E9, 999, 21)
    ]
    assert [(one.amount_atomic, one.rate_e9, one.position_seq) for one in store.interest_payments(F)] == [
        (-999, BORROW_RATE_E9, 78)
    ]
    assert [one.amount_atomic for one in store.interest_payments(E, asset_id=USDC)] == [899]
    assert store.interest_payments(E, asset_id=SOL) == []
    assert sum(one.amount_atomic for one in store.interest_payments(FEES)) == 100


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        (lambda store: store.orders(A, limit=0), "limit must be between 1 and 1000"),
        (lambda store: store.orders(A, limit=1_001), "limit must be between 1 and 1000"),
        (lambda store: store.fills(A, offset=-1), "offset must not be negative"),
        (lambda store: store.fills(A, start_ns=10, end_ns=5), "end time is before the start time"),
        (lambda store: store.ledger(A, start_ns=-1), "start time is out of range"),
        (lambda store: store.trades(0, limit=5_000), "limit must be between 1 and 1000"),
        (lambda store: store.klines(0, "2m", 0), "unknown kline interval '2m'"),
        (lambda store: store.klines(0, "1m", 0, limit=1_001), "limit must be between 1 and 1000"),
        (lambda store: store.funds_in(D, limit=0), "limit must be between 1 and 1000"),
        (lambda store: store.withdrawals(None, offset=-1), "offset must not be negative"),
        (lambda store: store.funding_rounds(3, start_ns=5, end_ns=1), "end time is before the start time"),
        (lambda store: store.borrow_lend_positions(E, limit=0), "limit must be between 1 and 1000"),
        (lambda store: store.borrow_lend_moves(E, offset=-1), "offset must not be negative"),
        (lambda store: store.interest_payments(E, start_ns=-1), "start time is out of range"),
    ],
)
def test_out_of_range_queries_are_refused(store: HistoryStore, query: object, phrase: str) -> None:
    with pytest.raises(QueryInvalid, match=phrase):
        query(store)  # type: ignore[operator]
