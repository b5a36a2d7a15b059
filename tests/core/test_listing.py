"""Tests of keel.core.listing: assets, markets, accounts and operator credits."""

from __future__ import annotations

from typing import Any

import pytest

from keel.core import limits
from keel.core.accounts import (
    CLEARING_ACCOUNT_ID,
    EXTERNAL_ACCOUNT_ID,
    FEE_ACCOUNT_ID,
    INSURANCE_ACCOUNT_ID,
    LENDING_POOL_ACCOUNT_ID,
)
from keel.core.assets import Asset
from keel.core.commands import CreateAccount, Credit, ListAsset, ListMarket
from keel.core.errors import RejectCode
from keel.core.events import AccountCreated, AssetListed, CommandRejected, EntryReason, LedgerPosted, MarketListed
from keel.core.markets import Market, MarketState
from keel.testing.harness import Harness, StateImage, state_except_position


def snapshot(h: Harness) -> StateImage:
    return state_except_position(h.state)


def reject(h: Harness, command_type: type, code: RejectCode, phrase: str, **fields: Any) -> CommandRejected:
    return h.reject(command_type, code, phrase, **fields)


def market_fields(h: Harness, **overrides: Any) -> dict[str, Any]:
    """Return valid ListMarket fields for a SOL/USDC market named SOLX_USDC, with overrides."""
    return h.sol_market_fields(**{"symbol": "SOLX_USDC", **overrides})


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.list_defaults()
    return harness


# ---- assets ---------------------------------------------------------------------------


def test_list_asset_gives_dense_ids_and_an_event() -> None:
    """Assets get ids 0, 1, 2 ... in listing order and each listing emits AssetListed."""
    h = Harness()
    assert h.submit(ListAsset, symbol="USDC", decimals=6) == [AssetListed(0, "USDC", 6)]
    assert h.submit(ListAsset, symbol="SOL", decimals=9) == [AssetListed(1, "SOL", 9)]
    assert h.submit(ListAsset, symbol="X", decimals=0) == [AssetListed(2, "X", 0)]
    assert h.submit(ListAsset, symbol="WEI_18", decimals=18) == [AssetListed(3, "WEI_18", 18)]
    assert h.state.assets == [Asset(0, "USDC", 6), Asset(1, "SOL", 9), Asset(2, "X", 0), Asset(3, "WEI_18", 18)]
    assert h.state.asset_ids_by_symbol == {"USDC": 0, "SOL": 1, "X": 2, "WEI_18": 3}
    assert h.audit() == []


def test_list_asset_duplicate_symbol_rejected(h: Harness) -> None:
    """A symbol can be listed once; a second listing is ASSET_EXISTS and changes nothing."""
    reject(h, ListAsset, RejectCode.ASSET_EXISTS, "asset SOL is already listed", symbol="SOL", decimals=9)
    reject(h, ListAsset, RejectCode.ASSET_EXISTS, "already listed", symbol="USDC", decimals=2)
    assert h.audit() == []


@pytest.mark.parametrize("decimals", [-1, 19, 100])
def test_list_asset_decimals_out_of_range_rejected(h: Harness, decimals: int) -> None:
    """An asset has 0 to 18 decimals; anything else is ASSET_CONFIG_INVALID."""
    reject(h, ListAsset, RejectCode.ASSET_CONFIG_INVALID, "0 to 18 decimals", symbol="NEW", decimals=decimals)
    assert h.audit() == []


@pytest.mark.parametrize("symbol", ["", "A B", "A-B", "ÜSD", "X" * 33, "_", "SOL/USDC"])
def test_list_asset_bad_symbol_rejected(h: Harness, symbol: str) -> None:
    """A symbol must be 1-32 ASCII letters, digits or underscores (and not only underscores)."""
    reject(
        h, ListAsset, RejectCode.ASSET_CONFIG_INVALID, "must be 1-32 letters, digits or _", symbol=symbol, decimals=6
    )
    assert h.audit() == []


def test_list_asset_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """No more than limits.assets_max assets can be listed."""
    monkeypatch.setattr(limits, "assets_max", 2)
    h = Harness()
    h.ok(ListAsset, symbol="A", decimals=1)
    h.ok(ListAsset, symbol="B", decimals=1)
    reject(h, ListAsset, RejectCode.ASSET_CONFIG_INVALID, "at most 2 assets", symbol="C", decimals=1)
    assert h.audit() == []


