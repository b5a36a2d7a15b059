"""Liquidation: an account below maintenance margin is closed out, and its deficit covered.

Theory of operation. After every command that can move a mark price or an account with
positions (orders, index prices, Ticks with funding), the engine checks the candidate
accounts in ascending id order. An account whose equity is below its maintenance
requirement (perps.py) is liquidated in full, in this order:

1. `LiquidationStarted` records its equity and requirement.
2. Every open order of the account, in every market, is cancelled (reason LIQUIDATION).
3. Each position, in ascending market id, is closed through the book with a reduce-only
   market order (bounded by the market's impact band, taker fee charged), if the market
   is open.
4. What the book did not take is auto-deleveraged: transferred at the mark price to the
   opposing positions, most profitable first (unrealized PnL at the mark, descending;
   ties by ascending account id). Ledger reason `adl`.
5. Debts are settled from collateral (`_settle_debts`, all ledger reason `liquidation`):
   a. the account's lends are redeemed, as far as the lending pool holds them;
   b. each borrow, in ascending asset id, is repaid from the account's own free balance of
      that asset;
   c. what is still owed -- each remaining borrow in ascending asset id, then a negative
      margin asset balance (a deficit) -- is settled with the account's other collateral,
      taken in ascending asset id at the index price less the liquidation fee
      (`LIQUIDATION_FEE_BPS`, 1%, the insurance fund's income for carrying the risk): the
      insurance fund takes the collateral and, for a borrow, takes the borrow over (the
      account's borrow falls and the fund's rises by the same amount, so the pool and the
      total borrowed do not change; two `BorrowLendChanged` with `liquidation` set), or,
      for a deficit, pays it in the margin asset (as far as the fund holds it: collateral
      the fund cannot pay for stays with the account while step 6 covers the rest).
6. If the account's margin asset balance is still negative, the insurance fund pays as
   much of it as it holds (reason `insurance`); what the fund cannot pay is taken first
   from the counterparties step 4 just paid, up to what they gained from this account
   (largest gain first), then from the accounts with the most unrealized profit over all
   their positions, each up to that profit (reason `adl`). What nobody can pay stays on
   the account as a margin debit.
7. A borrow left with no collateral to settle it is taken over by the insurance fund for
   nothing: a liquidated account ends with no positions and no borrows.

An account is a candidate when it has a position or a borrow. It is not liquidated while
one of its positions is in a Closed market or has a stale index, nor while an asset it
borrowed has no index price or a stale one (a perpetual on that asset with a stale
index). After the command, no such account is below its maintenance requirement: audit
checks it.

Imports: accounts, certificates, commands, errors, events, ledger, lending_pool, markets, matching, money, orders,
perps, state, triggers.
"""

from __future__ import annotations

from contextlib import suppress
from heapq import heapify, heappop, heappush

import msgspec

from keel.core import certificates
from keel.core.accounts import CLEARING_ACCOUNT_ID, INSURANCE_ACCOUNT_ID, LENDING_POOL_ACCOUNT_ID, Account
from keel.core.commands import PlaceOrder
from keel.core.errors import Rejected
from keel.core.events import (
    BorrowLendChanged,
    EntryReason,
    Event,
    LedgerPosted,
    LiquidationStarted,
    PositionChanged,
)
from keel.core.ledger import post_entry
from keel.core.lending_pool import BorrowLendSide
from keel.core.markets import MarketKind, MarketState
from keel.core.matching import cancel_open_order, place_order
from keel.core.money import BPS, E9, div_ceil, div_floor
from keel.core.orders import EndReason, OrderType, SelfTradePrevention
from keel.core.perps import (
    DELTA_MAX_E9,
    DRIFT_CAP_E9,
    apply_fill,
    collateral_atomic,
    covered_without_collateral,
    drift_delta_e9,
    equity_atomic,
    fresh_terms,
    index_is_stale,
    maintenance_and_unrealized,
    maintenance_need,
    maintenance_requirement_atomic,
    maintenance_within_bound,
    position_changed,
    position_for,
    unrealized_at_marks,
    unrealized_pnl_atomic,
)
from keel.core.state import ExchangeState
from keel.core.triggers import remove_trigger

_ADL = int(EntryReason.ADL)
_LIQUIDATION = int(EntryReason.LIQUIDATION)
_INSURANCE = int(EntryReason.INSURANCE)
_LIQUIDATION_END = int(EndReason.LIQUIDATION)
_CLOSED = MarketState.CLOSED
_BORROW = int(BorrowLendSide.BORROW)
_LEND = int(BorrowLendSide.LEND)
LIQUIDATION_FEE_BPS = 100  # collateral goes to the insurance fund at the index price less 1%


