"""A scripted trading session for the views tests, with every row it must project.

The session runs on a real node (USDC, SOL, BTC, ETH and three spot markets, listed by
genesis seqs 1 to 8) with a manual clock set before each command, so every seq,
timestamp, id and amount below is known. SOL_USDC: tick 0.01 USDC (10,000 atomic), step
0.01 SOL (10,000,000 atomic), so one tick x step is a lot of 100 atomic USDC; fees 2 bps
maker, 5 bps taker, each rounded up per order and role. Accounts: A = 1, B = 2, C = 3.

| seq | time (s) | command | outcome |
|---:|---:|---|---|
| 16 | 120 | A sells 200 @ 100.00 GTC, client 11 | order 1 rests |
| 17 | 121 | A sells 100 @ 101.00 GTC, client 22 | order 2 rests |
| 18 | 150 | B buys 50 @ 100.00 GTC | order 3: trade 1 (50 @ 100.00) with order 1; Filled |
| 19 | 170 | B buys 200 @ 100.00 IOC | order 4: trade 2 (150) fills order 1; 50 expire (IOC) |
| 20 | 3610 | C market buys 30 | order 5: trade 3 (30 @ 101.00) with order 2; Filled |
| 21 | 3620 | C market buys for 20.30 USDC | order 6: trade 4 (20); budget bound reached: Filled, no event |
| 22 | 3670 | C market buys for 10.10 USDC | order 7: trade 5 (9); 1 step unaffordable: Expired (funds) |
| 23 | 3680 | A cancels client id 22 | order 2 Cancelled, 41 steps given up |
| 24 | 3690 | B buys 1000 SOL @ 100.00 | refused (insufficient funds): no order |
| 25 | 3700 | C market sells 50 | order 8: no bids: Expired (no liquidity) |
| 26 | 3710 | B batch: 100 @ 99.00 (client 5), quantity 0, 10 @ 98.00 | orders 9 and 10 rest; item 1 refused |
| 27 | 3720 | B cancels all in SOL_USDC | orders 9 and 10 Cancelled |

Times are seconds after T_BASE, 2023-11-14 22:00:00 UTC (an hour boundary), so trades 1
and 2 fall in the minute and hour starting at T_BASE + 120 s and T_BASE, trades 3 and 4
in the minute and hour starting at T_BASE + 3600 s, trade 5 in the minute at +3660 s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from keel.core.commands import (
    CancelAllOrders,
    CancelOrder,
    Command,
    CreateAccount,
    Credit,
    PlaceOrder,
    PlaceOrders,
    Tick,
)
from keel.core.engine import Engine
from keel.core.orders import EndReason, OrderStatus
from keel.node.config import AssetConfig, Config, MarketConfig
from keel.node.genesis import genesis_commands
from keel.sequencer.sequencer import Outcome, Sequencer
from keel.testing.clock import ManualClock
from keel.views import Item

NS = 1_000_000_000
T_BASE = 1_699_999_200 * NS  # 2023-11-14 22:00:00 UTC
DAY_START = 1_699_920_000 * NS  # 2023-11-14 00:00:00 UTC
NEVER = 10**9
A, B, C = 1, 2, 3
SOL_USDC = 0
USDC, SOL = 0, 1
GENESIS_LAST_SEQ = 8
LAST_SEQ = 27
NEW, PF, FILLED, CANCELLED, EXPIRED = (int(status) for status in OrderStatus)
USER_CANCEL = int(EndReason.USER_CANCEL)
IOC_END = int(EndReason.IMMEDIATE_OR_CANCEL)
FUNDS_END = int(EndReason.INSUFFICIENT_FUNDS)
NO_LIQUIDITY_END = int(EndReason.NO_LIQUIDITY)


def t(seconds: int) -> int:
    """Return the timestamp `seconds` after T_BASE."""
    return T_BASE + seconds * NS


# The session's exchange, stated here rather than taken from keel.toml's defaults (which
# grow as markets are added): genesis is 4 ListAsset, 3 ListMarket and a Checkpoint.
SESSION_ASSETS = (AssetConfig("USDC", 6), AssetConfig("SOL", 9), AssetConfig("BTC", 8), AssetConfig("ETH", 8))
SESSION_MARKETS = (
    MarketConfig("SOL_USDC", "SOL", "USDC", "0.01", "0.01", "0.01", "1", 2, 5),
    MarketConfig("BTC_USDC", "BTC", "USDC", "0.1", "0.00001", "0.00001", "1", 2, 5),
    MarketConfig("ETH_USDC", "ETH", "USDC", "0.01", "0.0001", "0.0001", "1", 2, 5),
)


def session_config(log: dict[str, str], **settings: Any) -> Config:
    """Return the node configuration the session runs under: no Ticks, no checkpoints of its
    own, the history store on the log's backend."""
    options: dict[str, Any] = {
        "tick_interval_ms": NEVER,
        "checkpoint_every": NEVER,
        "snapshot_every": NEVER,
        "writer": "thread",
        "views_backend": log["backend"],
        "assets": SESSION_ASSETS,
        "markets": SESSION_MARKETS,
    }
    options.update(settings)
    return Config(backend=log["backend"], dsn=log["dsn"], schema=log["schema"], **options)


