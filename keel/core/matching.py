"""Order entry, matching and cancellation: the engine's hot path.

Theory of operation. `place_order` first decides: every check that can refuse the order
runs before anything is written (STYLE.md: decide, then apply), in the spec's validation
order (section 8.1): account, market, market state, shape, grid and filters, price band,
client id, open-order limit, post-only, self-trade at entry, fill-or-kill, funds. Then it
applies: the taker crosses the opposite side level by level, best price first and oldest
order first within a level, each trade at the maker's price; the remainder rests (GTC
limit) or expires (IOC, FOK never has one, market).

Holds. A buy holds quote, a sell holds base. A sell holds exactly its open base quantity.
A buy holds its worst-case cost: limit price x open quantity x lot, plus the fee that
quantity could still cost. Fees are charged on an order's cumulative notional per role,
rounded up (toward the exchange) once per role and order:

    taker fee so far = ceil(notional_taker x fee_taker_bps / 10,000)
    maker fee so far = ceil(notional_maker x fee_maker_bps / 10,000)

so a fill is charged the increase of that function, and a resting buy's hold is
price x open x lot + ceil((notional_maker + price x open x lot) x bps) - ceil(notional_maker x bps),
which never falls by less than the fill costs (a fill at a better price costs less,
and ceil is monotone). An order that may both take and rest pays two roundings, which
can exceed one rounding of the total by one atomic unit; its entry hold includes that
unit, so available never goes negative. Negative maker fees (rebates) round toward zero
because ceil of a negative amount is its truncation.

Self-trade prevention (spec 8.2): REJECT_TAKER ends the taker (refused outright if its
very first match would be against its own account, so nothing changes), REJECT_MAKER
cancels the resting order and goes on, REJECT_BOTH cancels the resting order and ends
the taker. ALLOW (never from the gateway) trades with itself.

Every trade posts one balanced ledger entry of five lines: base from seller to buyer,
quote from buyer to seller net of fees, and both fees to the fee account.

Automatic borrowing and lending (issue 5; the API's autoBorrow, autoLendRedeem,
autoBorrowRepay, autoLend). A spot PlaceOrder may carry `auto_margin`, a set of
orders.AutoMargin flags in one integer: one field, so the log grows by one byte per
order rather than four, and an order without flags pays one truth test of it.

- Refused (ORDER_MALFORMED, at entry, changing nothing) on a perpetual, whose order
  holds nothing and whose fills credit no asset, and for unknown flags; a trigger order
  is checked when accepted and again when it fires.
- Funding the hold (BORROW, LEND_REDEEM). After every other check, when the order's hold
  exceeds the available balance of the held asset (quote for a buy, base for a sell) by
  a shortfall, the order takes exactly the shortfall from the lending pool: first by
  redeeming the account's lend of that asset, then, with BORROW, by borrowing the rest.
  BORROW redeems first even without LEND_REDEEM because an account never both lends and
  borrows one asset (BorrowLend's Borrow does the same); LEND_REDEEM alone only redeems.
  The same rules as BorrowLend apply (lending_pool.py): a borrow needs the asset enabled,
  a margin asset and an index price (BORROW_NOT_ENABLED); the pool must hold the whole
  amount (POOL_INSUFFICIENT). Then the order's own margin check (_check_spot_margin)
  decides with the movement included, trial-applied and undone (INSUFFICIENT_MARGIN);
  it runs for any account that has positions, lends or borrows, or is about to borrow,
  and bounds the account's equity after the command from below, so no separate
  BorrowLend margin check is needed. A shortfall left uncovered is refused by the funds
  check (INSUFFICIENT_AVAILABLE). A refusal changes nothing.
- Effects, in order: the pool movement (one `borrow_lend` entry referencing the command's seq,
  then BorrowLendChanged with side Borrow and the whole amount), then the order's hold,
  OrderAccepted and fills as for any order. No rounding is involved: the shortfall is an
  exact difference. What the order took stays a borrow (or a redeemed lend) whether it
  fills, rests or is later cancelled; part of it stays in the balance when the order
  fills at a better price or cancels.
- Using the proceeds (BORROW_REPAY, LEND). After the order's own fills in the command
  that placed it (not later fills of its resting remainder, nor fills of other orders),
  let credited be what they added to the account's balance of the other asset (base for
  a buy, quote net of the taker fee for a sell), capped at that asset's available
  balance. BORROW_REPAY repays up to that much of the account's borrow of it; LEND
  repays the borrow and lends the rest (a Lend always repays first). One `borrow_lend`
  entry and a BorrowLendChanged with side Lend, after the order's events. These need no
  check: repaying or lending leaves collateral unchanged (a lend counts as the balance
  did) and only lowers the borrow requirement.

Imports: accounts, book, errors, events, lending_pool, limits, markets, money, orders, perps, state,
trigger_records.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop

from keel.core import limits
from keel.core.accounts import CLEARING_ACCOUNT_ID, FEE_ACCOUNT_ID, Account
from keel.core.book import Book
from keel.core.commands import (
    NO_CLIENT_ID,
    NO_ORDER_ID,
    CancelAllOrders,
    CancelOrder,
    PlaceOrder,
)
from keel.core.errors import RejectCode, Rejected
from keel.core.events import (
    EntryReason,
    Event,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    PositionChanged,
    TradeExecuted,
)
from keel.core.lending_pool import BorrowLendSide, check_borrowable, check_pool_holds, move_pool
from keel.core.markets import Market, MarketKind, MarketState
from keel.core.money import BPS, div_ceil, div_floor, format_decimal
from keel.core.orders import (
    AUTO_MARGIN_ALL,
    Attachment,
    AutoMargin,
    EndReason,
    Order,
    OrderType,
    SelfTradePrevention,
    TimeInForce,
)
from keel.core.perps import (
    apply_fill,
    check_order_margin,
    covered_without_collateral,
    drift_delta_e9,
    equity_atomic,
    initial_requirement_atomic,
    initial_within_bound,
    position_changed,
    position_for,
)
from keel.core.state import ExchangeState
from keel.core.trigger_records import create_attached

_PERP = int(MarketKind.PERP)
_POST_ONLY_STATE = int(MarketState.POST_ONLY)
_LIMIT_ONLY_STATE = int(MarketState.LIMIT_ONLY)
_CANCEL_ONLY_STATE = int(MarketState.CANCEL_ONLY)
_CLOSED_STATE = int(MarketState.CLOSED)
_REDUCE_ONLY_END = int(EndReason.REDUCE_ONLY)
_TRADE = int(EntryReason.TRADE)
_ALLOW = int(SelfTradePrevention.ALLOW)
_REJECT_TAKER = int(SelfTradePrevention.REJECT_TAKER)
_REJECT_BOTH = int(SelfTradePrevention.REJECT_BOTH)
_STP_END = int(EndReason.SELF_TRADE_PREVENTION)
_FILL_LIMIT_END = int(EndReason.FILL_LIMIT)
_BUDGET_END = int(EndReason.INSUFFICIENT_FUNDS)
_IOC_END = int(EndReason.IMMEDIATE_OR_CANCEL)
_STP_CANCEL = int(EndReason.SELF_TRADE_PREVENTION)
_FILLS_MAX = limits.fills_per_command_max
_AUTO_BORROW = int(AutoMargin.BORROW)
_AUTO_FUNDS_HOLD = int(AutoMargin.BORROW | AutoMargin.LEND_REDEEM)
_AUTO_TAKES_PROCEEDS = int(AutoMargin.BORROW_REPAY | AutoMargin.LEND)
_AUTO_LEND = int(AutoMargin.LEND)
_BORROW_SIDE = int(BorrowLendSide.BORROW)
_LEND_SIDE = int(BorrowLendSide.LEND)


def fee_increase_atomic(notional_before: int, notional_added: int, fee_bps: int) -> int:
    """Return ceil((before + added) x bps / 10,000) - ceil(before x bps / 10,000).

    The fee a fill adds to an order's cumulative fee in one role; rounds toward the
    exchange (a rebate, with negative bps, toward zero)."""
    return div_ceil((notional_before + notional_added) * fee_bps, BPS) - div_ceil(notional_before * fee_bps, BPS)


def resting_buy_hold_atomic(market: Market, order: Order) -> int:
    """Return what a resting buy order must hold: open cost plus its maker fee bound."""
    cost = order.price_ticks * order.open_steps * market.lot_atomic
    if market.fee_maker_bps <= 0 or cost == 0:
        return cost
    return cost + fee_increase_atomic(order.notional_maker_atomic, cost, market.fee_maker_bps)


def _reject_unknown_market(market_id: int) -> Rejected:
    return Rejected(RejectCode.UNKNOWN_MARKET, f"market {market_id} does not exist")


def market_for(state: ExchangeState, market_id: int) -> Market:
    """Return the market with this id; raises Rejected(UNKNOWN_MARKET)."""
    if 0 <= market_id < len(state.markets):
        return state.markets[market_id]
    raise _reject_unknown_market(market_id)


def user_account_for(state: ExchangeState, account_id: int) -> Account:
    """Return a user's account; raises Rejected(UNKNOWN_ACCOUNT)."""
    account = state.accounts.get(account_id)
    if account is None or account_id <= 0:
        raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} does not exist")
    return account


