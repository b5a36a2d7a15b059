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

Then value crossing the boundary, a perpetual, market states and maintenance (schema
version 2), with accounts D = 4, E = 5, F = 6 so that A, B and C's history stays as above.
USDC is on chain Solana: 2 confirmations, withdrawal fee 1 USDC, auto-approval up to 10,
two operators from 500, a daily limit of 1,000. SOL_USDC_PERP (market 3) has SOL_USDC's
grid (lot 100 atomic USDC), margin fractions 10% initial and 5% maintenance, hourly
funding capped at 1%.

| seq | time (s) | command | outcome |
|---:|---:|---|---|
| 28 | 3800 | list SOL_USDC_PERP | market 3; first funding at 7200 s |
| 29 | 3810 | index SOL 100 | index and mark 100.00 |
| 30-32 | 3820-3822 | create D, E, F | accounts 4, 5, 6 |
| 33, 34 | 3830, 3831 | credit E 1,000 USDC, F 100 USDC | credits, entries 10 and 11 |
| 35-37 | 3840-3842 | deposit tx-d:0, 20 USDC to D, at 0, 1, 2 confirmations | deposit 1: Seen, Confirming, Credited |
| 38 | 3843 | the same at 3 confirmations | nothing (already credited) |
| 39, 40 | 3844, 3845 | deposit tx-x:1 of 5 USDC to D, then rejected | deposit 2: Seen, Rejected |
| 41 | 3900 | E sells 1 SOL perp @ 100.00 | order 11 rests |
| 42 | 3910 | D buys 1 SOL perp @ 100.00 | order 12, trade 6: D long 100 steps, E short; fees 0.05 and 0.02 (entry 13) |
| 43, 44 | 3920, 3930 | F bids 0.02 @ 99.90, asks 0.02 @ 100.10 | orders 13, 14 rest |
| 45 | 3940 | index SOL 99 | index 99.00; mark = median(99, mid 100, last 100) = 100.00 |
| 46 | 7200 | Tick | funding at rate 1% (capped): D pays 1 USDC, E receives 1 (entry 14) |
| 47 | 7210 | F cancels order 13 | the book has no bid: the mark follows the index |
| 48 | 7220 | index SOL 85 | D (equity 3.95 < maintenance 4.25) is liquidated: see below |
| 49 | 7300 | SOL_USDC Closed ("incident 7") | |
| 50 | 7310 | schedule 1: SOL_USDC PostOnly at 7400 s, Open at 7500 s | |
| 51 | 7400 | Tick | step 1: SOL_USDC PostOnly |
| 52, 53 | 7410, 7420 | schedule 2 (ETH_USDC Closed at 9000 s), cancelled | |
| 54 | 7500 | Tick | step 2: SOL_USDC Open |
| 55 | 7510 | SOL_USDC_PERP Closed ("oracle") | |
| 56 | 7520 | schedule 3: SOL_USDC_PERP PostOnly at 7600 s | |
| 57 | 7600 | Tick | step blocked: the index was not refreshed since the close |
| 58 | 7610 | index SOL 86 | |
| 59 | 7620 | Tick | step 1 of schedule 3: SOL_USDC_PERP PostOnly |
| 60-62 | 7700-7720 | E withdraws 5 USDC (auto-approved), sent (sig-1), completed | withdrawal 1; entry 16 |
| 63-67 | 7730-7770 | E withdraws 600; alice approves; alice again (refused); bob; E cancels | withdrawal 2 |
| 68-70 | 7780-7800 | freeze withdrawals; F's request refused; unfreeze | |
| 71, 72 | 7810, 7820 | F withdraws 20 USDC; rejected ("address sanctioned") | withdrawal 3 |
| 73, 74 | 7830, 7840 | F withdraws 2 USDC (auto-approved); failed ("chain halted") | withdrawal 4 |
| 75, 76 | 7900, 7910 | adjust D +2.5 USDC (INC-1), -1 USDC (INC-2) | entries 17, 18 |

D's liquidation (seq 48): its reduce-only market sell (order 15) finds no bid and expires,
so its position goes to E by auto-deleveraging at the mark, 85.00 (entry 15).

Then borrowing, lending, interest and trigger orders (schema version 3). USDC is
borrowable: 10% initial and 5% maintenance margin on a borrow, 5% a year plus 15% up
to 80% utilization (plus 100% beyond), a 10% spread. Withdrawal 3 carries client id 7.

| seq | time (s) | command | outcome |
|---:|---:|---|---|
| 77 | 8000 | E lends 500 USDC | E's lend position 77 (entry 19) |
| 78 | 8010 | F borrows 100 USDC | F's borrow position 78 (entry 20) |
| 79 | 10800 | Tick | the first Tick with lending schedules interest at 14,400 s; a funding round at rate 0 |
| 80 | 14400 | Tick | interest at 20% utilization, 8.75% a year: F pays 999, E gets 899, fees 100 (entry 21); funding |
| 81 | 14410 | F lends 120 USDC | repays the whole borrow (100.000999), lends 19.999001 (position 81; entry 22) |
| 82 | 14420 | E borrows 510 USDC | redeems the whole lend (500.000899), borrows 9.999101 (position 82; entry 23) |
| 83, 84 | 14450, 14451 | create G, H | accounts 7, 8 |
| 85, 86 | 14452, 14453 | credit G 1 ETH, H 1,000 USDC | entries 24, 25 |
| 87 | 14460 | G sells 100 ETH_USDC (0.01 ETH) @ 3,000.00 | order 16 rests |
| 88 | 14470 | H buys 100 @ 3,000.00 | order 17, trade 7: the market's first last price |
| 89 | 14500 | G: market sell 50 when the last price is <= 2,990.00, client 33 | trigger order 18 pending |
| 90 | 14510 | G: limit buy 10 @ 2,900.00 when the last price is >= 3,100.00, client 44 | trigger order 19 pending |
| 91 | 14520 | G cancels client id 44 | order 19 Cancelled |
| 92 | 14530 | H: limit buy 100,000 (10 ETH) @ 2,995.00 when the last price is <= 2,995.00 | trigger order 20 |
| 93 | 14535 | H buys 150 @ 2,990.00 GTC | order 21 rests |
| 94 | 14540 | G market sells 100 | order 22, trade 8 (100 @ 2,990.00) with order 21: see below |

At seq 94 the last price 2,990.00 fires order 18 (trade 9: 50 @ 2,990.00 with order 21), then
order 20, which H cannot pay for: TriggerFailed.

