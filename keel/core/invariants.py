"""The invariants of DESIGN.md (spot part), checked on demand: `audit(state)`.

`audit` returns a list of findings, each naming exactly what is wrong ("account 7
USDC: locked 1500 != holds of open orders 1400"); an empty list means all hold.
`check` raises InvariantViolation with the same findings.

Checked:
- per asset, the balances of all accounts (users, fees, external) sum to zero;
- per user account and asset: balance >= 0, 0 <= locked <= balance (the margin asset
  may go below zero: a margin debit), and locked equals the holds of the account's
  open orders (a perpetual order holds nothing);
- per (account, asset), with a LedgerTotals: balance == sum of posted ledger lines,
  every entry balanced, entries numbered without gaps;
- per open order: filled + open == quantity, open > 0, its hold is exactly what its
  open quantity can cost, it is indexed by its account (and client id);
- perpetuals: positions sum to zero per market, open interest equals the sum of longs,
  each position record matches its account's open orders and the sign of its cost,
  and the clearing balance plus every open entry cost is zero (perps.py);
- per book: the live orders are exactly the market's open orders, each once, in the
  level of their price, in arrival order (time priority: the seq of the command that
  placed each never decreases along a level; a fired trigger keeps its lower order id
  but arrives when it fires, so ids alone need not ascend); level totals are right; no
  empty level; the book is not crossed.

Imports: state, accounts, ledger, matching (hold rules), perps, liquidation, errors.
"""

from __future__ import annotations

from keel.core.accounts import CLEARING_ACCOUNT_ID, LENDING_POOL_ACCOUNT_ID, Account, is_user_account
from keel.core.errors import InvariantViolation
from keel.core.ledger import LedgerTotals
from keel.core.liquidation import below_maintenance
from keel.core.markets import MarketKind
from keel.core.matching import resting_buy_hold_atomic
from keel.core.money import E9, div_ceil
from keel.core.perps import (
    DELTA_MAX_E9,
    drift_delta_e9,
    equity_atomic,
    equity_floor,
    initial_bound,
    maintenance_need,
    maintenance_requirement_atomic,
    margin_fraction_e9,
    margin_scale,
    margin_totals_full,
    position_terms,
    unrealized_at_marks,
)
from keel.core.state import ExchangeState

_PERP = int(MarketKind.PERP)


