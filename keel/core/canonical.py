"""Canonical encoding and the state hash.

Every entity of the state has a canonical encoding (msgpack of plain integers, strings
and tuples, in a fixed field order) under a key. A section's hash is the sum modulo
2**256 of SHA-256(section, key, encoding) over its entities: an additive multiset hash,
so it does not depend on dict insertion history, and it can be kept up to date by
subtracting an entity's old digest and adding its new one (DESIGN.md, "State hash,
cheaply"). The state hash is SHA-256 over the section hashes in a fixed order, so a
mismatch can be narrowed to a section and then to the entities of that section.

Sections: position (seq, timestamp), counters, assets, markets (grid, fees, state, last
price), accounts (balances and locks), orders (every open order, all fields), levels
(per market, side and price: the ids of its live orders in time priority).

Imports: hashlib, msgspec, state, book.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import msgspec

from keel.core.state import ExchangeState

SECTIONS = ("position", "counters", "assets", "markets", "accounts", "orders", "levels")
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
                )
            ),
        )
    elif section == "assets":
        for asset in state.assets:
            yield _encode(asset.asset_id), _encode(asset)
    elif section == "markets":
        for market in state.markets:
            yield _encode(market.market_id), _encode(market)
    elif section == "accounts":
        for account_id, account in state.accounts.items():
            yield _encode(account_id), _encode((account.balances, account.locked))
    elif section == "orders":
        for order_id, order in state.orders.items():
            yield _encode(order_id), _encode(order)
    elif section == "levels":
        for market_id, book in enumerate(state.books):
            for side, levels in ((0, book.bids), (1, book.asks)):
                for price, level in levels.items():
                    ids = [order.order_id for order in level.orders if order.open_steps > 0]
                    yield _encode((market_id, side, price)), _encode(ids)
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