def test_asset_listed_after_accounts_gets_a_zero_balance_everywhere(h: Harness) -> None:
    """Accounts opened before an asset was listed get a zero balance and lock for it and can be credited."""
    a = h.new_account(USDC=5)
    events = h.ok(ListAsset, symbol="DOGE", decimals=8)
    doge = events[0].asset_id
    assert doge == 4  # after USDC, SOL, BTC, ETH
    for account in h.state.accounts.values():
        assert len(account.balances) == 5
        assert account.balances[doge] == 0
        assert account.locked[doge] == 0
    h.ok(Credit, account_id=a, asset_id=doge, amount_atomic=123)
    assert h.balance(a, "DOGE") == 123
    assert h.audit() == []


# ---- markets --------------------------------------------------------------------------


def test_default_markets_have_exact_lots() -> None:
    """Listing stores every field and lot = tick x step / 10**base decimals, exactly."""
    h = Harness()
    h.list_defaults()
    sol, btc, eth = (h.state.markets[h.market(symbol)] for symbol in ("SOL_USDC", "BTC_USDC", "ETH_USDC"))
    # SOL: tick 10_000 x step 10_000_000 / 10**9 = 100 atomic USDC per lot.
    assert sol.lot_atomic == 100
    # BTC: tick 100_000 x step 1_000 / 10**8 = 1.
    assert btc.lot_atomic == 1
    # ETH: tick 10_000 x step 10_000 / 10**8 = 1.
    assert eth.lot_atomic == 1
    assert sol == Market(
        0,
        "SOL_USDC",
        1,
        0,
        10_000,
        10_000_000,
        100,
        1,
        0,
        1_000_000,
        2,
        5,
        7_500,
        12_500,
        9_700,
        10_300,
        state_changed_ns=sol.state_changed_ns,  # the listing's time
    )
    assert sol.state_changed_ns == h.log[4].timestamp_ns
    assert sol.state is MarketState.OPEN
    assert sol.last_price_ticks == 0
    assert sol.volume_steps == 0
    assert len(h.state.books) == 3
    assert h.audit() == []


def test_list_market_event_and_custom_bands(h: Harness) -> None:
    """ListMarket emits MarketListed with the next id and keeps the bands it was given."""
    events = h.submit(
        ListMarket,
        **market_fields(
            h,
            quantity_min_steps=5,
            quantity_max_steps=1_000,
            band_low_bps=9_000,
            band_high_bps=11_000,
            impact_low_bps=9_900,
            impact_high_bps=10_100,
            fee_maker_bps=-1,
        ),
    )
    assert events == [MarketListed(3, "SOLX_USDC")]
    market = h.state.markets[3]
    assert h.state.market_ids_by_symbol["SOLX_USDC"] == 3
    assert (market.quantity_min_steps, market.quantity_max_steps) == (5, 1_000)
    assert (market.band_low_bps, market.band_high_bps) == (9_000, 11_000)
    assert (market.impact_low_bps, market.impact_high_bps) == (9_900, 10_100)
    assert (market.fee_maker_bps, market.fee_taker_bps) == (-1, 5)
    assert h.audit() == []


def test_list_market_duplicate_symbol_rejected(h: Harness) -> None:
    """A market symbol can be listed once; a second listing is MARKET_EXISTS."""
    reject(
        h,
        ListMarket,
        RejectCode.MARKET_EXISTS,
        "market SOL_USDC is already listed",
        **market_fields(h, symbol="SOL_USDC"),
    )
    assert h.audit() == []


