"""The full-state image: a canonical encoding of the whole ExchangeState and its inverse.

Snapshots (keel/snapshots) write this image to files; `decode_state(encode_state(s))`
gives a state that hashes the same and behaves the same under every future command.
What is not state is not encoded: a book's heap keeps stale prices and its deques keep
cancelled orders only as lazy-deletion bookkeeping (book.py), so the image holds, per
level, just the live orders in time priority, and the heaps are rebuilt from the levels.
Accounts are sorted by id and orders by id, so equal states give equal bytes.

Imports: msgspec, the core's state modules.
"""

from __future__ import annotations

from heapq import heapify
from typing import Any

import msgspec

from keel.core.accounts import Account
from keel.core.assets import Asset
from keel.core.book import Book
from keel.core.markets import Maintenance, Market
from keel.core.orders import Order
from keel.core.perps import refresh_account_terms
from keel.core.positions import Position
from keel.core.state import ExchangeState
from keel.core.transfer_records import Deposit, Withdrawal
from keel.core.trigger_records import Trigger

IMAGE_VERSION = 2

_encoder = msgspec.msgpack.Encoder()


class _Image(msgspec.Struct, array_like=True):
    version: int
    seq_last: int
    timestamp_ns_last: int
    counters: tuple[int, int, int, int]
    assets: list[Asset]
    markets: list[Market]
    accounts: list[tuple[int, list[int], list[int], list[Position], list[int], list[int]]]
    orders: list[Order]
    # per market: (bid levels, ask levels), each level (price, live order ids in time priority)
    books: list[tuple[list[tuple[int, list[int]]], list[tuple[int, list[int]]]]]
    index_prices: list[int]
    index_updated_ns: list[int]
    margin_asset_id: int
    maintenances: list[Maintenance]
    deposits: list[Deposit]
    withdrawals: list[Withdrawal]
    withdrawals_frozen: tuple[bool, str]
    lending: tuple[list[int], int]  # (accounts that ever lent or borrowed, next interest time)
    triggers: list[Trigger]
    leverage_limits: list[tuple[int, int]] = msgspec.field(default_factory=list)  # (account id, limit) where set


_decoder = msgspec.msgpack.Decoder(_Image)


def encode_state(state: ExchangeState) -> bytes:
    """Return the canonical bytes of the whole state."""
    books: list[Any] = []
    for book in state.books:
        sides = []
        for levels in (book.bids, book.asks):
            sides.append(
                [
                    (price, [order.order_id for order in levels[price].orders if order.open_steps > 0])
                    for price in sorted(levels)
                ]
            )
        books.append(tuple(sides))
    image = _Image(
        version=IMAGE_VERSION,
        seq_last=state.seq_last,
        timestamp_ns_last=state.timestamp_ns_last,
        counters=(state.account_id_next, state.order_id_next, state.trade_id_next, state.entry_id_next),
        assets=state.assets,
        markets=state.markets,
        accounts=[
            (
                account_id,
                state.accounts[account_id].balances,
                state.accounts[account_id].locked,
                [
                    state.accounts[account_id].positions[market_id]
                    for market_id in sorted(state.accounts[account_id].positions)
                ],
                state.accounts[account_id].lent,
                state.accounts[account_id].borrowed,
            )
            for account_id in sorted(state.accounts)
        ],
        orders=[state.orders[order_id] for order_id in sorted(state.orders)],
        books=books,
        index_prices=state.index_prices,
        index_updated_ns=state.index_updated_ns,
        margin_asset_id=state.margin_asset_id,
        maintenances=state.maintenances,
        deposits=list(state.deposits.values()),
        withdrawals=list(state.withdrawals.values()),
        withdrawals_frozen=(state.withdrawals_frozen, state.withdrawals_frozen_reason),
        lending=(list(state.lending_accounts), state.interest_next_ns),
        triggers=[state.triggers[order_id] for order_id in sorted(state.triggers)],
        leverage_limits=[
            (account_id, state.accounts[account_id].leverage_limit)
            for account_id in sorted(state.accounts)
            if state.accounts[account_id].leverage_limit
        ],
    )
    return _encoder.encode(image)


