"""A test and demo harness around the engine: numbering, default markets, funding.

`Harness` stamps commands with consecutive sequence numbers and a manual clock, keeps a
`LedgerTotals` from every event so balances can be checked against ledger sums, and
lists a small default exchange. Only tests, benchmarks and demos import this package.
"""

from __future__ import annotations

from typing import Any

from keel.core import canonical
from keel.core.accounts import Account
from keel.core.commands import (
    BorrowLend,
    CancelOrder,
    Command,
    CreateAccount,
    Credit,
    ListAsset,
    ListMarket,
    PlaceOrder,
    SetIndexPrices,
    Tick,
)
from keel.core.engine import Engine
from keel.core.errors import RejectCode
from keel.core.events import AccountCreated, CommandRejected, Event
from keel.core.invariants import audit
from keel.core.ledger import LedgerTotals
from keel.core.lending_pool import BorrowLendSide

# (symbol, decimals)
DEFAULT_ASSETS = (("USDC", 6), ("SOL", 9), ("BTC", 8), ("ETH", 8))
# symbol, base, quote, tick (quote atomic), step (base atomic), min steps, min notional (quote atomic)
DEFAULT_MARKETS = (
    ("SOL_USDC", "SOL", "USDC", 10_000, 10_000_000, 1, 1_000_000),  # tick 0.01, step 0.01 SOL, min 1 USDC
    ("BTC_USDC", "BTC", "USDC", 100_000, 1_000, 1, 1_000_000),  # tick 0.1, step 0.00001 BTC
    ("ETH_USDC", "ETH", "USDC", 10_000, 10_000, 1, 1_000_000),  # tick 0.01, step 0.0001 ETH
)
_USDC = 1_000_000  # atomic units per whole unit, as listed by list_margin_defaults
_SOL = 1_000_000_000
FEE_MAKER_BPS = 2
FEE_TAKER_BPS = 5


StateImage = dict[str, dict[bytes, bytes]]


def state_except_position(state: Any) -> StateImage:
    """Return the canonical encoding of every state section except the log position
    (which a refused command still advances): what "state unchanged" compares."""
    return {section: canonical.entity_map(state, section) for section in canonical.SECTIONS if section != "position"}