ETH_USDC (market 2): tick 0.01 USDC, step 0.0001 ETH (10,000 atomic), so its lot is 1 atomic USDC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from keel.core.commands import (
    Adjust,
    BorrowLend,
    CancelAllOrders,
    CancelMaintenance,
    CancelOrder,
    CancelWithdrawal,
    Command,
    CreateAccount,
    Credit,
    FreezeWithdrawals,
    ListMarket,
    PlaceOrder,
    PlaceOrders,
    RejectDeposit,
    ReportDeposit,
    RequestWithdrawal,
    ScheduleMaintenance,
    SetIndexPrices,
    SetMarketState,
    Tick,
    UpdateWithdrawal,
)
from keel.core.engine import Engine
from keel.core.lending import BorrowLendSide
from keel.core.markets import MarketState
from keel.core.orders import EndReason, OrderStatus
from keel.core.transfers import DepositStatus, WithdrawalAction, WithdrawalStatus
from keel.node.config import AssetConfig, Config, MarketConfig
from keel.node.genesis import genesis_commands
from keel.sequencer.sequencer import Outcome, Sequencer
from keel.testing.clock import ManualClock
from keel.views import Item, schema

NS = 1_000_000_000
T_BASE = 1_699_999_200 * NS  # 2023-11-14 22:00:00 UTC
DAY_START = 1_699_920_000 * NS  # 2023-11-14 00:00:00 UTC
NEVER = 10**9
A, B, C = 1, 2, 3
SOL_USDC = 0
USDC, SOL = 0, 1
GENESIS_LAST_SEQ = 8
LAST_SEQ = 94
LAST_NS_SECONDS = 14_540
D, E, F = 4, 5, 6
G, H = 7, 8
SOL_PERP = 3
ETH_USDC, ETH = 2, 3
NEW, PF, FILLED, CANCELLED, EXPIRED = (int(status) for status in OrderStatus)
TRIGGER_PENDING, TRIGGER_FAILED = 5, 6  # keel.views.records
USER_CANCEL = int(EndReason.USER_CANCEL)
IOC_END = int(EndReason.IMMEDIATE_OR_CANCEL)
FUNDS_END = int(EndReason.INSUFFICIENT_FUNDS)
NO_LIQUIDITY_END = int(EndReason.NO_LIQUIDITY)


def t(seconds: int) -> int:
    """Return the timestamp `seconds` after T_BASE."""
    return T_BASE + seconds * NS


# The session's exchange, stated here rather than taken from keel.toml's defaults (which
# grow as markets are added): genesis is 4 ListAsset, 3 ListMarket and a Checkpoint.
SESSION_ASSETS = (
    AssetConfig(
        "USDC",
        6,
        "1",
        "Solana",
        2,
        "1",
        "1000",
        "10",
        "500",
        borrow_imf="0.1",
        borrow_mmf="0.05",
        rate_base="0.05",
        rate_slope1="0.15",
        rate_slope2="1",
    ),
    AssetConfig("SOL", 9),
    AssetConfig("BTC", 8),
    AssetConfig("ETH", 8),
)
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


def _eth(account_id: int, side: int, **fields: Any) -> PlaceOrder:
    return PlaceOrder(seq=0, timestamp_ns=0, account_id=account_id, market_id=ETH_USDC, side=side, **fields)


def _credit(account_id: int, asset_id: int, amount_atomic: int) -> Credit:
    return Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=amount_atomic)


ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"  # a Solana address (base58)
PERP_LISTING: dict[str, Any] = {
    "symbol": "SOL_USDC_PERP",
    "base_asset_id": SOL,
    "quote_asset_id": USDC,
    "tick_atomic": 10_000,
    "step_atomic": 10_000_000,
    "quantity_min_steps": 1,
    "quantity_max_steps": 0,
    "notional_min_atomic": 1_000_000,
    "fee_maker_bps": 2,
    "fee_taker_bps": 5,
    "kind": 1,
    "imf_base_e9": 100_000_000,
    "mmf_base_e9": 50_000_000,
    "funding_interval_ns": 3_600 * NS,
    "funding_cap_bps": 100,
}


def _report(tx_id: str, output_index: int, amount_atomic: int, confirmations: int) -> ReportDeposit:
    return ReportDeposit(
        seq=0,
        timestamp_ns=0,
        chain="Solana",
        tx_id=tx_id,
        output_index=output_index,
        account_id=D,
        asset_id=USDC,
        amount_atomic=amount_atomic,
        confirmations=confirmations,
    )


def _perp(account_id: int, side: int, price_ticks: int, quantity_steps: int) -> PlaceOrder:
    return PlaceOrder(
        seq=0,
        timestamp_ns=0,
        account_id=account_id,
        market_id=SOL_PERP,
        side=side,
        order_type=0,
        price_ticks=price_ticks,
        quantity_steps=quantity_steps,
    )


def _state(market_id: int, state: MarketState, reason: str) -> SetMarketState:
    return SetMarketState(seq=0, timestamp_ns=0, market_id=market_id, state=int(state), reason=reason, operator="ops")


def _schedule(announcement: str, steps: tuple[tuple[int, tuple[int, ...], int], ...]) -> ScheduleMaintenance:
    return ScheduleMaintenance(
        seq=0,
        timestamp_ns=0,
        announcement=announcement,
        operator="ops",
        steps=tuple((t(seconds), market_ids, state) for seconds, market_ids, state in steps),
    )


def _withdraw(account_id: int, amount_atomic: int, client_id: int = -1) -> RequestWithdrawal:
    return RequestWithdrawal(
        seq=0,
        timestamp_ns=0,
        account_id=account_id,
        asset_id=USDC,
        amount_atomic=amount_atomic,
        address=ADDRESS,
        client_id=client_id,
    )


def _borrow_lend(account_id: int, side: BorrowLendSide, amount_atomic: int) -> BorrowLend:
    return BorrowLend(
        seq=0, timestamp_ns=0, account_id=account_id, asset_id=USDC, side=int(side), amount_atomic=amount_atomic
    )


def _update(withdrawal_id: int, action: WithdrawalAction, operator: str, **fields: str) -> UpdateWithdrawal:
    return UpdateWithdrawal(
        seq=0, timestamp_ns=0, withdrawal_id=withdrawal_id, action=int(action), operator=operator, **fields
    )