def _order(account_id: int, side: int, **fields: Any) -> PlaceOrder:
    return PlaceOrder(seq=0, timestamp_ns=0, account_id=account_id, market_id=SOL_USDC, side=side, **fields)


def _limit(account_id: int, side: int, price_ticks: int, quantity_steps: int, **fields: Any) -> PlaceOrder:
    return _order(account_id, side, order_type=0, price_ticks=price_ticks, quantity_steps=quantity_steps, **fields)


def _credit(account_id: int, asset_id: int, amount_atomic: int) -> Credit:
    return Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=amount_atomic)


# (seq, seconds after T_BASE, command)
SCRIPT: list[tuple[int, int, Command]] = [
    (9, 60, CreateAccount(seq=0, timestamp_ns=0)),
    (10, 61, _credit(A, USDC, 10_000_000_000)),
    (11, 62, _credit(A, SOL, 100_000_000_000)),
    (12, 63, CreateAccount(seq=0, timestamp_ns=0)),
    (13, 64, _credit(B, USDC, 10_000_000_000)),
    (14, 65, CreateAccount(seq=0, timestamp_ns=0)),
    (15, 66, _credit(C, USDC, 10_000_000_000)),
    (16, 120, _limit(A, 1, 10_000, 200, client_id=11)),
    (17, 121, _limit(A, 1, 10_100, 100, client_id=22)),
    (18, 150, _limit(B, 0, 10_000, 50)),
    (19, 170, _limit(B, 0, 10_000, 200, time_in_force=1)),
    (20, 3_610, _order(C, 0, order_type=1, quantity_steps=30)),
    (21, 3_620, _order(C, 0, order_type=1, quote_quantity_atomic=20_300_000)),
    (22, 3_670, _order(C, 0, order_type=1, quote_quantity_atomic=10_100_000)),
    (23, 3_680, CancelOrder(seq=0, timestamp_ns=0, account_id=A, market_id=SOL_USDC, client_id=22)),
    (24, 3_690, _limit(B, 0, 10_000, 100_000)),
    (25, 3_700, _order(C, 1, order_type=1, quantity_steps=50)),
    (
        26,
        3_710,
        PlaceOrders(
            seq=0,
            timestamp_ns=0,
            account_id=B,
            orders=(_limit(B, 0, 9_900, 100, client_id=5), _limit(B, 0, 9_800, 0), _limit(B, 0, 9_800, 10)),
        ),
    ),
    (27, 3_720, CancelAllOrders(seq=0, timestamp_ns=0, account_id=B, market_id=SOL_USDC)),
]
REJECTED_SEQS = (24,)


def run_script(
    sequencer: Sequencer, clock: ManualClock, seqs: Callable[[int], bool] = lambda seq: True
) -> list[Outcome]:
    """Submit the script's commands whose seq `seqs` selects, each at its time; check their seqs."""
    outcomes = []
    for seq, seconds, command in SCRIPT:
        if not seqs(seq):
            continue
        clock.set_ns(t(seconds))
        outcome = sequencer.call(command)
        assert outcome.seq == seq, (outcome.seq, seq)
        assert outcome.timestamp_ns == t(seconds)
        outcomes.append(outcome)
    return outcomes


def session_items() -> list[Item]:
    """Return the session as (seq, timestamp_ns, command, events) items without a node: the
    same engine applies the genesis listings at T_BASE, a Tick where the node's genesis
    has its checkpoint (seq 8; neither projects anything), then the script."""
    engine = Engine()
    stamped: list[Command] = [
        msgspec.structs.replace(command, seq=seq, timestamp_ns=T_BASE)
        for seq, command in enumerate(genesis_commands(Config(assets=SESSION_ASSETS, markets=SESSION_MARKETS)), start=1)
    ]
    stamped.append(Tick(seq=GENESIS_LAST_SEQ, timestamp_ns=T_BASE))
    stamped += [msgspec.structs.replace(command, seq=seq, timestamp_ns=t(seconds)) for seq, seconds, command in SCRIPT]
    return [(command.seq, command.timestamp_ns, command, engine.apply(command)) for command in stamped]


