"""The projector: engine events in, history rows out, one transaction per batch.

Theory of operation. The projector is given durable commands in log order, each as
(seq, timestamp_ns, command, events). `apply(items)` skips every item at or before the
store's position (so giving it the same items twice changes nothing), refuses a gap
(ViewsGap: history must never skip a command), turns the rest into rows and writes them
and the new position in ONE transaction: a store is always exactly the projection of
the log up to its position.

Projection rules (docs/views.md has the full table):

- AssetListed, MarketListed, AccountCreated: one row each. A market's grid comes from
  the ListMarket command beside the event (the event carries only id and symbol);
  its lot (quote atomic units per tick x step) prices every fill.
- OrderAccepted: a new `orders` row, status New, and an `order_updates` row; its
  reduce-only flag comes from the command's order it is (events do not carry it), or is
  set for a liquidation's closing order. The take-profit and stop-loss it carries come
  from the command too (a liquidation's order has none) and stay on the row for the
  order's whole life, although the engine forgets them at its first fill.
  TriggerAccepted: a row with status TriggerPending and the terms of the command's order
  (a take-profit or stop-loss its parent's fill created carries none itself, and keeps
  its parent's id from the event); the OrderAccepted right after a TriggerFired continues
  that row (status New, the parent's id kept); TriggerFailed ends it (TriggerFailed).
- TradeExecuted: a `trades` row, two `fills` rows (taker and maker side; fees are in the
  market's quote asset), the 1-minute, 1-hour and 1-day kline bars, and both orders'
  executed quantity, executed quote (price x quantity x lot, fees excluded) and fees.
  An order whose executed quantity reaches its quantity becomes Filled, otherwise
  PartiallyFilled; each change of status is an `order_updates` row.
- OrderCancelled -> Cancelled, OrderExpired -> Expired, with their reason and the steps
  given up.
- LedgerPosted: one `ledger_lines` row per line, system accounts included. An entry of a
  `Credit` command is also a `credits` row; a funding entry gives one `funding_payments`
  row per line (the FundingSettled before it names the market and rate); a deposit,
  withdrawal or adjustment entry gives its id to the deposit, withdrawal or adjustment
  the event after it reports.
- DepositUpdated, WithdrawalUpdated: the deposit's or withdrawal's current row (created by
  its first event, updated by later ones) and an append-only `*_updates` row.
- BorrowLendChanged: a `borrow_lend_moves` row per part (a Lend first repays a borrow, a
  Borrow first redeems a lend), which moves `borrow_lend_positions`; InterestAccrued: an
  `interest_rounds` row and an `interest_payments` row per share, which grows the position.
- FundingSettled: a `funding_rounds` row. PositionChanged, LiquidationStarted,
  MarketStateChanged, Adjusted, WithdrawalsFrozen: one row each.
- PositionChanged also moves the account's `perp_positions` run (opened from flat, closed
  at flat, a flip closes one and opens the next), with the fee of the TradeExecuted before
  it; a non-zero realized PnL is a `settlements` row. A funding entry adds each user line
  to the account's open run; an insurance entry, or an adl entry without a clearing line
  (a liquidation's deficit taken from other accounts), is a `settlements` row per user line. MaintenanceScheduled,
  MaintenanceCancelled, MaintenanceStepApplied, MaintenanceStepBlocked: a
  `maintenance_events` row; a schedule's steps are also `maintenance_steps` rows.
- At the end of a command, an order it accepted that cannot rest (IOC, FOK, market) and
  did not end by an event is Filled: the engine emits no event when such an order fills
  completely, and a market order by quote quantity has no quantity to compare with.
- CommandRejected, CheckpointPassed and events of kinds this version does not know
  change nothing but the position: a refused order never appears in history (spec 8.1).

Imports: keel.core (commands, events, orders), schema, store, klines, records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from keel.core.accounts import CLEARING_ACCOUNT_ID, INSURANCE_ACCOUNT_ID, is_user_account
from keel.core.commands import Command, Credit, ListMarket, PlaceOrder, PlaceOrders
from keel.core.errors import KeelError
from keel.core.events import (
    AccountCreated,
    Adjusted,
    AssetListed,
    BorrowLendChanged,
    CommandRejected,
    DepositUpdated,
    EntryReason,
    Event,
    FundingSettled,
    InterestAccrued,
    LedgerPosted,
    LiquidationStarted,
    MaintenanceCancelled,
    MaintenanceScheduled,
    MaintenanceStepApplied,
    MaintenanceStepBlocked,
    MarketListed,
    MarketStateChanged,
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
)
from keel.core.lending import HOURS_PER_YEAR, BorrowLendSide
from keel.core.money import E9, div_floor
from keel.core.orders import OrderStatus, OrderType, TimeInForce
from keel.views import schema
from keel.views.klines import BAR_WIDTHS_S, bar_start_ns
from keel.views.records import (
    NO_END_REASON,
    NO_ENTRY,
    NO_MARKET,
    NO_POSITION,
    TRIGGER_FAILED,
    TRIGGER_PENDING,
    BorrowLendKind,
    MaintenanceKind,
    SettlementSource,
)
from keel.views.store import HistoryStore

# One durable command with its events: (seq, timestamp_ns, command, events).
Item = tuple[int, int, Command, Sequence[Event]]

_BIGINT_MAX: Final = 2**63 - 1
_IN_CHUNK: Final = 500
_NEW = int(OrderStatus.NEW)
_PARTIALLY_FILLED = int(OrderStatus.PARTIALLY_FILLED)
_FILLED = int(OrderStatus.FILLED)
_CANCELLED = int(OrderStatus.CANCELLED)
_EXPIRED = int(OrderStatus.EXPIRED)
_GTC = int(TimeInForce.GTC)
_LIMIT = int(OrderType.LIMIT)
_TRADE = int(EntryReason.TRADE)
# Enum values go into rows as plain ints: a live event may carry an IntEnum member, which
# psycopg would write by name.
_SCHEDULED = int(MaintenanceKind.SCHEDULED)
_CANCELLED_SCHEDULE = int(MaintenanceKind.CANCELLED)
_STEP_APPLIED = int(MaintenanceKind.STEP_APPLIED)
_STEP_BLOCKED = int(MaintenanceKind.STEP_BLOCKED)

# Positions of the orders table's columns in an order row (a list, updated in place).
_COLUMN = {name: index for index, name in enumerate(schema.ORDERS.column_names)}
_ORDER_ID = _COLUMN["order_id"]
_ACCOUNT_ID = _COLUMN["account_id"]
_ORDER_TYPE = _COLUMN["order_type"]
_TIME_IN_FORCE = _COLUMN["time_in_force"]
_QUANTITY = _COLUMN["quantity_steps"]
_CLIENT_ID = _COLUMN["client_id"]
_STATUS = _COLUMN["status"]
_EXECUTED = _COLUMN["executed_steps"]
_EXECUTED_QUOTE = _COLUMN["executed_quote_atomic"]
_FEE = _COLUMN["fee_atomic"]
_CANCELLED_STEPS = _COLUMN["cancelled_steps"]
_END_REASON = _COLUMN["end_reason"]
_UPDATED_SEQ = _COLUMN["updated_seq"]
_UPDATED_NS = _COLUMN["updated_ns"]
_REDUCE_ONLY = _COLUMN["reduce_only"]
_TRIGGERED_NS = _COLUMN["triggered_ns"]
_NO_TRIGGER_BY = -1
# The take-profit and stop-loss columns of an order that carries neither.
_NO_ATTACHMENT: Final = (0, 0, _NO_TRIGGER_BY, 0, 0, _NO_TRIGGER_BY)
_NO_LEG: Final = (0, 0, _NO_TRIGGER_BY)
_NO_PARENT = 0
# An order row ends with its take-profit and stop-loss columns, then its parent order.
assert schema.ORDERS.column_names[-len(_NO_ATTACHMENT) - 1 :] == (
    "take_profit_trigger_ticks",
    "take_profit_limit_ticks",
    "take_profit_trigger_by",
    "stop_loss_trigger_ticks",
    "stop_loss_limit_ticks",
    "stop_loss_trigger_by",
    "parent_order_id",
)
_LEND = int(BorrowLendSide.LEND)
_BORROW = int(BorrowLendSide.BORROW)
_BORROW_LEND = int(EntryReason.BORROW_LEND)
_LIQUIDATION_ENTRY = int(EntryReason.LIQUIDATION)
_INTEREST = int(EntryReason.INTEREST)

_UPSERT_ORDERS = schema.insert_statement(schema.ORDERS, upsert=True)
_UPSERT_BARS = schema.insert_statement(schema.KLINE_BARS, upsert=True)
_UPSERT_DEPOSITS = schema.insert_statement(schema.DEPOSITS, upsert=True)
_UPSERT_WITHDRAWALS = schema.insert_statement(schema.WITHDRAWALS, upsert=True)
_UPSERT_POSITIONS = schema.insert_statement(schema.BORROW_LEND_POSITIONS, upsert=True)
_POSITION_COLUMN = {name: index for index, name in enumerate(schema.BORROW_LEND_POSITIONS.column_names)}
_DEPOSIT = int(EntryReason.DEPOSIT)
_WITHDRAWAL = int(EntryReason.WITHDRAWAL)
_FUNDING = int(EntryReason.FUNDING)
_ADJUSTMENT = int(EntryReason.ADJUSTMENT)
_DEPOSIT_COLUMN = {name: index for index, name in enumerate(schema.DEPOSITS.column_names)}
_UPSERT_PERP_POSITIONS = schema.insert_statement(schema.PERP_POSITIONS, upsert=True)
_PERP = {name: index for index, name in enumerate(schema.PERP_POSITIONS.column_names)}
_INSURANCE = int(EntryReason.INSURANCE)
_ADL = int(EntryReason.ADL)
_SETTLED_PNL = int(SettlementSource.REALIZED_PNL)
_SETTLED_ADL = int(SettlementSource.ADL)
_SETTLED_INSURANCE = int(SettlementSource.INSURANCE)
_SETTLED_COLLATERAL = int(SettlementSource.COLLATERAL)
_SETTLED_ADJUSTMENT = int(SettlementSource.ADJUSTMENT)
_WITHDRAWAL_COLUMN = {name: index for index, name in enumerate(schema.WITHDRAWALS.column_names)}


class ViewsGap(KeelError):
    """Items were given that do not follow the store's position: history would skip commands."""

    def __init__(self, position: int, seq: int) -> None:
        super().__init__(
            f"the history store is at seq {position} and was given seq {seq} next; it needs {position + 1}"
        )
        self.position = position
        self.seq = seq