def _check_spot_order_margin(
    state: ExchangeState,
    account: Account,
    market: Market,
    book: Book,
    is_buy: bool,
    hold_asset: int,
    hold: int,
    crosses: bool,
    price: int,
    stp: int,
    quantity: int,
) -> None:
    """_check_spot_margin with what the order can fill at once (`_fillable_steps`), which
    only adds to the equity it counts: so first without it, and the book is walked only
    when that is not enough (then the refusal names the equity with it)."""
    if crosses:
        try:
            _check_spot_margin(state, account, market, is_buy, hold_asset, hold, 0, price)
            return
        except Rejected:
            pass
        fillable = _fillable_steps(state, book, is_buy, price, account.account_id, stp, quantity)
    else:
        fillable = 0
    _check_spot_margin(state, account, market, is_buy, hold_asset, hold, fillable, price)


def _check_spot_margin(
    state: ExchangeState,
    account: Account,
    market: Market,
    is_buy: bool,
    hold_asset: int,
    hold: int,
    quantity: int,
    price: int,
) -> None:
    """Refuse a spot order that would leave a margin account below initial margin. Its
    whole hold stops counting as collateral; only what can fill at once (`quantity`: the
    steps the book holds up to its price) counts, what it buys at the index price and
    the asset's weight, what it sells at its price less the taker fee. That bounds the
    account's equity after the command from below."""
    if is_buy:
        base = state.assets[market.base_asset_id]
        index = state.index_prices[market.base_asset_id] if market.base_asset_id != state.margin_asset_id else 0
        bought = quantity * market.step_atomic
        proceeds = div_floor(bought * index, 10**base.decimals) * base.collateral_weight_bps // BPS
    else:
        notional = price * quantity * market.lot_atomic
        proceeds = notional - div_ceil(notional * market.fee_taker_bps, BPS) if market.fee_taker_bps > 0 else notional
    account.locked[hold_asset] += hold
    try:
        margin_asset = state.margin_asset_id
        if (
            account.account_id not in state.lending_accounts
            and not any(account.borrowed)  # not borrowing for this order either
            and (hold_asset == margin_asset or account.balances[hold_asset] >= account.locked[hold_asset])
        ):
            # Its other assets count at zero or more: the margin asset and the unrealized
            # PnL bound its equity from below (perps.py, "The bound").
            if account.terms_drift == state.mark_drift:
                if covered_without_collateral(state, account, account.unreal_total + proceeds, account.init_total):
                    return
            else:
                delta = drift_delta_e9(state, account)
                if delta >= 0 and initial_within_bound(state, account, proceeds, delta):
                    return
        equity = equity_atomic(state, account) + proceeds
        required = initial_requirement_atomic(state, account)
    finally:
        account.locked[hold_asset] -= hold
    if equity < required:
        raise Rejected(
            RejectCode.INSUFFICIENT_MARGIN,
            f"insufficient margin: with this order's {amount_text(state, hold_asset, hold)} held, the account's "
            f"equity would be {amount_text(state, margin_asset, equity)}, below its initial margin of "
            f"{amount_text(state, margin_asset, required)}",
        )


def check_auto_margin(market: Market, auto_margin: int) -> None:
    """Refuse AutoMargin flags the engine does not know, and any on a perpetual: a
    perpetual order holds nothing to borrow for, and its fills credit no asset (module
    docstring). Raises Rejected(ORDER_MALFORMED)."""
    if auto_margin & ~AUTO_MARGIN_ALL:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"unknown automatic borrow and lend flags {auto_margin}")
    if market.kind == _PERP:
        raise Rejected(
            RejectCode.ORDER_MALFORMED,
            f"{market.symbol} is a perpetual: automatic borrowing, lending, redeeming and repaying are for spot orders",
        )