def _asset_price_unusable(state: ExchangeState, asset_id: int, now: int) -> bool:
    """No index price for a borrowed asset, or a stale one (a perpetual on it is stale)."""
    if asset_id == state.margin_asset_id:
        return False
    if state.index_prices[asset_id] == 0:
        return True
    return any(
        market.kind == MarketKind.PERP and market.base_asset_id == asset_id and index_is_stale(state, market, now)
        for market in state.markets
    )


def below_maintenance(state: ExchangeState, account: Account) -> bool:
    """Return whether an account with positions or borrows has equity below its maintenance
    margin and may be liquidated (not while one of its positions is in a Closed market, nor
    on a stale or missing price).

    Hot: the engine asks it of every account an index update or a trade can move. The
    money comes first, from the account's cached margin totals (perps.position_changed);
    an account that covers maintenance without its other collateral
    (perps.covered_without_collateral) is not valued in full; the conditions that hold a
    liquidation back are looked at only for an account the numbers put below."""
    lending = account.account_id in state.lending_accounts
    if account.terms_drift != state.mark_drift:  # marks moved since its terms were valued
        if not lending:
            delta = drift_delta_e9(state, account)
            if delta >= 0 and maintenance_within_bound(state, account, delta):
                return False
        fresh_terms(state, account)
    if lending:
        required, unrealized = maintenance_and_unrealized(state, account)
        if covered_without_collateral(state, account, unrealized, required):
            return False
    else:
        # Never lent or borrowed (called between commands, when lending_accounts is
        # complete): no borrow requirement, and the margin asset plus the unrealized PnL
        # bound equity from below (perps.covered_without_collateral, inlined).
        required = account.maint_total
        unrealized = account.unreal_total
        margin_asset = state.margin_asset_id
        if account.balances[margin_asset] - account.locked[margin_asset] + unrealized >= required:
            return False
    if collateral_atomic(state, account) + unrealized >= required:
        return False
    positions = account.positions
    has_position = any(position.size_steps for position in positions.values())
    borrows = [asset_id for asset_id, amount in enumerate(account.borrowed) if amount] if lending else []
    if not has_position and not borrows:
        return False
    markets = state.markets
    now = state.timestamp_ns_last
    if has_position:
        closed = _CLOSED
        for market_id in positions:
            market = markets[market_id]
            if market.state == closed or index_is_stale(state, market, now):
                return False  # never liquidate on a closed book or a stale price
    return not (borrows and any(_asset_price_unusable(state, asset_id, now) for asset_id in borrows))


def liquidate_where_needed(state: ExchangeState, candidates: list[int], seq: int, events: list[Event]) -> None:
    """Liquidate every candidate account below maintenance, in ascending id order.

    Hot (every holder of a moved market after an index update or a Tick, both sides of
    every trade): an account that never lent or borrowed, whose terms were valued within
    the drift cap and whose margin asset covers its need at the cap
    (perps.maintenance_within_bound, kept in Account.cap_need) is not below maintenance,
    whether its terms are stale or fresh (the need at the cap bounds the need at any
    smaller drift, 0 included), and costs a compare or two here instead of calls."""
    accounts = state.accounts
    lending = state.lending_accounts
    margin_asset = state.margin_asset_id
    oldest = state.mark_drift - DRIFT_CAP_E9  # terms valued at a drift below this: no bound
    certify = certificates.ENABLED
    if certify:
        certificates.sweep(state)  # changes before a grant are swept before it
    for account_id in sorted(set(candidates)):
        account = accounts.get(account_id)
        if account is None or account_id <= 0:
            continue
        if account_id not in lending and drift_delta_e9(state, account) >= 0:  # terms valued within the cap
            need = account.cap_need
            if need is None:  # a term changed since it was kept: the same need below_maintenance would keep
                need = account.cap_need = maintenance_need(account, DELTA_MAX_E9)
            covered = account.balances[margin_asset] - account.locked[margin_asset] >= need
        else:
            covered = False
        if covered:
            if certify:  # covered until it changes or the drift passes the cap
                certificates.grant(state, account)
            continue
        if below_maintenance(state, account):
            _liquidate(state, account, seq, events)
        elif certify and account_id not in lending:
            _certify_if_covered(state, account, oldest)