def audit(state: ExchangeState, ledger: LedgerTotals | None = None) -> list[str]:
    """Return every invariant violation found in `state` (empty when all hold)."""
    findings: list[str] = []
    assets = state.assets
    names = [asset.symbol for asset in assets]
    # Conservation: value only moves between accounts.
    for asset_id, name in enumerate(names):
        total = sum(account.balances[asset_id] for account in state.accounts.values())
        if total != 0:
            findings.append(f"{name}: balances of all accounts sum to {total}, not 0")
    # Holds of open orders, per account and asset.
    holds: dict[tuple[int, int], int] = {}
    for order_id, order in state.orders.items():
        market = state.markets[order.market_id]
        where = f"order {order_id} ({market.symbol})"
        if order.order_id != order_id:
            findings.append(f"{where}: indexed under the wrong id {order.order_id}")
        if order.open_steps <= 0:
            findings.append(f"{where}: open but has open quantity {order.open_steps}")
        if order.filled_steps + order.open_steps != order.quantity_steps:
            findings.append(
                f"{where}: filled {order.filled_steps} + open {order.open_steps} != quantity {order.quantity_steps}"
            )
        if market.kind == _PERP:
            hold_asset, expected_hold = market.quote_asset_id, 0
        elif order.side == 0:
            hold_asset, expected_hold = (
                market.quote_asset_id,
                resting_buy_hold_atomic(market, order),
            )
        else:
            hold_asset, expected_hold = market.base_asset_id, order.open_steps * market.step_atomic
        if order.hold_atomic != expected_hold:
            findings.append(f"{where}: holds {order.hold_atomic}, its open quantity needs {expected_hold}")
        key = (order.account_id, hold_asset)
        holds[key] = holds.get(key, 0) + order.hold_atomic
        account = state.accounts.get(order.account_id)
        if account is None or account.orders_open.get(order_id) is not order:
            findings.append(f"{where}: missing from account {order.account_id}'s open orders")
        if order.client_id != -1 and (account is None or account.client_orders.get(order.client_id) is not order):
            findings.append(f"{where}: client id {order.client_id} not indexed on its account")
    for withdrawal in state.withdrawals.values():
        if withdrawal.status in (0, 1, 2):  # requested, approved, sent: still locked
            key = (withdrawal.account_id, withdrawal.asset_id)
            holds[key] = holds.get(key, 0) + withdrawal.amount_atomic + withdrawal.fee_atomic
    for account_id, account in state.accounts.items():
        for order_id, order in account.orders_open.items():
            if state.orders.get(order_id) is not order:
                findings.append(f"account {account_id}: lists order {order_id}, which is not open")
        for client_id, order in account.client_orders.items():
            if order.client_id != client_id or state.orders.get(order.order_id) is not order:
                findings.append(f"account {account_id}: client id {client_id} points at a closed or wrong order")
        if len(account.balances) != len(assets) or len(account.locked) != len(assets):
            findings.append(f"account {account_id}: has {len(account.balances)} balances for {len(assets)} assets")
            continue
        for asset_id, name in enumerate(names):
            balance = account.balances[asset_id]
            locked = account.locked[asset_id]
            where = f"account {account_id} {name}"
            if is_user_account(account_id):
                if asset_id == state.margin_asset_id:
                    # Perpetual losses, fees and funding can take the margin asset below
                    # zero (a margin debit); its spot holds stay non-negative.
                    if locked < 0:
                        findings.append(f"{where}: locked {locked} is negative")
                else:
                    if balance < 0:
                        findings.append(f"{where}: balance {balance} is negative")
                    if locked < 0 or locked > balance:
                        findings.append(f"{where}: locked {locked} outside 0..balance {balance}")
            expected_locked = holds.get((account_id, asset_id), 0)
            if locked != expected_locked:
                findings.append(
                    f"{where}: locked {locked} != holds of open orders and pending withdrawals {expected_locked}"
                )
            if ledger is not None and ledger.total(account_id, asset_id) != balance:
                findings.append(
                    f"{where}: balance {balance} != sum of its ledger lines {ledger.total(account_id, asset_id)}"
                )
    if ledger is not None:
        if ledger.unbalanced:
            findings.append(f"ledger entries unbalanced or out of order: {ledger.unbalanced[:10]}")
        if ledger.entries != state.entry_id_next - 1:
            findings.append(f"ledger has {ledger.entries} entries, the engine posted {state.entry_id_next - 1}")
        for account_id, _asset_id in ledger.totals:
            if account_id not in state.accounts:
                findings.append(f"ledger lines name account {account_id}, which does not exist")
    findings.extend(_audit_books(state))
    findings.extend(_audit_positions(state))
    return findings