def _decide_auto_funding(
    state: ExchangeState,
    account: Account,
    market: Market,
    book: Book,
    is_buy: bool,
    hold_asset: int,
    hold: int,
    crosses: bool,
    price: int,
    quantity: int,
    stp: int,
    auto_margin: int,
) -> int:
    """Return what a spot order with AutoMargin flags takes from the lending pool for its
    hold: its shortfall (hold - available), redeemed from the account's lend first and,
    with BORROW, borrowed for the rest. Checks it as BorrowLend would (BORROW_NOT_ENABLED,
    POOL_INSUFFICIENT), then the order's margin check with it included (INSUFFICIENT_MARGIN);
    raises and changes nothing. A shortfall it does not cover is refused by the caller's
    funds check."""
    balances = account.balances
    lent = account.lent
    borrowed = account.borrowed
    shortfall = hold - (balances[hold_asset] - account.locked[hold_asset])
    funded = borrowing = 0
    if shortfall > 0 and auto_margin & _AUTO_FUNDS_HOLD:
        redeeming = min(shortfall, lent[hold_asset])
        borrowing = shortfall - redeeming if auto_margin & _AUTO_BORROW else 0
        funded = redeeming + borrowing
        if borrowing:
            check_borrowable(state, hold_asset)
        if funded:
            check_pool_holds(state, hold_asset, funded)
    if (
        hold
        and state.margin_asset_id >= 0
        and (account.positions or account.account_id in state.lending_accounts or borrowing)
    ):
        # Decide on a trial, as BorrowLend does: apply the pool movement, check, undo.
        redeeming = funded - borrowing
        lent[hold_asset] -= redeeming
        borrowed[hold_asset] += borrowing
        balances[hold_asset] += funded
        try:
            _check_spot_order_margin(
                state, account, market, book, is_buy, hold_asset, hold, crosses, price, stp, quantity
            )
        finally:
            lent[hold_asset] += redeeming
            borrowed[hold_asset] -= borrowing
            balances[hold_asset] -= funded
    return funded


def _settle_auto_proceeds(
    state: ExchangeState,
    account: Account,
    asset_id: int,
    credited: int,
    auto_margin: int,
    seq: int,
    events: list[Event],
) -> None:
    """After an order's own fills: with BORROW_REPAY, what they credited (up to the
    available balance) repays the account's borrow of that asset; with LEND it repays the
    borrow and the rest is lent. One Lend movement to the pool (lending_pool.move_pool);
    it never needs a check, since repaying or lending leaves collateral unchanged and
    lowers the borrow requirement."""
    if credited <= 0 or not auto_margin & _AUTO_TAKES_PROCEEDS:
        return
    amount = min(credited, account.balances[asset_id] - account.locked[asset_id])
    if not auto_margin & _AUTO_LEND:
        amount = min(amount, account.borrowed[asset_id])
    if amount > 0:
        move_pool(state, account, asset_id, _LEND_SIDE, amount, seq, events)


def _check_market_state(market: Market, market_state: int, command: PlaceOrder) -> None:
    """Refuse what the market's state does not accept (market_states.py); a limit order
    that would take in PostOnly is refused later, once crossing is known."""
    if market_state >= _CANCEL_ONLY_STATE:
        name = "closed" if market_state == _CLOSED_STATE else "in cancel-only mode"
        raise Rejected(RejectCode.MARKET_NOT_OPEN, f"{market.symbol} is {name}: no new orders")
    if market_state == _POST_ONLY_STATE and (command.order_type != 0 or command.time_in_force != 0):
        raise Rejected(
            RejectCode.MARKET_POST_ONLY, f"{market.symbol} is in post-only mode: only orders that rest are accepted"
        )
    if market_state == _LIMIT_ONLY_STATE and command.order_type != 0:
        raise Rejected(RejectCode.MARKET_LIMIT_ONLY, f"{market.symbol} is in limit-only mode: no market orders")


def _check_shape(command: PlaceOrder) -> None:
    """Refuse an order whose fields contradict each other (RejectCode 1xxx)."""
    if command.side != 0 and command.side != 1:
        raise Rejected(RejectCode.ORDER_MALFORMED, "side must be Bid or Ask")
    if command.time_in_force not in (0, 1, 2):
        raise Rejected(RejectCode.ORDER_MALFORMED, "time in force must be GTC, IOC or FOK")
    if command.self_trade_prevention not in (0, 1, 2, 3):
        raise Rejected(RejectCode.ORDER_MALFORMED, "unknown self-trade prevention mode")
    client_id = command.client_id
    if client_id != NO_CLIENT_ID and not 0 <= client_id <= limits.client_id_max:
        raise Rejected(RejectCode.CLIENT_ID_INVALID, f"client id {client_id} is not a uint32")
    if command.order_type == OrderType.LIMIT:
        if command.price_ticks <= 0:
            raise Rejected(RejectCode.PRICE_NOT_POSITIVE, "a limit order needs a positive price")
        if command.quantity_steps <= 0:
            raise Rejected(RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive")
        if command.quote_quantity_atomic != 0:
            raise Rejected(RejectCode.ORDER_MALFORMED, "a limit order takes a quantity, not a quote quantity")
        if command.post_only and command.time_in_force != TimeInForce.GTC:
            raise Rejected(RejectCode.ORDER_MALFORMED, "post-only orders must be GTC")
        if command.price_ticks > limits.price_ticks_max:
            raise Rejected(RejectCode.VALUE_TOO_LARGE, "price is too large")
    elif command.order_type == OrderType.MARKET:
        if command.price_ticks != 0:
            raise Rejected(RejectCode.ORDER_MALFORMED, "a market order takes no price")
        if command.post_only:
            raise Rejected(RejectCode.ORDER_MALFORMED, "a market order cannot be post-only")
        has_quantity = command.quantity_steps != 0
        has_quote = command.quote_quantity_atomic != 0
        if has_quantity == has_quote:
            raise Rejected(
                RejectCode.ORDER_MALFORMED,
                "a market order takes exactly one of quantity and quote quantity",
            )
        if command.quantity_steps < 0 or command.quote_quantity_atomic < 0:
            raise Rejected(RejectCode.QUANTITY_NOT_POSITIVE, "quantity must be positive")
        if command.quote_quantity_atomic > limits.amount_atomic_max:
            raise Rejected(RejectCode.VALUE_TOO_LARGE, "quote quantity is too large")
    else:
        raise Rejected(RejectCode.ORDER_MALFORMED, "order type must be Limit or Market")
    if command.quantity_steps > limits.quantity_steps_max:
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "quantity is too large")


# Rejection messages speak decimals, as a trader reads prices and amounts; these run only
# on the refusal path.
def price_text(state: ExchangeState, market: Market, price_ticks: int) -> str:
    """Return a price in ticks as a decimal in the quote asset ("101.2")."""
    return format_decimal(price_ticks * market.tick_atomic, state.assets[market.quote_asset_id].decimals)