# Events of schema version 2, projected by Projector._project_v2.
_V2_EVENTS: Final = frozenset(
    (
        DepositUpdated,
        WithdrawalUpdated,
        FundingSettled,
        PositionChanged,
        LiquidationStarted,
        MarketStateChanged,
        MaintenanceScheduled,
        MaintenanceCancelled,
        MaintenanceStepApplied,
        MaintenanceStepBlocked,
        Adjusted,
        WithdrawalsFrozen,
    )
)


# Events of schema version 3, projected by Projector._project_v3.
_V3_EVENTS: Final = frozenset((TriggerAccepted, TriggerFired, TriggerFailed, BorrowLendChanged, InterestAccrued))


def _attachment(item: PlaceOrder | None) -> tuple[int, ...]:
    """Return the take-profit and stop-loss columns of an order placed by `item` (None: an
    order the engine placed, which carries neither): each leg's trigger price, limit price
    and trigger-by, or 0, 0, -1 for a leg it does not carry. Events do not carry them, and
    the engine forgets them at the order's first fill, so the command is the only source."""
    if item is None or not (item.take_profit_trigger_ticks or item.stop_loss_trigger_ticks):
        return _NO_ATTACHMENT
    take_profit = (
        (item.take_profit_trigger_ticks, item.take_profit_limit_ticks, int(item.take_profit_trigger_by))
        if item.take_profit_trigger_ticks
        else _NO_LEG
    )
    stop_loss = (
        (item.stop_loss_trigger_ticks, item.stop_loss_limit_ticks, int(item.stop_loss_trigger_by))
        if item.stop_loss_trigger_ticks
        else _NO_LEG
    )
    return take_profit + stop_loss


class _Links:
    """What one command's events say about each other: the ledger entry a deposit,
    withdrawal, adjustment or borrow/lend event goes with, the funding or interest round
    an entry pays; and which of the command's orders an order event is about."""

    __slots__ = (
        "adjustment",
        "borrow_lend_entry",
        "deposit_entry",
        "fired",
        "funding_round",
        "interest_round",
        "items",
        "liquidated",
        "liquidating",
        "next_item",
        "trade",
        "withdrawal_entry",
    )

    def __init__(self, command: Command) -> None:
        self.deposit_entry = NO_ENTRY  # a deposit entry, for the DepositUpdated after it
        self.withdrawal_entry = NO_ENTRY  # a withdrawal entry, for the WithdrawalUpdated after it
        self.borrow_lend_entry = NO_ENTRY  # a borrow/lend entry, for the BorrowLendChanged after it
        self.adjustment: list[Any] | None = None  # an adjustments row waiting for its entry
        self.funding_round: list[Any] | None = None  # a funding_rounds row waiting for its entry
        self.interest_round: list[Any] | None = None  # an interest_rounds row waiting for its entry
        # The orders the command itself places, in order: each OrderAccepted, TriggerAccepted
        # or item rejection takes the next one. Orders accepted after them are the engine's:
        # a fired trigger (TriggerFired names it just before) or a liquidation's closing
        # order (after LiquidationStarted; reduce-only). Events do not carry reduce-only.
        self.items: tuple[PlaceOrder, ...] = (
            (command,)
            if isinstance(command, PlaceOrder)
            else command.orders
            if isinstance(command, PlaceOrders)
            else ()
        )
        self.next_item = 0
        self.liquidating = False
        self.liquidated: set[int] = set()  # accounts liquidated so far in this command (membership only)
        self.fired = NO_ENTRY  # the trigger whose OrderAccepted comes next
        # The last trade: its fees go to the positions its PositionChanged events move.
        self.trade: TradeExecuted | None = None

    def fee_of(self, event: PositionChanged) -> int:
        """Return the fee the account paid on the trade that made this change (0 for none)."""
        trade = self.trade
        if event.trade_id == 0 or trade is None or trade.trade_id != event.trade_id:
            return 0
        bought = event.size_after_steps > event.size_before_steps  # side 0 (Bid) buys
        return trade.fee_taker_atomic if (trade.taker_side == 0) == bought else trade.fee_maker_atomic

    def next_order(self) -> PlaceOrder | None:
        """Return the command's next own order (or None: the engine placed it)."""
        if self.next_item >= len(self.items):
            return None
        item = self.items[self.next_item]
        self.next_item += 1
        return item