def _adjust(amount_atomic: int, incident: str) -> Adjust:
    return Adjust(
        seq=0,
        timestamp_ns=0,
        account_id=D,
        asset_id=USDC,
        amount_atomic=amount_atomic,
        incident=incident,
        operator="ops",
    )


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
    (28, 3_800, ListMarket(seq=0, timestamp_ns=0, **PERP_LISTING)),  # type: ignore[arg-type]
    (29, 3_810, SetIndexPrices(seq=0, timestamp_ns=0, prices=((SOL, 100_000_000),))),
    (30, 3_820, CreateAccount(seq=0, timestamp_ns=0)),
    (31, 3_821, CreateAccount(seq=0, timestamp_ns=0)),
    (32, 3_822, CreateAccount(seq=0, timestamp_ns=0)),
    (33, 3_830, _credit(E, USDC, 1_000_000_000)),
    (34, 3_831, _credit(F, USDC, 100_000_000)),
    (35, 3_840, _report("tx-d", 0, 20_000_000, 0)),
    (36, 3_841, _report("tx-d", 0, 20_000_000, 1)),
    (37, 3_842, _report("tx-d", 0, 20_000_000, 2)),
    (38, 3_843, _report("tx-d", 0, 20_000_000, 3)),
    (39, 3_844, _report("tx-x", 1, 5_000_000, 0)),
    (40, 3_845, RejectDeposit(seq=0, timestamp_ns=0, deposit_id=2, reason="not ours", operator="ops")),
    (41, 3_900, _perp(E, 1, 10_000, 100)),
    (42, 3_910, _perp(D, 0, 10_000, 100)),
    (43, 3_920, _perp(F, 0, 9_990, 2)),
    (44, 3_930, _perp(F, 1, 10_010, 2)),
    (45, 3_940, SetIndexPrices(seq=0, timestamp_ns=0, prices=((SOL, 99_000_000),))),
    (46, 7_200, Tick(seq=0, timestamp_ns=0)),
    (47, 7_210, CancelOrder(seq=0, timestamp_ns=0, account_id=F, market_id=SOL_PERP, order_id=13)),
    (48, 7_220, SetIndexPrices(seq=0, timestamp_ns=0, prices=((SOL, 85_000_000),))),
    (49, 7_300, _state(SOL_USDC, MarketState.CLOSED, "incident 7")),
    (50, 7_310, _schedule("SOL_USDC reopens", ((7_400, (SOL_USDC,), 1), (7_500, (SOL_USDC,), 0)))),
    (51, 7_400, Tick(seq=0, timestamp_ns=0)),
    (52, 7_410, _schedule("ETH_USDC maintenance", ((9_000, (2,), 4),))),
    (53, 7_420, CancelMaintenance(seq=0, timestamp_ns=0, schedule_id=2, reason="postponed", operator="ops")),
    (54, 7_500, Tick(seq=0, timestamp_ns=0)),
    (55, 7_510, _state(SOL_PERP, MarketState.CLOSED, "oracle")),
    (56, 7_520, _schedule("perp reopens", ((7_600, (SOL_PERP,), 1),))),
    (57, 7_600, Tick(seq=0, timestamp_ns=0)),
    (58, 7_610, SetIndexPrices(seq=0, timestamp_ns=0, prices=((SOL, 86_000_000),))),
    (59, 7_620, Tick(seq=0, timestamp_ns=0)),
    (60, 7_700, _withdraw(E, 5_000_000)),
    (61, 7_710, _update(1, WithdrawalAction.MARK_SENT, "ops", tx_id="sig-1")),
    (62, 7_720, _update(1, WithdrawalAction.MARK_COMPLETED, "ops")),
    (63, 7_730, _withdraw(E, 600_000_000)),
    (64, 7_740, _update(2, WithdrawalAction.APPROVE, "alice")),
    (65, 7_750, _update(2, WithdrawalAction.APPROVE, "alice")),
    (66, 7_760, _update(2, WithdrawalAction.APPROVE, "bob")),
    (67, 7_770, CancelWithdrawal(seq=0, timestamp_ns=0, account_id=E, withdrawal_id=2)),
    (68, 7_780, FreezeWithdrawals(seq=0, timestamp_ns=0, frozen=True, reason="audit", operator="auditor")),
    (69, 7_790, _withdraw(F, 20_000_000)),
    (70, 7_800, FreezeWithdrawals(seq=0, timestamp_ns=0, frozen=False, reason="checked", operator="ops")),
    (71, 7_810, _withdraw(F, 20_000_000, client_id=7)),
    (72, 7_820, _update(3, WithdrawalAction.REJECT, "ops", reason="address sanctioned")),
    (73, 7_830, _withdraw(F, 2_000_000)),
    (74, 7_840, _update(4, WithdrawalAction.MARK_FAILED, "ops", reason="chain halted")),
    (75, 7_900, _adjust(2_500_000, "INC-1")),
    (76, 7_910, _adjust(-1_000_000, "INC-2")),
    (77, 8_000, _borrow_lend(E, BorrowLendSide.LEND, 500_000_000)),
    (78, 8_010, _borrow_lend(F, BorrowLendSide.BORROW, 100_000_000)),
    (79, 10_800, Tick(seq=0, timestamp_ns=0)),
    (80, 14_400, Tick(seq=0, timestamp_ns=0)),
    (81, 14_410, _borrow_lend(F, BorrowLendSide.LEND, 120_000_000)),
    (82, 14_420, _borrow_lend(E, BorrowLendSide.BORROW, 510_000_000)),
    (83, 14_450, CreateAccount(seq=0, timestamp_ns=0)),
    (84, 14_451, CreateAccount(seq=0, timestamp_ns=0)),
    (85, 14_452, _credit(G, ETH, 100_000_000)),
    (86, 14_453, _credit(H, USDC, 1_000_000_000)),
    (87, 14_460, _eth(G, 1, order_type=0, price_ticks=300_000, quantity_steps=100)),
    (88, 14_470, _eth(H, 0, order_type=0, price_ticks=300_000, quantity_steps=100)),
    (89, 14_500, _eth(G, 1, order_type=1, quantity_steps=50, client_id=33, trigger_price_ticks=299_000)),
    (
        90,
        14_510,
        _eth(G, 0, order_type=0, price_ticks=290_000, quantity_steps=10, client_id=44, trigger_price_ticks=310_000),
    ),
    (91, 14_520, CancelOrder(seq=0, timestamp_ns=0, account_id=G, market_id=ETH_USDC, client_id=44)),
    (92, 14_530, _eth(H, 0, order_type=0, price_ticks=299_500, quantity_steps=100_000, trigger_price_ticks=299_500)),
    (93, 14_535, _eth(H, 0, order_type=0, price_ticks=299_000, quantity_steps=150)),
    (94, 14_540, _eth(G, 1, order_type=1, quantity_steps=100)),
]
REJECTED_SEQS = (24, 65, 69)


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
    (3, "SOL_USDC_PERP", 1, 0, 10_000, 10_000_000, 100, 1, 28, t(3_800)),
]
ACCOUNTS = [
    (A, 9, t(60)),
    (B, 12, t(63)),
    (C, 14, t(65)),
    (D, 30, t(3_820)),
    (E, 31, t(3_821)),
    (F, 32, t(3_822)),
    (G, 83, t(14_450)),
    (H, 84, t(14_451)),
]

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
    # the perpetual: D buys 100 steps from E at 100.00; taker fee 5 bps of 100 USDC, maker 2 bps
    (6, SOL_PERP, 10_000, 100, 100_000_000, 0, 12, 11, 42, t(3_910)),
    # ETH_USDC (lot 1): H buys 100 at 3,000.00 (taker 5 bps of 30 USDC, maker 2 bps); G sells
    # 100 at 2,990.00, then the fired trigger sells 50 more (H's maker fee: ceil(2 bps of
    # 44.85 USDC) - 5,980 = 2,990)
    (7, ETH_USDC, 300_000, 100, 30_000_000, 0, 17, 16, 88, t(14_470)),
    (8, ETH_USDC, 299_000, 100, 29_900_000, 1, 22, 21, 94, t(14_540)),
    (9, ETH_USDC, 299_000, 50, 14_950_000, 1, 18, 21, 94, t(14_540)),
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
    (6, 0, 12, D, SOL_PERP, 0, 10_000, 100, 100_000_000, 50_000, USDC, -1, 42, t(3_910)),
    (6, 1, 11, E, SOL_PERP, 1, 10_000, 100, 100_000_000, 20_000, USDC, -1, 42, t(3_910)),
    (7, 0, 17, H, ETH_USDC, 0, 300_000, 100, 30_000_000, 15_000, USDC, -1, 88, t(14_470)),
    (7, 1, 16, G, ETH_USDC, 1, 300_000, 100, 30_000_000, 6_000, USDC, -1, 88, t(14_470)),
    (8, 0, 22, G, ETH_USDC, 1, 299_000, 100, 29_900_000, 14_950, USDC, -1, 94, t(14_540)),
    (8, 1, 21, H, ETH_USDC, 0, 299_000, 100, 29_900_000, 5_980, USDC, -1, 94, t(14_540)),
    (9, 0, 18, G, ETH_USDC, 1, 299_000, 50, 14_950_000, 7_475, USDC, 33, 94, t(14_540)),
    (9, 1, 21, H, ETH_USDC, 0, 299_000, 50, 14_950_000, 2_990, USDC, -1, 94, t(14_540)),
]