def decode_state(data: bytes) -> ExchangeState:
    """Return the state encoded by `encode_state`; raises ValueError if inconsistent."""
    image = _decoder.decode(data)
    if image.version != IMAGE_VERSION:
        raise ValueError(f"state image version {image.version} is not {IMAGE_VERSION}")
    state = ExchangeState()
    state.seq_last = image.seq_last
    state.timestamp_ns_last = image.timestamp_ns_last
    state.account_id_next, state.order_id_next, state.trade_id_next, state.entry_id_next = image.counters
    state.assets = list(image.assets)
    state.asset_ids_by_symbol = {asset.symbol: asset.asset_id for asset in state.assets}
    state.markets = list(image.markets)
    state.market_ids_by_symbol = {market.symbol: market.market_id for market in state.markets}
    state.index_prices = list(image.index_prices)
    state.index_updated_ns = list(image.index_updated_ns)
    state.maintenances = list(image.maintenances)
    state.withdrawals_frozen, state.withdrawals_frozen_reason = image.withdrawals_frozen
    lending_accounts, state.interest_next_ns = image.lending
    state.lending_accounts = dict.fromkeys(lending_accounts)
    state.triggers = {trigger.order_id: trigger for trigger in image.triggers}
    for deposit in image.deposits:
        state.deposits[deposit.deposit_id] = deposit
        state.deposit_keys[(deposit.chain, deposit.tx_id, deposit.output_index)] = deposit.deposit_id
    for withdrawal in image.withdrawals:
        state.withdrawals[withdrawal.withdrawal_id] = withdrawal
        state.withdrawals_by_account.setdefault(withdrawal.account_id, []).append(withdrawal.withdrawal_id)
    state.margin_asset_id = image.margin_asset_id
    state.positions_by_market = [{} for _ in state.markets]
    state.accounts = {}
    for account_id, balances, locked, positions, lent, borrowed in image.accounts:
        account = Account(account_id, 0)
        account.balances = list(balances)
        account.locked = list(locked)
        account.lent = list(lent)
        account.borrowed = list(borrowed)
        for position in positions:
            if position.account_id != account_id:
                raise ValueError(f"a position of account {position.account_id} is filed under {account_id}")
            account.positions[position.market_id] = position
            state.positions_by_market[position.market_id][account_id] = position
        state.accounts[account_id] = account
    for account_id, limit in image.leverage_limits:
        if account_id not in state.accounts:
            raise ValueError(f"a leverage limit is filed for account {account_id}, which does not exist")
        state.accounts[account_id].leverage_limit = limit
    state.orders = {}
    for order in image.orders:
        state.orders[order.order_id] = order
        account = state.accounts[order.account_id]
        account.orders_open[order.order_id] = order
        if order.client_id != -1:
            account.client_orders[order.client_id] = order
    state.books = []
    for market_id, (bid_levels, ask_levels) in enumerate(image.books):
        book = Book(market_id)
        for side, side_levels in ((0, bid_levels), (1, ask_levels)):
            for price, order_ids in side_levels:
                level = book.add_level(side, price)
                for order_id in order_ids:
                    order = state.orders[order_id]
                    if order.price_ticks != price or order.side != side or order.market_id != market_id:
                        raise ValueError(f"order {order_id} is listed at the wrong level")
                    level.orders.append(order)
                    level.open_steps += order.open_steps
                    level.live += 1
        heapify(book.bid_heap)
        heapify(book.ask_heap)
        state.books.append(book)
    if len(state.books) != len(state.markets):
        raise ValueError("state image has a book count that differs from its market count")
    state.position_holders = {}
    for account_id, account in state.accounts.items():
        if account.positions:
            state.position_holders[account_id] = None  # derived, like the margin terms (perps.py)
            refresh_account_terms(state, account)  # derived margin terms (perps.py), not in the image
    state.dirty_accounts = []
    state.dirty_orders = []
    state.dirty_levels = []
    state.dirty_transfers = []
    return state
