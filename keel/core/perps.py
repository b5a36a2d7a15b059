"""Perpetual futures: positions, index and mark prices, funding, and the margin rule.

Theory of operation.

Positions. An account's position in a perpetual market is a signed size in steps (long
> 0) and a signed entry cost in quote atomic units (the notional paid to open it: > 0
for a long, < 0 for a short). A fill that grows the position adds its notional
(price x steps x lot, exact). A fill that shrinks it by q of |size| releases
floor(|cost| x q / |size|) of the cost, and the realized PnL is the exit notional minus
the released cost for a long (the reverse for a short); the rounding remainder stays in
the cost of what is left, so closing a position in any number of pieces releases
exactly its cost. A fill larger than the position closes it (the whole cost is
released) and opens the rest the other way at the fill price: one visible change with
both legs. Realized PnL is settled in the quote asset against the clearing account, so

    clearing balance + sum of all signed costs == 0    per quote asset (audit checks it)

because every trade adds the same notional to the buyer's cost as it takes from the
seller's. The entry price shown to users is |cost| / |size| (rounded to the nearest tick,
display only).

Index and mark. `SetIndexPrices` sets an asset's index price in quote atomic units per
whole unit. A perpetual's index in ticks is floor(index / tick_atomic). Its mark is the
median of (index, book mid, last trade) when the book has both sides and a last trade,
and the index otherwise; marks are recomputed at every index update of the base asset
and at every Tick, never in between, so they are logged facts.

Funding. At the first Tick at or after `funding_next_ns`, a market with an index and a
mark pays funding: rate = clamp((mark - index) / index, +-cap) (1e-9 units, toward zero),
each position pays or receives |size x mark x lot x rate|; longs pay when the rate is
positive. Payers pay rounded up, receivers receive rounded down (toward the exchange),
and the difference goes to the insurance fund: one balanced entry per round, lines in
ascending account id. The next funding time moves to the first interval boundary after
the Tick: rounds missed while no Tick came are not paid retroactively.

Margin (cross). An account's equity, in the margin asset (the quote of every
perpetual), is the sum over assets of the value of (balance - locked) at the index price
(the margin asset at face value), positive values weighted by the asset's collateral
weight, negative ones at full value, plus the unrealized PnL of every position at the
mark. A position's initial (maintenance) requirement is notional x fraction, with
fraction = max(base, factor x sqrt(notional in whole quote units)) as the API's
imfFunction/mmfFunction describe, rounded up. For the initial requirement a position's
notional is its worst case with its open orders, max(|size + open buys|, |size - open
sells|) x mark. An order that raises its market's worst case is accepted only if equity
covers the initial requirement of every position with the order included.

Kept, not recomputed. Each account keeps, per position record, its (unrealized PnL,
maintenance, initial requirement) with the mark they were valued at and the notionals
they used, and their sums (`Account.margin_terms`, `unreal_total`, `maint_total`,
`init_total`, `exposure`, `worst_exposure`): derived data, never hashed or snapshotted.
`position_changed` ends every change to a record and values it at the current mark;
`refresh_account_terms` values all of them (a leverage change, a restore);
`margin_totals_full` values them afresh and invariants.audit compares the two.

Stale terms and the bound. A mark move does not visit the market's holders (10,000
accounts' terms at every Tick cost more than the Tick's purpose): their terms go stale.
Every reader of the totals (equity_atomic, maintenance_and_unrealized,
initial_requirement_atomic, unrealized_total_atomic) first calls `fresh_terms`, which
values again the terms whose mark moved. The two hot questions, "is this account below
maintenance?" (liquidation.below_maintenance, asked of every holder after a Tick) and
"does this order fit the initial margin?" (check_order_margin), are first put to a bound
that can only answer "yes, it is covered"; when it cannot, the terms are made fresh and
the exact rule decides. So every decision is the exact rule's, and the bound only
decides how much work it takes: state, events and hashes are the same with or without it.

The bound. `ExchangeState.mark_drift` (U) grows at every mark move by the largest
|m1 - m0| / min(m0, m1) over the markets that moved (rounded up, 1e-9 units), an upper
bound of |ln(m1 / m0)|; a move from or to 0 adds more than DRIFT_CAP_E9. So between two
moments any mark moved by at most e^D - 1 <= D + D^2 =: delta relatively, with D the
growth of U (D <= 1). `Account.terms_drift` is U when the account's terms were last all
fresh; a term valued later drifted less. For a term valued at notional N (worst case W):
its unrealized PnL moved by at most N x delta; its notional is now at most N x (1 +
delta) <= 2N (D <= DRIFT_CAP_E9 = 0.5 keeps delta <= 0.75), so its maintenance
ceil(N' x f(N')) is at most N x (1 + delta) x F + 1 with F >= f(2N) (`maint_cap_e9`,
raised as terms are valued, recomputed by fresh_terms), and likewise its initial
requirement with W and `init_cap_e9` (which also covers 1 / leverage limit). Summing:

    maintenance now <= exposure x (1 + delta) x maint_cap + number of terms
    unrealized now  >= unreal_total - exposure x delta

and an account that never lent or borrowed (no borrow requirement; its other assets
count at zero or more) whose margin asset plus that unrealized PnL covers that
maintenance is not below maintenance (maintenance_within_bound). An order is covered
the same way with the other terms' initial bound and the order's own market valued now
(_order_within_bound). invariants.audit checks these inequalities against a fresh
valuation for every account, without refreshing its terms.

Imports: accounts, errors, events, markets, money, state.
"""