def quantity_text(state: ExchangeState, market: Market, quantity_steps: int) -> str:
    """Return a quantity in steps as a decimal with the base asset ("0.5 SOL")."""
    base = state.assets[market.base_asset_id]
    return f"{format_decimal(quantity_steps * market.step_atomic, base.decimals)} {base.symbol}"


def amount_text(state: ExchangeState, asset_id: int, amount_atomic: int) -> str:
    """Return an amount in atomic units as a decimal with its asset ("7.004202 USDC")."""
    asset = state.assets[asset_id]
    return f"{format_decimal(amount_atomic, asset.decimals)} {asset.symbol}"


def _check_quantity(state: ExchangeState, market: Market, quantity_steps: int) -> None:
    if quantity_steps < market.quantity_min_steps:
        raise Rejected(
            RejectCode.QUANTITY_BELOW_MINIMUM,
            f"quantity {quantity_text(state, market, quantity_steps)} is below the minimum of "
            f"{quantity_text(state, market, market.quantity_min_steps)} for {market.symbol}",
        )
    if market.quantity_max_steps and quantity_steps > market.quantity_max_steps:
        raise Rejected(
            RejectCode.QUANTITY_ABOVE_MAXIMUM,
            f"quantity {quantity_text(state, market, quantity_steps)} is above the maximum of "
            f"{quantity_text(state, market, market.quantity_max_steps)} for {market.symbol}",
        )


def _below_notional(state: ExchangeState, market: Market, notional_atomic: int) -> Rejected:
    return Rejected(
        RejectCode.NOTIONAL_BELOW_MINIMUM,
        f"order value {amount_text(state, market.quote_asset_id, notional_atomic)} is below the minimum of "
        f"{amount_text(state, market.quote_asset_id, market.notional_min_atomic)} for {market.symbol}",
    )


def _first_live(book: Book, is_buy: bool) -> Order | None:
    """Return the oldest live order at the best opposite price, or None."""
    price = book.best_ask() if is_buy else book.best_bid()
    if price == 0:
        return None
    side_levels = book.asks if is_buy else book.bids
    for order in side_levels[price].orders:
        if order.open_steps > 0:
            return order
    raise AssertionError("a level in the book has no live order")


def _fillable_steps(
    state: ExchangeState, book: Book, is_buy: bool, limit_ticks: int, account_id: int, stp: int, wanted: int
) -> int:
    """Return how many steps a taker could fill up to its limit, at most `wanted` (the
    fill-or-kill check; the spot margin check, which must not count more than the order
    can buy or sell)."""
    total = 0
    reducible: dict[int, int] = {}  # reduce-only makers: what their positions still allow
    # Only the levels within the limit, best first (sorting the whole side cost more).
    if is_buy:
        levels = book.asks
        prices = sorted([price for price in levels if price <= limit_ticks])
    else:
        levels = book.bids
        prices = sorted([price for price in levels if price >= limit_ticks], reverse=True)
    for price in prices:
        level = levels[price]
        for order in level.orders:
            if order.open_steps == 0:
                continue
            if order.account_id == account_id and stp != _ALLOW:
                if stp in (_REJECT_TAKER, _REJECT_BOTH):
                    return total
                continue  # REJECT_MAKER: that order is cancelled and skipped
            if order.reduce_only:
                left = reducible.get(order.account_id)
                if left is None:
                    size = state.accounts[order.account_id].positions[book.market_id].size_steps
                    left = max(0, -size if order.side == 0 else size)
                usable = min(left, order.open_steps)
                reducible[order.account_id] = left - usable
                total += usable
                if total >= wanted:
                    return wanted
                continue
            total += order.open_steps
            if total >= wanted:
                return wanted
    return total


def _affordable_steps(budget_atomic: int, unit_atomic: int, notional_taker: int, fee_bps: int) -> int:
    """Return the most steps at `unit_atomic` quote per step a buy budget pays for, fees included."""
    if fee_bps <= 0:
        return budget_atomic // unit_atomic
    steps = div_floor(budget_atomic * BPS, unit_atomic * (BPS + fee_bps))

    def cost(steps_: int) -> int:
        notional = unit_atomic * steps_
        return notional + fee_increase_atomic(notional_taker, notional, fee_bps)

    if cost(steps + 1) <= budget_atomic:
        steps += 1
    while steps > 0 and cost(steps) > budget_atomic:
        steps -= 1
    return steps


_VALID_SHAPES = frozenset(
    (order_type, time_in_force, stp, post_only)
    for order_type in (0, 1)
    for time_in_force in (0, 1, 2)
    for stp in (0, 1, 2, 3)
    for post_only in (False, True)
    if not (post_only and (order_type == 1 or time_in_force != 0))
)
_PRICE_MAX = limits.price_ticks_max
_AMOUNT_MAX = limits.amount_atomic_max
_QUANTITY_MAX = limits.quantity_steps_max
_CLIENT_ID_MAX = limits.client_id_max
_OPEN_ORDERS_MAX = limits.orders_open_per_account_max
_NO_LIQUIDITY_END = int(EndReason.NO_LIQUIDITY)
_PRICE_IMPACT_END = int(EndReason.PRICE_IMPACT)


def check_order_shape(command: PlaceOrder) -> None:
    """Refuse an order whose fields contradict each other (for trigger orders, at acceptance)."""
    _check_shape(command)