def _order_row(
    order_id: int,
    account_id: int,
    terms: tuple[int, ...],
    outcome: tuple[int, ...],
    created: tuple[int, int],
    updated: tuple[int, int],
    market_id: int = SOL_USDC,
    self_trade_prevention: int = 0,
    reduce_only: int = 0,
    trigger: tuple[int, int, int] = (0, -1, 0),
    attached: tuple[int, int, int, int, int, int] = (0, 0, -1, 0, 0, -1),
    parent_order_id: int = 0,
) -> tuple[int, ...]:
    """terms: side, type, time in force, price, quantity, quote quantity, client id (not
    post-only; RejectTaker unless given); outcome: status, executed, executed quote, fee,
    cancelled steps, end reason; created and updated: (seq, seconds after T_BASE); trigger:
    price, trigger by, seconds after T_BASE it fired (0: none, -1, 0 for an ordinary order);
    attached: take-profit trigger, limit, trigger by, then the stop-loss's (none: 0, 0, -1);
    parent_order_id: the order whose fill created it as a take-profit or stop-loss (0: none)."""
    side, order_type, time_in_force, price, quantity, quote_quantity, client_id = terms
    post_only = 0
    trigger_price, trigger_by, fired = trigger
    return (
        *(order_id, account_id, market_id, side, order_type, time_in_force, price, quantity, quote_quantity, client_id),
        *(post_only, self_trade_prevention, *outcome),
        *(created[0], t(created[1]), updated[0], t(updated[1])),
        *(reduce_only, trigger_price, trigger_by, t(fired) if fired else 0),
        *attached,
        parent_order_id,
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
    _order_row(
        11,
        E,
        (1, 0, 0, 10_000, 100, 0, -1),
        (FILLED, 100, 100_000_000, 20_000, 0, -1),
        (41, 3_900),
        (42, 3_910),
        SOL_PERP,
    ),
    _order_row(
        12,
        D,
        (0, 0, 0, 10_000, 100, 0, -1),
        (FILLED, 100, 100_000_000, 50_000, 0, -1),
        (42, 3_910),
        (42, 3_910),
        SOL_PERP,
    ),
    _order_row(
        13, F, (0, 0, 0, 9_990, 2, 0, -1), (CANCELLED, 0, 0, 0, 2, USER_CANCEL), (43, 3_920), (47, 7_210), SOL_PERP
    ),
    _order_row(14, F, (1, 0, 0, 10_010, 2, 0, -1), (NEW, 0, 0, 0, 0, -1), (44, 3_930), (44, 3_930), SOL_PERP),
    # D's liquidation: a reduce-only market sell (RejectMaker) that finds no bid
    _order_row(
        15,
        D,
        (1, 1, 0, 0, 100, 0, -1),
        (EXPIRED, 0, 0, 0, 100, NO_LIQUIDITY_END),
        (48, 7_220),
        (48, 7_220),
        SOL_PERP,
        1,
        reduce_only=1,
    ),
    # ETH_USDC: the first trade, then trigger orders: 18 fired and filled, 19 cancelled while
    # pending, 20 fired and failed
    _order_row(
        16, G, (1, 0, 0, 300_000, 100, 0, -1), (FILLED, 100, 30_000_000, 6_000, 0, -1), (87, 14_460), (88, 14_470), 2
    ),
    _order_row(
        17, H, (0, 0, 0, 300_000, 100, 0, -1), (FILLED, 100, 30_000_000, 15_000, 0, -1), (88, 14_470), (88, 14_470), 2
    ),
    _order_row(
        18,
        G,
        (1, 1, 0, 0, 50, 0, 33),
        (FILLED, 50, 14_950_000, 7_475, 0, -1),
        (89, 14_500),
        (94, 14_540),
        ETH_USDC,
        trigger=(299_000, 0, 14_540),
    ),
    _order_row(
        19,
        G,
        (0, 0, 0, 290_000, 10, 0, 44),
        (CANCELLED, 0, 0, 0, 10, USER_CANCEL),
        (90, 14_510),
        (91, 14_520),
        ETH_USDC,
        trigger=(310_000, 0, 0),
    ),
    _order_row(
        20,
        H,
        (0, 0, 0, 299_500, 100_000, 0, -1),
        (TRIGGER_FAILED, 0, 0, 0, 0, -1),
        (92, 14_530),
        (94, 14_540),
        ETH_USDC,
        trigger=(299_500, 0, 14_540),
    ),
    _order_row(
        21, H, (0, 0, 0, 299_000, 150, 0, -1), (FILLED, 150, 44_850_000, 8_970, 0, -1), (93, 14_535), (94, 14_540), 2
    ),
    _order_row(
        22, G, (1, 1, 0, 0, 100, 0, -1), (FILLED, 100, 29_900_000, 14_950, 0, -1), (94, 14_540), (94, 14_540), 2
    ),
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
    (11, 41, 0, E, NEW, 0, 0, -1, t(3_900)),
    (11, 42, 1, E, FILLED, 100, 100_000_000, -1, t(3_910)),
    (12, 42, 0, D, NEW, 0, 0, -1, t(3_910)),
    (12, 42, 1, D, FILLED, 100, 100_000_000, -1, t(3_910)),
    (13, 43, 0, F, NEW, 0, 0, -1, t(3_920)),
    (13, 47, 0, F, CANCELLED, 0, 0, USER_CANCEL, t(7_210)),
    (14, 44, 0, F, NEW, 0, 0, -1, t(3_930)),
    (15, 48, 2, D, NEW, 0, 0, -1, t(7_220)),  # after MarkPriceChanged and LiquidationStarted
    (15, 48, 3, D, EXPIRED, 0, 0, NO_LIQUIDITY_END, t(7_220)),
    (16, 87, 0, G, NEW, 0, 0, -1, t(14_460)),
    (16, 88, 1, G, FILLED, 100, 30_000_000, -1, t(14_470)),
    (17, 88, 0, H, NEW, 0, 0, -1, t(14_470)),
    (17, 88, 1, H, FILLED, 100, 30_000_000, -1, t(14_470)),
    (18, 89, 0, G, TRIGGER_PENDING, 0, 0, -1, t(14_500)),
    (18, 94, 4, G, NEW, 0, 0, -1, t(14_540)),  # TriggerFired (event 3), then its OrderAccepted
    (18, 94, 5, G, FILLED, 50, 14_950_000, -1, t(14_540)),
    (19, 90, 0, G, TRIGGER_PENDING, 0, 0, -1, t(14_510)),
    (19, 91, 0, G, CANCELLED, 0, 0, USER_CANCEL, t(14_520)),
    (20, 92, 0, H, TRIGGER_PENDING, 0, 0, -1, t(14_530)),
    (20, 94, 7, H, TRIGGER_FAILED, 0, 0, -1, t(14_540)),
    (21, 93, 0, H, NEW, 0, 0, -1, t(14_535)),
    (21, 94, 1, H, PF, 100, 29_900_000, -1, t(14_540)),
    (21, 94, 5, H, FILLED, 150, 44_850_000, -1, t(14_540)),
    (22, 94, 0, G, NEW, 0, 0, -1, t(14_540)),
    (22, 94, 1, G, FILLED, 100, 29_900_000, -1, t(14_540)),
]
EXTERNAL, FEES, CLEARING, INSURANCE, POOL = -1, -2, -3, -4, -5
DEPOSIT, TRADE, WITHDRAWAL, FUNDING, INTEREST, ADJUSTMENT, ADL, BORROW_LEND = 2, 1, 3, 4, 5, 8, 9, 11


