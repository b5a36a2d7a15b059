"""What the history store's queries return: frozen msgspec Structs of integers.

Fields carry the schema's column names (schema.py) and units; enum-valued fields hold the
core's enum numbers (`keel.core.orders.Side`, `OrderType`, `TimeInForce`,
`SelfTradePrevention`, `EndReason`, `keel.core.events.EntryReason`) and order statuses
`OrderStatus`, whose names in the API (spec section 3) are `ORDER_STATUS_NAMES`. The
gateway turns ticks, steps and atomic units into decimal strings and nanoseconds into
the units each endpoint uses.

Imports: keel.core.orders.
"""

from __future__ import annotations

from typing import Final

import msgspec

from keel.core.orders import OrderStatus

# The spec's order status names (section 8.3), by the status numbers the store keeps.
ORDER_STATUS_NAMES: Final = {
    OrderStatus.NEW: "New",
    OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    OrderStatus.FILLED: "Filled",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.EXPIRED: "Expired",
}
OPEN_STATUSES: Final = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
NO_END_REASON: Final = -1


def is_open_status(status: int) -> bool:
    """Return whether an order with this status may still trade."""
    return status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class _Record(msgspec.Struct, frozen=True, gc=False):
    pass


class Position(_Record, frozen=True):
    """The last command the store has projected (0, 0 for an empty store)."""

    seq: int
    timestamp_ns: int


class OrderRecord(_Record, frozen=True):
    """An order as history knows it: every accepted order, in any status."""

    order_id: int
    account_id: int
    market_id: int
    side: int
    order_type: int
    time_in_force: int
    price_ticks: int  # 0 for a market order
    quantity_steps: int  # 0 for a market order by quote quantity
    quote_quantity_atomic: int  # 0 unless a market order by quote quantity
    client_id: int  # -1: none
    post_only: bool
    self_trade_prevention: int
    status: int  # OrderStatus
    executed_steps: int
    executed_quote_atomic: int
    fee_atomic: int
    cancelled_steps: int
    end_reason: int  # EndReason, or -1 while open or once Filled
    created_seq: int
    created_ns: int
    updated_seq: int
    updated_ns: int


class OrderUpdate(_Record, frozen=True):
    """One status change of an order."""

    order_id: int
    seq: int
    event_index: int
    account_id: int
    status: int
    executed_steps: int
    executed_quote_atomic: int
    end_reason: int
    timestamp_ns: int


class FillRecord(_Record, frozen=True):
    """One account's side of a trade."""

    trade_id: int
    is_maker: bool
    order_id: int
    account_id: int
    market_id: int
    side: int
    price_ticks: int
    quantity_steps: int
    quote_atomic: int
    fee_atomic: int  # negative: a rebate
    fee_asset_id: int
    client_id: int  # -1: none
    seq: int
    timestamp_ns: int


class TradeRecord(_Record, frozen=True):
    """A public trade of a market."""

    trade_id: int
    market_id: int
    price_ticks: int
    quantity_steps: int
    quote_atomic: int
    taker_side: int  # the buyer was the maker when the taker sold (Backpack's isBuyerMaker)
    taker_order_id: int
    maker_order_id: int
    seq: int
    timestamp_ns: int


class LedgerLine(_Record, frozen=True):
    """One line of a balanced journal entry."""

    entry_id: int
    line_no: int
    reason: int  # EntryReason
    reference: int
    account_id: int
    asset_id: int
    amount_atomic: int
    seq: int
    timestamp_ns: int


class Kline(_Record, frozen=True):
    """One candle: trades with start_ns <= time < end_ns."""

    start_ns: int
    end_ns: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    volume_steps: int
    quote_volume_atomic: int
    trades: int
