"""Orders: sides, order kinds, statuses, and the open order the book holds.

An `Order` is engine state while it is open; once it ends (filled, cancelled, expired)
the engine forgets it and history keeps it (views). Quantities are in steps:

    filled_steps + open_steps + cancelled_steps == quantity_steps

where `cancelled_steps` is what an order gave up when it ended unfilled. A buy order
holds quote (its worst-case cost, taker fee included); a sell order holds base. `hold_atomic`
is what the order currently locks; the sum over an account's open orders equals the
account's locked amount of that asset (DESIGN.md invariant).

`attached` is the take-profit and stop-loss a perpetual order carries (triggers.py): set
while the order has never filled, None once its first fill created them (or when it
carries none), so `attached is not None` implies `filled_steps == 0`.

Imports: msgspec.
"""

from __future__ import annotations

import enum

import msgspec


@enum.unique
class Side(enum.IntEnum):
    """BUY is Backpack's `Bid`, SELL its `Ask`."""

    BUY = 0
    SELL = 1


@enum.unique
class OrderType(enum.IntEnum):
    LIMIT = 0
    MARKET = 1


@enum.unique
class TimeInForce(enum.IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


@enum.unique
class SelfTradePrevention(enum.IntEnum):
    """Backpack's modes, plus ALLOW for operator flows and benchmarks (the gateway refuses it)."""

    REJECT_TAKER = 0
    REJECT_MAKER = 1
    REJECT_BOTH = 2
    ALLOW = 3


class AutoMargin(enum.IntFlag):
    """What a spot order may do with the lending pool (matching.py, "Automatic borrowing
    and lending"; the API's autoBorrow, autoBorrowRepay, autoLend, autoLendRedeem). A
    PlaceOrder carries a set of these as one integer, `auto_margin` (0: none)."""

    BORROW = 1  # borrow what its hold lacks (redeeming the account's lend of it first)
    BORROW_REPAY = 2  # what its fills bring in repays the account's borrow of that asset
    LEND = 4  # what its fills bring in repays the borrow of that asset, then is lent
    LEND_REDEEM = 8  # redeem the account's lend of what its hold lacks


AUTO_MARGIN_ALL = int(AutoMargin.BORROW | AutoMargin.BORROW_REPAY | AutoMargin.LEND | AutoMargin.LEND_REDEEM)


@enum.unique
class OrderStatus(enum.IntEnum):
    NEW = 0
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4


@enum.unique
class EndReason(enum.IntEnum):
    """Why an order ended without filling (Backpack's expiryReason and cancel causes)."""

    USER_CANCEL = 0
    IMMEDIATE_OR_CANCEL = 1  # IOC or market remainder
    SELF_TRADE_PREVENTION = 2
    FILL_LIMIT = 3  # fills_per_command_max reached
    PRICE_IMPACT = 4  # market order stopped at its impact band
    INSUFFICIENT_FUNDS = 5  # quote-quantity market order spent its budget
    NO_LIQUIDITY = 6  # market order found the opposite side empty
    REDUCE_ONLY = 7  # a resting reduce-only order met a position with nothing left to reduce
    LIQUIDATION = 8  # its account was liquidated
    ORDER_BOOK_CLOSED = 9  # a maintenance step that cancels orders closed its book
    ONE_CANCELS_OTHER = 10  # a pending take-profit or stop-loss whose sibling fired (triggers.py)


class Attachment(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The take-profit and stop-loss an order carries until its first fill (triggers.py).

    A trigger price of 0 means none; a limit price of 0 a market order; trigger-by is
    triggers.TriggerBy. At least one trigger price is set."""

    take_profit_trigger_ticks: int
    take_profit_limit_ticks: int
    take_profit_trigger_by: int
    stop_loss_trigger_ticks: int
    stop_loss_limit_ticks: int
    stop_loss_trigger_by: int


class Order(msgspec.Struct, array_like=True, gc=False):
    """An open order. Mutable: the matching loop updates it in place."""

    order_id: int
    account_id: int
    market_id: int
    side: int  # Side
    order_type: int  # OrderType
    time_in_force: int  # TimeInForce
    price_ticks: int  # limit price; for a market order, its impact bound
    quantity_steps: int
    open_steps: int
    filled_steps: int
    client_id: int  # -1: none
    post_only: bool
    self_trade_prevention: int  # SelfTradePrevention
    hold_atomic: int
    notional_taker_atomic: int  # executed quote value while taking
    notional_maker_atomic: int  # executed quote value while resting
    created_seq: int
    created_ns: int
    quote_budget_atomic: int = 0  # market order by quote quantity: what it may spend or raise
    reduce_only: bool = False  # perpetuals: fills never open or grow the position
    attached: Attachment | None = None  # take-profit/stop-loss still to create at the first fill