def _audit_positions(state: ExchangeState) -> list[str]:
    """Perpetuals: positions net to zero per market, open interest, position records
    match open orders, and the clearing account mirrors the open entry costs."""
    findings: list[str] = []
    cost_total = 0
    for market in state.markets:
        positions = state.positions_by_market[market.market_id]
        if market.kind != _PERP:
            if positions:
                findings.append(f"{market.symbol}: a spot market has position records")
            continue
        net = longs = 0
        open_buys: dict[int, int] = {}
        open_sells: dict[int, int] = {}
        for order in state.orders.values():
            if order.market_id == market.market_id:
                book_side = open_buys if order.side == 0 else open_sells
                book_side[order.account_id] = book_side.get(order.account_id, 0) + order.open_steps
        for account_id, position in positions.items():
            where = f"{market.symbol} position of account {account_id}"
            account = state.accounts.get(account_id)
            if account is None or account.positions.get(market.market_id) is not position:
                findings.append(f"{where}: not filed on its account")
            size, cost = position.size_steps, position.cost_atomic
            net += size
            longs += max(size, 0)
            cost_total += cost
            if (size > 0) != (cost > 0) or (size < 0) != (cost < 0):
                findings.append(f"{where}: size {size} and entry cost {cost} disagree in sign")
            if position.open_buy_steps != open_buys.get(account_id, 0):
                findings.append(f"{where}: open buys {position.open_buy_steps} != {open_buys.get(account_id, 0)}")
            if position.open_sell_steps != open_sells.get(account_id, 0):
                findings.append(f"{where}: open sells {position.open_sell_steps} != {open_sells.get(account_id, 0)}")
            if size == 0 and position.open_buy_steps == 0 and position.open_sell_steps == 0:
                findings.append(f"{where}: a flat record with no orders was kept")
        if net != 0:
            findings.append(f"{market.symbol}: positions sum to {net}, not 0")
        if longs != market.open_interest_steps:
            findings.append(f"{market.symbol}: open interest {market.open_interest_steps} != sum of longs {longs}")
    for account_id, account in state.accounts.items():
        for market_id, position in account.positions.items():
            if state.positions_by_market[market_id].get(account_id) is not position:
                findings.append(f"account {account_id}: position in market {market_id} is not indexed by its market")
        findings.extend(_audit_margin_terms(state, account))
    holders = [account_id for account_id, account in state.accounts.items() if account.positions]
    if sorted(state.position_holders) != sorted(holders):
        findings.append(f"position holders indexed {sorted(state.position_holders)}, holding {sorted(holders)}")
    for account_id, account in state.accounts.items():
        if account_id > 0 and below_maintenance(state, account):
            findings.append(
                f"account {account_id}: equity {equity_atomic(state, account)} below maintenance "
                f"{maintenance_requirement_atomic(state, account)} after the command"
            )
    pool = state.accounts[LENDING_POOL_ACCOUNT_ID]
    for asset_id, asset in enumerate(state.assets):
        lent = sum(account.lent[asset_id] for account in state.accounts.values())
        borrowed = sum(account.borrowed[asset_id] for account in state.accounts.values())
        if pool.balances[asset_id] != lent - borrowed:
            findings.append(
                f"{asset.symbol}: lending pool {pool.balances[asset_id]} != lent {lent} - borrowed {borrowed}"
            )
        if borrowed > lent:
            findings.append(f"{asset.symbol}: borrowed {borrowed} exceeds lent {lent}")
    for account_id, account in state.accounts.items():
        for asset_id, asset in enumerate(state.assets):
            lent, borrowed = account.lent[asset_id], account.borrowed[asset_id]
            if lent < 0 or borrowed < 0 or (lent and borrowed):
                findings.append(f"account {account_id} {asset.symbol}: lent {lent} and borrowed {borrowed}")
            if (lent or borrowed) and account_id not in state.lending_accounts:
                findings.append(f"account {account_id}: lends or borrows but is not indexed as a lender")
    if state.margin_asset_id >= 0:
        clearing = state.accounts[CLEARING_ACCOUNT_ID].balances[state.margin_asset_id]
        if clearing + cost_total != 0:
            findings.append(f"clearing balance {clearing} + open entry costs {cost_total} != 0")
    return findings