def _deposit(
    entry_id: int, seq: int, seconds: int, account_id: int, asset_id: int, amount: int
) -> list[tuple[int, ...]]:
    return [
        (entry_id, 0, DEPOSIT, seq, EXTERNAL, asset_id, -amount, seq, t(seconds)),
        (entry_id, 1, DEPOSIT, seq, account_id, asset_id, amount, seq, t(seconds)),
    ]


def _trade_entry(
    entry_id: int,
    trade: tuple[int, ...],
    buyer: int,
    seller: int,
    fee_buyer: int,
    fee_seller: int,
    base_asset: int = SOL,
    step_atomic: int = 10_000_000,
) -> list[tuple[int, ...]]:
    trade_id, _, _, quantity, quote, *_, seq, timestamp_ns = trade
    base = quantity * step_atomic
    lines = [
        (buyer, base_asset, base),
        (seller, base_asset, -base),
        (buyer, USDC, -(quote + fee_buyer)),
        (seller, USDC, quote - fee_seller),
        (FEES, USDC, fee_buyer + fee_seller),
    ]
    return [
        (entry_id, line_no, TRADE, trade_id, account, asset, amount, seq, timestamp_ns)
        for line_no, (account, asset, amount) in enumerate(lines)
    ]


def _entry(
    entry_id: int, reason: int, reference: int, seq: int, seconds: int, lines: list[tuple[int, int]]
) -> list[tuple[int, ...]]:
    """An entry of USDC lines (account, amount)."""
    return [
        (entry_id, line_no, reason, reference, account, USDC, amount, seq, t(seconds))
        for line_no, (account, amount) in enumerate(lines)
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
    *_deposit(10, 33, 3_830, E, USDC, 1_000_000_000),  # operator credits
    *_deposit(11, 34, 3_831, F, USDC, 100_000_000),
    *_deposit(12, 37, 3_842, D, USDC, 20_000_000),  # the chain deposit, at its second confirmation
    *_entry(13, TRADE, 6, 42, 3_910, [(D, -50_000), (E, -20_000), (FEES, 70_000), (CLEARING, 0)]),  # fees only
    # funding at 1% of 1 SOL at mark 100: D (long) pays 1 USDC, E (short) receives it, no rounding
    *_entry(14, FUNDING, 46, 46, 7_200, [(D, -1_000_000), (E, 1_000_000), (INSURANCE, 0)]),
    # ADL at the mark 85.00: D's long (cost 100) closes at a loss of 15, E's short at a gain of 15
    *_entry(15, ADL, 48, 48, 7_220, [(D, -15_000_000), (E, 15_000_000), (CLEARING, 0)]),
    *_entry(16, WITHDRAWAL, 62, 62, 7_720, [(E, -6_000_000), (EXTERNAL, 5_000_000), (FEES, 1_000_000)]),
    *_entry(17, ADJUSTMENT, 75, 75, 7_900, [(EXTERNAL, -2_500_000), (D, 2_500_000)]),
    *_entry(18, ADJUSTMENT, 76, 76, 7_910, [(EXTERNAL, 1_000_000), (D, -1_000_000)]),
    # lending moves USDC between the account and the lending pool; interest pays the spread to fees
    *_entry(19, BORROW_LEND, 77, 77, 8_000, [(POOL, 500_000_000), (E, -500_000_000)]),
    *_entry(20, BORROW_LEND, 78, 78, 8_010, [(POOL, -100_000_000), (F, 100_000_000)]),
    *_entry(21, INTEREST, 80, 80, 14_400, [(POOL, -100), (FEES, 100)]),
    *_entry(22, BORROW_LEND, 81, 81, 14_410, [(POOL, 120_000_000), (F, -120_000_000)]),
    *_entry(23, BORROW_LEND, 82, 82, 14_420, [(POOL, -510_000_000), (E, 510_000_000)]),
    *_deposit(24, 85, 14_452, G, ETH, 100_000_000),
    *_deposit(25, 86, 14_453, H, USDC, 1_000_000_000),
    *_trade_entry(26, TRADES[6], H, G, 15_000, 6_000, ETH, 10_000),
    *_trade_entry(27, TRADES[7], H, G, 5_980, 14_950, ETH, 10_000),
    *_trade_entry(28, TRADES[8], H, G, 2_990, 7_475, ETH, 10_000),
]
# market, width, start, open, high, low, close, volume, quote volume, trades, first and last trade id
KLINE_BARS = [
    (0, 60, t(120), 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2, 1, 2),
    (0, 60, t(3_600), 10_100, 10_100, 10_100, 10_100, 50, 50_500_000, 2, 3, 4),
    (0, 60, t(3_660), 10_100, 10_100, 10_100, 10_100, 9, 9_090_000, 1, 5, 5),
    (0, 3_600, T_BASE, 10_000, 10_000, 10_000, 10_000, 200, 200_000_000, 2, 1, 2),
    (0, 3_600, t(3_600), 10_100, 10_100, 10_100, 10_100, 59, 59_590_000, 3, 3, 5),
    (0, 86_400, DAY_START, 10_000, 10_100, 10_000, 10_100, 259, 259_590_000, 5, 1, 5),
    (SOL_PERP, 60, t(3_900), 10_000, 10_000, 10_000, 10_000, 100, 100_000_000, 1, 6, 6),
    (SOL_PERP, 3_600, t(3_600), 10_000, 10_000, 10_000, 10_000, 100, 100_000_000, 1, 6, 6),
    (SOL_PERP, 86_400, DAY_START, 10_000, 10_000, 10_000, 10_000, 100, 100_000_000, 1, 6, 6),
    (ETH_USDC, 60, t(14_460), 300_000, 300_000, 300_000, 300_000, 100, 30_000_000, 1, 7, 7),
    (ETH_USDC, 60, t(14_520), 299_000, 299_000, 299_000, 299_000, 150, 44_850_000, 2, 8, 9),
    (ETH_USDC, 3_600, t(14_400), 300_000, 300_000, 299_000, 299_000, 250, 74_850_000, 3, 7, 9),
    (ETH_USDC, 86_400, DAY_START + 86_400 * NS, 300_000, 300_000, 299_000, 299_000, 250, 74_850_000, 3, 7, 9),
]

