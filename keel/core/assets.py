"""Assets: a symbol and a number of decimals; balances are integers of atomic units.

An asset is listed once by a logged `ListAsset` command and never changes. Its id is
its position in the listing order, so ids are dense small integers used as list
indexes in account balances.

Imports: msgspec.
"""

from __future__ import annotations

import msgspec


class Asset(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A listed asset. `decimals` fixes the atomic unit: 1 unit = 10**-decimals."""

    asset_id: int
    symbol: str
    decimals: int
    collateral_weight_bps: int = 10_000  # haircut: collateral value = value x weight / 10,000
