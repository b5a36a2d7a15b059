"""Canonical encoding and the state hash.

Every entity of the state has a canonical encoding (msgpack of plain integers, strings
and tuples, in a fixed field order) under a key. A section's hash is the sum modulo
2**256 of SHA-256(section, key, encoding) over its entities: an additive multiset hash,
so it does not depend on dict insertion history, and it can be kept up to date by
subtracting an entity's old digest and adding its new one (DESIGN.md, "State hash,
cheaply"). The state hash is SHA-256 over the section hashes in a fixed order, so a
mismatch can be narrowed to a section and then to the entities of that section.

Sections: position (seq, timestamp), counters, assets (and index prices), markets (grid,
fees, state, last price, perpetual prices and funding), accounts (balances, locks and
positions), orders (every open order, all fields), levels
(per market, side and price: live orders, open quantity, first and last order id, and
the queue's ids when it is not in ascending order id — see `level_encoding`).

`StateHasher` keeps the section hashes up to date incrementally: the engine appends
every account, open order and book level it changes to the state's dirty lists, and
`StateHasher.section_hashes` re-hashes just those (subtracting each one's previous
digest, kept on the account or in a per-section cache) plus the small sections (assets,
markets, counters, position) in full. `state_hash` recomputes everything from scratch;
both must always agree (tested), and the full recompute is what `keel verify --full`
uses.

Imports: hashlib, msgspec, state, book, certificates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import msgspec

from keel.core.accounts import Account
from keel.core.book import Level
from keel.core.certificates import before_clear
from keel.core.positions import Position
from keel.core.state import ExchangeState
from keel.core.transfer_records import Deposit

SECTIONS = ("position", "counters", "assets", "markets", "accounts", "orders", "levels", "transfers")
_MODULUS = 1 << 256
_encode = msgspec.msgpack.Encoder().encode


def entity_digest(section: str, key: bytes, encoding: bytes) -> int:
    """Return one entity's contribution to its section hash, as an integer."""
    digest = hashlib.sha256(section.encode() + b"\0" + key + b"\0" + encoding).digest()
    return int.from_bytes(digest, "big")


def iter_entities(state: ExchangeState, section: str) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, canonical encoding) for every entity of a section."""
    if section == "position":
        yield b"", _encode((state.seq_last, state.timestamp_ns_last))
    elif section == "counters":
        yield (
            b"",
            _encode(
                (
                    state.account_id_next,
                    state.order_id_next,
                    state.trade_id_next,
                    state.entry_id_next,
                    state.margin_asset_id,
                    state.withdrawals_frozen,
                    state.withdrawals_frozen_reason,
                    state.interest_next_ns,
                )
            ),
        )
    elif section == "assets":
        for asset in state.assets:
            yield (
                _encode(asset.asset_id),
                _encode((asset, state.index_prices[asset.asset_id], state.index_updated_ns[asset.asset_id])),
            )
    elif section == "markets":
        for market in state.markets:
            yield _encode(market.market_id), _encode(market)
        for schedule in state.maintenances:
            yield _encode(("maintenance", schedule.schedule_id)), _encode(schedule)
        for order_id, trigger in state.triggers.items():
            yield _encode(("trigger", order_id)), _encode(trigger)
    elif section == "accounts":
        for account_id, account in state.accounts.items():
            yield _encode(account_id), account_encoding(account)
    elif section == "orders":
        for order_id, order in state.orders.items():
            yield _encode(order_id), _encode(order)
    elif section == "levels":
        for market_id, book in enumerate(state.books):
            for side, levels in ((0, book.bids), (1, book.asks)):
                for price, level in levels.items():
                    assert level.key == (market_id, side, price)
                    yield _encode(level.key), level_encoding(level)
    elif section == "transfers":
        for deposit_id, deposit in state.deposits.items():
            yield _encode(("d", deposit_id)), _encode(deposit)
        for withdrawal_id, withdrawal in state.withdrawals.items():
            yield _encode(("w", withdrawal_id)), _encode(withdrawal)
    else:
        raise ValueError(f"unknown section {section!r}")


def section_hash(state: ExchangeState, section: str) -> int:
    """Return a section's multiset hash, recomputed from every entity."""
    total = 0
    for key, encoding in iter_entities(state, section):
        total += entity_digest(section, key, encoding)
    return total % _MODULUS