# ---- the rows the session must project ------------------------------------------------
ASSETS = [
    (0, "USDC", 6, 1, T_BASE),
    (1, "SOL", 9, 2, T_BASE),
    (2, "BTC", 8, 3, T_BASE),
    (3, "ETH", 8, 4, T_BASE),
]
# lot = tick x step / 10^base decimals: SOL 10,000 x 10^7 / 10^9 = 100; BTC 10^5 x 10^3 / 10^8 = 1; ETH 1
MARKETS = [
    (0, "SOL_USDC", 1, 0, 10_000, 10_000_000, 100, 0, 5, T_BASE),
    (1, "BTC_USDC", 2, 0, 100_000, 1_000, 1, 0, 6, T_BASE),
    (2, "ETH_USDC", 3, 0, 10_000, 10_000, 1, 0, 7, T_BASE),
]
ACCOUNTS = [(A, 9, t(60)), (B, 12, t(63)), (C, 14, t(65))]

# Each trade: quote = price x quantity x 100; taker fee = ceil(5 bps of the taker order's
# notional so far) minus what it already paid; maker fee likewise at 2 bps.
#   trade 1: 50 @ 10,000 = 50,000,000; taker 25,000; maker (order 1) 10,000
#   trade 2: 150 @ 10,000 = 150,000,000; taker 75,000; maker ceil(40,000) - 10,000 = 30,000
#   trade 3: 30 @ 10,100 = 30,300,000; taker 15,150; maker (order 2) 6,060
#   trade 4: 20 @ 10,100 = 20,200,000; taker 10,100; maker ceil(10,100) - 6,060 = 4,040
#     (order 6: 20.30 USDC buys at most 20,300,000 // 1,010,000 = 20 steps; they cost 20,210,100)
#   trade 5: 9 @ 10,100 = 9,090,000; taker 4,545; maker ceil(11,918) - 10,100 = 1,818
#     (order 7: 10.10 USDC; 10 steps would cost 10,105,050, 9 cost 9,094,545; the 1,005,455
#     left cannot pay for one more step at 1,010,505)
TRADES = [
    (1, 0, 10_000, 50, 50_000_000, 0, 3, 1, 18, t(150)),
    (2, 0, 10_000, 150, 150_000_000, 0, 4, 1, 19, t(170)),
    (3, 0, 10_100, 30, 30_300_000, 0, 5, 2, 20, t(3_610)),
    (4, 0, 10_100, 20, 20_200_000, 0, 6, 2, 21, t(3_620)),
    (5, 0, 10_100, 9, 9_090_000, 0, 7, 2, 22, t(3_670)),
]
FILLS = [
    (1, 0, 3, B, 0, 0, 10_000, 50, 50_000_000, 25_000, USDC, -1, 18, t(150)),
    (1, 1, 1, A, 0, 1, 10_000, 50, 50_000_000, 10_000, USDC, 11, 18, t(150)),
    (2, 0, 4, B, 0, 0, 10_000, 150, 150_000_000, 75_000, USDC, -1, 19, t(170)),
    (2, 1, 1, A, 0, 1, 10_000, 150, 150_000_000, 30_000, USDC, 11, 19, t(170)),
    (3, 0, 5, C, 0, 0, 10_100, 30, 30_300_000, 15_150, USDC, -1, 20, t(3_610)),
    (3, 1, 2, A, 0, 1, 10_100, 30, 30_300_000, 6_060, USDC, 22, 20, t(3_610)),
    (4, 0, 6, C, 0, 0, 10_100, 20, 20_200_000, 10_100, USDC, -1, 21, t(3_620)),
    (4, 1, 2, A, 0, 1, 10_100, 20, 20_200_000, 4_040, USDC, 22, 21, t(3_620)),
    (5, 0, 7, C, 0, 0, 10_100, 9, 9_090_000, 4_545, USDC, -1, 22, t(3_670)),
    (5, 1, 2, A, 0, 1, 10_100, 9, 9_090_000, 1_818, USDC, 22, 22, t(3_670)),
]