@pytest.mark.parametrize(("field", "asset_id"), [("base_asset_id", 4), ("quote_asset_id", 99), ("base_asset_id", -1)])
def test_list_market_unknown_asset_rejected(h: Harness, field: str, asset_id: int) -> None:
    """A market over an asset that was never listed is UNKNOWN_ASSET."""
    reject(
        h,
        ListMarket,
        RejectCode.UNKNOWN_ASSET,
        f"asset {asset_id} does not exist",
        **market_fields(h, **{field: asset_id}),
    )
    assert h.audit() == []


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        # SOL has 9 decimals: 1 x 1 = 1 is not a multiple of 10**9 atomic SOL.
        ({"tick_atomic": 1, "step_atomic": 1}, "tick x step must be a whole number of quote atomic units"),
        # 10_000 x 15_000_000 = 1.5e11, / 1e9 = 150: whole, so accepted (see the next test); 10_001 x 1_000_000
        # = 1.0001e10, / 1e9 = 10.001: not whole.
        ({"tick_atomic": 10_001, "step_atomic": 1_000_000}, "tick x step must be a whole number"),
        ({"tick_atomic": 0}, "tick and step must be positive"),
        ({"step_atomic": -10}, "tick and step must be positive"),
        ({"quote_asset_id": 1}, "base and quote must differ"),
        ({"quantity_min_steps": 0}, "minimum quantity must be at least one step"),
        ({"quantity_min_steps": 10, "quantity_max_steps": 5}, "maximum quantity is below the minimum"),
        ({"notional_min_atomic": -1}, "minimum notional must not be negative"),
        ({"fee_taker_bps": -1, "fee_maker_bps": -1}, "taker fee out of range"),
        ({"fee_taker_bps": 1_001, "fee_maker_bps": 0}, "taker fee out of range"),
        ({"fee_maker_bps": 6}, "maker fee must lie between minus the taker fee and the taker fee"),
        ({"fee_maker_bps": -6}, "maker fee must lie between minus the taker fee and the taker fee"),
        ({"band_low_bps": 0}, "price band must contain the last price"),
        ({"band_low_bps": 10_001}, "price band must contain the last price"),
        ({"band_high_bps": 9_999}, "price band must contain the last price"),
        ({"impact_low_bps": 0}, "impact band must contain the best price"),
        ({"impact_high_bps": 9_999}, "impact band must contain the best price"),
        ({"symbol": "SOL USDC"}, "must be 1-32 letters, digits or _"),
        ({"symbol": ""}, "must be 1-32 letters, digits or _"),
    ],
)
def test_list_market_invalid_config_rejected(h: Harness, overrides: dict[str, Any], phrase: str) -> None:
    """Each invalid market configuration is MARKET_CONFIG_INVALID naming the problem, and lists nothing."""
    reject(h, ListMarket, RejectCode.MARKET_CONFIG_INVALID, phrase, **market_fields(h, **overrides))
    assert h.audit() == []


def test_list_market_reports_every_problem_at_once(h: Harness) -> None:
    """A configuration with several problems is refused once, naming all of them."""
    event = reject(
        h,
        ListMarket,
        RejectCode.MARKET_CONFIG_INVALID,
        "market SOLX_USDC: ",
        **market_fields(h, tick_atomic=1, step_atomic=1, notional_min_atomic=-5, fee_maker_bps=9),
    )
    assert "tick x step must be a whole number" in event.message
    assert "minimum notional must not be negative" in event.message
    assert "maker fee must lie between" in event.message
    assert h.audit() == []


def test_list_market_boundary_configs_accepted(h: Harness) -> None:
    """The edges of every range are valid: equal fees, rebate = -taker, bands of exactly 100%, zero fees."""
    h.ok(ListMarket, **market_fields(h, symbol="M1", fee_maker_bps=5, fee_taker_bps=5))
    h.ok(ListMarket, **market_fields(h, symbol="M2", fee_maker_bps=-5, fee_taker_bps=5))
    h.ok(ListMarket, **market_fields(h, symbol="M3", fee_maker_bps=0, fee_taker_bps=0, notional_min_atomic=0))
    h.ok(ListMarket, **market_fields(h, symbol="M4", fee_maker_bps=0, fee_taker_bps=limits.fee_bps_abs_max))
    h.ok(
        ListMarket,
        **market_fields(
            h, symbol="M5", band_low_bps=10_000, band_high_bps=10_000, impact_low_bps=10_000, impact_high_bps=10_000
        ),
    )
    # 10_000 x 15_000_000 / 10**9 = 150: a whole lot even though the step is not a power of ten.
    h.ok(ListMarket, **market_fields(h, symbol="M6", step_atomic=15_000_000))
    assert h.state.markets[h.market("M6")].lot_atomic == 150
    h.ok(ListMarket, **market_fields(h, symbol="M7", quantity_min_steps=3, quantity_max_steps=3))
    assert len(h.state.markets) == 10
    assert h.audit() == []


def test_list_market_limit(monkeypatch: pytest.MonkeyPatch, h: Harness) -> None:
    """No more than limits.markets_max markets can be listed."""
    monkeypatch.setattr(limits, "markets_max", 3)
    reject(h, ListMarket, RejectCode.MARKET_CONFIG_INVALID, "at most 3 markets", **market_fields(h))
    assert h.audit() == []


# ---- accounts and credits -------------------------------------------------------------