from __future__ import annotations

from math import isqrt

from keel.core import limits
from keel.core.accounts import INSURANCE_ACCOUNT_ID, Account
from keel.core.commands import SetIndexPrices, Tick
from keel.core.errors import RejectCode, Rejected
from keel.core.events import EntryReason, Event, FundingSettled, LedgerPosted, MarkPriceChanged
from keel.core.markets import Market, MarketKind, MarketState
from keel.core.money import BPS, E9, div_ceil, div_floor, div_toward_zero, format_decimal
from keel.core.positions import MarginTerm, Position
from keel.core.state import ExchangeState

_PERP = int(MarketKind.PERP)
_FUNDING = int(EntryReason.FUNDING)


def position_for(state: ExchangeState, account: Account, market_id: int) -> Position:
    """Return the account's position record in a market, creating an empty one."""
    position = account.positions.get(market_id)
    if position is None:
        position = Position(market_id, account.account_id)
        if not account.positions:
            state.position_holders[account.account_id] = None
        account.positions[market_id] = position
        state.positions_by_market[market_id][account.account_id] = position
    return position


def position_changed(state: ExchangeState, account: Account, position: Position) -> None:
    """After a position record's size, cost or open orders changed: bring the account's
    margin terms up to date, and drop the record if it has no size and no open orders.
    Every change to a position record ends with this call."""
    market_id = position.market_id
    if position.size_steps == 0 and position.open_buy_steps == 0 and position.open_sell_steps == 0:
        assert position.cost_atomic == 0
        del account.positions[market_id]
        del state.positions_by_market[market_id][account.account_id]
        if not account.positions:
            del state.position_holders[account.account_id]
        old = account.margin_terms.pop(market_id, _NO_TERMS)
        account.unreal_total -= old.unrealized
        account.maint_total -= old.maintenance
        account.init_total -= old.initial
        account.exposure -= old.notional
        account.worst_exposure -= old.worst
        account.cap_need = None
        return
    _refresh_terms(account, position, state.markets[market_id], margin_scale(state))


def margin_scale(state: ExchangeState) -> int:
    """10^decimals of the margin asset: margin fractions grow with notional in whole units."""
    margin_asset = state.margin_asset_id
    return 10 ** state.assets[margin_asset].decimals if margin_asset >= 0 else 1


_NO_TERMS = MarginTerm(0, 0, 0, 0, 0, 0)

# Beyond this mark drift since an account's terms were last all fresh (about 50% in log
# terms), the bounds below say nothing and the terms are valued again.
DRIFT_CAP_E9 = E9 // 2
_E9_SQUARED = E9 * E9


def position_terms(position: Position, market: Market, scale: int, leverage: int) -> tuple[int, int, int]:
    """Return (unrealized PnL, maintenance requirement, initial requirement) of one position
    record at its market's mark (module docstring, "Margin"); requirement_atomic and
    margin_fraction_e9 are the reference and give the same numbers."""
    term = _position_term(position, market, scale, leverage)
    return term.unrealized, term.maintenance, term.initial