def _order_row(
    order_id: int,
    account_id: int,
    terms: tuple[int, ...],
    outcome: tuple[int, ...],
    created: tuple[int, int],
    updated: tuple[int, int],
) -> tuple[int, ...]:
    """terms: side, type, time in force, price, quantity, quote quantity, client id (SOL_USDC,
    not post-only, RejectTaker); outcome: status, executed, executed quote, fee, cancelled
    steps, end reason; created and updated: (seq, seconds after T_BASE)."""
    side, order_type, time_in_force, price, quantity, quote_quantity, client_id = terms
    post_only, self_trade_prevention = 0, 0
    return (
        *(order_id, account_id, SOL_USDC, side, order_type, time_in_force, price, quantity, quote_quantity, client_id),
        *(post_only, self_trade_prevention, *outcome),
        *(created[0], t(created[1]), updated[0], t(updated[1])),
    )


ORDERS = [
    _order_row(1, A, (1, 0, 0, 10_000, 200, 0, 11), (FILLED, 200, 200_000_000, 40_000, 0, -1), (16, 120), (19, 170)),
    _order_row(
        2,
        A,
        (1, 0, 0, 10_100, 100, 0, 22),
        (CANCELLED, 59, 59_590_000, 11_918, 41, USER_CANCEL),
        (17, 121),
        (23, 3_680),
    ),
    _order_row(3, B, (0, 0, 0, 10_000, 50, 0, -1), (FILLED, 50, 50_000_000, 25_000, 0, -1), (18, 150), (18, 150)),
    _order_row(
        4, B, (0, 0, 1, 10_000, 200, 0, -1), (EXPIRED, 150, 150_000_000, 75_000, 50, IOC_END), (19, 170), (19, 170)
    ),
    _order_row(5, C, (0, 1, 0, 0, 30, 0, -1), (FILLED, 30, 30_300_000, 15_150, 0, -1), (20, 3_610), (20, 3_610)),
    _order_row(
        6, C, (0, 1, 0, 0, 0, 20_300_000, -1), (FILLED, 20, 20_200_000, 10_100, 0, -1), (21, 3_620), (21, 3_620)
    ),
    _order_row(
        7, C, (0, 1, 0, 0, 0, 10_100_000, -1), (EXPIRED, 9, 9_090_000, 4_545, 1, FUNDS_END), (22, 3_670), (22, 3_670)
    ),
    _order_row(8, C, (1, 1, 0, 0, 50, 0, -1), (EXPIRED, 0, 0, 0, 50, NO_LIQUIDITY_END), (25, 3_700), (25, 3_700)),
    _order_row(9, B, (0, 0, 0, 9_900, 100, 0, 5), (CANCELLED, 0, 0, 0, 100, USER_CANCEL), (26, 3_710), (27, 3_720)),
    _order_row(10, B, (0, 0, 0, 9_800, 10, 0, -1), (CANCELLED, 0, 0, 0, 10, USER_CANCEL), (26, 3_710), (27, 3_720)),
]
# order_id, seq, index of the causing event, account, status, executed, executed quote, end reason, time
ORDER_UPDATES = [
    (1, 16, 0, A, NEW, 0, 0, -1, t(120)),
    (1, 18, 1, A, PF, 50, 50_000_000, -1, t(150)),
    (1, 19, 1, A, FILLED, 200, 200_000_000, -1, t(170)),
    (2, 17, 0, A, NEW, 0, 0, -1, t(121)),
    (2, 20, 1, A, PF, 30, 30_300_000, -1, t(3_610)),
    (2, 23, 0, A, CANCELLED, 59, 59_590_000, USER_CANCEL, t(3_680)),
    (3, 18, 0, B, NEW, 0, 0, -1, t(150)),
    (3, 18, 1, B, FILLED, 50, 50_000_000, -1, t(150)),
    (4, 19, 0, B, NEW, 0, 0, -1, t(170)),
    (4, 19, 1, B, PF, 150, 150_000_000, -1, t(170)),
    (4, 19, 3, B, EXPIRED, 150, 150_000_000, IOC_END, t(170)),
    (5, 20, 0, C, NEW, 0, 0, -1, t(3_610)),
    (5, 20, 1, C, FILLED, 30, 30_300_000, -1, t(3_610)),
    (6, 21, 0, C, NEW, 0, 0, -1, t(3_620)),
    (6, 21, 1, C, PF, 20, 20_200_000, -1, t(3_620)),
    (6, 21, 3, C, FILLED, 20, 20_200_000, -1, t(3_620)),  # implied at the command's end (3 events)
    (7, 22, 0, C, NEW, 0, 0, -1, t(3_670)),
    (7, 22, 1, C, PF, 9, 9_090_000, -1, t(3_670)),
    (7, 22, 3, C, EXPIRED, 9, 9_090_000, FUNDS_END, t(3_670)),
    (8, 25, 0, C, NEW, 0, 0, -1, t(3_700)),
    (8, 25, 1, C, EXPIRED, 0, 0, NO_LIQUIDITY_END, t(3_700)),
    (9, 26, 0, B, NEW, 0, 0, -1, t(3_710)),
    (9, 27, 0, B, CANCELLED, 0, 0, USER_CANCEL, t(3_720)),
    (10, 26, 2, B, NEW, 0, 0, -1, t(3_710)),  # event 1 of the batch is item 1's rejection
    (10, 27, 1, B, CANCELLED, 0, 0, USER_CANCEL, t(3_720)),
]
EXTERNAL, FEES = -1, -2
DEPOSIT, TRADE = 2, 1


