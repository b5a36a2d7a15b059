"""Listing assets and markets, opening accounts and operator credits.

These are the operator's commands that shape the exchange: a listing is permanent, its
id is its position in listing order. `list_market` refuses a grid on which some
notional would not be an exact integer of quote atomic units.

Imports: accounts, assets, book, errors, events, ledger, limits, markets, state.
"""

from __future__ import annotations

from keel.core import limits
from keel.core.accounts import EXTERNAL_ACCOUNT_ID, Account
from keel.core.assets import Asset
from keel.core.book import Book
from keel.core.commands import CreateAccount, Credit, ListAsset, ListMarket
from keel.core.errors import RejectCode, Rejected
from keel.core.events import AccountCreated, AssetListed, EntryReason, Event, MarketListed
from keel.core.ledger import post_entry
from keel.core.markets import Market, MarketKind
from keel.core.money import BPS, E9
from keel.core.state import ExchangeState


def _check_symbol(symbol: str, code: RejectCode) -> None:
    if not (1 <= len(symbol) <= 32 and symbol.isascii() and symbol.replace("_", "").isalnum()):
        raise Rejected(code, f"symbol {symbol!r} must be 1-32 letters, digits or _")


def list_asset(state: ExchangeState, command: ListAsset, events: list[Event]) -> None:
    """List an asset. Raises Rejected(ASSET_EXISTS, ASSET_CONFIG_INVALID)."""
    _check_symbol(command.symbol, RejectCode.ASSET_CONFIG_INVALID)
    if command.symbol in state.asset_ids_by_symbol:
        raise Rejected(RejectCode.ASSET_EXISTS, f"asset {command.symbol} is already listed")
    if not 0 <= command.decimals <= 18:
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, "an asset has 0 to 18 decimals")
    if len(state.assets) >= limits.assets_max:
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, f"at most {limits.assets_max} assets")
    if not 0 <= command.collateral_weight_bps <= BPS:
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, "a collateral weight is 0 to 10,000 bps")
    if len(command.chain) > 32 or not command.chain.isprintable():
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, "a chain name is at most 32 printable characters")
    amounts = (
        command.withdrawal_fee_atomic,
        command.withdrawal_daily_limit_atomic,
        command.withdrawal_auto_approve_atomic,
        command.two_person_min_atomic,
    )
    minimums = (command.deposit_min_atomic, command.withdrawal_min_atomic)
    if not all(0 <= amount <= limits.amount_atomic_max for amount in minimums):
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, "minimum deposit and withdrawal amounts must not be negative")
    if not 1 <= command.confirmations_required <= 10_000 or not all(
        0 <= amount <= limits.amount_atomic_max for amount in amounts
    ):
        raise Rejected(RejectCode.ASSET_CONFIG_INVALID, "confirmations 1 to 10,000; withdrawal amounts not negative")
    rates = (command.rate_base_e9, command.rate_slope1_e9, command.rate_slope2_e9)
    if (
        not 0 <= command.borrow_mmf_bps <= command.borrow_imf_bps <= BPS
        or not all(0 <= rate <= 100 * E9 for rate in rates)
        or not 0 < command.optimal_utilization_bps < BPS
        or not 0 <= command.interest_spread_bps <= BPS
    ):
        raise Rejected(
            RejectCode.ASSET_CONFIG_INVALID,
            "borrow margins 0 <= maintenance <= initial <= 10,000 bps; rates 0 to 100 (x1e9); "
            "optimal utilization strictly between 0 and 10,000 bps; spread 0 to 10,000 bps",
        )
    asset_id = len(state.assets)
    state.assets.append(
        Asset(
            asset_id,
            command.symbol,
            command.decimals,
            command.collateral_weight_bps,
            command.chain,
            command.confirmations_required,
            *amounts,
            command.borrow_imf_bps,
            command.borrow_mmf_bps,
            *rates,
            command.optimal_utilization_bps,
            command.interest_spread_bps,
            *minimums,
        )
    )
    state.index_prices.append(0)
    state.index_updated_ns.append(0)
    state.asset_ids_by_symbol[command.symbol] = asset_id
    for account in state.accounts.values():
        account.balances.append(0)
        account.locked.append(0)
        account.lent.append(0)
        account.borrowed.append(0)
    state.dirty_accounts.extend(state.accounts.values())
    events.append(AssetListed(asset_id, command.symbol, command.decimals))