def _certify_if_covered(state: ExchangeState, account: Account, oldest: int) -> None:
    """The scan's quick check (liquidate_where_needed) after a full one: certify the account
    if its need at the cap is covered now that its terms are valued."""
    need = account.cap_need
    if need is None:
        need = account.cap_need = maintenance_need(account, DELTA_MAX_E9)
    margin_asset = state.margin_asset_id
    if account.terms_drift >= oldest and account.balances[margin_asset] - account.locked[margin_asset] >= need:
        certificates.grant(state, account)


def _liquidate(state: ExchangeState, account: Account, seq: int, events: list[Event]) -> None:
    account_id = account.account_id
    events.append(
        LiquidationStarted(account_id, equity_atomic(state, account), maintenance_requirement_atomic(state, account))
    )
    gains: dict[int, int] = {}  # what deleveraged counterparties realized from this account
    for order in sorted(account.orders_open.values(), key=lambda order: order.order_id):
        if state.markets[order.market_id].state != MarketState.CLOSED:  # a Closed book is not touched
            cancel_open_order(state, order, account, _LIQUIDATION_END, events)
    for trigger in [t for t in state.triggers.values() if t.account_id == account_id]:
        if state.markets[trigger.market_id].state != MarketState.CLOSED:  # no trigger fires for it later
            remove_trigger(state, trigger, events, _LIQUIDATION_END)
    for market_id in sorted(account.positions):
        size = account.positions[market_id].size_steps
        market = state.markets[market_id]
        if size and market.state == MarketState.OPEN:
            start = len(events)
            with suppress(Rejected):  # e.g. below the market's minimum quantity: deleveraged below
                place_order(
                    state,
                    PlaceOrder(
                        seq=seq,
                        timestamp_ns=state.timestamp_ns_last,
                        account_id=account_id,
                        market_id=market_id,
                        side=1 if size > 0 else 0,
                        order_type=int(OrderType.MARKET),
                        quantity_steps=abs(size),
                        reduce_only=True,
                        self_trade_prevention=int(SelfTradePrevention.REJECT_MAKER),
                    ),
                    events,
                )
            # The close-out's trades are posted with reason `liquidation`, not `trade`.
            for index in range(start, len(events)):
                event = events[index]
                if isinstance(event, LedgerPosted):
                    events[index] = msgspec.structs.replace(event, reason=_LIQUIDATION)
        left = account.positions.get(market_id)
        if left is not None and left.size_steps:
            _deleverage(state, account, market_id, seq, events, gains)
    if account.account_id in state.lending_accounts or account.balances[state.margin_asset_id] < 0:
        _settle_debts(state, account, seq, events)
    _cover_deficit(state, account, seq, events, gains)
    if any(account.borrowed):
        _take_over_borrows(state, account, events)


def _borrow_moved(state: ExchangeState, account: Account, asset_id: int, side: int, amount: int) -> BorrowLendChanged:
    state.dirty_accounts.append(account)
    return BorrowLendChanged(
        account.account_id, asset_id, side, amount, account.lent[asset_id], account.borrowed[asset_id], True
    )


def _value_atomic(state: ExchangeState, asset_id: int, amount: int, round_up: bool) -> int:
    """An amount of an asset in the margin asset at the index price."""
    if asset_id == state.margin_asset_id:
        return amount
    scale = 10 ** state.assets[asset_id].decimals
    product = amount * state.index_prices[asset_id]
    return div_ceil(product, scale) if round_up else div_floor(product, scale)