class _Batch:
    """The rows one `apply` call writes, gathered in memory first."""

    def __init__(self) -> None:
        self.orders: dict[int, list[int]] = {}  # every order row touched, by order id
        self.orders_new: list[int] = []  # ids of the orders accepted in this batch
        self.order_updates: list[tuple[int, ...]] = []
        self.fills: list[tuple[int, ...]] = []
        self.trades: list[tuple[int, ...]] = []
        self.ledger_lines: list[tuple[int, ...]] = []
        self.assets: list[tuple[Any, ...]] = []
        self.markets: list[tuple[Any, ...]] = []
        self.accounts: list[tuple[int, ...]] = []
        # (market, width, start) -> [open, high, low, close, volume, quote volume, trades, first id, last id]
        self.bars: dict[tuple[int, int, int], list[int]] = {}
        # Current rows of the deposits and withdrawals touched, by id (written with an upsert).
        self.deposits: dict[int, list[Any]] = {}
        self.withdrawals: dict[int, list[Any]] = {}
        # Borrow/lend positions touched, by (account, asset, opened seq) (written with an
        # upsert), and each (account, asset)'s open one (None: none) as far as this batch knows.
        self.positions: dict[tuple[int, int, int], list[int]] = {}
        self.open_positions: dict[tuple[int, int], list[int] | None] = {}
        # Perpetual positions touched, by (account, market, opened seq, opened index) (written
        # with an upsert), and each (account, market)'s open one (None: flat) as far as this batch knows.
        self.perp_positions: dict[tuple[int, int, int, int], list[int]] = {}
        self.open_perps: dict[tuple[int, int], list[int] | None] = {}
        # Append-only rows of the version 2 and 3 tables, by table.
        self.rows: dict[schema.Table, list[Sequence[Any]]] = {}

    def add(self, table: schema.Table, row: Sequence[Any]) -> None:
        self.rows.setdefault(table, []).append(row)