def list_market(state: ExchangeState, command: ListMarket, events: list[Event]) -> None:
    """List a spot market or a perpetual. Raises Rejected(MARKET_EXISTS, UNKNOWN_ASSET, MARKET_CONFIG_INVALID)."""
    _check_symbol(command.symbol, RejectCode.MARKET_CONFIG_INVALID)
    if command.symbol in state.market_ids_by_symbol:
        raise Rejected(RejectCode.MARKET_EXISTS, f"market {command.symbol} is already listed")
    assets_count = len(state.assets)
    for asset_id in (command.base_asset_id, command.quote_asset_id):
        if not 0 <= asset_id < assets_count:
            raise Rejected(RejectCode.UNKNOWN_ASSET, f"asset {asset_id} does not exist")
    problems = []
    if command.base_asset_id == command.quote_asset_id:
        problems.append("base and quote must differ")
    if command.tick_atomic <= 0 or command.step_atomic <= 0:
        problems.append("tick and step must be positive")
    base_unit = 10 ** state.assets[command.base_asset_id].decimals
    if command.tick_atomic > 0 and command.step_atomic > 0 and (command.tick_atomic * command.step_atomic) % base_unit:
        problems.append("tick x step must be a whole number of quote atomic units")
    if command.quantity_min_steps < 1:
        problems.append("minimum quantity must be at least one step")
    if command.quantity_max_steps < 0:
        problems.append("maximum quantity must not be negative (0: no maximum)")
    if 0 < command.quantity_max_steps < command.quantity_min_steps:
        problems.append("maximum quantity is below the minimum")
    if command.notional_min_atomic < 0:
        problems.append("minimum notional must not be negative")
    if not 0 <= command.fee_taker_bps <= limits.fee_bps_abs_max:
        problems.append("taker fee out of range")
    if not -command.fee_taker_bps <= command.fee_maker_bps <= command.fee_taker_bps:
        # A maker fee above the taker fee would break the entry hold bound; a rebate
        # larger than the taker fee would make the fee account pay out over time.
        problems.append("maker fee must lie between minus the taker fee and the taker fee")
    if not 0 < command.band_low_bps <= BPS <= command.band_high_bps:
        problems.append("price band must contain the last price")
    if not 0 < command.impact_low_bps <= BPS <= command.impact_high_bps:
        problems.append("impact band must contain the best price")
    if len(state.markets) >= limits.markets_max:
        problems.append(f"at most {limits.markets_max} markets")
    is_perp = command.kind == MarketKind.PERP
    if command.kind not in (MarketKind.SPOT, MarketKind.PERP):
        problems.append("kind must be SPOT or PERP")
    elif is_perp:
        if 0 <= state.margin_asset_id != command.quote_asset_id:
            problems.append("every perpetual settles in the same quote asset")
        if not 0 < command.mmf_base_e9 < command.imf_base_e9 <= E9:
            problems.append("margin fractions need 0 < maintenance base < initial base <= 1")
        if command.imf_factor_e9 < 0 or command.mmf_factor_e9 < 0:
            problems.append("margin factors must not be negative")
        if command.funding_interval_ns <= 0:
            problems.append("a perpetual needs a positive funding interval")
        if not 0 <= command.funding_cap_bps <= BPS:
            problems.append("funding cap is 0 to 10,000 bps")
        if command.open_interest_max_steps < 0:
            problems.append("open interest limit must not be negative (0: none)")
        if not 0 <= command.index_move_cap_bps <= BPS:
            problems.append("index move cap is 0 (none) to 10,000 bps")
        if command.price_max_age_ns < 0:
            problems.append("price age limit must not be negative (0: none)")
    elif (
        command.imf_base_e9
        or command.imf_factor_e9
        or command.mmf_base_e9
        or command.mmf_factor_e9
        or command.funding_interval_ns
        or command.funding_cap_bps
        or command.open_interest_max_steps
        or command.index_move_cap_bps
        or command.price_max_age_ns
    ):
        problems.append("a spot market takes no perpetual parameters")
    if problems:
        raise Rejected(RejectCode.MARKET_CONFIG_INVALID, f"market {command.symbol}: " + "; ".join(problems))
    market_id = len(state.markets)
    state.markets.append(
        Market(
            market_id,
            command.symbol,
            command.base_asset_id,
            command.quote_asset_id,
            command.tick_atomic,
            command.step_atomic,
            command.tick_atomic * command.step_atomic // base_unit,
            command.quantity_min_steps,
            command.quantity_max_steps,
            command.notional_min_atomic,
            command.fee_maker_bps,
            command.fee_taker_bps,
            command.band_low_bps,
            command.band_high_bps,
            command.impact_low_bps,
            command.impact_high_bps,
            kind=command.kind,
            imf_base_e9=command.imf_base_e9,
            imf_factor_e9=command.imf_factor_e9,
            mmf_base_e9=command.mmf_base_e9,
            mmf_factor_e9=command.mmf_factor_e9,
            funding_interval_ns=command.funding_interval_ns,
            funding_cap_bps=command.funding_cap_bps,
            open_interest_max_steps=command.open_interest_max_steps,
            index_move_cap_bps=command.index_move_cap_bps,
            price_max_age_ns=command.price_max_age_ns,
            state_changed_ns=command.timestamp_ns,
            funding_next_ns=(
                (command.timestamp_ns // command.funding_interval_ns + 1) * command.funding_interval_ns
                if is_perp
                else 0
            ),
        )
    )
    if is_perp:
        state.margin_asset_id = command.quote_asset_id
    state.market_ids_by_symbol[command.symbol] = market_id
    state.books.append(Book(market_id))
    state.positions_by_market.append({})
    events.append(MarketListed(market_id, command.symbol))


def create_account(state: ExchangeState, command: CreateAccount, events: list[Event]) -> None:
    """Open the next user account. Raises Rejected(ACCOUNT_LIMIT)."""
    if state.account_id_next > limits.accounts_max:
        raise Rejected(RejectCode.ACCOUNT_LIMIT, f"this exchange holds at most {limits.accounts_max:,} accounts")
    account_id = state.account_id_next
    state.account_id_next = account_id + 1
    account = state.accounts[account_id] = Account(account_id, len(state.assets))
    state.dirty_accounts.append(account)
    events.append(AccountCreated(account_id))


def credit(state: ExchangeState, command: Credit, events: list[Event]) -> None:
    """Move an amount from the external account to a user (ledger reason `deposit`).

    Raises Rejected(UNKNOWN_ACCOUNT, UNKNOWN_ASSET, AMOUNT_NOT_POSITIVE, VALUE_TOO_LARGE)."""
    account = state.accounts.get(command.account_id)
    if account is None or command.account_id <= 0:
        raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {command.account_id} does not exist")
    if not 0 <= command.asset_id < len(state.assets):
        raise Rejected(RejectCode.UNKNOWN_ASSET, f"asset {command.asset_id} does not exist")
    if command.amount_atomic <= 0:
        raise Rejected(RejectCode.AMOUNT_NOT_POSITIVE, "a credit must be a positive amount")
    if account.balances[command.asset_id] + command.amount_atomic > limits.amount_atomic_max:
        raise Rejected(RejectCode.VALUE_TOO_LARGE, "the balance would exceed the largest amount Keel holds")
    # The external account holds minus everything inside the exchange: bounding it bounds
    # every sum of balances of the asset, so all of them fit the log's 64-bit integers.
    if (
        state.accounts[EXTERNAL_ACCOUNT_ID].balances[command.asset_id] - command.amount_atomic
        < -limits.amount_atomic_max
    ):
        raise Rejected(
            RejectCode.VALUE_TOO_LARGE,
            f"the exchange's total {state.assets[command.asset_id].symbol} would exceed the largest amount Keel holds",
        )
    lines = (
        (EXTERNAL_ACCOUNT_ID, command.asset_id, -command.amount_atomic),
        (command.account_id, command.asset_id, command.amount_atomic),
    )
    post_entry(state, int(EntryReason.DEPOSIT), command.seq, lines, events)