def _settle_debts(state: ExchangeState, account: Account, seq: int, events: list[Event]) -> None:
    """Step 5 of the module docstring: redeem lends, repay borrows, convert collateral."""
    account_id = account.account_id
    pool = state.accounts[LENDING_POOL_ACCOUNT_ID]
    balances = account.balances
    locked = account.locked
    for asset_id, lent in enumerate(account.lent):  # a. lends back into the balance
        redeem = min(lent, max(pool.balances[asset_id], 0))
        if redeem:
            account.lent[asset_id] -= redeem
            lines = ((LENDING_POOL_ACCOUNT_ID, asset_id, -redeem), (account_id, asset_id, redeem))
            post_entry(state, _LIQUIDATION, seq, lines, events)
            events.append(_borrow_moved(state, account, asset_id, _BORROW, redeem))
    for asset_id, borrowed in enumerate(account.borrowed):  # b. repay from the same asset
        repay = min(borrowed, max(balances[asset_id] - locked[asset_id], 0))
        if repay:
            account.borrowed[asset_id] -= repay
            lines = ((account_id, asset_id, -repay), (LENDING_POOL_ACCOUNT_ID, asset_id, repay))
            post_entry(state, _LIQUIDATION, seq, lines, events)
            events.append(_borrow_moved(state, account, asset_id, _LEND, repay))
    margin_asset = state.margin_asset_id
    insurance = state.accounts[INSURANCE_ACCOUNT_ID]
    debts = [asset_id for asset_id, borrowed in enumerate(account.borrowed) if borrowed]
    if balances[margin_asset] < 0:
        debts.append(-1)  # the deficit, after every borrow
    for debt in debts:  # c. the rest against other collateral, to the insurance fund
        for asset_id in range(len(balances)):
            owed = -balances[margin_asset] if debt < 0 else account.borrowed[debt]
            if owed <= 0:
                break
            free = balances[asset_id] - locked[asset_id]
            if asset_id == debt or free <= 0 or account.borrowed[asset_id]:
                continue
            if asset_id == margin_asset:
                if debt < 0:
                    continue
            elif state.index_prices[asset_id] == 0:
                continue  # no price: it cannot be valued
            owed_value = owed if debt < 0 else _value_atomic(state, debt, owed, round_up=True)
            wanted_value = div_ceil(owed_value * (BPS + LIQUIDATION_FEE_BPS), BPS)
            if asset_id == margin_asset:
                taken = min(free, wanted_value)
            else:
                scale = 10 ** state.assets[asset_id].decimals
                taken = min(free, div_ceil(wanted_value * scale, state.index_prices[asset_id]))
            value = _value_atomic(state, asset_id, taken, round_up=False)
            credit_value = div_floor(value * BPS, BPS + LIQUIDATION_FEE_BPS)
            if debt < 0 or debt == margin_asset:
                settled = min(owed, credit_value)
            else:
                scale = 10 ** state.assets[debt].decimals
                settled = min(owed, div_floor(credit_value * scale, state.index_prices[debt]))
            if settled <= 0:
                continue  # too little of this asset to settle one atomic unit
            collateral = ((account_id, asset_id, -taken), (INSURANCE_ACCOUNT_ID, asset_id, taken))
            if debt < 0:
                # The fund pays only what it holds; the rest of a deficit is step 6's.
                settled = min(settled, max(insurance.balances[margin_asset], 0))
                if settled <= 0:
                    break
                paid = ((INSURANCE_ACCOUNT_ID, margin_asset, -settled), (account_id, margin_asset, settled))
                post_entry(state, _LIQUIDATION, seq, collateral + paid, events)
            else:
                post_entry(state, _LIQUIDATION, seq, collateral, events)
                _transfer_borrow(state, account, insurance, debt, settled, events)


def _transfer_borrow(
    state: ExchangeState, account: Account, insurance: Account, asset_id: int, amount: int, events: list[Event]
) -> None:
    """The insurance fund takes `amount` of the account's borrow over."""
    account.borrowed[asset_id] -= amount
    events.append(_borrow_moved(state, account, asset_id, _LEND, amount))
    insurance.borrowed[asset_id] += amount
    state.lending_accounts[INSURANCE_ACCOUNT_ID] = None
    events.append(_borrow_moved(state, insurance, asset_id, _BORROW, amount))


def _take_over_borrows(state: ExchangeState, account: Account, events: list[Event]) -> None:
    """Step 7: borrows with nothing left to settle them go to the insurance fund."""
    insurance = state.accounts[INSURANCE_ACCOUNT_ID]
    for asset_id, borrowed in enumerate(account.borrowed):
        if borrowed:
            _transfer_borrow(state, account, insurance, asset_id, borrowed, events)


def _ranked_opponents(state: ExchangeState, market_id: int, long_side: bool) -> list[Account]:
    """Accounts holding a position on `long_side` in the market, most profitable first."""
    market = state.markets[market_id]
    ranked = []
    for account_id, position in state.positions_by_market[market_id].items():
        size = position.size_steps
        if size and (size > 0) == long_side:
            ranked.append((-unrealized_pnl_atomic(position, market), account_id))
    ranked.sort()
    return [state.accounts[account_id] for _, account_id in ranked]