def _audit_margin_terms(state: ExchangeState, account: Account) -> list[str]:
    """The account's cached margin terms (perps.position_changed) bound a valuation afresh
    as perps.py's "The bound" says, and equal it where valued at the current mark. Reads
    only: the stale terms the engine left are what the next command works with."""
    findings: list[str] = []
    where = f"account {account.account_id}"
    if sorted(account.margin_terms) != sorted(account.positions):
        findings.append(
            f"{where}: margin terms cached for markets {sorted(account.margin_terms)}, "
            f"positions in {sorted(account.positions)}"
        )
        return findings
    terms = account.margin_terms
    exposures = (sum(term.notional for term in terms.values()), sum(term.worst for term in terms.values()))
    if (account.exposure, account.worst_exposure) != exposures:
        kept = (account.exposure, account.worst_exposure)
        findings.append(f"{where}: exposures cached {kept}, terms sum {exposures}")
    scale = margin_scale(state)
    decimals = state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0
    for market_id, term in terms.items():
        market = state.markets[market_id]
        caps = (
            margin_fraction_e9(market.mmf_base_e9, market.mmf_factor_e9, 2 * term.notional, decimals)
            if term.notional
            else 0,
            margin_fraction_e9(market.imf_base_e9, market.imf_factor_e9, 2 * term.worst, decimals) if term.worst else 0,
        )
        if account.leverage_limit and term.worst:
            caps = (caps[0], max(caps[1], div_ceil(E9, account.leverage_limit)))
        if account.maint_cap_e9 < caps[0] or account.init_cap_e9 < caps[1]:
            findings.append(
                f"{where}: fraction caps {(account.maint_cap_e9, account.init_cap_e9)} "
                f"below market {market_id}'s {caps}"
            )
    unrealized, maintenance, initial = margin_totals_full(state, account)
    at_marks = unrealized_at_marks(state.markets, account)
    if at_marks != unrealized:
        findings.append(f"{where}: unrealized PnL summed at the marks {at_marks}, valued afresh {unrealized}")
    delta = drift_delta_e9(state, account)
    if delta >= 0 and state.margin_asset_id >= 0:
        # The bound's own functions, against the valuation afresh (perps.py, "The bound").
        margin_asset = state.margin_asset_id
        available = account.balances[margin_asset] - account.locked[margin_asset]
        floor = equity_floor(state, account, delta) - available
        need = maintenance_need(account, delta)
        bound = initial_bound(account, delta, account.worst_exposure)
        at_cap = account.cap_need
        if (
            floor > unrealized
            or need < maintenance - unrealized
            or bound < initial
            or (at_cap is not None and at_cap < maintenance - unrealized)
            or (at_cap is not None and at_cap != maintenance_need(account, DELTA_MAX_E9))
        ):
            findings.append(
                f"{where}: stale terms bound (unrealized >=, maintenance less unrealized <=, the same kept at "
                f"the cap, initial <=) {(floor, need, at_cap, bound)}, valued afresh "
                f"{(unrealized, maintenance - unrealized, initial)}"
            )
    sums = [0, 0, 0]
    now = [0, 0, 0]
    for market_id, position in account.positions.items():
        market = state.markets[market_id]
        term = terms[market_id]
        expected = position_terms(position, market, scale, account.leverage_limit)
        cached = (term.unrealized, term.maintenance, term.initial)
        for index in range(3):
            sums[index] += cached[index]
            now[index] += expected[index] if term.mark != market.mark_ticks else cached[index]
        if term.mark == market.mark_ticks and cached != expected:
            findings.append(
                f"{where}: margin terms in market {market_id} (unrealized, maintenance, initial) "
                f"cached {cached} at the current mark, valued now {expected}"
            )
    cached_totals = (account.unreal_total, account.maint_total, account.init_total)
    if cached_totals != tuple(sums):
        findings.append(f"{where}: margin totals cached {cached_totals}, its terms sum to {tuple(sums)}")
    if tuple(now) != (unrealized, maintenance, initial):
        findings.append(
            f"{where}: margin totals (unrealized, maintenance, initial) with stale terms valued again "
            f"{tuple(now)}, valued afresh {(unrealized, maintenance, initial)}"
        )
    return findings


def _audit_books(state: ExchangeState) -> list[str]:
    findings: list[str] = []
    for market_id, book in enumerate(state.books):
        symbol = state.markets[market_id].symbol
        seen: dict[int, int] = {}
        for side, levels in ((0, book.bids), (1, book.asks)):
            for price, level in levels.items():
                where = f"{symbol} {'bid' if side == 0 else 'ask'} level {price}"
                live = [order for order in level.orders if order.open_steps > 0]
                if not live:
                    findings.append(f"{where}: empty level left in the book")
                if level.live != len(live):
                    findings.append(f"{where}: counts {level.live} live orders, holds {len(live)}")
                if level.open_steps != sum(order.open_steps for order in live):
                    findings.append(f"{where}: open quantity {level.open_steps} != sum of its orders")
                placed = [order.created_seq for order in live]
                if placed != sorted(placed):
                    ids = [order.order_id for order in live]
                    findings.append(f"{where}: orders out of time priority {ids[:10]} (placed at seqs {placed[:10]})")
                for order in live:
                    seen[order.order_id] = seen.get(order.order_id, 0) + 1
                    if state.orders.get(order.order_id) is not order:
                        findings.append(f"{where}: order {order.order_id} in the book is not open")
                    if order.price_ticks != price or order.side != side or order.market_id != market_id:
                        findings.append(f"{where}: order {order.order_id} rests at the wrong place")
        for order_id, order in state.orders.items():
            if order.market_id == market_id and seen.get(order_id, 0) != 1:
                findings.append(f"{symbol}: open order {order_id} appears {seen.get(order_id, 0)} times in the book")
        if book.bids and book.asks and max(book.bids) >= min(book.asks):
            findings.append(f"{symbol}: book crossed, best bid {max(book.bids)} >= best ask {min(book.asks)}")
    return findings


def check(state: ExchangeState, ledger: LedgerTotals | None = None) -> None:
    """Raise InvariantViolation naming every violation, if there is any."""
    findings = audit(state, ledger)
    if findings:
        raise InvariantViolation(findings)
