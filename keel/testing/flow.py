"""The shared benchmark order flow: file format, reader, writer and generator.

A port of ../shared/bench/flowfile.py and gen_flow.py (same records, same bytes for the
same seed; a test compares them when ../shared is present), so that `keel bench engine`
needs nothing from outside the package. Format (from flowfile.py):

    header:  magic b"KFLOW01\\0" | u64 seed | u64 count | u64 reserved
    record:  u8 op | u8 side | u16 pad | u32 order_id | u32 price | u32 qty
             | u32 account | u32 mid

op: 1 NEW (GTC limit), 2 MKT (market, IOC), 3 CXL (cancel a live resting order),
4 MOD (replace a live resting order: same id, new price and open qty, back of the
queue, never crossing). side: 0 buy, 1 sell. Prices are ticks, quantities lots.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from keel.testing.reference_book import NaiveEngine

Record = tuple[int, int, int, int, int, int, int]


MAGIC = b"KFLOW01\0"
HEADER = struct.Struct("<8sQQQ")
RECORD = struct.Struct("<BBxxIIIII")

NEW, MKT, CXL, MOD = 1, 2, 3, 4
BUY, SELL = 0, 1
OP_NAMES = {NEW: "new", MKT: "market", CXL: "cancel", MOD: "modify"}


def write_flow(path: str, seed: int, records: list[Record]) -> None:
    pack = RECORD.pack
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, seed, len(records), 0))
        f.write(b"".join(pack(*r) for r in records))


def read_flow(path: str) -> tuple[int, int, memoryview]:
    """Return (seed, count, records) without copying. Iterate with RECORD.iter_unpack."""
    with open(path, "rb") as f:
        blob = f.read()
    magic, seed, count, _ = HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a flow file")
    data = memoryview(blob)[HEADER.size :]
    if len(data) != count * RECORD.size:
        raise ValueError(f"{path}: truncated ({len(data)} bytes for {count} records)")
    return seed, count, data


# The mix and shape of the flow. Changing any of these changes every file.
P_NEW, P_CXL, P_MKT = 0.60, 0.25, 0.10  # the rest (0.05) are replaces
P_CROSS = 0.20  # share of new limits priced through the mid (aggressive)
P_WALK = 0.10  # chance per op that the mid moves one tick
MID0, BAND = 10_000, 400  # the mid reflects inside MID0 +- BAND


def generate(n: int, seed: int) -> tuple[list[Record], dict[str, Any]]:
    eng = NaiveEngine()
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randint
    records: list[tuple[int, int, int, int, int, int, int]] = []
    live: list[int] = []  # candidate ids for cancel/replace; stale ones dropped lazily
    owner: dict[int, int] = {}
    orders = eng.orders
    mid = MID0
    next_id = 1
    mix = {"new": 0, "new_crossing": 0, "market": 0, "cancel": 0, "modify": 0}

    def pick_live() -> int | None:
        while live:
            j = randint(0, len(live) - 1)
            oid = live[j]
            if oid in orders:
                return oid
            live[j] = live[-1]
            live.pop()
        return None

    for _ in range(n):
        if rand() < P_WALK:
            mid += 1 if rand() < 0.5 else -1
            if mid > MID0 + BAND:
                mid = MID0 + BAND - 1
            elif mid < MID0 - BAND:
                mid = MID0 - BAND + 1
        u = rand()
        if u < P_NEW:
            kind = NEW
        elif u < P_NEW + P_CXL:
            kind = CXL
        elif u < P_NEW + P_CXL + P_MKT:
            kind = MKT
        else:
            kind = MOD
        target = None
        if kind == CXL or kind == MOD:
            target = pick_live()
            if target is None:  # nothing resting: make it a new order
                kind = NEW
        if kind == NEW:
            side = BUY if rand() < 0.5 else SELL
            qty = randint(1, 100)
            account = randint(1, 1000)
            if rand() < P_CROSS:
                offset = -randint(0, 8)  # through the mid
                mix["new_crossing"] += 1
            else:
                offset = randint(1, 8) if rand() < 0.6 else randint(1, 120)
            price = mid - offset if side == BUY else mid + offset
            oid = next_id
            next_id += 1
            records.append((NEW, side, oid, price, qty, account, mid))
            eng.new_limit(oid, side, price, qty)
            if oid in orders:
                live.append(oid)
                owner[oid] = account
            mix["new"] += 1
        elif kind == CXL:
            assert target is not None
            order = orders[target]
            records.append((CXL, order[1], target, order[2], 0, owner.pop(target), mid))
            eng.cancel(target)
            mix["cancel"] += 1
        elif kind == MKT:
            side = BUY if rand() < 0.5 else SELL
            qty = randint(1, 100)
            oid = next_id
            next_id += 1
            records.append((MKT, side, oid, 0, qty, randint(1, 1000), mid))
            eng.new_market(oid, side, 0, qty)
            mix["market"] += 1
        else:
            assert target is not None
            _, side, price, _ = orders[target]
            new_price = price + randint(1, 5) * (1 if rand() < 0.5 else -1)
            if side == BUY:
                best_ask = eng.best(SELL)
                if best_ask is not None and new_price >= best_ask:
                    new_price = best_ask - 1
                if new_price == price:
                    new_price = price - 1
            else:
                best_bid = eng.best(BUY)
                if best_bid is not None and new_price <= best_bid:
                    new_price = best_bid + 1
                if new_price == price:
                    new_price = price + 1
            new_price = max(new_price, 1)
            qty = randint(1, 100)
            records.append((MOD, side, target, new_price, qty, owner[target], mid))
            eng.modify(target, side, new_price, qty)
            mix["modify"] += 1
        # owners of orders that traded away are dropped lazily by pick_live; keep the
        # dict small enough by pruning when it is much larger than the book
        if len(owner) > 4 * len(orders) + 1000:
            for oid in [o for o in owner if o not in orders]:
                del owner[oid]
    expected = eng.summary()
    prices = [r[3] for r in records if r[0] in (NEW, MOD)]
    return records, {
        "seed": seed,
        "n": n,
        "mix": mix,
        "params": {
            "P_NEW": P_NEW,
            "P_CXL": P_CXL,
            "P_MKT": P_MKT,
            "P_MOD": round(1 - P_NEW - P_CXL - P_MKT, 2),
            "P_CROSS": P_CROSS,
            "P_WALK": P_WALK,
            "MID0": MID0,
            "BAND": BAND,
        },
        "price_range": [min(prices), max(prices)] if prices else None,
        "expected": expected,
        "expected_by": "naive-python reference engine (price-time, maker price, market = IOC)",
    }
