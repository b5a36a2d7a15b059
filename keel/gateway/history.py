"""The gateway's view of the past: orders, fills, public trades, candles, 24 h tickers,
deposits, withdrawals, funding, borrow/lend movements and positions, interest, perpetual
positions and settlements.

Endpoints ask `History` (integers in, records out) and never look at how it is kept.
`ViewsHistory` reads the history views (keel/views, docs/views.md): a store of its own
for reading, and the `ViewsWriter` (the sequencer listener that projects durable
events) to know how far history has got. Everything here is a projection of the log,
so it survives restarts and can be rebuilt with `keel views rebuild`.

The store keeps executed and traded value in quote atomic units; the gateway's records
keep it in *lots* (one tick x one step, see orderbook.py), which is exact because every
fill's value is price x quantity x lot.

Imports: keel.views, keel.gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Protocol

import msgspec

from keel.gateway.errors import bad_request
from keel.gateway.orderbook import FillRecord, OrderRecord, TradeRecord
from keel.views import (
    BorrowLendMove,
    BorrowLendPosition,
    FundingPayment,
    FundingRound,
    FundsIn,
    HistoryStore,
    InterestPayment,
    InterestRound,
    PerpPosition,
    QueryInvalid,
    Settlement,
    ViewsWriter,
    WithdrawalRecord,
)
from keel.views import OrderRecord as ViewsOrder

NS_PER_S: Final = 1_000_000_000
DAY_NS: Final = 86_400 * NS_PER_S

# Backpack's kline intervals (spec section 3).
INTERVALS: Final = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1month")


class Candle(msgspec.Struct, frozen=True, gc=False):
    """OHLC in ticks, volume in steps, quote volume in lots, over [start_s, end_s)."""

    start_s: int
    end_s: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    volume_steps: int
    volume_lots: int
    trades: int


class History(Protocol):
    """What the endpoints read about the past. Limits and offsets are already validated."""

    def seq_last(self) -> int: ...

    def stalled(self) -> bool: ...

    def orders(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        limit: int,
        offset: int,
        ascending: bool,
        market_ids: Sequence[int] | None = None,
    ) -> list[OrderRecord]: ...

    def orders_by_id(self, order_ids: Sequence[int]) -> list[OrderRecord]:
        """The orders with these ids, whoever owns them (callers check), ascending by id."""
        ...

    def fills(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
        ascending: bool,
        market_ids: Sequence[int] | None = None,
    ) -> list[FillRecord]: ...

    def trades(self, market_id: int, limit: int, offset: int) -> list[TradeRecord]: ...

    def candles(self, market_id: int, interval: str, start_s: int, end_s: int) -> list[Candle]: ...

    def day(self, market_id: int, now_ns: int) -> Candle | None: ...

    def funds_in(
        self, account_id: int, from_ns: int | None, to_ns: int | None, limit: int, offset: int
    ) -> list[FundsIn]: ...

    def withdrawals(
        self,
        account_id: int | None,
        withdrawal_id: int | None,
        status: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
    ) -> list[WithdrawalRecord]: ...

    def funding_payments(
        self, account_id: int, market_id: int | None, limit: int, offset: int
    ) -> list[FundingPayment]: ...

    def funding_rounds(self, market_id: int, limit: int, offset: int) -> list[FundingRound]: ...

    def borrow_lend_positions(
        self,
        account_id: int,
        asset_id: int | None,
        side: int | None,
        is_open: bool | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[BorrowLendPosition]: ...

    def borrow_lend_moves(
        self,
        account_id: int,
        asset_id: int | None,
        kind: int | None,
        position_seq: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[BorrowLendMove]: ...

    def interest_payments(
        self,
        account_id: int,
        asset_id: int | None,
        position_seq: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[InterestPayment]: ...

    def interest_rounds(self, asset_id: int, from_ns: int | None, limit: int) -> list[InterestRound]: ...

    def perp_positions(
        self, account_id: int, market_id: int | None, is_open: bool | None, limit: int, offset: int, ascending: bool
    ) -> list[PerpPosition]: ...

    def settlements(
        self, account_id: int, sources: Sequence[int] | None, limit: int, offset: int, ascending: bool
    ) -> list[Settlement]: ...


def _order(record: ViewsOrder, lot_atomic: int) -> OrderRecord:
    return OrderRecord(
        order_id=record.order_id,
        account_id=record.account_id,
        market_id=record.market_id,
        side=record.side,
        order_type=record.order_type,
        time_in_force=record.time_in_force,
        price_ticks=record.price_ticks,
        quantity_steps=record.quantity_steps,
        quote_quantity_atomic=record.quote_quantity_atomic,
        client_id=record.client_id,
        post_only=record.post_only,
        self_trade_prevention=record.self_trade_prevention,
        created_ns=record.created_ns,
        filled_steps=record.executed_steps,
        executed_lots=record.executed_quote_atomic // lot_atomic,
        status=record.status,  # an OrderStatus, or the views' TRIGGER_PENDING / TRIGGER_FAILED
        end_reason=record.end_reason,
        updated_ns=record.updated_ns,
        reduce_only=record.reduce_only,
        trigger_price_ticks=record.trigger_price_ticks,
        trigger_by=record.trigger_by,
        triggered_ns=record.triggered_ns,
        take_profit_trigger_ticks=record.take_profit_trigger_ticks,
        take_profit_limit_ticks=record.take_profit_limit_ticks,
        take_profit_trigger_by=record.take_profit_trigger_by,
        stop_loss_trigger_ticks=record.stop_loss_trigger_ticks,
        stop_loss_limit_ticks=record.stop_loss_limit_ticks,
        stop_loss_trigger_by=record.stop_loss_trigger_by,
        parent_order_id=record.parent_order_id,
    )


class ViewsHistory:
    """History read from keel/views; `writer` is the live projector (a sequencer listener)."""

    def __init__(self, store: HistoryStore, writer: ViewsWriter, lot_of: Callable[[int], int]) -> None:
        self.store = store
        self.writer = writer
        self.lot_of = lot_of

    def seq_last(self) -> int:
        return self.writer.position

    def stalled(self) -> bool:
        """Whether the writer stopped projecting (a store failure); history then stays at
        its position until the next start catches it up, and reads do not wait for it."""
        return self.writer.failed is not None

    def orders(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        limit: int,
        offset: int,
        ascending: bool,
        market_ids: Sequence[int] | None = None,
    ) -> list[OrderRecord]:
        try:
            found = self.store.orders(
                account_id,
                market_id=market_id,
                order_id=order_id,
                limit=limit,
                offset=offset,
                descending=not ascending,
                market_ids=market_ids,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None
        return [_order(record, self.lot_of(record.market_id)) for record in found]

    def orders_by_id(self, order_ids: Sequence[int]) -> list[OrderRecord]:
        return [_order(record, self.lot_of(record.market_id)) for record in self.store.orders_by_id(order_ids)]

    def fills(
        self,
        account_id: int,
        market_id: int | None,
        order_id: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
        ascending: bool,
        market_ids: Sequence[int] | None = None,
    ) -> list[FillRecord]:
        try:
            found = self.store.fills(
                account_id,
                market_id=market_id,
                order_id=order_id,
                start_ns=from_ns,
                end_ns=to_ns,
                limit=limit,
                offset=offset,
                descending=not ascending,
                market_ids=market_ids,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None
        return [
            FillRecord(
                trade_id=fill.trade_id,
                order_id=fill.order_id,
                client_id=fill.client_id,
                account_id=fill.account_id,
                market_id=fill.market_id,
                side=fill.side,
                price_ticks=fill.price_ticks,
                quantity_steps=fill.quantity_steps,
                fee_atomic=fill.fee_atomic,
                is_maker=fill.is_maker,
                timestamp_ns=fill.timestamp_ns,
            )
            for fill in found
        ]

    def trades(self, market_id: int, limit: int, offset: int) -> list[TradeRecord]:
        """Newest first."""
        try:
            found = self.store.trades(market_id, limit=limit, offset=offset)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None
        return [
            TradeRecord(
                trade_id=trade.trade_id,
                market_id=trade.market_id,
                price_ticks=trade.price_ticks,
                quantity_steps=trade.quantity_steps,
                taker_side=trade.taker_side,
                taker_order_id=trade.taker_order_id,
                maker_order_id=trade.maker_order_id,
                timestamp_ns=trade.timestamp_ns,
            )
            for trade in found
        ]

    def candles(self, market_id: int, interval: str, start_s: int, end_s: int) -> list[Candle]:
        """Candles (ascending) of `interval` that start in [start_s, end_s) and hold a trade."""
        try:
            found = self.store.klines(market_id, interval, start_s * NS_PER_S, end_s * NS_PER_S)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None
        lot = self.lot_of(market_id)
        return [
            Candle(
                start_s=kline.start_ns // NS_PER_S,
                end_s=kline.end_ns // NS_PER_S,
                open_ticks=kline.open_ticks,
                high_ticks=kline.high_ticks,
                low_ticks=kline.low_ticks,
                close_ticks=kline.close_ticks,
                volume_steps=kline.volume_steps,
                volume_lots=kline.quote_volume_atomic // lot,
                trades=kline.trades,
            )
            for kline in found
        ]

    def day(self, market_id: int, now_ns: int) -> Candle | None:
        """The rolling 24 h aggregate ending now, or None without trades."""
        kline = self.store.window(market_id, now_ns - DAY_NS, now_ns + 1)
        if kline is None:
            return None
        return Candle(
            start_s=(now_ns - DAY_NS) // NS_PER_S,
            end_s=now_ns // NS_PER_S,
            open_ticks=kline.open_ticks,
            high_ticks=kline.high_ticks,
            low_ticks=kline.low_ticks,
            close_ticks=kline.close_ticks,
            volume_steps=kline.volume_steps,
            volume_lots=kline.quote_volume_atomic // self.lot_of(market_id),
            trades=kline.trades,
        )

    def funds_in(
        self, account_id: int, from_ns: int | None, to_ns: int | None, limit: int, offset: int
    ) -> list[FundsIn]:
        """The account's chain deposits and operator credits, newest first."""
        try:
            return self.store.funds_in(account_id, start_ns=from_ns, end_ns=to_ns, limit=limit, offset=offset)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def withdrawals(
        self,
        account_id: int | None,
        withdrawal_id: int | None,
        status: int | None,
        from_ns: int | None,
        to_ns: int | None,
        limit: int,
        offset: int,
    ) -> list[WithdrawalRecord]:
        """Withdrawals (one account's, or all for the operator) with their current status, newest first."""
        try:
            return self.store.withdrawals(
                account_id,
                withdrawal_id=withdrawal_id,
                status=status,
                start_ns=from_ns,
                end_ns=to_ns,
                limit=limit,
                offset=offset,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def funding_payments(self, account_id: int, market_id: int | None, limit: int, offset: int) -> list[FundingPayment]:
        """The account's funding payments, newest first."""
        try:
            return self.store.funding_payments(account_id, market_id=market_id, limit=limit, offset=offset)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def funding_rounds(self, market_id: int, limit: int, offset: int) -> list[FundingRound]:
        """A perpetual's funding rounds, newest first."""
        try:
            return self.store.funding_rounds(market_id, limit=limit, offset=offset)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def borrow_lend_positions(
        self,
        account_id: int,
        asset_id: int | None,
        side: int | None,
        is_open: bool | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[BorrowLendPosition]:
        """The account's borrow/lend positions (open, closed or both), newest first."""
        try:
            return self.store.borrow_lend_positions(
                account_id,
                asset_id=asset_id,
                side=side,
                is_open=is_open,
                limit=limit,
                offset=offset,
                descending=not ascending,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def borrow_lend_moves(
        self,
        account_id: int,
        asset_id: int | None,
        kind: int | None,
        position_seq: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[BorrowLendMove]:
        """The account's borrows, repayments, lends and redemptions, newest first."""
        try:
            return self.store.borrow_lend_moves(
                account_id,
                asset_id=asset_id,
                kind=kind,
                position_seq=position_seq,
                limit=limit,
                offset=offset,
                descending=not ascending,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def interest_payments(
        self,
        account_id: int,
        asset_id: int | None,
        position_seq: int | None,
        limit: int,
        offset: int,
        ascending: bool,
    ) -> list[InterestPayment]:
        """The account's interest, paid (< 0) and earned (> 0), newest first."""
        try:
            return self.store.interest_payments(
                account_id,
                asset_id=asset_id,
                position_seq=position_seq,
                limit=limit,
                offset=offset,
                descending=not ascending,
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def interest_rounds(self, asset_id: int, from_ns: int | None, limit: int) -> list[InterestRound]:
        """An asset's hourly interest rounds since `from_ns`, newest first."""
        try:
            return self.store.interest_rounds(asset_id, start_ns=from_ns, limit=limit)
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def perp_positions(
        self, account_id: int, market_id: int | None, is_open: bool | None, limit: int, offset: int, ascending: bool
    ) -> list[PerpPosition]:
        """The account's perpetual positions (open, closed or both), newest first."""
        try:
            return self.store.perp_positions(
                account_id, market_id=market_id, is_open=is_open, limit=limit, offset=offset, descending=not ascending
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None

    def settlements(
        self, account_id: int, sources: Sequence[int] | None, limit: int, offset: int, ascending: bool
    ) -> list[Settlement]:
        """The account's settlements (realized PnL, deficits covered), newest first."""
        try:
            return self.store.settlements(
                account_id, sources=sources, limit=limit, offset=offset, descending=not ascending
            )
        except QueryInvalid as error:
            raise bad_request(str(error)) from None