# ---- schema version 2 ------------------------------------------------------------------
SEEN, CONFIRMING, CREDITED, DEPOSIT_REJECTED = (int(status) for status in DepositStatus)
REQUESTED, APPROVED, SENT, COMPLETED, W_REJECTED, W_CANCELLED, FAILED = (int(status) for status in WithdrawalStatus)
OPEN_STATE, POST_ONLY_STATE, CLOSED_STATE = int(MarketState.OPEN), int(MarketState.POST_ONLY), int(MarketState.CLOSED)
SCHEDULED, SCHEDULE_CANCELLED, STEP_APPLIED, STEP_BLOCKED = 0, 1, 2, 3
NO_ENTRY = -1
SANCTIONED = "address sanctioned"
DEPOSITS = [
    # id, account, asset, amount, chain, tx, output, confirmations, status, entry, created and updated seq and ns
    (
        1,
        D,
        USDC,
        20_000_000,
        "Solana",
        "tx-d",
        0,
        2,
        CREDITED,
        12,
        35,
        t(3_840),
        37,
        t(3_842),
    ),  # seq 38 changed nothing
    (2, D, USDC, 5_000_000, "Solana", "tx-x", 1, 0, DEPOSIT_REJECTED, NO_ENTRY, 39, t(3_844), 40, t(3_845)),
]
DEPOSIT_UPDATES = [
    (1, 35, 0, D, SEEN, 0, t(3_840)),
    (1, 36, 0, D, CONFIRMING, 1, t(3_841)),
    (1, 37, 1, D, CREDITED, 2, t(3_842)),  # event 0 is its ledger entry
    (2, 39, 0, D, SEEN, 0, t(3_844)),
    (2, 40, 0, D, DEPOSIT_REJECTED, 0, t(3_845)),
]
CREDITS = [
    (1, A, USDC, 10_000_000_000, 10, t(61)),
    (2, A, SOL, 100_000_000_000, 11, t(62)),
    (3, B, USDC, 10_000_000_000, 13, t(64)),
    (4, C, USDC, 10_000_000_000, 15, t(66)),
    (10, E, USDC, 1_000_000_000, 33, t(3_830)),
    (11, F, USDC, 100_000_000, 34, t(3_831)),
    (24, G, ETH, 100_000_000, 85, t(14_452)),
    (25, H, USDC, 1_000_000_000, 86, t(14_453)),
]
WITHDRAWALS = [
    # id, account, asset, amount, fee, chain, address, tx, status, reason, entry, created and updated, client id
    (1, E, USDC, 5_000_000, 1_000_000, "Solana", ADDRESS, "sig-1", COMPLETED, "", 16, 60, t(7_700), 62, t(7_720), -1),
    (
        2,
        E,
        USDC,
        600_000_000,
        1_000_000,
        "Solana",
        ADDRESS,
        "",
        W_CANCELLED,
        "",
        NO_ENTRY,
        63,
        t(7_730),
        67,
        t(7_770),
        -1,
    ),
    (
        3,
        F,
        USDC,
        20_000_000,
        1_000_000,
        "Solana",
        ADDRESS,
        "",
        W_REJECTED,
        SANCTIONED,
        NO_ENTRY,
        71,
        t(7_810),
        72,
        t(7_820),
        7,
    ),
    (
        4,
        F,
        USDC,
        2_000_000,
        1_000_000,
        "Solana",
        ADDRESS,
        "",
        FAILED,
        "chain halted",
        NO_ENTRY,
        73,
        t(7_830),
        74,
        t(7_840),
        -1,
    ),
]
WITHDRAWAL_UPDATES = [
    (1, 60, 0, E, APPROVED, "", "", "", t(7_700)),  # at most the auto-approval amount
    (1, 61, 0, E, SENT, "ops", "sig-1", "", t(7_710)),
    (1, 62, 1, E, COMPLETED, "ops", "sig-1", "", t(7_720)),
    (2, 63, 0, E, REQUESTED, "", "", "", t(7_730)),  # 600 USDC: two operators must approve
    (2, 64, 0, E, REQUESTED, "alice", "", "", t(7_740)),
    (2, 66, 0, E, APPROVED, "bob", "", "", t(7_760)),  # seq 65 (alice again) was refused
    (2, 67, 0, E, W_CANCELLED, "", "", "", t(7_770)),
    (3, 71, 0, F, REQUESTED, "", "", "", t(7_810)),  # seq 69 was refused: withdrawals were frozen
    (3, 72, 0, F, W_REJECTED, "ops", "", SANCTIONED, t(7_820)),
    (4, 73, 0, F, APPROVED, "", "", "", t(7_830)),
    (4, 74, 0, F, FAILED, "ops", "", "chain halted", t(7_840)),
]
# market, seq, rate (1e-9), mark, index, paid, received, positions, entry, time
FUNDING_ROUNDS = [
    (SOL_PERP, 46, 10_000_000, 10_000, 9_900, 1_000_000, 1_000_000, 2, 14, t(7_200)),
    # no bid, so the mark is the index (86.00): rate 0, and no position left to pay
    (SOL_PERP, 79, 0, 8_600, 8_600, 0, 0, 0, NO_ENTRY, t(10_800)),
    (SOL_PERP, 80, 0, 8_600, 8_600, 0, 0, 0, NO_ENTRY, t(14_400)),
]
FUNDING_PAYMENTS = [
    (14, 0, D, SOL_PERP, USDC, -1_000_000, 10_000_000, 46, t(7_200)),
    (14, 1, E, SOL_PERP, USDC, 1_000_000, 10_000_000, 46, t(7_200)),
    (14, 2, INSURANCE, SOL_PERP, USDC, 0, 10_000_000, 46, t(7_200)),  # the round's rounding
]
POSITION_CHANGES = [
    (42, 2, D, SOL_PERP, 0, 100, 100_000_000, 0, 6, t(3_910)),
    (42, 3, E, SOL_PERP, 0, -100, -100_000_000, 0, 6, t(3_910)),
    (48, 4, D, SOL_PERP, 100, 0, 0, -15_000_000, 0, t(7_220)),  # auto-deleveraging: no trade
    (48, 5, E, SOL_PERP, -100, 0, 0, 15_000_000, 0, t(7_220)),
]
# D at index 85: equity 20 - 0.05 fee - 1 funding - 15 unrealized = 3.95; maintenance 5% of 85 = 4.25
LIQUIDATIONS = [(48, 1, D, 3_950_000, 4_250_000, t(7_220))]
MARKET_STATE_CHANGES = [
    (49, 0, SOL_USDC, OPEN_STATE, CLOSED_STATE, "incident 7", "ops", t(7_300)),
    (51, 0, SOL_USDC, CLOSED_STATE, POST_ONLY_STATE, "maintenance 1 step 1", "ops", t(7_400)),
    (54, 0, SOL_USDC, POST_ONLY_STATE, OPEN_STATE, "maintenance 1 step 2", "ops", t(7_500)),
    (55, 0, SOL_PERP, OPEN_STATE, CLOSED_STATE, "oracle", "ops", t(7_510)),
    (59, 0, SOL_PERP, CLOSED_STATE, POST_ONLY_STATE, "maintenance 3 step 1", "ops", t(7_620)),
]
BLOCKED = "SOL_USDC_PERP: the index price has not been refreshed since the market closed"
MAINTENANCE_EVENTS = [
    (50, 0, 1, SCHEDULED, -1, -1, "SOL_USDC reopens", "ops", t(7_310)),
    (51, 1, 1, STEP_APPLIED, 0, POST_ONLY_STATE, "", "", t(7_400)),
    (52, 0, 2, SCHEDULED, -1, -1, "ETH_USDC maintenance", "ops", t(7_410)),
    (53, 0, 2, SCHEDULE_CANCELLED, -1, -1, "postponed", "ops", t(7_420)),
    (54, 1, 1, STEP_APPLIED, 1, OPEN_STATE, "", "", t(7_500)),
    (56, 0, 3, SCHEDULED, -1, -1, "perp reopens", "ops", t(7_520)),
    (57, 0, 3, STEP_BLOCKED, 0, -1, BLOCKED, "", t(7_600)),
    (59, 1, 3, STEP_APPLIED, 0, POST_ONLY_STATE, "", "", t(7_620)),
]
MAINTENANCE_STEPS = [
    (1, 0, SOL_USDC, t(7_400), POST_ONLY_STATE),
    (1, 1, SOL_USDC, t(7_500), OPEN_STATE),
    (2, 0, 2, t(9_000), CLOSED_STATE),
    (3, 0, SOL_PERP, t(7_600), POST_ONLY_STATE),
]
ADJUSTMENTS = [
    (75, 0, D, USDC, 2_500_000, "INC-1", "ops", 17, t(7_900)),
    (76, 0, D, USDC, -1_000_000, "INC-2", "ops", 18, t(7_910)),
]
WITHDRAWAL_FREEZES = [(68, 0, 1, "audit", "auditor", t(7_780)), (70, 0, 0, "checked", "ops", t(7_800))]