def _deposit(
    entry_id: int, seq: int, seconds: int, account_id: int, asset_id: int, amount: int
) -> list[tuple[int, ...]]:
    return [
        (entry_id, 0, DEPOSIT, seq, EXTERNAL, asset_id, -amount, seq, t(seconds)),
        (entry_id, 1, DEPOSIT, seq, account_id, asset_id, amount, seq, t(seconds)),
    ]


def _trade_entry(
    entry_id: int, trade: tuple[int, ...], buyer: int, seller: int, fee_buyer: int, fee_seller: int
) -> list[tuple[int, ...]]:
    trade_id, _, _, quantity, quote, *_, seq, timestamp_ns = trade
    base = quantity * 10_000_000
    lines = [
        (buyer, SOL, base),
        (seller, SOL, -base),
        (buyer, USDC, -(quote + fee_buyer)),
        (seller, USDC, quote - fee_seller),
        (FEES, USDC, fee_buyer + fee_seller),
    ]
    return [
        (entry_id, line_no, TRADE, trade_id, account, asset, amount, seq, timestamp_ns)
        for line_no, (account, asset, amount) in enumerate(lines)
    ]


LEDGER_LINES = [
    *_deposit(1, 10, 61, A, USDC, 10_000_000_000),
    *_deposit(2, 11, 62, A, SOL, 100_000_000_000),
    *_deposit(3, 13, 64, B, USDC, 10_000_000_000),
    *_deposit(4, 15, 66, C, USDC, 10_000_000_000),
    *_trade_entry(5, TRADES[0], B, A, 25_000, 10_000),
    *_trade_entry(6, TRADES[1], B, A, 75_000, 30_000),
    *_trade_entry(7, TRADES[2], C, A, 15_150, 6_060),
    *_trade_entry(8, TRADES[3], C, A, 10_100, 4_040),
    *_trade_entry(9, TRADES[4], C, A, 4_545, 1_818),
]
# market, width, start, open, high, low, close, volume, quote volume, trades, first and last trade id
KLINE_BARS = [
    (0, 60, t(120), 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2, 1, 2),
    (0, 60, t(3_600), 10_100, 10_100, 10_100, 10_100, 50, 50_500_000, 2, 3, 4),
    (0, 60, t(3_660), 10_100, 10_100, 10_100, 10_100, 9, 9_090_000, 1, 5, 5),
    (0, 3_600, T_BASE, 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2, 1, 2),
    (0, 3_600, t(3_600), 10_100, 10_100, 10_100, 10_100, 59, 59_590_000, 3, 3, 5),
    (0, 86_400, DAY_START, 10_000, 10_100, 10_000, 10_100, 259, 259_590_000, 5, 1, 5),
]


def expected_dump(last_seq: int = LAST_SEQ, last_ns: int = t(3_720)) -> dict[str, Sequence[tuple[Any, ...]]]:
    """Return every table's rows after the whole session, as HistoryStore.dump gives them."""
    return {
        "meta": [("schema_version", 1)],
        "position": [(1, last_seq, last_ns)],
        "assets": ASSETS,
        "markets": MARKETS,
        "accounts": ACCOUNTS,
        "orders": ORDERS,
        "order_updates": ORDER_UPDATES,
        "fills": FILLS,
        "trades": TRADES,
        "ledger_lines": sorted(LEDGER_LINES),
        "kline_bars": KLINE_BARS,
    }
