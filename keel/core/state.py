"""All exchange state, in one object the engine owns.

Counters give ids (DESIGN.md: ids derive from the sequence of commands, never from a
clock or randomness). `seq_last` and `timestamp_ns_last` are the engine's position in
the command log.

The dirty lists name every account, open order and book level changed since the state
hash was last brought up to date (canonical.StateHasher); the hot path appends to them
(cheap; duplicates allowed) and the hasher drains them at a checkpoint.

Imports: assets, markets, book, accounts, orders.
"""

from __future__ import annotations

from keel.core.accounts import SYSTEM_ACCOUNT_IDS, Account
from keel.core.assets import Asset
from keel.core.book import Book, Level
from keel.core.markets import Maintenance, Market
from keel.core.orders import Order
from keel.core.positions import Position
from keel.core.transfer_records import Deposit, Withdrawal
from keel.core.trigger_records import Trigger


class ExchangeState:
    __slots__ = (
        "account_id_next",
        "accounts",
        "asset_ids_by_symbol",
        "assets",
        "books",
        "cert_bucket_of",
        "cert_buckets",
        "cert_trusted",
        "deposit_keys",
        "deposits",
        "dirty_accounts",
        "dirty_levels",
        "dirty_orders",
        "dirty_swept",
        "dirty_transfers",
        "entry_id_next",
        "index_prices",
        "index_updated_ns",
        "interest_next_ns",
        "lending_accounts",
        "maintenances",
        "margin_asset_id",
        "mark_drift",
        "market_ids_by_symbol",
        "markets",
        "order_id_next",
        "orders",
        "position_holders",
        "positions_by_market",
        "seq_last",
        "timestamp_ns_last",
        "trade_id_next",
        "triggers",
        "uncertified",
        "withdrawals",
        "withdrawals_by_account",
        "withdrawals_frozen",
        "withdrawals_frozen_reason",
    )

    def __init__(self) -> None:
        self.assets: list[Asset] = []
        self.asset_ids_by_symbol: dict[str, int] = {}
        self.markets: list[Market] = []
        self.market_ids_by_symbol: dict[str, int] = {}
        self.books: list[Book] = []
        self.accounts: dict[int, Account] = {account_id: Account(account_id, 0) for account_id in SYSTEM_ACCOUNT_IDS}
        self.orders: dict[int, Order] = {}  # open orders by id
        self.index_prices: list[int] = []  # per asset: quote atomic units per whole unit; 0: none
        self.index_updated_ns: list[int] = []  # per asset: when its index price was last set
        self.maintenances: list[Maintenance] = []  # schedules by id - 1 (market_states.py)
        self.deposits: dict[int, Deposit] = {}  # every deposit ever reported, by id (transfers.py)
        self.deposit_keys: dict[tuple[str, str, int], int] = {}  # (chain, tx, output) -> deposit id
        self.withdrawals: dict[int, Withdrawal] = {}  # every withdrawal ever requested, by id
        self.withdrawals_by_account: dict[int, list[int]] = {}
        self.withdrawals_frozen = False
        self.withdrawals_frozen_reason = ""
        self.dirty_transfers: list[Deposit | Withdrawal] = []
        self.lending_accounts: dict[int, None] = {}  # accounts that ever lent or borrowed (lending.py)
        self.triggers: dict[int, Trigger] = {}  # pending trigger orders by order id (triggers.py)
        self.interest_next_ns = 0  # the next hourly interest accrual; 0: set at the first Tick
        self.positions_by_market: list[dict[int, Position]] = []  # per market: account id -> position
        # Accounts holding any position record (derived from positions_by_market, kept by
        # perps.position_for and position_changed, rebuilt on restore; not hashed): what an
        # index update's scan and the deleveraging ranking visit, instead of every account.
        self.position_holders: dict[int, None] = {}
        # Derived, not state (perps.refresh_marks): how far, at most, any mark has moved in
        # log terms since genesis or the restore, in 1e-9 units; never hashed.
        self.mark_drift = 0
        self.margin_asset_id = -1  # the quote asset of every perpetual; -1 until one is listed
        self.account_id_next = 1
        self.order_id_next = 1
        self.trade_id_next = 1
        self.entry_id_next = 1
        self.seq_last = 0
        self.timestamp_ns_last = 0
        self.dirty_accounts: list[Account] = list(self.accounts.values())
        self.dirty_orders: list[Order] = []
        self.dirty_levels: list[Level] = []
        # Derived, not state (certificates.py): accounts whose coverage the liquidation scan
        # must examine after an index update or a Tick; the certified, filed by when their
        # certificates lapse (bucket -> account ids, account id -> its bucket); whether the
        # certificates may be trusted (False: reset first); how many entries of
        # dirty_accounts are swept.
        self.uncertified: dict[int, None] = {}
        self.cert_buckets: dict[int, list[int]] = {}
        self.cert_bucket_of: dict[int, int] = {}
        self.cert_trusted = False
        self.dirty_swept = 0