def _deleverage(
    state: ExchangeState, account: Account, market_id: int, seq: int, events: list[Event], gains: dict[int, int]
) -> None:
    """Transfer the account's remaining position to opposing positions at the mark."""
    market = state.markets[market_id]
    mark = market.mark_ticks
    lot = market.lot_atomic
    quote = market.quote_asset_id
    position = account.positions[market_id]
    is_long = position.size_steps > 0
    for opponent in _ranked_opponents(state, market_id, not is_long):
        if opponent is account:
            continue
        remaining = abs(position.size_steps)
        if remaining == 0:
            break
        theirs = opponent.positions[market_id]
        quantity = min(remaining, abs(theirs.size_steps))
        mine_before, theirs_before = position.size_steps, theirs.size_steps
        delta = -quantity if is_long else quantity
        pnl_mine = apply_fill(position, delta, mark, lot)
        pnl_theirs = apply_fill(theirs, -delta, mark, lot)
        market.open_interest_steps += (
            max(position.size_steps, 0) - max(mine_before, 0) + max(theirs.size_steps, 0) - max(theirs_before, 0)
        )
        lines = (
            (account.account_id, quote, pnl_mine),
            (opponent.account_id, quote, pnl_theirs),
            (CLEARING_ACCOUNT_ID, quote, -(pnl_mine + pnl_theirs)),
        )
        events.append(
            PositionChanged(
                account.account_id, market_id, mine_before, position.size_steps, position.cost_atomic, pnl_mine, 0
            )
        )
        events.append(
            PositionChanged(
                opponent.account_id, market_id, theirs_before, theirs.size_steps, theirs.cost_atomic, pnl_theirs, 0
            )
        )
        if pnl_mine or pnl_theirs:
            post_entry(state, _ADL, seq, lines, events)
        if pnl_theirs > 0:
            gains[opponent.account_id] = gains.get(opponent.account_id, 0) + pnl_theirs
        position_changed(state, opponent, theirs)
    assert position.size_steps == 0, "opposing positions always cover a position (they sum to zero)"
    position_changed(state, account, position)


def _cover_deficit(
    state: ExchangeState, account: Account, seq: int, events: list[Event], gains: dict[int, int]
) -> None:
    """Pay a negative margin balance from the insurance fund, then from the most profitable."""
    margin_asset = state.margin_asset_id
    deficit = -account.balances[margin_asset]
    if deficit <= 0:
        return
    accounts = state.accounts
    insurance = accounts[INSURANCE_ACCOUNT_ID]
    paid = min(deficit, max(insurance.balances[margin_asset], 0))
    if paid:
        lines = ((INSURANCE_ACCOUNT_ID, margin_asset, -paid), (account.account_id, margin_asset, paid))
        post_entry(state, _INSURANCE, seq, lines, events)
        deficit -= paid
    if deficit == 0:
        return
    # First the counterparties that deleveraging just paid (their gain came from this
    # account), most first; then the accounts with the most unrealized profit.
    for other_id, gained in sorted(gains.items(), key=lambda item: (-item[1], item[0])):
        if deficit == 0:
            return
        take = min(deficit, gained)
        _take(state, other_id, account, margin_asset, take, seq, events)
        deficit -= take
    if deficit == 0:
        return
    # By unrealized profit, descending, ties by ascending id. Valuing every holder's terms
    # afresh costs a second with 10,000 holders, and the first one or two usually cover the
    # deficit. So the ranking needs only the unrealized PnL, summed at the marks without
    # revaluing the other terms, and starts from upper bounds where the terms are stale
    # within the drift cap (perps.py, "The bound": the PnL moved by at most exposure x
    # delta), summing an account only when its bound comes to the top. A summed account is
    # popped only when no bound is above it, so the order is that of every account summed.
    drift = state.mark_drift
    markets = state.markets
    ranking: list[tuple[int, int, bool]] = []  # (-profit or -bound, id, summed)
    for other_id in state.position_holders:
        other = accounts[other_id]
        if other_id <= 0 or other is account:
            continue
        if other.terms_drift == drift:  # fresh: the kept sum is exact
            profit, summed = other.unreal_total, True
        else:
            delta = drift_delta_e9(state, other)
            if delta < 0:  # past the drift cap: no bound
                profit, summed = unrealized_at_marks(markets, other), True
            else:
                profit, summed = other.unreal_total + -(-other.exposure * delta // E9), False
        if profit > 0:
            ranking.append((-profit, other_id, summed))
    heapify(ranking)
    while deficit and ranking:
        negative_profit, other_id, summed = heappop(ranking)
        if not summed:
            profit = unrealized_at_marks(markets, accounts[other_id])
            if profit > 0:
                heappush(ranking, (-profit, other_id, True))
            continue
        take = min(deficit, -negative_profit)
        _take(state, other_id, account, margin_asset, take, seq, events)
        deficit -= take


def _take(
    state: ExchangeState, other_id: int, account: Account, asset_id: int, amount: int, seq: int, events: list[Event]
) -> None:
    """Move `amount` of a deficit from another account to the bankrupt one (reason adl)."""
    post_entry(state, _ADL, seq, ((other_id, asset_id, -amount), (account.account_id, asset_id, amount)), events)


__all__ = ["below_maintenance", "liquidate_where_needed", "position_for"]