def place_order(
    state: ExchangeState,
    command: PlaceOrder,
    events: list[Event],
    order_id: int = 0,
    attached: Attachment | None = None,
) -> None:
    """Check and apply one order; append its events. `attached` is the take-profit and
    stop-loss triggers.py checked for it: created at its first fill (trigger_records.py).

    Raises Rejected (and changes nothing) for: UNKNOWN_ACCOUNT, UNKNOWN_MARKET,
    MARKET_NOT_OPEN, ORDER_MALFORMED, PRICE_NOT_POSITIVE, QUANTITY_NOT_POSITIVE,
    CLIENT_ID_INVALID, VALUE_TOO_LARGE, QUANTITY_BELOW_MINIMUM, QUANTITY_ABOVE_MAXIMUM,
    NOTIONAL_BELOW_MINIMUM, PRICE_OUT_OF_BAND, DUPLICATE_CLIENT_ID, OPEN_ORDER_LIMIT,
    POST_ONLY_WOULD_TAKE, SELF_TRADE, FILL_OR_KILL_UNFILLABLE, INSUFFICIENT_AVAILABLE.
    A market order that finds the opposite side empty is accepted and expires at once
    (Backpack's expiryReason InsufficientLiquidity).
    """
    # ---- decide -------------------------------------------------------------------
    account_id = command.account_id
    account = state.accounts.get(account_id)
    if account is None or account_id <= 0:
        raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} does not exist")
    market_id = command.market_id
    markets = state.markets
    if not 0 <= market_id < len(markets):
        raise _reject_unknown_market(market_id)
    market = markets[market_id]
    market_state = market.state
    if market_state:  # MarketState.OPEN is 0
        _check_market_state(market, market_state, command)
    side = command.side
    order_type = command.order_type
    tif = command.time_in_force
    stp = command.self_trade_prevention
    post_only = command.post_only
    price = command.price_ticks
    quantity = command.quantity_steps
    quote_budget = command.quote_quantity_atomic
    client_id = command.client_id
    # The common shapes pass these few comparisons; anything else gets its precise
    # rejection from _check_shape, which must then refuse it.
    if (
        (side != 0 and side != 1)
        or (order_type, tif, stp, post_only) not in _VALID_SHAPES
        or not -1 <= client_id <= _CLIENT_ID_MAX
        or not 0 <= quantity <= _QUANTITY_MAX
        or (
            not (0 < price <= _PRICE_MAX and quantity > 0 and quote_budget == 0)
            if order_type == 0
            else (price != 0 or (quantity == 0) == (quote_budget == 0) or not 0 <= quote_budget <= _AMOUNT_MAX)
        )
    ):
        _check_shape(command)
        raise AssertionError("an order shape passed _check_shape but not the fast check")
    auto_margin = command.auto_margin
    if auto_margin:
        check_auto_margin(market, auto_margin)
    book = state.books[market_id]
    is_buy = side == 0
    lot = market.lot_atomic
    # Best opposite price; the heap top is valid unless its level emptied.
    if is_buy:
        heap = book.ask_heap
        opposite = (heap[0] if heap[0] in book.asks else book.best_ask()) if heap else 0
    else:
        heap = book.bid_heap
        opposite = (-heap[0] if -heap[0] in book.bids else book.best_bid()) if heap else 0
    end_reason = -1
    if order_type == 0:
        if quantity < market.quantity_min_steps or (market.quantity_max_steps and quantity > market.quantity_max_steps):
            _check_quantity(state, market, quantity)
        cost = price * quantity * lot
        if cost < market.notional_min_atomic:
            raise _below_notional(state, market, cost)
        last = market.last_price_ticks
        if last and not (last * market.band_low_bps <= price * BPS <= last * market.band_high_bps):
            raise Rejected(
                RejectCode.PRICE_OUT_OF_BAND,
                f"price {price_text(state, market, price)} is too far from the last traded price "
                f"{price_text(state, market, last)} of {market.symbol} (allowed "
                f"{price_text(state, market, div_ceil(last * market.band_low_bps, BPS))} to "
                f"{price_text(state, market, div_floor(last * market.band_high_bps, BPS))})",
            )
        crosses = opposite != 0 and ((opposite <= price) if is_buy else (opposite >= price))
    elif opposite == 0:
        if quote_budget:
            if quote_budget < market.notional_min_atomic:
                raise _below_notional(state, market, quote_budget)
        else:
            _check_quantity(state, market, quantity)
        quantity = 0 if quote_budget else quantity
        crosses = False
        end_reason = _NO_LIQUIDITY_END
        cost = 0
    else:
        # The impact band bounds a market order like a limit price (spec 5.1), rounded
        # inward so the order never trades beyond it.
        if is_buy:
            price = div_floor(opposite * market.impact_high_bps, BPS)
        else:
            price = div_ceil(opposite * market.impact_low_bps, BPS)
        if quote_budget:
            if quote_budget < market.notional_min_atomic:
                raise _below_notional(state, market, quote_budget)
            # An upper bound on steps: a buy gets no more than the budget buys at the
            # best ask; a sell needs no more than the budget at its impact bound.
            quantity = quote_budget // ((opposite if is_buy else price) * lot)
            if quantity == 0:
                raise Rejected(
                    RejectCode.QUANTITY_BELOW_MINIMUM,
                    f"quote quantity {amount_text(state, market.quote_asset_id, quote_budget)} is less than one "
                    f"step ({quantity_text(state, market, 1)}) of {market.symbol}",
                )
        else:
            _check_quantity(state, market, quantity)
        cost = price * quantity * lot
        crosses = True
    if client_id != -1 and client_id in account.client_orders:
        raise Rejected(RejectCode.DUPLICATE_CLIENT_ID, f"an open order already has client id {client_id}")
    may_rest = order_type == 0 and tif == 0
    if may_rest and len(account.orders_open) >= _OPEN_ORDERS_MAX:
        raise Rejected(RejectCode.OPEN_ORDER_LIMIT, f"an account may have at most {_OPEN_ORDERS_MAX} open orders")
    if crosses:
        if market_state == _POST_ONLY_STATE:
            raise Rejected(
                RejectCode.MARKET_POST_ONLY,
                f"{market.symbol} is in post-only mode: this order would take at {price_text(state, market, opposite)}",
            )
        if post_only:
            raise Rejected(
                RejectCode.POST_ONLY_WOULD_TAKE,
                f"post-only order would immediately match at {price_text(state, market, opposite)}",
            )
        if stp == _REJECT_TAKER:
            first = _first_live(book, is_buy)
            if first is not None and first.account_id == account_id:
                raise Rejected(RejectCode.SELF_TRADE, "order would trade with your own resting order")
        if tif == 2 and _fillable_steps(state, book, is_buy, price, account_id, stp, quantity) < quantity:
            raise Rejected(RejectCode.FILL_OR_KILL_UNFILLABLE, "fill-or-kill order cannot be filled completely")
    elif tif == 2:
        raise Rejected(RejectCode.FILL_OR_KILL_UNFILLABLE, "fill-or-kill order cannot be filled completely")
    # The hold: what the order can cost (module docstring). An order that does not
    # cross can only ever be a maker, so it holds the maker bound from the start.
    # A perpetual order holds nothing: the margin rule carries it (perps.py).
    is_perp = market.kind == _PERP
    reduce_only = command.reduce_only
    if is_perp:
        if reduce_only and quote_budget:
            raise Rejected(RejectCode.ORDER_MALFORMED, "a reduce-only order takes a quantity, not a quote quantity")
        check_order_margin(state, account, market, is_buy, quantity, reduce_only)
        hold_asset = market.quote_asset_id
        hold = 0
    elif reduce_only:
        raise Rejected(RejectCode.ORDER_MALFORMED, "reduce-only is for perpetual markets")
    elif is_buy:
        hold_asset = market.quote_asset_id
        if quote_budget:
            hold = quote_budget if crosses else 0
        elif post_only or not crosses:
            fee_bps = market.fee_maker_bps
            hold = cost - ((-cost * fee_bps) // BPS) if fee_bps > 0 else cost
        else:
            hold = cost - ((-cost * market.fee_taker_bps) // BPS)
            if may_rest and market.fee_maker_bps > 0:
                hold += 1
    else:
        hold_asset = market.base_asset_id
        hold = quantity * market.step_atomic if crosses or may_rest else 0
    locked = account.locked
    funded = 0  # what the lending pool gives the order for its hold (AutoMargin)
    if auto_margin:
        funded = _decide_auto_funding(
            state, account, market, book, is_buy, hold_asset, hold, crosses, price, quantity, stp, auto_margin
        )
    elif (
        not is_perp
        and hold
        and state.margin_asset_id >= 0
        and (account.positions or account_id in state.lending_accounts)
    ):
        # A margin account's spot hold stops counting as collateral: keep initial margin.
        _check_spot_order_margin(state, account, market, book, is_buy, hold_asset, hold, crosses, price, stp, quantity)
    if hold > account.balances[hold_asset] - locked[hold_asset] + funded:
        raise Rejected(
            RejectCode.INSUFFICIENT_AVAILABLE,
            f"insufficient funds: the order needs {amount_text(state, hold_asset, hold)}, "
            f"{amount_text(state, hold_asset, account.balances[hold_asset] - locked[hold_asset])} is available",
        )
    # ---- apply --------------------------------------------------------------------
    if not order_id:  # a firing trigger brings the id it was given when accepted
        order_id = state.order_id_next
        state.order_id_next = order_id + 1
    order = Order(
        order_id,
        account_id,
        market_id,
        side,
        order_type,
        tif,
        price,
        quantity,
        quantity,
        0,
        client_id,
        post_only,
        stp,
        hold,
        0,
        0,
        command.seq,
        command.timestamp_ns,
        quote_budget,
        reduce_only,
        attached,
    )
    if funded:
        move_pool(state, account, hold_asset, _BORROW_SIDE, funded, command.seq, events)
    locked[hold_asset] += hold
    events.append(
        OrderAccepted(
            order_id,
            account_id,
            market_id,
            side,
            order_type,
            tif,
            command.price_ticks,
            command.quantity_steps,
            quote_budget,
            client_id,
            post_only,
            stp,
        )
    )
    if auto_margin:
        credit_asset = market.base_asset_id if is_buy else market.quote_asset_id
        credit_before = account.balances[credit_asset]
    if crosses:
        end_reason = _match(state, market, book, order, account, events)
    open_steps = order.open_steps
    if open_steps and may_rest and end_reason == -1:
        if is_perp:
            position = position_for(state, account, market_id)
            if is_buy:
                position.open_buy_steps += open_steps
            else:
                position.open_sell_steps += open_steps
            position_changed(state, account, position)
        elif crosses:
            # It took first: its hold shrinks from the taker bound to the maker bound.
            new_hold = resting_buy_hold_atomic(market, order) if is_buy else open_steps * market.step_atomic
            locked[hold_asset] -= hold - new_hold
            order.hold_atomic = new_hold
        levels = book.bids if is_buy else book.asks
        level = levels.get(price)
        if level is None:
            level = book.add_level(side, price)
        level.orders.append(order)
        level.open_steps += open_steps
        level.live += 1
        state.dirty_levels.append(level)
        state.dirty_orders.append(order)
        state.dirty_accounts.append(account)
        state.orders[order_id] = order
        account.orders_open[order_id] = order
        if client_id != -1:
            account.client_orders[client_id] = order
        if auto_margin:
            credited = account.balances[credit_asset] - credit_before
            _settle_auto_proceeds(state, account, credit_asset, credited, auto_margin, command.seq, events)
        return
    locked[hold_asset] -= hold
    order.hold_atomic = 0
    if end_reason == -1 and open_steps and order_type == 1:
        # A market order that stopped with opposite orders left stopped at its impact band.
        opposite_left = book.best_ask() if is_buy else book.best_bid()
        end_reason = _PRICE_IMPACT_END if opposite_left else _IOC_END
    if open_steps or end_reason == _NO_LIQUIDITY_END:
        order.open_steps = 0
        events.append(
            OrderExpired(order_id, account_id, market_id, _IOC_END if end_reason == -1 else end_reason, open_steps)
        )
    if auto_margin:
        credited = account.balances[credit_asset] - credit_before
        _settle_auto_proceeds(state, account, credit_asset, credited, auto_margin, command.seq, events)


def _match(
    state: ExchangeState,
    market: Market,
    book: Book,
    taker: Order,
    taker_account: Account,
    events: list[Event],
) -> int:
    """Cross `taker` against the opposite side; return why it stopped early, or -1.

    Moves balances of both sides through ledger entries and keeps makers' holds exact;
    the taker's own hold is settled by the caller."""
    is_buy = taker.side == 0
    if is_buy:
        levels, heap, in_heap = book.asks, book.ask_heap, book.in_ask_heap
    else:
        levels, heap, in_heap = book.bids, book.bid_heap, book.in_bid_heap
    limit = taker.price_ticks
    lot = market.lot_atomic
    step = market.step_atomic
    base = market.base_asset_id
    quote = market.quote_asset_id
    fee_taker_bps = market.fee_taker_bps
    fee_maker_bps = market.fee_maker_bps
    market_id = market.market_id
    accounts = state.accounts
    orders = state.orders
    fee_balances = accounts[FEE_ACCOUNT_ID].balances
    taker_id = taker.order_id
    taker_account_id = taker.account_id
    taker_side = taker.side
    stp = taker.self_trade_prevention
    budget = taker.quote_budget_atomic
    has_budget = budget > 0  # the budget may reach exactly zero; it still binds then
    open_steps = taker.open_steps
    notional_taker = taker.notional_taker_atomic
    trade_id = state.trade_id_next
    entry_id = state.entry_id_next
    append = events.append
    dirty_accounts = state.dirty_accounts
    dirty_orders = state.dirty_orders
    dirty_levels = state.dirty_levels
    fills = 0
    last_price = 0
    end_reason = -1
    perp = market.kind == _PERP
    taker_attached = taker.attached is not None
    while open_steps:
        while heap:
            key = heap[0]
            price = key if is_buy else -key
            if price in levels:
                break
            in_heap.discard(heappop(heap))
        else:
            break
        if (price > limit) if is_buy else (price < limit):
            break
        level = levels[price]
        dirty_levels.append(level)
        queue = level.orders
        while open_steps and queue:
            maker = queue[0]
            maker_open = maker.open_steps
            if maker_open == 0:  # cancelled earlier: dropped lazily here
                queue.popleft()
                continue
            maker_account_id = maker.account_id
            maker_account = accounts[maker_account_id]
            if maker_account_id == taker_account_id and stp != _ALLOW:
                if stp == _REJECT_TAKER:
                    end_reason = _STP_END
                    break
                _cancel_resting(state, market, book, maker, maker_account, _STP_CANCEL, events)
                if stp == _REJECT_BOTH:
                    end_reason = _STP_END
                    break
                continue
            fill = open_steps if open_steps < maker_open else maker_open
            if perp and maker.reduce_only:
                size = maker_account.positions[market_id].size_steps
                reducible = -size if maker.side == 0 else size  # a buy reduces a short
                if reducible <= 0:
                    _cancel_resting(state, market, book, maker, maker_account, _REDUCE_ONLY_END, events)
                    continue
                if reducible < fill:
                    fill = reducible
            if has_budget:
                unit = price * lot
                if is_buy:
                    affordable = _affordable_steps(budget, unit, notional_taker, fee_taker_bps)
                else:
                    affordable = budget // unit
                if affordable < fill:
                    fill = affordable
                    if fill == 0:
                        end_reason = _BUDGET_END
                        break
            notional = price * fill * lot
            notional_after = notional_taker + notional
            fee_taker = ((-notional_taker * fee_taker_bps) // BPS) - ((-notional_after * fee_taker_bps) // BPS)
            notional_taker = notional_after
            maker_notional = maker.notional_maker_atomic
            maker_notional_after = maker_notional + notional
            fee_maker = ((-maker_notional * fee_maker_bps) // BPS) - ((-maker_notional_after * fee_maker_bps) // BPS)
            maker.notional_maker_atomic = maker_notional_after
            base_atomic = fill * step
            dirty_accounts.append(maker_account)
            dirty_orders.append(maker)
            maker_open -= fill
            maker.open_steps = maker_open
            maker.filled_steps += fill
            level.open_steps -= fill
            if is_buy:
                buyer_id, seller_id = taker_account_id, maker_account_id
                buyer_balances, seller_balances = taker_account.balances, maker_account.balances
                fee_buyer, fee_seller = fee_taker, fee_maker
                if not perp:
                    maker.hold_atomic -= base_atomic
                    maker_account.locked[base] -= base_atomic
                if has_budget:
                    budget -= notional + fee_taker
            else:
                buyer_id, seller_id = maker_account_id, taker_account_id
                buyer_balances, seller_balances = maker_account.balances, taker_account.balances
                fee_buyer, fee_seller = fee_maker, fee_taker
                cost = maker.price_ticks * maker_open * lot
                if perp:
                    new_hold = 0
                elif fee_maker_bps > 0 and cost:
                    new_hold = (
                        cost
                        + ((-maker_notional_after * fee_maker_bps) // BPS)
                        - ((-(maker_notional_after + cost) * fee_maker_bps) // BPS)
                    )
                else:
                    new_hold = cost
                maker_account.locked[quote] -= maker.hold_atomic - new_hold
                maker.hold_atomic = new_hold
                if has_budget:
                    budget -= notional
            fee_total = fee_buyer + fee_seller
            if not perp:
                pay = notional + fee_buyer
                receive = notional - fee_seller
                buyer_balances[base] += base_atomic
                seller_balances[base] -= base_atomic
                buyer_balances[quote] -= pay
                seller_balances[quote] += receive
                fee_balances[quote] += fee_total
            append(
                TradeExecuted(
                    trade_id,
                    market_id,
                    price,
                    fill,
                    taker_id,
                    maker.order_id,
                    taker_account_id,
                    maker_account_id,
                    taker_side,
                    fee_taker,
                    fee_maker,
                )
            )
            if perp:
                if maker.side == 0:
                    maker_position = maker_account.positions[market_id]
                    maker_position.open_buy_steps -= fill
                else:
                    maker_position = maker_account.positions[market_id]
                    maker_position.open_sell_steps -= fill
                _settle_perp_trade(
                    state,
                    market,
                    accounts[buyer_id],
                    accounts[seller_id],
                    fill,
                    price,
                    fee_buyer,
                    fee_seller,
                    trade_id,
                    entry_id,
                    events,
                )
                # A first fill creates the take-profit and stop-loss an order carries:
                # the taker's, then the maker's (triggers.py).
                if taker_attached:
                    taker_attached = False
                    create_attached(state, taker, events)
                if maker.attached is not None:
                    create_attached(state, maker, events)
            else:
                append(
                    LedgerPosted(
                        entry_id,
                        _TRADE,
                        trade_id,
                        (
                            (buyer_id, base, base_atomic),
                            (seller_id, base, -base_atomic),
                            (buyer_id, quote, -pay),
                            (seller_id, quote, receive),
                            (FEE_ACCOUNT_ID, quote, fee_total),
                        ),
                    )
                )
            trade_id += 1
            entry_id += 1
            open_steps -= fill
            last_price = price
            if maker_open == 0:
                queue.popleft()
                level.live -= 1
                maker_order_id = maker.order_id
                del orders[maker_order_id]
                del maker_account.orders_open[maker_order_id]
                if maker.client_id != NO_CLIENT_ID:
                    del maker_account.client_orders[maker.client_id]

            fills += 1
            if fills >= _FILLS_MAX:
                end_reason = _FILL_LIMIT_END
                break
        if level.live == 0:
            # pop, not del: a self-trade cancel may already have removed the level
            levels.pop(price, None)
        if end_reason != -1:
            break
    dirty_accounts.append(taker_account)
    dirty_accounts.append(accounts[FEE_ACCOUNT_ID])
    filled_steps = taker.open_steps - open_steps
    taker.filled_steps += filled_steps
    taker.open_steps = open_steps
    taker.notional_taker_atomic = notional_taker
    if has_budget:
        assert budget >= 0
        taker.quote_budget_atomic = budget
    state.trade_id_next = trade_id
    state.entry_id_next = entry_id
    if last_price:
        market.last_price_ticks = last_price
        market.volume_steps += filled_steps
    return end_reason


def _settle_perp_trade(
    state: ExchangeState,
    market: Market,
    buyer: Account,
    seller: Account,
    fill: int,
    price: int,
    fee_buyer: int,
    fee_seller: int,
    trade_id: int,
    entry_id: int,
    events: list[Event],
) -> None:
    """Move both positions by a perpetual trade; settle PnL and fees in the quote asset.

    One balanced entry: each side's realized PnL net of its fee, the fees to the fee
    account, and the PnL's counterpart to the clearing account (perps.py)."""
    market_id = market.market_id
    lot = market.lot_atomic
    quote = market.quote_asset_id
    accounts = state.accounts
    buyer_position = position_for(state, buyer, market_id)
    seller_position = position_for(state, seller, market_id)
    buyer_before = buyer_position.size_steps
    seller_before = seller_position.size_steps
    pnl_buyer = apply_fill(buyer_position, fill, price, lot)
    pnl_seller = apply_fill(seller_position, -fill, price, lot)
    market.open_interest_steps += (
        max(buyer_position.size_steps, 0)
        - max(buyer_before, 0)
        + max(seller_position.size_steps, 0)
        - max(seller_before, 0)
    )
    buyer_amount = pnl_buyer - fee_buyer
    seller_amount = pnl_seller - fee_seller
    fee_total = fee_buyer + fee_seller
    clearing_amount = -(pnl_buyer + pnl_seller)
    buyer.balances[quote] += buyer_amount
    seller.balances[quote] += seller_amount
    fee_account = accounts[FEE_ACCOUNT_ID]
    fee_account.balances[quote] += fee_total
    clearing = accounts[CLEARING_ACCOUNT_ID]
    clearing.balances[quote] += clearing_amount
    state.dirty_accounts.append(buyer)
    state.dirty_accounts.append(seller)
    state.dirty_accounts.append(clearing)
    events.append(
        PositionChanged(
            buyer.account_id,
            market_id,
            buyer_before,
            buyer_position.size_steps,
            buyer_position.cost_atomic,
            pnl_buyer,
            trade_id,
        )
    )
    events.append(
        PositionChanged(
            seller.account_id,
            market_id,
            seller_before,
            seller_position.size_steps,
            seller_position.cost_atomic,
            pnl_seller,
            trade_id,
        )
    )
    events.append(
        LedgerPosted(
            entry_id,
            _TRADE,
            trade_id,
            (
                (buyer.account_id, quote, buyer_amount),
                (seller.account_id, quote, seller_amount),
                (FEE_ACCOUNT_ID, quote, fee_total),
                (CLEARING_ACCOUNT_ID, quote, clearing_amount),
            ),
        )
    )
    position_changed(state, buyer, buyer_position)
    if seller is not buyer:  # a self-trade (STP Allow) moved one position twice
        position_changed(state, seller, seller_position)


def _cancel_resting(
    state: ExchangeState, market: Market, book: Book, order: Order, account: Account, reason: int, events: list[Event]
) -> None:
    """Take a resting order out of the book, release its hold, forget it; append the event."""
    cancelled_steps = order.open_steps
    order_id = order.order_id
    if order.side == 0:
        account.locked[market.quote_asset_id] -= order.hold_atomic
        levels = book.bids
    else:
        account.locked[market.base_asset_id] -= order.hold_atomic
        levels = book.asks
    order.hold_atomic = 0
    if market.kind == _PERP:
        position = account.positions[market.market_id]
        if order.side == 0:
            position.open_buy_steps -= cancelled_steps
        else:
            position.open_sell_steps -= cancelled_steps
        position_changed(state, account, position)
    # Lazy removal (book.py): the order stays in its deque with nothing open.
    price = order.price_ticks
    level = levels[price]
    state.dirty_levels.append(level)
    state.dirty_orders.append(order)
    state.dirty_accounts.append(account)
    level.open_steps -= cancelled_steps
    live = level.live - 1
    level.live = live
    order.open_steps = 0
    if live == 0:
        del levels[price]
    elif len(level.orders) > 2 * live + _DEAD_SLACK:
        _compact(level.orders)
    del state.orders[order_id]
    del account.orders_open[order_id]
    if order.client_id != -1:
        del account.client_orders[order.client_id]
    events.append(OrderCancelled(order_id, order.account_id, order.market_id, reason, cancelled_steps))


# A level's queue is compacted once its cancelled entries outnumber its live orders by
# this much (book.py): amortised O(1) per cancel, and a queue never holds more than
# about twice its live orders, however long an order rests behind a churning quote.
_DEAD_SLACK = 16


def _compact(queue: deque[Order]) -> None:
    """Drop a level's cancelled entries in place, keeping its live orders in time priority.
    In place: the matching loop may hold this deque while a self-trade cancel lands here."""
    live = [order for order in queue if order.open_steps]
    queue.clear()
    queue.extend(live)


_USER_CANCEL = int(EndReason.USER_CANCEL)


def cancel_open_order(state: ExchangeState, order: Order, account: Account, reason: int, events: list[Event]) -> None:
    """Cancel one open order for a rule (liquidation); append its OrderCancelled."""
    market = state.markets[order.market_id]
    _cancel_resting(state, market, state.books[market.market_id], order, account, reason, events)


def cancel_order(state: ExchangeState, command: CancelOrder, events: list[Event]) -> None:
    """Cancel one open order, found by order id or client id.

    Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_MARKET, ORDER_MALFORMED, UNKNOWN_ORDER)."""
    account_id = command.account_id
    account = state.accounts.get(account_id)
    if account is None or account_id <= 0:
        raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} does not exist")
    market_id = command.market_id
    if not 0 <= market_id < len(state.markets):
        raise _reject_unknown_market(market_id)
    order_id = command.order_id
    client_id = command.client_id
    if (order_id == NO_ORDER_ID) == (client_id == NO_CLIENT_ID):
        raise Rejected(RejectCode.ORDER_MALFORMED, "cancel takes exactly one of order id and client id")
    if state.markets[market_id].state == _CLOSED_STATE:
        raise Rejected(RejectCode.MARKET_NOT_OPEN, f"{state.markets[market_id].symbol} is closed: cancels wait")
    order = account.orders_open.get(order_id) if client_id == -1 else account.client_orders.get(client_id)
    if order is None or order.market_id != market_id:
        what = f"order {order_id}" if client_id == -1 else f"order with client id {client_id}"
        raise Rejected(RejectCode.UNKNOWN_ORDER, f"{what} is not open in {state.markets[market_id].symbol}")
    _cancel_resting(state, state.markets[market_id], state.books[market_id], order, account, _USER_CANCEL, events)


def cancel_all_orders(state: ExchangeState, command: CancelAllOrders, events: list[Event]) -> None:
    """Cancel every open order of the account in one market, oldest first (none is fine).

    Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_MARKET)."""
    account = user_account_for(state, command.account_id)
    market = market_for(state, command.market_id)
    if market.state == _CLOSED_STATE:
        raise Rejected(RejectCode.MARKET_NOT_OPEN, f"{market.symbol} is closed: cancels wait")
    book = state.books[market.market_id]
    targets = [order for order in account.orders_open.values() if order.market_id == market.market_id]
    for order in targets:
        _cancel_resting(state, market, book, order, account, _USER_CANCEL, events)
