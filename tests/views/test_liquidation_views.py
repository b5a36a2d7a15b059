"""History views of a borrow liquidation (liquidation.py steps 5 and 7): the account's
repayment and the insurance fund's takeover are borrow/lend movements, the first linked to
the liquidation entry that took the collateral, the fund's with no entry of its own; and
projecting the same log into a fresh store gives the same rows."""

from __future__ import annotations

from pathlib import Path

from keel.core.accounts import INSURANCE_ACCOUNT_ID
from keel.core.commands import BorrowLend, ListAsset, ListMarket, PlaceOrder, SetIndexPrices
from keel.core.events import EntryReason, LedgerPosted
from keel.testing.harness import Harness
from keel.views import Projector, StoreSettings, open_store
from keel.views.records import BorrowLendKind, SettlementSource

USDC = 1_000_000
SOL = 1_000_000_000


def liquidated_borrower() -> tuple[Harness, int]:
    """10 SOL, 800 USDC borrowed to buy 8 SOL more at 100, liquidated at SOL 50."""
    h = Harness()
    h.ok(ListAsset, symbol="USDC", decimals=6, borrow_imf_bps=1_000, borrow_mmf_bps=500)
    h.ok(ListAsset, symbol="SOL", decimals=9, collateral_weight_bps=9_000)
    h.ok(ListMarket, **h.sol_market_fields("SOL_USDC", fee_maker_bps=0, fee_taker_bps=0))
    h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    h.ok(SetIndexPrices, prices=((1, 100 * USDC),))
    lender = h.new_account(USDC=10_000 * USDC)
    h.ok(BorrowLend, account_id=lender, asset_id=0, side=1, amount_atomic=10_000 * USDC)
    seller = h.new_account(SOL=8 * SOL)
    borrower = h.new_account(SOL=10 * SOL)
    h.ok(BorrowLend, account_id=borrower, asset_id=0, side=0, amount_atomic=800 * USDC)
    spot = h.market("SOL_USDC")
    h.ok(PlaceOrder, account_id=seller, market_id=spot, side=1, order_type=0, price_ticks=10_000, quantity_steps=800)
    h.ok(PlaceOrder, account_id=borrower, market_id=spot, side=0, order_type=0, price_ticks=10_000, quantity_steps=800)
    h.ok(SetIndexPrices, prices=((1, 50 * USDC),))
    return h, borrower


def project(h: Harness, path: Path) -> dict[str, list[tuple[object, ...]]]:
    store = open_store(StoreSettings("sqlite", str(path)))
    try:
        pairs = zip(h.log, h.events, strict=True)
        items = [(command.seq, command.timestamp_ns, command, events) for command, events in pairs]
        Projector(store).apply(items)
        return store.dump()
    finally:
        store.close()


def test_a_borrow_liquidation_is_in_the_borrow_lend_history(tmp_path: Path) -> None:
    h, borrower = liquidated_borrower()
    dump = project(h, tmp_path / "one.sqlite")
    columns = ("seq", "event_index", "part", "account_id", "asset_id", "kind", "amount_atomic")
    liquidation_seq = h.log[-1].seq
    moves = [row for row in dump["borrow_lend_moves"] if row[0] == liquidation_seq]
    (entry,) = [e for e in h.events[-1] if isinstance(e, LedgerPosted) and e.reason == EntryReason.LIQUIDATION]
    assert [dict(zip(columns, row[:7], strict=True)) | {"entry_id": row[9]} for row in moves] == [
        {
            "seq": liquidation_seq,
            "event_index": moves[0][1],
            "part": 0,
            "account_id": borrower,
            "asset_id": 0,
            "kind": int(BorrowLendKind.BORROW_REPAY),
            "amount_atomic": 800 * USDC,
            "entry_id": entry.entry_id,
        },
        {
            "seq": liquidation_seq,
            "event_index": moves[1][1],
            "part": 0,
            "account_id": INSURANCE_ACCOUNT_ID,
            "asset_id": 0,
            "kind": int(BorrowLendKind.BORROW),
            "amount_atomic": 800 * USDC,
            "entry_id": -1,
        },
    ]
    # The SOL the insurance fund took is a settlement of the borrower's (no other history has it).
    settlements = [row for row in dump["settlements"] if row[0] == liquidation_seq]
    assert [(row[3], row[4], row[5], row[6]) for row in settlements] == [
        (borrower, 1, -16_160_000_000, int(SettlementSource.COLLATERAL))
    ]
    assert project(h, tmp_path / "two.sqlite") == dump