class Harness:
    """An engine plus a clock: `submit(Cls, **fields)` applies a sequenced command."""

    def __init__(self, *, timestamp_step_ns: int = 1_000_000) -> None:
        self.engine = Engine()
        self.ledger = LedgerTotals()
        self.timestamp_step_ns = timestamp_step_ns
        self.log: list[Command] = []  # every command applied, in order
        self.events: list[list[Event]] = []  # the events of each command

    @property
    def state(self) -> Any:
        return self.engine.state

    def next_stamp(self) -> dict[str, int]:
        seq = self.engine.state.seq_last + 1
        return {"seq": seq, "timestamp_ns": seq * self.timestamp_step_ns}

    def submit(self, command_type: type, **fields: Any) -> list[Event]:
        """Build a command with the next seq and timestamp, apply it, return its events."""
        command = command_type(**self.next_stamp(), **fields)
        return self.apply(command)

    def apply(self, command: Command) -> list[Event]:
        events = self.engine.apply(command)
        self.ledger.add(events)
        self.log.append(command)
        self.events.append(events)
        return events

    def list_defaults(self, *, fee_maker_bps: int = FEE_MAKER_BPS, fee_taker_bps: int = FEE_TAKER_BPS) -> None:
        """List DEFAULT_ASSETS and DEFAULT_MARKETS with the given fees."""
        for symbol, decimals in DEFAULT_ASSETS:
            self.ok(ListAsset, symbol=symbol, decimals=decimals)
        ids = self.state.asset_ids_by_symbol
        for symbol, base, quote, tick, step, min_steps, min_notional in DEFAULT_MARKETS:
            self.ok(
                ListMarket,
                symbol=symbol,
                base_asset_id=ids[base],
                quote_asset_id=ids[quote],
                tick_atomic=tick,
                step_atomic=step,
                quantity_min_steps=min_steps,
                quantity_max_steps=0,
                notional_min_atomic=min_notional,
                fee_maker_bps=fee_maker_bps,
                fee_taker_bps=fee_taker_bps,
            )

    def ok(self, command_type: type, **fields: Any) -> list[Event]:
        """Submit and assert the command was not rejected."""
        events = self.submit(command_type, **fields)
        rejected = [event for event in events if isinstance(event, CommandRejected)]
        assert not rejected, rejected
        return events

    def reject(self, command_type: type, code: RejectCode, phrase: str, **fields: Any) -> CommandRejected:
        """Submit a command that must be refused: check its code and message, and that
        only the log position moved."""
        before = state_except_position(self.state)
        events = self.submit(command_type, **fields)
        assert len(events) == 1, events
        (event,) = events
        assert isinstance(event, CommandRejected), event
        assert RejectCode(event.code) is code, event
        assert event.item == -1
        assert phrase in event.message, event.message
        assert state_except_position(self.state) == before
        return event

    def sol_market_fields(self, symbol: str, **overrides: Any) -> dict[str, Any]:
        """Return valid ListMarket fields for a SOL/USDC market on SOL_USDC's grid and fees
        (tick 0.01 USDC, step 0.01 SOL, min notional 1 USDC, fees 2/5 bps), with overrides."""
        fields: dict[str, Any] = {
            "symbol": symbol,
            "base_asset_id": self.asset("SOL"),
            "quote_asset_id": self.asset("USDC"),
            "tick_atomic": 10_000,
            "step_atomic": 10_000_000,
            "quantity_min_steps": 1,
            "quantity_max_steps": 0,
            "notional_min_atomic": 1_000_000,
            "fee_maker_bps": FEE_MAKER_BPS,
            "fee_taker_bps": FEE_TAKER_BPS,
        }
        fields.update(overrides)
        return fields

    def list_perp(self, symbol: str = "SOL_USDC_PERP", **overrides: Any) -> int:
        """List a SOL perpetual on SOL_USDC's grid (lot 100 atomic: 0.0001 USDC per tick x step)
        with Backpack-like margin functions, hourly funding capped at 100 bps; return its id."""
        fields = self.sol_market_fields(
            symbol,
            kind=1,
            imf_base_e9=20_000_000,  # 2%
            imf_factor_e9=127_500,
            mmf_base_e9=12_500_000,  # 1.25%
            mmf_factor_e9=76_500,
            funding_interval_ns=3_600_000_000_000,
            funding_cap_bps=100,
        )
        fields.update(overrides)
        self.ok(ListMarket, **fields)
        return self.market(symbol)

    def list_margin_defaults(self) -> None:
        """The margin tests' exchange: USDC borrowable (10% initial, 5% maintenance on a
        borrow) at 5% a year at zero utilization, +15% up to 80% utilization, +100% above, a
        10% spread; SOL (collateral weight 90%) at an index of 100; SOL_USDC and
        SOL_USDC_PERP without fees (the perpetual makes USDC the margin asset)."""
        self.ok(
            ListAsset,
            symbol="USDC",
            decimals=6,
            borrow_imf_bps=1_000,
            borrow_mmf_bps=500,
            rate_base_e9=50_000_000,
            rate_slope1_e9=150_000_000,
            rate_slope2_e9=1_000_000_000,
            optimal_utilization_bps=8_000,
            interest_spread_bps=1_000,
        )
        self.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000)
        self.ok(ListMarket, **self.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
        self.list_perp(fee_maker_bps=0, fee_taker_bps=0)
        self.ok(SetIndexPrices, prices=((self.asset("SOL"), 100 * _USDC),))

    def margin_accounts(self) -> list[int]:
        """Six accounts on list_margin_defaults' exchange: 50, 450 and 850 USDC in turn, the
        odd ones with 1 SOL too (the thin ones are liquidated by index moves now and then)."""
        return [
            self.new_account(USDC=(50 + 400 * (n % 3)) * _USDC, **({"SOL": _SOL} if n % 2 else {})) for n in range(6)
        ]

    def submit_margin_action(self, accounts: list[int], action: tuple[int, str, int, int, int]) -> list[Event]:
        """Submit one step of a random margin flow on list_margin_defaults' exchange:
        (account index, kind, side, price ticks or index in ticks, steps or whole USDC).
        Kinds: "perp" and "spot" limit orders ("auto" a spot one with automatic borrowing
        and lending flags from the steps), "market" a perpetual market order, "lend",
        "borrow", "index", "tick", "deposit", and "cancel" (the account's oldest open
        order; no command when it has none). Ticks and deposits must not be refused."""
        who, kind, side, number, amount = action
        account = accounts[who]
        if kind in ("perp", "spot", "auto", "market"):
            fields = {"order_type": 1} if kind == "market" else {"order_type": 0, "price_ticks": number}
            return self.submit(
                PlaceOrder,
                account_id=account,
                market_id=self.market("SOL_USDC" if kind in ("spot", "auto") else "SOL_USDC_PERP"),
                side=side,
                quantity_steps=amount,
                self_trade_prevention=3,
                auto_margin=amount % 16 if kind == "auto" else 0,
                **fields,
            )
        if kind in ("lend", "borrow"):
            side_code = BorrowLendSide.LEND if kind == "lend" else BorrowLendSide.BORROW
            return self.submit(
                BorrowLend, account_id=account, asset_id=0, side=int(side_code), amount_atomic=amount * _USDC
            )
        if kind == "index":
            return self.submit(SetIndexPrices, prices=((self.asset("SOL"), number * 10_000),))
        if kind == "tick":
            return self.ok(Tick)
        if kind == "deposit":
            return self.ok(Credit, account_id=account, asset_id=0, amount_atomic=amount * _USDC)
        assert kind == "cancel", kind
        open_ids = sorted(self.account(account).orders_open)
        if not open_ids:
            return []
        order = self.account(account).orders_open[open_ids[0]]
        return self.submit(CancelOrder, account_id=account, market_id=order.market_id, order_id=order.order_id)

    def new_account(self, **deposits: int) -> int:
        """Open an account and credit it: new_account(USDC=1_000_000_000, SOL=...)."""
        events = self.ok(CreateAccount)
        account_id = next(event.account_id for event in events if isinstance(event, AccountCreated))
        for symbol, amount in deposits.items():
            self.ok(Credit, account_id=account_id, asset_id=self.asset(symbol), amount_atomic=amount)
        return account_id

    def asset(self, symbol: str) -> int:
        asset_id: int = self.state.asset_ids_by_symbol[symbol]
        return asset_id

    def market(self, symbol: str) -> int:
        market_id: int = self.state.market_ids_by_symbol[symbol]
        return market_id

    def account(self, account_id: int) -> Account:
        account: Account = self.state.accounts[account_id]
        return account

    def balance(self, account_id: int, symbol: str) -> int:
        return self.account(account_id).balances[self.asset(symbol)]

    def locked(self, account_id: int, symbol: str) -> int:
        return self.account(account_id).locked[self.asset(symbol)]

    def available(self, account_id: int, symbol: str) -> int:
        return self.account(account_id).available(self.asset(symbol))

    def audit(self) -> list[str]:
        """Return every invariant violation, balances checked against the ledger sums."""
        return audit(self.engine.state, self.ledger)