class Projector:
    """Projects durable commands into one HistoryStore; see the module docstring."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self._asset_decimals: dict[int, int] = {}
        self._markets: dict[int, tuple[int, int]] = {}  # market id -> (quote asset id, lot atomic)
        self._load_listings()

    def _load_listings(self) -> None:
        connection = self.store.connection
        with self.store.lock:
            self._asset_decimals = dict(connection.query("SELECT asset_id, decimals FROM assets"))
            self._markets = {
                int(market_id): (int(quote), int(lot))
                for market_id, quote, lot in connection.query(
                    "SELECT market_id, quote_asset_id, lot_atomic FROM markets"
                )
            }

    def apply(self, items: Sequence[Item]) -> int:
        """Project the items after the store's position in one transaction; return how many.

        Items at or before the position are skipped; raises ViewsGap if the first other
        item is not the next seq, or items skip or repeat a seq."""
        store = self.store
        with store.lock:
            position = store.position().seq
            pending = [item for item in items if item[0] > position]
            if not pending:
                return 0
            for offset, item in enumerate(pending):
                if item[0] != position + 1 + offset:
                    raise ViewsGap(position + offset, item[0])
            batch = _Batch()
            self._prefetch_orders(pending, batch)
            try:
                for seq, timestamp_ns, command, events in pending:
                    self._project(batch, seq, timestamp_ns, command, events)
                last_seq, last_timestamp_ns = pending[-1][0], pending[-1][1]
                with store.connection.transaction():
                    self._write(batch, last_seq, last_timestamp_ns)
            except BaseException:
                self._load_listings()  # what this batch listed was not stored
                raise
        return len(pending)

    # ---- reading what earlier batches wrote -------------------------------------------
    def _prefetch_orders(self, items: Sequence[Item], batch: _Batch) -> None:
        """Load the rows of orders that these items change but did not create."""
        accepted: set[int] = set()
        wanted: set[int] = set()
        for _, _, _, events in items:
            fired = NO_ENTRY
            for event in events:
                kind = type(event)
                if kind is OrderAccepted:
                    if event.order_id != fired:  # type: ignore[union-attr]
                        accepted.add(event.order_id)  # type: ignore[union-attr]
                    fired = NO_ENTRY
                elif kind is TriggerAccepted:
                    accepted.add(event.order_id)  # type: ignore[union-attr]
                elif kind is TriggerFired or kind is TriggerFailed:
                    # A trigger accepted by an earlier batch: its row is placed now or fails.
                    fired = event.order_id  # type: ignore[union-attr]
                    wanted.add(fired)
                elif kind is TradeExecuted:
                    wanted.add(event.maker_order_id)  # type: ignore[union-attr]
                    wanted.add(event.taker_order_id)  # type: ignore[union-attr]
                elif kind is OrderCancelled or kind is OrderExpired:
                    wanted.add(event.order_id)  # type: ignore[union-attr]
        missing = sorted(wanted - accepted)
        columns = ", ".join(schema.ORDERS.column_names)
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            rows = self.store.connection.query(
                f"SELECT {columns} FROM orders WHERE order_id IN ({', '.join('?' for _ in chunk)})", chunk
            )
            for row in rows:
                batch.orders[int(row[_ORDER_ID])] = [int(value) for value in row]

    def _bar(self, batch: _Batch, key: tuple[int, int, int]) -> list[int] | None:
        bar = batch.bars.get(key)
        if bar is None:
            rows = self.store.connection.query(
                "SELECT open_ticks, high_ticks, low_ticks, close_ticks, volume_steps, quote_volume_atomic, trades, "
                "first_trade_id, last_trade_id FROM kline_bars WHERE market_id = ? AND width_s = ? AND start_ns = ?",
                key,
            )
            if rows:
                bar = batch.bars[key] = [int(value) for value in rows[0]]
        return bar

    # ---- projection -------------------------------------------------------------------
    def _project(self, batch: _Batch, seq: int, timestamp_ns: int, command: Command, events: Sequence[Event]) -> None:
        accepted: list[list[int]] = []
        links = _Links(command)
        for index, event in enumerate(events):
            kind = type(event)
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                self._trade(batch, seq, timestamp_ns, index, event)
                links.trade = event
            elif kind is LedgerPosted:
                assert isinstance(event, LedgerPosted)
                if event.reason != _TRADE:
                    self._link_entry(batch, seq, timestamp_ns, index, command, event, links)
                batch.ledger_lines.extend(
                    (
                        event.entry_id,
                        line_no,
                        event.reason,
                        event.reference,
                        account_id,
                        asset_id,
                        amount,
                        seq,
                        timestamp_ns,
                    )
                    for line_no, (account_id, asset_id, amount) in enumerate(event.lines)
                )
            elif kind is OrderAccepted:
                assert isinstance(event, OrderAccepted)
                accepted.append(self._accept(batch, seq, timestamp_ns, index, event, links))
            elif kind is OrderCancelled or kind is OrderExpired:
                assert isinstance(event, OrderCancelled | OrderExpired)
                status = _CANCELLED if kind is OrderCancelled else _EXPIRED
                order = batch.orders[event.order_id]
                assert order[_STATUS] in (_NEW, _PARTIALLY_FILLED, TRIGGER_PENDING), (
                    f"order {event.order_id} ended twice"
                )
                order[_CANCELLED_STEPS] = event.cancelled_steps
                order[_END_REASON] = event.reason
                self._set_status(batch, order, status, seq, timestamp_ns, index)
            elif kind is AssetListed:
                assert isinstance(event, AssetListed)
                batch.assets.append((event.asset_id, event.symbol, event.decimals, seq, timestamp_ns))
                self._asset_decimals[event.asset_id] = event.decimals
            elif kind is MarketListed:
                assert isinstance(event, MarketListed)
                self._list_market(batch, seq, timestamp_ns, command, event)
            elif kind is AccountCreated:
                assert isinstance(event, AccountCreated)
                batch.accounts.append((event.account_id, seq, timestamp_ns))
            elif kind in _V2_EVENTS:
                self._project_v2(batch, seq, timestamp_ns, command, index, event, links)
            elif kind in _V3_EVENTS:
                self._project_v3(batch, seq, timestamp_ns, index, event, links)
            elif kind is CommandRejected:
                assert isinstance(event, CommandRejected)
                if event.item >= 0:  # a batch item refused: the next event is about the next item
                    links.next_item = event.item + 1
            # Anything else (rejections, checkpoints, kinds this version does not know)
            # leaves history as it is.
        for order in accepted:
            if order[_STATUS] in (_NEW, _PARTIALLY_FILLED) and not (
                order[_ORDER_TYPE] == _LIMIT and order[_TIME_IN_FORCE] == _GTC
            ):
                self._set_status(batch, order, _FILLED, seq, timestamp_ns, len(events))

    def _accept(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: OrderAccepted, links: _Links
    ) -> list[int]:
        if event.order_id == links.fired:
            # A trigger placed its order: the row it has had since it was accepted goes on.
            links.fired = NO_ENTRY
            order = batch.orders[event.order_id]
            assert order[_STATUS] == TRIGGER_PENDING, f"order {event.order_id} fired while not pending"
            order[_TRIGGERED_NS] = timestamp_ns
            self._set_status(batch, order, _NEW, seq, timestamp_ns, index)
            return order
        assert event.order_id not in batch.orders, f"order {event.order_id} accepted twice"
        item = None if links.liquidating else links.next_order()
        reduce_only = links.liquidating or (item is not None and item.reduce_only)
        order = [
            event.order_id,
            event.account_id,
            event.market_id,
            event.side,
            event.order_type,
            event.time_in_force,
            event.price_ticks,
            event.quantity_steps,
            event.quote_quantity_atomic,
            event.client_id,
            int(event.post_only),
            event.self_trade_prevention,
            _NEW,
            0,
            0,
            0,
            0,
            NO_END_REASON,
            seq,
            timestamp_ns,
            seq,
            timestamp_ns,
            int(reduce_only),
            0,
            _NO_TRIGGER_BY,
            0,
            *_attachment(item),
            _NO_PARENT,
        ]
        batch.orders[event.order_id] = order
        batch.orders_new.append(event.order_id)
        self._update_row(batch, order, seq, timestamp_ns, index)
        return order

    def _accept_trigger(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: TriggerAccepted, links: _Links
    ) -> None:
        """A pending trigger order: a row of its own (status TriggerPending) with the terms
        of the order it will place, which only the command carries; or, for a take-profit
        or stop-loss its parent's first fill created, its event, which also names the
        parent (the row's parent_order_id, 0 for a command's own trigger order)."""
        assert event.order_id not in batch.orders, f"order {event.order_id} accepted twice"
        if event.parent_order_id:
            item = PlaceOrder(
                seq=seq,
                timestamp_ns=timestamp_ns,
                account_id=event.account_id,
                market_id=event.market_id,
                side=event.side,
                order_type=event.order_type,
                price_ticks=event.price_ticks,
                quantity_steps=event.quantity_steps,
                self_trade_prevention=event.self_trade_prevention,
                reduce_only=True,
            )
        else:
            found = links.next_order()
            assert found is not None and found.trigger_price_ticks == event.trigger_price_ticks, (
                "a trigger from no order"
            )
            item = found
        order = [
            event.order_id,
            event.account_id,
            event.market_id,
            item.side,
            item.order_type,
            item.time_in_force,
            item.price_ticks,
            item.quantity_steps,
            item.quote_quantity_atomic,
            item.client_id,
            int(item.post_only),
            item.self_trade_prevention,
            TRIGGER_PENDING,
            0,
            0,
            0,
            0,
            NO_END_REASON,
            seq,
            timestamp_ns,
            seq,
            timestamp_ns,
            int(item.reduce_only),
            event.trigger_price_ticks,
            int(event.trigger_by),
            0,
            *_attachment(item),
            event.parent_order_id,
        ]
        batch.orders[event.order_id] = order
        batch.orders_new.append(event.order_id)
        self._update_row(batch, order, seq, timestamp_ns, index)

    def _trade(self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: TradeExecuted) -> None:
        market_id = event.market_id
        quote_asset_id, lot_atomic = self._markets[market_id]
        price = event.price_ticks
        quantity = event.quantity_steps
        quote_atomic = price * quantity * lot_atomic
        trade_id = event.trade_id
        batch.trades.append(
            (
                trade_id,
                market_id,
                price,
                quantity,
                quote_atomic,
                event.taker_side,
                event.taker_order_id,
                event.maker_order_id,
                seq,
                timestamp_ns,
            )
        )
        for is_maker, order_id, account_id, side, fee_atomic in (
            (0, event.taker_order_id, event.taker_account_id, event.taker_side, event.fee_taker_atomic),
            (1, event.maker_order_id, event.maker_account_id, 1 - event.taker_side, event.fee_maker_atomic),
        ):
            order = batch.orders[order_id]
            assert order[_ACCOUNT_ID] == account_id, f"trade {trade_id}: order {order_id} is not account {account_id}'s"
            order[_EXECUTED] += quantity
            order[_EXECUTED_QUOTE] += quote_atomic
            order[_FEE] += fee_atomic
            assert order[_EXECUTED_QUOTE] <= _BIGINT_MAX
            ordered = order[_QUANTITY]
            assert ordered == 0 or order[_EXECUTED] <= ordered, f"order {order_id} filled beyond its quantity"
            status = _FILLED if order[_EXECUTED] == ordered else _PARTIALLY_FILLED
            self._set_status(batch, order, status, seq, timestamp_ns, index)
            batch.fills.append(
                (
                    trade_id,
                    is_maker,
                    order_id,
                    account_id,
                    market_id,
                    side,
                    price,
                    quantity,
                    quote_atomic,
                    fee_atomic,
                    quote_asset_id,
                    order[_CLIENT_ID],
                    seq,
                    timestamp_ns,
                )
            )
        for width_s in BAR_WIDTHS_S:
            key = (market_id, width_s, bar_start_ns(timestamp_ns, width_s))
            bar = self._bar(batch, key)
            if bar is None:
                batch.bars[key] = [price, price, price, price, quantity, quote_atomic, 1, trade_id, trade_id]
                continue
            assert trade_id > bar[8], f"trade {trade_id} arrived after trade {bar[8]}"
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += quantity
            bar[5] += quote_atomic
            bar[6] += 1
            bar[8] = trade_id
            assert bar[5] <= _BIGINT_MAX, f"kline quote volume of market {market_id} exceeds BIGINT"

    def _set_status(
        self, batch: _Batch, order: list[int], status: int, seq: int, timestamp_ns: int, index: int
    ) -> None:
        order[_UPDATED_SEQ] = seq
        order[_UPDATED_NS] = timestamp_ns
        if order[_STATUS] != status:
            order[_STATUS] = status
            self._update_row(batch, order, seq, timestamp_ns, index)

    def _update_row(self, batch: _Batch, order: list[int], seq: int, timestamp_ns: int, index: int) -> None:
        batch.order_updates.append(
            (
                order[_ORDER_ID],
                seq,
                index,
                order[_ACCOUNT_ID],
                order[_STATUS],
                order[_EXECUTED],
                order[_EXECUTED_QUOTE],
                order[_END_REASON],
                timestamp_ns,
            )
        )

    def _list_market(self, batch: _Batch, seq: int, timestamp_ns: int, command: Command, event: MarketListed) -> None:
        assert isinstance(command, ListMarket), f"MarketListed from a {type(command).__name__}"
        base_decimals = self._asset_decimals[command.base_asset_id]
        lot_atomic, remainder = divmod(command.tick_atomic * command.step_atomic, 10**base_decimals)
        assert remainder == 0, f"market {event.symbol}: tick x step is not whole quote atomic units"
        batch.markets.append(
            (
                event.market_id,
                event.symbol,
                command.base_asset_id,
                command.quote_asset_id,
                command.tick_atomic,
                command.step_atomic,
                lot_atomic,
                int(getattr(command, "kind", 0)),
                seq,
                timestamp_ns,
            )
        )
        self._markets[event.market_id] = (command.quote_asset_id, lot_atomic)

    # ---- version 2: transfers, perpetuals, market states --------------------------------
    def _link_entry(
        self,
        batch: _Batch,
        seq: int,
        timestamp_ns: int,
        index: int,
        command: Command,
        event: LedgerPosted,
        links: _Links,
    ) -> None:
        """Note a non-trade entry for the event that reports its cause (the event after it),
        or, for a funding round, write its payments (the event before it named the round);
        an entry covering a liquidation's deficit is a settlement for each user line."""
        reason = event.reason
        if reason == _DEPOSIT:
            if type(command) is Credit:
                assert len(event.lines) == 2, "a credit moves funds from the external account to one account"
                account_id, asset_id, amount = event.lines[1]
                batch.add(schema.CREDITS, (event.entry_id, account_id, asset_id, amount, seq, timestamp_ns))
            else:
                links.deposit_entry = event.entry_id
        elif reason == _WITHDRAWAL:
            links.withdrawal_entry = event.entry_id
        elif reason == _BORROW_LEND or reason == _LIQUIDATION_ENTRY:
            links.borrow_lend_entry = event.entry_id  # a liquidation's lends and borrows follow its entries
            if reason == _LIQUIDATION_ENTRY and any(line[0] == INSURANCE_ACCOUNT_ID for line in event.lines):
                # Collateral the insurance fund took (and paid for) in a liquidation.
                self._settlements(batch, seq, index, event, _SETTLED_COLLATERAL, timestamp_ns)
        elif reason == _INTEREST:
            interest_round = links.interest_round
            assert interest_round is not None, "an interest entry follows its InterestAccrued event"
            interest_round[8] = event.entry_id
            links.interest_round = None
        elif reason == _ADJUSTMENT:
            assert links.adjustment is not None, "an adjustment entry follows its Adjusted event"
            links.adjustment[7] = event.entry_id
            links.adjustment = None
            self._settlements(batch, seq, index, event, _SETTLED_ADJUSTMENT, timestamp_ns)
        elif reason == _FUNDING:
            round_row = links.funding_round
            assert round_row is not None, "a funding entry follows its FundingSettled event"
            round_row[8] = event.entry_id
            market_id, rate_e9 = round_row[0], round_row[2]
            for line_no, (account_id, asset_id, amount) in enumerate(event.lines):
                batch.add(
                    schema.FUNDING_PAYMENTS,
                    (event.entry_id, line_no, account_id, market_id, asset_id, amount, rate_e9, seq, timestamp_ns),
                )
                if is_user_account(account_id):
                    position = self._open_perp(batch, account_id, market_id)
                    assert position is not None, f"funding for no position of account {account_id}"
                    position[_PERP["funding_atomic"]] += amount
                    position[_PERP["updated_seq"]] = seq
                    position[_PERP["updated_ns"]] = timestamp_ns
            links.funding_round = None
        elif reason == _INSURANCE or (
            reason == _ADL and all(account_id != CLEARING_ACCOUNT_ID for account_id, _, _ in event.lines)
        ):
            # A liquidation's deficit covered by the insurance fund or by other accounts. (An
            # adl entry with a clearing line is a transfer's realized PnL: its PositionChanged
            # events are the settlements.)
            source = _SETTLED_INSURANCE if reason == _INSURANCE else _SETTLED_ADL
            self._settlements(batch, seq, index, event, source, timestamp_ns)

    @staticmethod
    def _settlements(batch: _Batch, seq: int, index: int, event: LedgerPosted, source: int, timestamp_ns: int) -> None:
        """A settlement row for each user line of an entry that no other history shows."""
        for line_no, (account_id, asset_id, amount) in enumerate(event.lines):
            if is_user_account(account_id) and amount:
                batch.add(
                    schema.SETTLEMENTS,
                    (seq, index, line_no, account_id, asset_id, amount, source, NO_MARKET, -1, -1, timestamp_ns),
                )

    def _open_perp(self, batch: _Batch, account_id: int, market_id: int) -> list[int] | None:
        """Return the account's open perpetual position row in a market (this batch's, or the store's)."""
        key = (account_id, market_id)
        if key not in batch.open_perps:
            table = schema.PERP_POSITIONS
            found = self.store.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name} "
                "WHERE account_id = ? AND market_id = ? AND closed_seq = ?",
                (account_id, market_id, NO_POSITION),
            )
            assert len(found) <= 1, f"account {account_id} has two open positions in market {market_id}"
            row = [int(value) for value in found[0]] if found else None
            batch.open_perps[key] = row
            if row is not None:
                opened = (row[_PERP["opened_seq"]], row[_PERP["opened_index"]])
                batch.perp_positions[(account_id, market_id, *opened)] = row
        return batch.open_perps[key]

    def _perp_change(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: PositionChanged, links: _Links
    ) -> None:
        """Move the account's perpetual position run: open one from flat, grow or reduce it,
        close it at flat; a flip closes it and opens the next at this change. The fill's
        notional is exact without its price: realized PnL = change of cost - price x
        quantity x lot (perpetuals.md, the clearing invariant)."""
        column = _PERP
        account_id, market_id = event.account_id, event.market_id
        before, after = event.size_before_steps, event.size_after_steps
        if before == after:
            return  # nothing moved
        row = self._open_perp(batch, account_id, market_id)
        assert (row is None) == (before == 0), f"account {account_id}'s position in {market_id} is not the engine's"
        assert row is None or row[column["size_steps"]] == before, f"account {account_id}: position size differs"
        cost_before = row[column["cost_atomic"]] if row is not None else 0
        delta = after - before
        notional = abs(event.cost_after_atomic - cost_before - event.realized_pnl_atomic)
        unit = notional // abs(delta)  # price x lot
        assert unit * abs(delta) == notional, f"account {account_id}: a fill's notional is not price x quantity x lot"
        reducing = before != 0 and (before > 0) != (delta > 0)
        closing = min(abs(delta), abs(before)) if reducing else 0
        opening = abs(delta) - closing
        if row is None:
            row = self._new_perp(batch, account_id, market_id, seq, index, timestamp_ns)
        row[column["fees_atomic"]] += links.fee_of(event)
        if closing:
            row[column["closed_steps"]] += closing
            row[column["closed_notional_atomic"]] += unit * closing
            row[column["realized_pnl_atomic"]] += event.realized_pnl_atomic
            if account_id in links.liquidated:
                row[column["liquidated_steps"]] += closing
            if event.realized_pnl_atomic:
                source = _SETTLED_PNL if event.trade_id else _SETTLED_ADL
                quote_asset_id = self._markets[market_id][0]
                batch.add(
                    schema.SETTLEMENTS,
                    (
                        seq,
                        index,
                        0,
                        account_id,
                        quote_asset_id,
                        event.realized_pnl_atomic,
                        source,
                        market_id,
                        row[column["opened_seq"]],
                        row[column["opened_index"]],
                        timestamp_ns,
                    ),
                )
        row[column["updated_seq"]] = seq
        row[column["updated_ns"]] = timestamp_ns
        if closing and closing == abs(before):  # back to flat, or through it
            assert opening or event.cost_after_atomic == 0, f"account {account_id}: a flat position with a cost"
            row[column["size_steps"]] = 0
            row[column["cost_atomic"]] = 0
            row[column["closed_seq"]] = seq
            row[column["closed_ns"]] = timestamp_ns
            batch.open_perps[(account_id, market_id)] = None
            if not opening:
                return
            row = self._new_perp(batch, account_id, market_id, seq, index, timestamp_ns)
        row[column["opened_steps"]] += opening
        row[column["opened_notional_atomic"]] += unit * opening
        row[column["size_steps"]] = after
        row[column["cost_atomic"]] = event.cost_after_atomic

    def _new_perp(
        self, batch: _Batch, account_id: int, market_id: int, seq: int, index: int, timestamp_ns: int
    ) -> list[int]:
        row = [
            *(account_id, market_id, seq, index),
            *(0, 0),  # size, cost
            *(0, 0, 0, 0),  # opened and closed steps and notionals
            *(0, 0, 0, 0),  # realized PnL, fees, funding, liquidated steps
            *(NO_POSITION, timestamp_ns, 0, seq, timestamp_ns),  # closed seq, opened and closed ns, updated
        ]
        assert len(row) == len(_PERP)
        batch.open_perps[(account_id, market_id)] = row
        batch.perp_positions[(account_id, market_id, seq, index)] = row
        return row

    def _current(self, rows: dict[int, list[Any]], table: schema.Table, row_id: int) -> list[Any] | None:
        """Return the current row of a deposit or withdrawal, from this batch or the store."""
        row = rows.get(row_id)
        if row is None:
            found = self.store.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name} WHERE {table.key[0]} = ?", (row_id,)
            )
            if found:
                row = rows[row_id] = list(found[0])
        return row

    def _project_v2(
        self,
        batch: _Batch,
        seq: int,
        timestamp_ns: int,
        command: Command,
        index: int,
        event: Event,
        links: _Links,
    ) -> None:
        if isinstance(event, DepositUpdated):
            self._deposit(batch, seq, timestamp_ns, index, event, links)
        elif isinstance(event, WithdrawalUpdated):
            self._withdrawal(batch, seq, timestamp_ns, index, event, links)
        elif isinstance(event, FundingSettled):
            round_row = [
                event.market_id,
                seq,
                event.rate_e9,
                event.mark_ticks,
                event.index_ticks,
                event.paid_atomic,
                event.received_atomic,
                event.positions,
                NO_ENTRY,
                timestamp_ns,
            ]
            batch.add(schema.FUNDING_ROUNDS, round_row)
            links.funding_round = round_row
        elif isinstance(event, PositionChanged):
            self._perp_change(batch, seq, timestamp_ns, index, event, links)
            batch.add(
                schema.POSITION_CHANGES,
                (
                    seq,
                    index,
                    event.account_id,
                    event.market_id,
                    event.size_before_steps,
                    event.size_after_steps,
                    event.cost_after_atomic,
                    event.realized_pnl_atomic,
                    event.trade_id,
                    timestamp_ns,
                ),
            )
        elif isinstance(event, LiquidationStarted):
            batch.add(
                schema.LIQUIDATIONS,
                (seq, index, event.account_id, event.equity_atomic, event.maintenance_atomic, timestamp_ns),
            )
            links.liquidating = True  # the orders the engine places next close its positions
            links.liquidated.add(event.account_id)
        elif isinstance(event, MarketStateChanged):
            batch.add(
                schema.MARKET_STATE_CHANGES,
                (
                    seq,
                    index,
                    event.market_id,
                    int(event.state_before),
                    int(event.state),
                    event.reason,
                    event.operator,
                    timestamp_ns,
                ),
            )
        elif isinstance(event, MaintenanceScheduled):
            schedule_id = event.schedule_id
            batch.add(
                schema.MAINTENANCE_EVENTS,
                (
                    seq,
                    index,
                    schedule_id,
                    _SCHEDULED,
                    -1,
                    -1,
                    event.announcement,
                    event.operator,
                    timestamp_ns,
                ),
            )
            for step, (time_ns, market_ids, state) in enumerate(event.steps):
                for market_id in sorted(market_ids) or (-1,):
                    batch.add(schema.MAINTENANCE_STEPS, (schedule_id, step, market_id, time_ns, int(state)))
        elif isinstance(event, MaintenanceCancelled):
            batch.add(
                schema.MAINTENANCE_EVENTS,
                (
                    seq,
                    index,
                    event.schedule_id,
                    _CANCELLED_SCHEDULE,
                    -1,
                    -1,
                    event.reason,
                    event.operator,
                    timestamp_ns,
                ),
            )
        elif isinstance(event, MaintenanceStepApplied):
            batch.add(
                schema.MAINTENANCE_EVENTS,
                (
                    seq,
                    index,
                    event.schedule_id,
                    _STEP_APPLIED,
                    event.step,
                    int(event.state),
                    "",
                    "",
                    timestamp_ns,
                ),
            )
        elif isinstance(event, MaintenanceStepBlocked):
            batch.add(
                schema.MAINTENANCE_EVENTS,
                (
                    seq,
                    index,
                    event.schedule_id,
                    _STEP_BLOCKED,
                    event.step,
                    -1,
                    event.problem,
                    "",
                    timestamp_ns,
                ),
            )
        elif isinstance(event, Adjusted):
            row = [
                seq,
                index,
                event.account_id,
                event.asset_id,
                event.amount_atomic,
                event.incident,
                event.operator,
                NO_ENTRY,
                timestamp_ns,
            ]
            batch.add(schema.ADJUSTMENTS, row)
            links.adjustment = row
        elif isinstance(event, WithdrawalsFrozen):
            batch.add(
                schema.WITHDRAWAL_FREEZES,
                (seq, index, int(event.frozen), event.reason, event.operator, timestamp_ns),
            )

    def _deposit(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: DepositUpdated, links: _Links
    ) -> None:
        row = self._current(batch.deposits, schema.DEPOSITS, event.deposit_id)
        entry_id = NO_ENTRY
        if links.deposit_entry != NO_ENTRY:
            entry_id, links.deposit_entry = links.deposit_entry, NO_ENTRY
        if row is None:
            row = batch.deposits[event.deposit_id] = [
                event.deposit_id,
                event.account_id,
                event.asset_id,
                event.amount_atomic,
                event.chain,
                event.tx_id,
                event.output_index,
                event.confirmations,
                int(event.status),
                entry_id,
                seq,
                timestamp_ns,
                seq,
                timestamp_ns,
            ]
        else:
            assert row[_DEPOSIT_COLUMN["account_id"]] == event.account_id, f"deposit {event.deposit_id} changed account"
            row[_DEPOSIT_COLUMN["confirmations"]] = event.confirmations
            row[_DEPOSIT_COLUMN["status"]] = int(event.status)
            if entry_id != NO_ENTRY:
                row[_DEPOSIT_COLUMN["entry_id"]] = entry_id
            row[_DEPOSIT_COLUMN["updated_seq"]] = seq
            row[_DEPOSIT_COLUMN["updated_ns"]] = timestamp_ns
        batch.add(
            schema.DEPOSIT_UPDATES,
            (event.deposit_id, seq, index, event.account_id, int(event.status), event.confirmations, timestamp_ns),
        )

    def _withdrawal(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: WithdrawalUpdated, links: _Links
    ) -> None:
        row = self._current(batch.withdrawals, schema.WITHDRAWALS, event.withdrawal_id)
        entry_id = NO_ENTRY
        if links.withdrawal_entry != NO_ENTRY:
            entry_id, links.withdrawal_entry = links.withdrawal_entry, NO_ENTRY
        if row is None:
            row = batch.withdrawals[event.withdrawal_id] = [
                event.withdrawal_id,
                event.account_id,
                event.asset_id,
                event.amount_atomic,
                event.fee_atomic,
                event.chain,
                event.address,
                event.tx_id,
                int(event.status),
                event.reason,
                entry_id,
                seq,
                timestamp_ns,
                seq,
                timestamp_ns,
                event.client_id,
            ]
        else:
            column = _WITHDRAWAL_COLUMN
            assert row[column["account_id"]] == event.account_id, f"withdrawal {event.withdrawal_id} changed account"
            row[column["tx_id"]] = event.tx_id
            row[column["status"]] = int(event.status)
            row[column["reason"]] = event.reason
            if entry_id != NO_ENTRY:
                row[column["entry_id"]] = entry_id
            row[column["updated_seq"]] = seq
            row[column["updated_ns"]] = timestamp_ns
        batch.add(
            schema.WITHDRAWAL_UPDATES,
            (
                event.withdrawal_id,
                seq,
                index,
                event.account_id,
                int(event.status),
                event.operator,
                event.tx_id,
                event.reason,
                timestamp_ns,
            ),
        )

    # ---- version 3: trigger orders, borrowing, lending, interest -----------------------
    def _project_v3(self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: Event, links: _Links) -> None:
        if isinstance(event, TriggerAccepted):
            self._accept_trigger(batch, seq, timestamp_ns, index, event, links)
        elif isinstance(event, TriggerFired):
            links.fired = event.order_id  # its OrderAccepted comes next (_accept)
        elif isinstance(event, TriggerFailed):
            order = batch.orders[event.order_id]
            assert order[_STATUS] == TRIGGER_PENDING, f"order {event.order_id} failed while not pending"
            order[_TRIGGERED_NS] = timestamp_ns
            self._set_status(batch, order, TRIGGER_FAILED, seq, timestamp_ns, index)
        elif isinstance(event, BorrowLendChanged):
            self._borrow_lend(batch, seq, timestamp_ns, index, event, links)
        elif isinstance(event, InterestAccrued):
            self._interest(batch, seq, timestamp_ns, event, links)

    def _open_position(self, batch: _Batch, account_id: int, asset_id: int) -> list[int] | None:
        """Return the account's open borrow/lend position row in an asset (this batch's, or the store's)."""
        key = (account_id, asset_id)
        if key not in batch.open_positions:
            table = schema.BORROW_LEND_POSITIONS
            found = self.store.connection.query(
                f"SELECT {', '.join(table.column_names)} FROM {table.name} "
                "WHERE account_id = ? AND asset_id = ? AND closed_seq = ?",
                (account_id, asset_id, NO_POSITION),
            )
            assert len(found) <= 1, f"account {account_id} has two open positions in asset {asset_id}"
            batch.open_positions[key] = [int(value) for value in found[0]] if found else None
            if found:
                row = batch.open_positions[key]
                assert row is not None
                batch.positions[(account_id, asset_id, row[_POSITION_COLUMN["opened_seq"]])] = row
        return batch.open_positions[key]

    def _move_position(
        self,
        batch: _Batch,
        seq: int,
        timestamp_ns: int,
        account_id: int,
        asset_id: int,
        side: int,
        amount: int,
    ) -> tuple[int, int]:
        """Grow (amount > 0) or shrink the account's position on `side`, opening or closing it;
        return (the position's opened seq, its size after)."""
        column = _POSITION_COLUMN
        row = self._open_position(batch, account_id, asset_id)
        if row is None:
            assert amount > 0, f"account {account_id} reduced a position it does not have in asset {asset_id}"
            row = [account_id, asset_id, seq, side, 0, 0, 0, 0, NO_POSITION, timestamp_ns, seq, timestamp_ns]
            batch.open_positions[(account_id, asset_id)] = row
            batch.positions[(account_id, asset_id, seq)] = row
        assert row[column["side"]] == side, f"account {account_id} borrows and lends asset {asset_id} at once"
        row[column["quantity_atomic"]] += amount
        quantity = row[column["quantity_atomic"]]
        assert quantity >= 0, f"account {account_id}'s position in asset {asset_id} went negative"
        row[column["updated_seq"]] = seq
        row[column["updated_ns"]] = timestamp_ns
        if quantity == 0:
            row[column["closed_seq"]] = seq
            batch.open_positions[(account_id, asset_id)] = None
        return row[column["opened_seq"]], quantity

    def _borrow_lend(
        self, batch: _Batch, seq: int, timestamp_ns: int, index: int, event: BorrowLendChanged, links: _Links
    ) -> None:
        """A Lend first repays the account's borrow, a Borrow first redeems its lend (lending.py):
        one movement for each part, then the positions must be the engine's."""
        account_id, asset_id = event.account_id, event.asset_id
        entry_id, links.borrow_lend_entry = links.borrow_lend_entry, NO_ENTRY
        # A liquidation's takeover of a borrow by the insurance fund moves no balance: the
        # fund's side has no entry of its own (liquidation.py, step 5c and 7).
        assert entry_id != NO_ENTRY or event.liquidation, "a BorrowLendChanged follows its ledger entry"
        row = self._open_position(batch, account_id, asset_id)
        held_side = row[_POSITION_COLUMN["side"]] if row is not None else -1
        held = row[_POSITION_COLUMN["quantity_atomic"]] if row is not None else 0
        side = int(event.side)
        opposite = _BORROW if side == _LEND else _LEND
        undone = min(event.amount_atomic, held) if held_side == opposite else 0
        parts: list[tuple[int, int, int]] = []  # (kind, side moved, signed amount)
        if undone:
            kind = BorrowLendKind.BORROW_REPAY if side == _LEND else BorrowLendKind.LEND_REDEEM
            parts.append((int(kind), opposite, -undone))
        if event.amount_atomic > undone:
            kind = BorrowLendKind.LEND if side == _LEND else BorrowLendKind.BORROW
            parts.append((int(kind), side, event.amount_atomic - undone))
        for part, (kind_number, moved_side, amount) in enumerate(parts):
            position_seq, after = self._move_position(
                batch, seq, timestamp_ns, account_id, asset_id, moved_side, amount
            )
            batch.add(
                schema.BORROW_LEND_MOVES,
                (
                    seq,
                    index,
                    part,
                    account_id,
                    asset_id,
                    kind_number,
                    abs(amount),
                    position_seq,
                    after,
                    entry_id,
                    timestamp_ns,
                ),
            )
        row = batch.open_positions[(account_id, asset_id)]
        lent = (
            row[_POSITION_COLUMN["quantity_atomic"]]
            if row is not None and row[_POSITION_COLUMN["side"]] == _LEND
            else 0
        )
        borrowed = (
            row[_POSITION_COLUMN["quantity_atomic"]]
            if row is not None and row[_POSITION_COLUMN["side"]] == _BORROW
            else 0
        )
        assert (lent, borrowed) == (event.lent_after_atomic, event.borrowed_after_atomic), (
            f"account {account_id}'s positions in asset {asset_id} are not the engine's"
        )

    def _interest(self, batch: _Batch, seq: int, timestamp_ns: int, event: InterestAccrued, links: _Links) -> None:
        """An hour of interest: the round, and each position's share (which grows the position)."""
        asset_id = event.asset_id
        round_row = [
            asset_id,
            seq,
            event.rate_e9,
            event.borrowed_atomic,
            event.lent_atomic,
            event.paid_atomic,
            event.to_lenders_atomic,
            event.spread_atomic,
            NO_ENTRY,
            timestamp_ns,
        ]
        batch.add(schema.INTEREST_ROUNDS, round_row)
        links.interest_round = round_row
        # What lenders got, as a yearly rate of what they lent (this round's).
        lend_rate_e9 = (
            div_floor(event.to_lenders_atomic * HOURS_PER_YEAR * E9, event.lent_atomic) if event.lent_atomic else 0
        )
        column = _POSITION_COLUMN
        for account_id, amount in event.payments:
            if account_id <= 0:  # the fee account's spread
                batch.add(schema.INTEREST_PAYMENTS, (seq, asset_id, account_id, amount, 0, NO_POSITION, timestamp_ns))
                continue
            side = _BORROW if amount < 0 else _LEND
            row = self._open_position(batch, account_id, asset_id)
            assert row is not None and row[column["side"]] == side, f"interest for no position of account {account_id}"
            row[column["quantity_atomic"]] += abs(amount)
            row[column["interest_atomic"]] += abs(amount)
            rate = event.rate_e9 if side == _BORROW else lend_rate_e9
            row[column["rate_e9_sum"]] += rate
            row[column["interest_rounds"]] += 1
            row[column["updated_seq"]] = seq
            row[column["updated_ns"]] = timestamp_ns
            batch.add(
                schema.INTEREST_PAYMENTS,
                (seq, asset_id, account_id, amount, rate, row[column["opened_seq"]], timestamp_ns),
            )

    # ---- writing ----------------------------------------------------------------------
    def _write(self, batch: _Batch, seq: int, timestamp_ns: int) -> None:
        connection = self.store.connection
        for table, rows in (
            (schema.ASSETS, batch.assets),
            (schema.MARKETS, batch.markets),
            (schema.ACCOUNTS, batch.accounts),
            (schema.ORDER_UPDATES, batch.order_updates),
            (schema.FILLS, batch.fills),
            (schema.TRADES, batch.trades),
            (schema.LEDGER_LINES, batch.ledger_lines),
        ):
            if rows:
                connection.insert_many(table, rows)
        orders = batch.orders
        if batch.orders_new:
            connection.insert_many(schema.ORDERS, [orders[order_id] for order_id in batch.orders_new])
        if len(orders) > len(batch.orders_new):
            new = set(batch.orders_new)
            connection.executemany(_UPSERT_ORDERS, [order for order_id, order in orders.items() if order_id not in new])
        if batch.bars:
            connection.executemany(_UPSERT_BARS, [(*key, *bar) for key, bar in batch.bars.items()])
        if batch.deposits:
            connection.executemany(_UPSERT_DEPOSITS, list(batch.deposits.values()))
        if batch.withdrawals:
            connection.executemany(_UPSERT_WITHDRAWALS, list(batch.withdrawals.values()))
        if batch.positions:
            connection.executemany(_UPSERT_POSITIONS, list(batch.positions.values()))
        if batch.perp_positions:
            connection.executemany(_UPSERT_PERP_POSITIONS, list(batch.perp_positions.values()))
        for table, appended in batch.rows.items():
            connection.insert_many(table, appended)
        connection.execute("UPDATE position SET seq = ?, timestamp_ns = ? WHERE id = 1", (seq, timestamp_ns))