def test_create_account_numbers_accounts_from_one(h: Harness) -> None:
    """User accounts get ids 1, 2, 3 ... with a zero balance and lock for every asset."""
    assert h.submit(CreateAccount) == [AccountCreated(1)]
    assert h.submit(CreateAccount) == [AccountCreated(2)]
    account = h.account(2)
    assert account.balances == [0, 0, 0, 0]
    assert account.locked == [0, 0, 0, 0]
    assert account.orders_open == {}
    assert sorted(h.state.accounts) == [
        LENDING_POOL_ACCOUNT_ID,
        INSURANCE_ACCOUNT_ID,
        CLEARING_ACCOUNT_ID,
        FEE_ACCOUNT_ID,
        EXTERNAL_ACCOUNT_ID,
        1,
        2,
    ]
    assert h.audit() == []


def test_credit_posts_a_deposit_entry(h: Harness) -> None:
    """A credit moves value from the external account to the user in one balanced DEPOSIT entry referencing the seq."""
    a = h.new_account()
    usdc = h.asset("USDC")
    seq = h.state.seq_last + 1
    events = h.submit(Credit, account_id=a, asset_id=usdc, amount_atomic=2_500_000)
    assert events == [
        LedgerPosted(
            1,  # the first ledger entry of this exchange
            int(EntryReason.DEPOSIT),
            seq,
            ((EXTERNAL_ACCOUNT_ID, usdc, -2_500_000), (a, usdc, 2_500_000)),
        )
    ]
    h.ok(Credit, account_id=a, asset_id=usdc, amount_atomic=500_000)
    # 2_500_000 + 500_000
    assert h.balance(a, "USDC") == 3_000_000
    assert h.available(a, "USDC") == 3_000_000
    assert h.balance(EXTERNAL_ACCOUNT_ID, "USDC") == -3_000_000
    assert h.state.entry_id_next == 3
    assert h.audit() == []


def test_credit_up_to_the_largest_amount(h: Harness) -> None:
    """A balance may reach limits.amount_atomic_max but a credit beyond it is VALUE_TOO_LARGE."""
    a = h.new_account(SOL=limits.amount_atomic_max - 1)
    reject(
        h,
        Credit,
        RejectCode.VALUE_TOO_LARGE,
        "would exceed the largest amount",
        account_id=a,
        asset_id=h.asset("SOL"),
        amount_atomic=2,
    )
    h.ok(Credit, account_id=a, asset_id=h.asset("SOL"), amount_atomic=1)
    assert h.balance(a, "SOL") == limits.amount_atomic_max
    assert h.audit() == []


@pytest.mark.parametrize("account_id", [0, 2, 99, EXTERNAL_ACCOUNT_ID, FEE_ACCOUNT_ID])
def test_credit_unknown_or_system_account_rejected(h: Harness, account_id: int) -> None:
    """Only existing user accounts can be credited; system accounts and unknown ids are UNKNOWN_ACCOUNT."""
    h.new_account()
    reject(
        h,
        Credit,
        RejectCode.UNKNOWN_ACCOUNT,
        f"account {account_id} does not exist",
        account_id=account_id,
        asset_id=0,
        amount_atomic=1,
    )
    assert h.audit() == []


@pytest.mark.parametrize("asset_id", [-1, 4, 256])
def test_credit_unknown_asset_rejected(h: Harness, asset_id: int) -> None:
    """Crediting an asset that was never listed is UNKNOWN_ASSET."""
    a = h.new_account()
    reject(
        h,
        Credit,
        RejectCode.UNKNOWN_ASSET,
        f"asset {asset_id} does not exist",
        account_id=a,
        asset_id=asset_id,
        amount_atomic=1,
    )
    assert h.audit() == []


@pytest.mark.parametrize("amount", [0, -1, -1_000_000])
def test_credit_non_positive_amount_rejected(h: Harness, amount: int) -> None:
    """A credit of zero or a negative amount is AMOUNT_NOT_POSITIVE (a debit is not a credit)."""
    a = h.new_account(USDC=10)
    reject(
        h,
        Credit,
        RejectCode.AMOUNT_NOT_POSITIVE,
        "a credit must be a positive amount",
        account_id=a,
        asset_id=h.asset("USDC"),
        amount_atomic=amount,
    )
    assert h.audit() == []


def test_account_limit_refuses_one_more_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """CreateAccount beyond limits.accounts_max is refused with ACCOUNT_LIMIT and changes nothing."""
    monkeypatch.setattr("keel.core.limits.accounts_max", 2)
    h = Harness()
    h.list_defaults()
    assert h.new_account() == 1
    assert h.new_account() == 2
    reject(h, CreateAccount, RejectCode.ACCOUNT_LIMIT, "at most 2 accounts")
    assert h.audit() == []