# ---- schema version 3: borrowing, lending, interest ------------------------------------
BORROW, LEND = int(BorrowLendSide.BORROW), int(BorrowLendSide.LEND)
KIND_BORROW, KIND_REPAY, KIND_LEND, KIND_REDEEM = 0, 1, 2, 3  # records.BorrowLendKind
# Interest at seq 80: utilization 100 / 500 = 20%, so the yearly rate is 5% + 15% x 20 / 80
# = 8.75%; F's hour is ceil(100 USDC x 8.75% / 8,760) = 999 atomic; lenders get 90%, 899,
# all E's; the 100 left is the spread. E's rate: 899 x 8,760 / 500 USDC = 1.575048% a year.
BORROW_RATE_E9 = 87_500_000
LEND_RATE_E9 = 15_750_480
# account, asset, opened seq, side, quantity, interest, rate sum, rounds, closed seq, opened ns, updated seq and ns
BORROW_LEND_POSITIONS = [
    (E, USDC, 77, LEND, 0, 899, LEND_RATE_E9, 1, 82, t(8_000), 82, t(14_420)),
    (E, USDC, 82, BORROW, 9_999_101, 0, 0, 0, -1, t(14_420), 82, t(14_420)),
    (F, USDC, 78, BORROW, 0, 999, BORROW_RATE_E9, 1, 81, t(8_010), 81, t(14_410)),
    (F, USDC, 81, LEND, 19_999_001, 0, 0, 0, -1, t(14_410), 81, t(14_410)),
]
# seq, event, part, account, asset, kind, amount, position, quantity after, entry, time
BORROW_LEND_MOVES = [
    (77, 1, 0, E, USDC, KIND_LEND, 500_000_000, 77, 500_000_000, 19, t(8_000)),
    (78, 1, 0, F, USDC, KIND_BORROW, 100_000_000, 78, 100_000_000, 20, t(8_010)),
    # F's 120 USDC repay the borrow with its interest (100.000999), the rest is lent
    (81, 1, 0, F, USDC, KIND_REPAY, 100_000_999, 78, 0, 22, t(14_410)),
    (81, 1, 1, F, USDC, KIND_LEND, 19_999_001, 81, 19_999_001, 22, t(14_410)),
    # E's 510 USDC first redeem the lend with its interest (500.000899), the rest is borrowed
    (82, 1, 0, E, USDC, KIND_REDEEM, 500_000_899, 77, 0, 23, t(14_420)),
    (82, 1, 1, E, USDC, KIND_BORROW, 9_999_101, 82, 9_999_101, 23, t(14_420)),
]
# asset, seq, rate, borrowed, lent, paid, to lenders, spread, entry, time
INTEREST_ROUNDS = [(USDC, 80, BORROW_RATE_E9, 100_000_000, 500_000_000, 999, 899, 100, 21, t(14_400))]
# seq, asset, account, amount, rate, position, time
INTEREST_PAYMENTS = [
    (80, USDC, FEES, 100, 0, -1, t(14_400)),
    (80, USDC, E, 899, LEND_RATE_E9, 77, t(14_400)),
    (80, USDC, F, -999, BORROW_RATE_E9, 78, t(14_400)),
]