def _position_term(position: Position, market: Market, scale: int, leverage: int) -> MarginTerm:
    """position_terms, then the mark, the notional and the worst-case notional they used."""
    size = position.size_steps
    mark = market.mark_ticks
    mark_lot = mark * market.lot_atomic
    if size:
        value = size * mark_lot
        unrealized = value - position.cost_atomic
        notional = value if value > 0 else -value
        maintenance = -(-notional * _fraction_e9(market.mmf_base_e9, market.mmf_factor_e9, notional, scale) // E9)
    else:
        unrealized = maintenance = notional = 0
    buys = size + position.open_buy_steps
    sells = size - position.open_sell_steps
    worst = max(buys if buys > 0 else -buys, sells if sells > 0 else -sells) * mark_lot
    return MarginTerm(unrealized, maintenance, _initial_term(worst, market, scale, leverage), mark, notional, worst)


def _initial_term(notional: int, market: Market, scale: int, leverage: int) -> int:
    """The initial requirement of a worst-case notional: notional x IMF rounded up, and at
    least notional / leverage limit when the account set one."""
    if notional <= 0:
        return 0
    required = -(-notional * _fraction_e9(market.imf_base_e9, market.imf_factor_e9, notional, scale) // E9)
    if leverage:
        floor = -(-notional // leverage)
        if floor > required:
            return floor
    return required


def _fraction_e9(base_e9: int, factor_e9: int, notional: int, scale: int) -> int:
    """max(base, factor x sqrt(notional in whole units)): margin_fraction_e9 with the scale
    (margin_scale) already computed."""
    if factor_e9:
        grown = factor_e9 * isqrt(notional // scale)
        if grown > base_e9:
            return grown
    return base_e9


def _raise_caps(account: Account, market: Market, notional: int, worst: int, scale: int) -> None:
    """Make the account's fraction caps cover this term at up to twice its notionals."""
    if notional:
        fraction = _fraction_e9(market.mmf_base_e9, market.mmf_factor_e9, 2 * notional, scale)
        if fraction > account.maint_cap_e9:
            account.maint_cap_e9 = fraction
    if worst:
        fraction = _fraction_e9(market.imf_base_e9, market.imf_factor_e9, 2 * worst, scale)
        if account.leverage_limit:
            floor = -(-E9 // account.leverage_limit)
            if floor > fraction:
                fraction = floor
        if fraction > account.init_cap_e9:
            account.init_cap_e9 = fraction


def _refresh_terms(account: Account, position: Position, market: Market, scale: int) -> None:
    old = account.margin_terms.get(position.market_id, _NO_TERMS)
    if old.mark == market.mark_ticks and old is not _NO_TERMS:
        new = _term_after_orders(account, position, market, scale, old)
        if new is not None:
            return
    new = _position_term(position, market, scale, account.leverage_limit)
    account.unreal_total += new.unrealized - old.unrealized
    account.maint_total += new.maintenance - old.maintenance
    account.init_total += new.initial - old.initial
    account.exposure += new.notional - old.notional
    account.worst_exposure += new.worst - old.worst
    account.margin_terms[position.market_id] = new
    if new.unrealized != old.unrealized or new.notional != old.notional or old is _NO_TERMS:
        # The need at the cap reads the unrealized PnL, exposure, maintenance cap and term
        # count; an order placed or cancelled changes only the worst case (initial).
        account.cap_need = None
    _raise_caps(account, market, new.notional, new.worst, scale)


def _term_after_orders(
    account: Account, position: Position, market: Market, scale: int, old: MarginTerm
) -> MarginTerm | None:
    """_refresh_terms for a term valued at the current mark whose unrealized PnL and
    notional are still those kept (an order placed or cancelled moved only the open
    quantities): its maintenance, a function of the notional, is too, so only the worst
    case and its initial requirement are valued again (and the initial cap raised; the
    maintenance cap already covers this notional). The term is the one _position_term
    would give. Return None, changing nothing, when the unrealized PnL or notional moved."""
    mark_lot = old.mark * market.lot_atomic
    size = position.size_steps
    value = size * mark_lot
    if value - position.cost_atomic != old.unrealized or (value if value > 0 else -value) != old.notional:
        return None
    buys = size + position.open_buy_steps
    sells = size - position.open_sell_steps
    worst = max(buys if buys > 0 else -buys, sells if sells > 0 else -sells) * mark_lot
    initial = _initial_term(worst, market, scale, account.leverage_limit)
    new = MarginTerm(old.unrealized, old.maintenance, initial, old.mark, old.notional, worst)
    account.init_total += initial - old.initial
    account.worst_exposure += worst - old.worst
    account.margin_terms[position.market_id] = new
    _raise_caps(account, market, 0, worst, scale)  # notional 0: the initial cap alone
    return new


def refresh_account_terms(state: ExchangeState, account: Account) -> None:
    """Recompute every margin term of an account (its leverage limit changed, or a restore)."""
    scale = margin_scale(state)
    markets = state.markets
    account.margin_terms = {}
    account.unreal_total = account.maint_total = account.init_total = 0
    account.exposure = account.worst_exposure = account.maint_cap_e9 = account.init_cap_e9 = 0
    account.cap_need = None
    for market_id, position in account.positions.items():
        _refresh_terms(account, position, markets[market_id], scale)
    account.terms_drift = state.mark_drift


def fresh_terms(state: ExchangeState, account: Account) -> None:
    """Value again the account's terms whose market's mark moved since they were valued,
    so that its totals are exact (module docstring, "Kept, not recomputed")."""
    drift = state.mark_drift
    if account.terms_drift == drift:
        return
    markets = state.markets
    terms = account.margin_terms
    scale = margin_scale(state)
    account.maint_cap_e9 = account.init_cap_e9 = 0
    account.cap_need = None
    for market_id, position in account.positions.items():
        market = markets[market_id]
        term = terms[market_id]
        if term.mark != market.mark_ticks:
            _refresh_terms(account, position, market, scale)
        else:
            _raise_caps(account, market, term.notional, term.worst, scale)
    account.terms_drift = drift


def drift_delta_e9(state: ExchangeState, account: Account) -> int:
    """How far, relatively, any mark may have moved since the account's terms were valued:
    e^D - 1 <= D + D^2 for the drift D <= 1 (1e-9 units, rounded up); -1 when D exceeds
    DRIFT_CAP_E9 and nothing can be said."""
    drift = state.mark_drift - account.terms_drift
    if drift > DRIFT_CAP_E9:
        return -1
    return drift + -(-drift * drift // E9)


def equity_floor(state: ExchangeState, account: Account, delta: int) -> int:
    """A lower bound of the equity of an account that never lent or borrowed: its margin
    asset (its other assets count at zero or more) plus its unrealized PnL less the most
    the marks' moves within `delta` can have taken."""
    margin_asset = state.margin_asset_id
    return (
        account.balances[margin_asset]
        - account.locked[margin_asset]
        + account.unreal_total
        - -(-account.exposure * delta // E9)
    )


def maintenance_need(account: Account, delta: int) -> int:
    """What the margin asset of an account that never lent or borrowed must cover for
    maintenance_within_bound at `delta`: the most its maintenance can have grown to, less
    the least its unrealized PnL can have fallen to."""
    exposure = account.exposure
    return (
        -(-exposure * (E9 + delta) * account.maint_cap_e9 // _E9_SQUARED)
        + len(account.margin_terms)
        - account.unreal_total
        + -(-exposure * delta // E9)
    )


def initial_bound(account: Account, delta: int, worst_exposure: int) -> int:
    """The most the initial requirement of terms of this worst-case notional can have grown to."""
    return -(-worst_exposure * (E9 + delta) * account.init_cap_e9 // _E9_SQUARED) + len(account.margin_terms)


# The largest delta drift_delta_e9 gives: an account whose bound holds at it holds at any.
DELTA_MAX_E9 = DRIFT_CAP_E9 + -(-DRIFT_CAP_E9 * DRIFT_CAP_E9 // E9)


def maintenance_within_bound(state: ExchangeState, account: Account, delta: int) -> bool:
    """Whether an account that never lent or borrowed is above maintenance whatever the
    marks did within `delta` (drift_delta_e9) of those its terms were valued at (module
    docstring, "The bound"). False says nothing either way.

    Hot (every holder after a Tick): the need at the largest delta is kept
    (Account.cap_need) until a term changes, so a well-funded account costs one compare."""
    margin_asset = state.margin_asset_id
    available = account.balances[margin_asset] - account.locked[margin_asset]
    need = account.cap_need
    if need is None:
        need = account.cap_need = maintenance_need(account, DELTA_MAX_E9)
    return available >= need or available >= maintenance_need(account, delta)


def initial_within_bound(state: ExchangeState, account: Account, extra_equity: int, delta: int) -> bool:
    """Whether an account that never lent or borrowed, with `extra_equity` more, covers the
    initial requirement of its positions and orders whatever the marks did within `delta`."""
    return equity_floor(state, account, delta) + extra_equity >= initial_bound(account, delta, account.worst_exposure)


def _order_within_bound(
    state: ExchangeState,
    account: Account,
    market: Market,
    position: Position | None,
    extra_buy: int,
    extra_sell: int,
    delta: int,
) -> bool:
    """initial_within_bound for a perpetual order: the other terms at most grown by
    `delta`, this market's valued now with the order included."""
    if position is not None:
        others = account.worst_exposure - account.margin_terms[market.market_id].worst
        worst = _worst_steps(position, extra_buy, extra_sell)
    else:
        others = account.worst_exposure
        worst = max(extra_buy, extra_sell)
    required = initial_bound(account, delta, others) + _initial_term(
        worst * market.mark_ticks * market.lot_atomic, market, margin_scale(state), account.leverage_limit
    )
    return equity_floor(state, account, delta) >= required


def margin_totals_full(state: ExchangeState, account: Account) -> tuple[int, int, int]:
    """(unrealized PnL, maintenance, initial requirement) of the account's positions valued
    afresh from the reference functions, for invariants.audit to compare with the cached
    totals (without borrows, which are valued at every check)."""
    markets = state.markets
    decimals = state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0
    leverage = account.leverage_limit
    unrealized = maintenance = initial = 0
    for market_id, position in account.positions.items():
        market = markets[market_id]
        if position.size_steps:
            unrealized += unrealized_pnl_atomic(position, market)
            notional = abs(position.size_steps) * market.mark_ticks * market.lot_atomic
            maintenance += requirement_atomic(notional, market.mmf_base_e9, market.mmf_factor_e9, decimals)
        notional = _worst_steps(position, 0, 0) * market.mark_ticks * market.lot_atomic
        required = requirement_atomic(notional, market.imf_base_e9, market.imf_factor_e9, decimals)
        initial += max(required, div_ceil(notional, leverage)) if leverage else required
    return unrealized, maintenance, initial


def apply_fill(position: Position, delta_steps: int, price_ticks: int, lot_atomic: int) -> int:
    """Move a position by a signed fill at a price; return the realized PnL (module docstring)."""
    size = position.size_steps
    if size == 0 or (size > 0) == (delta_steps > 0):
        position.size_steps = size + delta_steps
        position.cost_atomic += price_ticks * delta_steps * lot_atomic
        return 0
    closing = min(abs(delta_steps), abs(size))
    cost = position.cost_atomic
    released = abs(cost) * closing // abs(size)
    exit_notional = price_ticks * closing * lot_atomic
    if size > 0:
        realized = exit_notional - released
        position.cost_atomic = cost - released
        position.size_steps = size - closing
    else:
        realized = released - exit_notional
        position.cost_atomic = cost + released
        position.size_steps = size + closing
    rest = abs(delta_steps) - closing
    if rest:
        assert position.size_steps == 0 and position.cost_atomic == 0
        signed_rest = rest if delta_steps > 0 else -rest
        position.size_steps = signed_rest
        position.cost_atomic = price_ticks * signed_rest * lot_atomic
    position.realized_pnl_atomic += realized
    return realized


def margin_fraction_e9(base_e9: int, factor_e9: int, notional_atomic: int, quote_decimals: int) -> int:
    """Return max(base, factor x sqrt(notional in whole quote units)) in 1e-9 units."""
    if factor_e9 == 0 or notional_atomic <= 0:
        return base_e9
    return max(base_e9, factor_e9 * isqrt(notional_atomic // 10**quote_decimals))


def requirement_atomic(notional_atomic: int, base_e9: int, factor_e9: int, quote_decimals: int) -> int:
    """Return notional x fraction, rounded up (toward the exchange)."""
    if notional_atomic <= 0:
        return 0
    return div_ceil(notional_atomic * margin_fraction_e9(base_e9, factor_e9, notional_atomic, quote_decimals), E9)


def unrealized_pnl_atomic(position: Position, market: Market) -> int:
    """Return the position's PnL at the mark price: size x mark x lot - signed cost."""
    return position.size_steps * market.mark_ticks * market.lot_atomic - position.cost_atomic


def collateral_atomic(state: ExchangeState, account: Account) -> int:
    """Return the value of the account's assets in the margin asset (module docstring)."""
    margin_asset = state.margin_asset_id
    prices = state.index_prices
    assets = state.assets
    total = 0
    locked = account.locked
    lent = account.lent
    borrowed = account.borrowed
    # Without lends and borrows an asset counts only where there is a balance: the assets
    # the account never held (most of them) are skipped on one test.
    lending = any(lent) or any(borrowed)
    for asset_id, balance in enumerate(account.balances):
        if lending:
            amount = balance - locked[asset_id] + lent[asset_id] - borrowed[asset_id]
        elif balance:
            amount = balance - locked[asset_id]
        else:
            continue
        if amount == 0:
            continue
        if asset_id == margin_asset:
            value = amount
        else:
            price = prices[asset_id]
            if price == 0:
                continue
            value = div_floor(amount * price, 10 ** assets[asset_id].decimals)
        if value > 0:
            value = value * assets[asset_id].collateral_weight_bps // BPS
        total += value
    return total


def unrealized_at_marks(markets: list[Market], account: Account) -> int:
    """unrealized_total_atomic's number, summed at the marks without revaluing the
    account's margin terms (the deficit ranking in liquidation.py; audit compares them)."""
    total = 0
    for market_id, position in account.positions.items():
        size = position.size_steps
        if size:
            market = markets[market_id]
            total += size * market.mark_ticks * market.lot_atomic - position.cost_atomic
    return total


def unrealized_total_atomic(state: ExchangeState, account: Account) -> int:
    """Return the unrealized PnL of every position of the account at the marks."""
    fresh_terms(state, account)
    return account.unreal_total


def equity_atomic(state: ExchangeState, account: Account) -> int:
    """Return collateral plus the unrealized PnL of every position."""
    return collateral_atomic(state, account) + unrealized_total_atomic(state, account)


def covered_without_collateral(
    state: ExchangeState, account: Account, unrealized_atomic: int, required_atomic: int
) -> bool:
    """Whether an account without lends or borrows covers `required_atomic` with its margin
    asset and unrealized PnL alone. Every other asset then counts at zero or more, so those
    two bound its equity from below and the full valuation (collateral_atomic) can be
    skipped; False says nothing either way."""
    if any(account.lent) or any(account.borrowed):
        return False
    margin_asset = state.margin_asset_id
    return account.balances[margin_asset] - account.locked[margin_asset] + unrealized_atomic >= required_atomic


def _worst_steps(position: Position, extra_buy: int, extra_sell: int) -> int:
    size = position.size_steps
    return max(abs(size + position.open_buy_steps + extra_buy), abs(size - position.open_sell_steps - extra_sell))


def initial_requirement_atomic(
    state: ExchangeState, account: Account, market_id: int = -1, extra_buy: int = 0, extra_sell: int = 0
) -> int:
    """Return the initial margin the account's positions and orders need (plus an extra order
    in one market): the cached total with that market's term valued again."""
    fresh_terms(state, account)
    total = account.init_total
    if market_id >= 0 and (extra_buy or extra_sell):
        market = state.markets[market_id]
        position = account.positions.get(market_id)
        if position is not None:
            total -= account.margin_terms.get(market_id, _NO_TERMS).initial
            worst = _worst_steps(position, extra_buy, extra_sell)
        else:
            worst = max(extra_buy, extra_sell)
        notional = worst * market.mark_ticks * market.lot_atomic
        total += _initial_term(notional, market, margin_scale(state), account.leverage_limit)
    return total + _borrow_requirement(state, account, initial=True)


def _borrow_requirement(state: ExchangeState, account: Account, *, initial: bool) -> int:
    """Margin on borrows: their value x the asset's borrow IMF (or MMF), rounded up."""
    if not any(account.borrowed):
        return 0
    total = 0
    leverage = account.leverage_limit if initial else 0
    for asset_id, borrowed in enumerate(account.borrowed):
        if borrowed:
            asset = state.assets[asset_id]
            if asset_id == state.margin_asset_id:
                value = borrowed
            else:
                value = div_ceil(borrowed * state.index_prices[asset_id], 10**asset.decimals)
            required = div_ceil(value * (asset.borrow_imf_bps if initial else asset.borrow_mmf_bps), BPS)
            total += max(required, div_ceil(value, leverage)) if leverage else required
    return total


def maintenance_requirement_atomic(state: ExchangeState, account: Account) -> int:
    """Return the maintenance margin of the account's positions (open orders do not count)."""
    return maintenance_and_unrealized(state, account)[0]


def maintenance_and_unrealized(state: ExchangeState, account: Account) -> tuple[int, int]:
    """Return (the maintenance requirement, the unrealized PnL of every position): the
    cached position totals, plus the borrows valued now."""
    fresh_terms(state, account)
    return account.maint_total + _borrow_requirement(state, account, initial=False), account.unreal_total


def check_order_margin(
    state: ExchangeState, account: Account, market: Market, is_buy: bool, quantity_steps: int, reduce_only: bool
) -> None:
    """Refuse a perpetual order the account's margin cannot carry (decide phase only).

    Raises Rejected(NO_MARK_PRICE, REDUCE_ONLY_WOULD_INCREASE, INSUFFICIENT_MARGIN)."""
    if market.mark_ticks == 0:
        raise Rejected(RejectCode.NO_MARK_PRICE, f"{market.symbol} has no mark price yet")
    position = account.positions.get(market.market_id)
    size = position.size_steps if position is not None else 0
    if reduce_only:
        if size == 0 or (size > 0) == is_buy or quantity_steps > abs(size):
            raise Rejected(
                RejectCode.REDUCE_ONLY_WOULD_INCREASE,
                "a reduce-only order must be against the position and no larger than it",
            )
        return
    limit = market.open_interest_max_steps
    if limit and market.open_interest_steps + quantity_steps > limit:
        # Open interest can grow by at most the order's quantity; reduce-only orders pass.
        raise Rejected(
            RejectCode.OPEN_INTEREST_LIMIT,
            f"{market.symbol} is at its open interest limit: only orders that reduce positions are accepted",
        )
    extra_buy = quantity_steps if is_buy else 0
    extra_sell = 0 if is_buy else quantity_steps
    if position is not None and _worst_steps(position, extra_buy, extra_sell) <= _worst_steps(position, 0, 0):
        return  # it does not add to the worst case
    if account.terms_drift != state.mark_drift and account.account_id not in state.lending_accounts:
        delta = drift_delta_e9(state, account)
        if delta >= 0 and _order_within_bound(state, account, market, position, extra_buy, extra_sell, delta):
            return  # covered however far the marks moved since its terms were valued
    required = initial_requirement_atomic(state, account, market.market_id, extra_buy, extra_sell)
    unrealized = unrealized_total_atomic(state, account)
    if covered_without_collateral(state, account, unrealized, required):
        return
    equity = collateral_atomic(state, account) + unrealized
    if equity < required:
        decimals = state.assets[state.margin_asset_id].decimals
        symbol = state.assets[state.margin_asset_id].symbol
        raise Rejected(
            RejectCode.INSUFFICIENT_MARGIN,
            f"insufficient margin: the order needs {format_decimal(required, decimals)} {symbol} of initial margin, "
            f"the account's equity is {format_decimal(equity, decimals)} {symbol}",
        )


def mark_price_ticks(state: ExchangeState, market: Market) -> int:
    """Return the mark (module docstring): median of index, mid and last, or the index."""
    index = market.index_ticks
    if index == 0:
        return 0
    book = state.books[market.market_id]
    bid = book.best_bid()
    ask = book.best_ask()
    last = market.last_price_ticks
    if bid == 0 or ask == 0 or last == 0:
        return index
    mid = (bid + ask) // 2
    return sorted((index, mid, last))[1]


def refresh_marks(state: ExchangeState, market_ids: list[int], events: list[Event]) -> None:
    """Recompute index and mark of these perpetuals; append a MarkPriceChanged for each change."""
    markets = state.markets
    prices = state.index_prices
    drift = 0
    for market_id in market_ids:
        market = markets[market_id]
        index = prices[market.base_asset_id] // market.tick_atomic
        changed = index != market.index_ticks
        market.index_ticks = index
        mark = mark_price_ticks(state, market)
        before = market.mark_ticks
        if changed or mark != before:
            if mark != before:
                market.mark_ticks = mark
                moved = _log_move_e9(before, mark)
                if moved > drift:
                    drift = moved
            events.append(MarkPriceChanged(market_id, index, mark))
    state.mark_drift += drift


def _log_move_e9(before: int, after: int) -> int:
    """An upper bound of |ln(after / before)| in 1e-9 units, rounded up: |after - before| /
    min(before, after); past DRIFT_CAP_E9 when a mark comes from or goes to 0."""
    low = min(before, after)
    if low == 0:
        return DRIFT_CAP_E9 + 1
    return -(-abs(after - before) * E9 // low)


def index_is_stale(state: ExchangeState, market: Market, now_ns: int) -> bool:
    """Whether a perpetual's index is older than its market's price age limit."""
    age = market.price_max_age_ns
    return bool(age) and now_ns - state.index_updated_ns[market.base_asset_id] > age


def perp_market_ids(state: ExchangeState) -> list[int]:
    return [market.market_id for market in state.markets if market.kind == _PERP]


def settle_funding(state: ExchangeState, market: Market, now_ns: int, reference: int, events: list[Event]) -> None:
    """Pay one funding round in a market (module docstring) and schedule the next."""
    interval = market.funding_interval_ns
    market.funding_next_ns = (now_ns // interval + 1) * interval
    index = market.index_ticks
    mark = market.mark_ticks
    if index == 0 or mark == 0:
        return
    cap = market.funding_cap_bps * (E9 // BPS)
    rate = div_toward_zero((mark - index) * E9, index)
    rate = max(-cap, min(cap, rate))
    market.funding_rate_e9 = rate
    market_id = market.market_id
    positions = state.positions_by_market[market_id]
    quote = market.quote_asset_id
    per_step = mark * market.lot_atomic * rate  # owed per step of size, in 1e-9 atomic units
    accounts = state.accounts
    dirty = state.dirty_accounts
    lines: list[tuple[int, int, int]] = []
    paid = received = 0
    count = 0
    # Hot (every position record at every funding time): the ledger entry is posted inline
    # (ledger.post_entry's effect: the lines move the balances, the accounts are dirty).
    for account_id in sorted(positions):  # sorting the ids alone is the cheaper sort
        position = positions[account_id]
        size = position.size_steps
        if size == 0:
            continue
        count += 1
        # size x per_step > 0: this position pays, rounded up (toward the exchange);
        # < 0: it receives, rounded down; both are floor(-owed / 1e9).
        amount = -size * per_step // E9
        if amount == 0:
            continue
        if amount < 0:
            paid -= amount
        else:
            received += amount
        lines.append((account_id, quote, amount))
        position.funding_atomic += amount
        account = accounts[account_id]
        account.balances[quote] += amount
        dirty.append(account)
    events.append(FundingSettled(market_id, rate, mark, index, paid, received, count))
    if lines:
        rounding = paid - received  # to the insurance fund: the entry sums to zero
        lines.append((INSURANCE_ACCOUNT_ID, quote, rounding))
        insurance = accounts[INSURANCE_ACCOUNT_ID]
        insurance.balances[quote] += rounding
        dirty.append(insurance)
        events.append(LedgerPosted(state.entry_id_next, _FUNDING, reference, tuple(lines)))
        state.entry_id_next += 1


def set_index_prices(state: ExchangeState, command: SetIndexPrices, events: list[Event]) -> None:
    """Set index prices and refresh the marks of the perpetuals on those assets.

    Raises Rejected(ORDER_MALFORMED, UNKNOWN_ASSET, PRICE_NOT_POSITIVE, VALUE_TOO_LARGE)."""
    prices = command.prices
    if not 1 <= len(prices) <= len(state.assets):
        raise Rejected(RejectCode.ORDER_MALFORMED, "give 1 index price per asset, at most one per listed asset")
    seen: list[int] = []
    for asset_id, price in prices:
        if not 0 <= asset_id < len(state.assets):
            raise Rejected(RejectCode.UNKNOWN_ASSET, f"asset {asset_id} does not exist")
        if asset_id in seen:
            raise Rejected(RejectCode.ORDER_MALFORMED, f"asset {state.assets[asset_id].symbol} is priced twice")
        seen.append(asset_id)
        if price <= 0:
            raise Rejected(RejectCode.PRICE_NOT_POSITIVE, "an index price must be positive")
        if price > limits.amount_atomic_max:
            raise Rejected(RejectCode.VALUE_TOO_LARGE, "index price is too large")
    for market in state.markets:
        if market.kind != _PERP or not market.index_move_cap_bps or market.base_asset_id not in seen:
            continue
        before = state.index_prices[market.base_asset_id]
        after = next(price for asset_id, price in prices if asset_id == market.base_asset_id)
        if before and abs(after - before) * BPS > before * market.index_move_cap_bps:
            raise Rejected(
                RejectCode.PRICE_MOVE_TOO_LARGE,
                f"index of {state.assets[market.base_asset_id].symbol} would move from "
                f"{format_decimal(before, state.assets[state.margin_asset_id].decimals)} to "
                f"{format_decimal(after, state.assets[state.margin_asset_id].decimals)}, more than the "
                f"{market.index_move_cap_bps} bps {market.symbol} allows in one update; refused and logged",
            )
    for asset_id, price in prices:
        state.index_prices[asset_id] = price
        state.index_updated_ns[asset_id] = command.timestamp_ns
    refresh_marks(
        state,
        [market.market_id for market in state.markets if market.kind == _PERP and market.base_asset_id in seen],
        events,
    )


def on_tick(state: ExchangeState, command: Tick, events: list[Event]) -> None:
    """Refresh every perpetual's mark, then pay the funding rounds that are due."""
    perps = perp_market_ids(state)
    if not perps:
        return
    refresh_marks(state, perps, events)
    now = command.timestamp_ns
    markets = state.markets
    for market_id in perps:
        market = markets[market_id]
        if now >= market.funding_next_ns:
            if market.state == MarketState.CLOSED or index_is_stale(state, market, now):
                # No funding while Closed or on a stale index: the round is skipped, not deferred.
                market.funding_next_ns = (now // market.funding_interval_ns + 1) * market.funding_interval_ns
                continue
            settle_funding(state, market, now, command.seq, events)
