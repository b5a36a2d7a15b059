"""A test and demo harness around the engine: numbering, default markets, funding.

`Harness` stamps commands with consecutive sequence numbers and a manual clock, keeps a
`LedgerTotals` from every event so balances can be checked against ledger sums, and
lists a small default exchange. Only tests, benchmarks and demos import this package.
"""

from __future__ import annotations

from typing import Any

from keel.core import canonical
from keel.core.accounts import Account
from keel.core.commands import Command, CreateAccount, Credit, ListAsset, ListMarket
from keel.core.engine import Engine
from keel.core.errors import RejectCode
from keel.core.events import AccountCreated, CommandRejected, Event
from keel.core.invariants import audit
from keel.core.ledger import LedgerTotals

# (symbol, decimals)
DEFAULT_ASSETS = (("USDC", 6), ("SOL", 9), ("BTC", 8), ("ETH", 8))
# symbol, base, quote, tick (quote atomic), step (base atomic), min steps, min notional (quote atomic)
DEFAULT_MARKETS = (
    ("SOL_USDC", "SOL", "USDC", 10_000, 10_000_000, 1, 1_000_000),  # tick 0.01, step 0.01 SOL, min 1 USDC
    ("BTC_USDC", "BTC", "USDC", 100_000, 1_000, 1, 1_000_000),  # tick 0.1, step 0.00001 BTC
    ("ETH_USDC", "ETH", "USDC", 10_000, 10_000, 1, 1_000_000),  # tick 0.01, step 0.0001 ETH
)
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