# ---- schema version 4: perpetual positions and settlements ------------------------------
KIND_ADL = 1  # records.SettlementSource
KIND_ADJUSTMENT = 4
# account, market, opened seq and index, size, cost, opened steps and notional, closed steps
# and notional, realized PnL, fees, funding, liquidated steps, closed seq, opened and closed
# ns, updated seq and ns. Both positions open with trade 6 at 100.00 (D taker, 0.05 USDC; E
# maker, 0.02), pay and receive the 1 USDC of funding at seq 46, and close by D's
# auto-deleveraging at the mark 85.00 (a notional of 85 USDC): D's whole long is liquidated.
CLOSED_AT_48 = (48, t(3_910), t(7_220), 48, t(7_220))
PERP_POSITIONS = [
    (D, SOL_PERP, 42, 2, 0, 0, 100, 100_000_000, 100, 85_000_000, -15_000_000, 50_000, -1_000_000, 100, *CLOSED_AT_48),
    (E, SOL_PERP, 42, 3, 0, 0, 100, 100_000_000, 100, 85_000_000, 15_000_000, 20_000, 1_000_000, 0, *CLOSED_AT_48),
]
# seq, event, line, account, asset, amount, source, market, position's opened seq and index, time:
# the auto-deleveraging's realized PnL (entry 15 holds the same amounts)
SETTLEMENTS = [
    (48, 4, 0, D, USDC, -15_000_000, KIND_ADL, SOL_PERP, 42, 2, t(7_220)),
    (48, 5, 0, E, USDC, 15_000_000, KIND_ADL, SOL_PERP, 42, 3, t(7_220)),
    # schema version 5: an adjustment is a settlement of the account's (its entry's user line)
    (75, 1, 1, D, USDC, 2_500_000, KIND_ADJUSTMENT, -1, -1, -1, t(7_900)),
    (76, 1, 1, D, USDC, -1_000_000, KIND_ADJUSTMENT, -1, -1, -1, t(7_910)),
]


def expected_dump(last_seq: int = LAST_SEQ, last_ns: int = t(LAST_NS_SECONDS)) -> dict[str, Sequence[tuple[Any, ...]]]:
    """Return every table's rows after the whole session, as HistoryStore.dump gives them."""
    return {
        "meta": [("schema_version", schema.SCHEMA_VERSION)],
        "position": [(1, last_seq, last_ns)],
        "assets": ASSETS,
        "markets": MARKETS,
        "accounts": ACCOUNTS,
        "orders": ORDERS,
        "order_updates": ORDER_UPDATES,
        "fills": FILLS,
        "trades": TRADES,
        "ledger_lines": sorted(LEDGER_LINES),
        "kline_bars": sorted(KLINE_BARS),
        "deposits": DEPOSITS,
        "deposit_updates": DEPOSIT_UPDATES,
        "credits": CREDITS,
        "withdrawals": WITHDRAWALS,
        "withdrawal_updates": WITHDRAWAL_UPDATES,
        "funding_rounds": FUNDING_ROUNDS,
        "funding_payments": FUNDING_PAYMENTS,
        "position_changes": POSITION_CHANGES,
        "liquidations": LIQUIDATIONS,
        "market_state_changes": MARKET_STATE_CHANGES,
        "maintenance_events": MAINTENANCE_EVENTS,
        "maintenance_steps": MAINTENANCE_STEPS,
        "adjustments": ADJUSTMENTS,
        "withdrawal_freezes": WITHDRAWAL_FREEZES,
        "borrow_lend_positions": BORROW_LEND_POSITIONS,
        "borrow_lend_moves": BORROW_LEND_MOVES,
        "interest_rounds": INTEREST_ROUNDS,
        "interest_payments": INTEREST_PAYMENTS,
        "perp_positions": PERP_POSITIONS,
        "settlements": SETTLEMENTS,
    }