def section_hashes(state: ExchangeState) -> dict[str, bytes]:
    """Return every section's hash as 32 bytes, recomputed in full."""
    return {section: section_hash(state, section).to_bytes(32, "big") for section in SECTIONS}


def combine(hashes: dict[str, bytes]) -> bytes:
    """Return the state hash from the section hashes."""
    hasher = hashlib.sha256(b"keel-state-v1")
    for section in SECTIONS:
        hasher.update(section.encode() + b"\0" + hashes[section])
    return hasher.digest()


def state_hash(state: ExchangeState) -> bytes:
    """Return the state hash, recomputed in full from the canonical encoding."""
    return combine(section_hashes(state))


def entity_map(state: ExchangeState, section: str) -> dict[bytes, bytes]:
    """Return key -> encoding for a section, for naming exactly which entities differ."""
    return dict(iter_entities(state, section))


_SMALL_SECTIONS = ("position", "counters", "assets", "markets")


class StateHasher:
    """Section hashes kept up to date from the state's dirty lists."""

    __slots__ = ("level_digests", "order_digests", "sums", "transfer_digests")

    def __init__(self, state: ExchangeState) -> None:
        """Hash every entity of `state` once; afterwards only dirty ones are re-hashed."""
        self.sums: dict[str, int] = {}
        self.order_digests: dict[int, int] = {}
        self.level_digests: dict[tuple[int, int, int], int] = {}
        total = 0
        for account_id, account in state.accounts.items():
            account.digest = entity_digest("accounts", _encode(account_id), account_encoding(account))
            total += account.digest
        self.sums["accounts"] = total % _MODULUS
        total = 0
        for order_id, order in state.orders.items():
            digest = self.order_digests[order_id] = entity_digest("orders", _encode(order_id), _encode(order))
            total += digest
        self.sums["orders"] = total % _MODULUS
        total = 0
        for book in state.books:
            for levels in (book.bids, book.asks):
                for level in levels.values():
                    digest = self.level_digests[level.key] = _level_digest(level)
                    total += digest
        self.sums["levels"] = total % _MODULUS
        self.transfer_digests: dict[bytes, int] = {}
        total = 0
        for key, encoding in iter_entities(state, "transfers"):
            digest = self.transfer_digests[key] = entity_digest("transfers", key, encoding)
            total += digest
        self.sums["transfers"] = total % _MODULUS
        state.dirty_transfers.clear()
        before_clear(state)  # certificates.py counts the entries it is about to lose
        state.dirty_accounts.clear()
        state.dirty_orders.clear()
        state.dirty_levels.clear()

    def section_hashes(self, state: ExchangeState) -> dict[str, bytes]:
        """Bring the sums up to date with the dirty entities; return every section's hash."""
        self._drain(state)
        hashes = {section: section_hash(state, section).to_bytes(32, "big") for section in _SMALL_SECTIONS}
        for section in ("accounts", "orders", "levels", "transfers"):
            hashes[section] = self.sums[section].to_bytes(32, "big")
        return hashes

    def refresh(self, state: ExchangeState) -> None:
        """Bring the sums up to date with the dirty entities without combining them."""
        self._drain(state)

    def state_hash(self, state: ExchangeState) -> bytes:
        """Return the state hash, equal to canonical.state_hash(state), at the cost of the dirty entities."""
        return combine(self.section_hashes(state))

    def _drain(self, state: ExchangeState) -> None:
        # The digest formula is entity_digest's, inlined: a checkpoint may re-hash tens of
        # thousands of entities. Duplicates are dropped with dict.fromkeys (insertion
        # order; the sums do not depend on order anyway).
        sha256 = hashlib.sha256
        from_bytes = int.from_bytes
        encode = _encode
        total = self.sums["accounts"]
        prefix = b"accounts\0"
        for account in dict.fromkeys(state.dirty_accounts):
            digest = from_bytes(
                sha256(prefix + encode(account.account_id) + b"\0" + encode(account_fields(account))).digest(),
                "big",
            )
            total += digest - account.digest
            account.digest = digest
        before_clear(state)
        state.dirty_accounts.clear()
        self.sums["accounts"] = total % _MODULUS

        total = self.sums["orders"]
        order_digests = self.order_digests
        orders = state.orders
        prefix = b"orders\0"
        for order_id in dict.fromkeys([order.order_id for order in state.dirty_orders]):
            total -= order_digests.pop(order_id, 0)
            current = orders.get(order_id)
            if current is not None:
                digest = order_digests[order_id] = from_bytes(
                    sha256(prefix + encode(order_id) + b"\0" + encode(current)).digest(), "big"
                )
                total += digest
        state.dirty_orders.clear()
        self.sums["orders"] = total % _MODULUS

        total = self.sums["levels"]
        level_digests = self.level_digests
        for key in dict.fromkeys([level.key for level in state.dirty_levels]):
            total -= level_digests.pop(key, 0)
            market_id, side, price = key
            book = state.books[market_id]
            current_level = (book.bids if side == 0 else book.asks).get(price)
            if current_level is not None:
                digest = level_digests[key] = _level_digest(current_level)
                total += digest
        state.dirty_levels.clear()
        self.sums["levels"] = total % _MODULUS
        if state.dirty_transfers:
            total = self.sums["transfers"]
            transfer_digests = self.transfer_digests
            latest = {
                encode(("d", record.deposit_id) if isinstance(record, Deposit) else ("w", record.withdrawal_id)): record
                for record in state.dirty_transfers
            }
            for record_key, record in latest.items():
                digest = entity_digest("transfers", record_key, encode(record))
                total += digest - transfer_digests.get(record_key, 0)
                transfer_digests[record_key] = digest
            state.dirty_transfers.clear()
            self.sums["transfers"] = total % _MODULUS


def account_encoding(account: Account) -> bytes:
    """Return an account's canonical encoding: balances, locks and (when it has any) its
    position records in market order."""
    return _encode(account_fields(account))


def account_fields(account: Account) -> tuple[object, ...]:
    """Balances and locks; with positions, lends or borrows, those too (in a fixed shape);
    with a leverage limit, that too."""
    if account.leverage_limit:
        return (
            account.balances,
            account.locked,
            _sorted_positions(account),
            account.lent,
            account.borrowed,
            account.leverage_limit,
        )
    if account.positions or any(account.lent) or any(account.borrowed):
        return (account.balances, account.locked, _sorted_positions(account), account.lent, account.borrowed)
    return (account.balances, account.locked)


def _sorted_positions(account: Account) -> list[Position]:
    positions = account.positions
    return [positions[market_id] for market_id in sorted(positions)]


def level_encoding(level: Level) -> bytes:
    """Return a level's canonical encoding: live orders, open quantity, first and last id,
    and, when its queue is not in ascending order id, the queue's ids.

    A level's time priority is its orders' arrival in the book. That is ascending order id
    for every order placed when it was accepted, and each order's price and side are in
    the orders section, so in that case these four numbers pin the level down. A trigger
    order keeps the id it was given when accepted but arrives when it fires, behind orders
    with higher ids that rested before it (invariants.py, "time priority"); then the queue
    is not implied by the ids, and its ids in queue order are encoded too. A level in
    ascending order encodes as it always has."""
    live_ids = [order.order_id for order in level.orders if order.open_steps > 0]
    head = (level.live, level.open_steps, live_ids[0], live_ids[-1])
    if sorted(live_ids) == live_ids:  # linear on an ascending list
        return _encode(head)
    return _encode((*head, live_ids))


def _level_digest(level: Level) -> int:
    return entity_digest("levels", _encode(level.key), level_encoding(level))
