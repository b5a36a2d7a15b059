"""Margin terms left stale by mark moves (perps.py, "Stale terms and the bound") never
change a decision: below_maintenance and check_order_margin answer on stale terms exactly
as on terms valued afresh, however far and however often the marks moved; and the engine
produces the same events and state hashes with the bound as with it switched off (every
question then values the terms again). KEEL_LONG_TESTS=1 runs many more examples."""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from keel.bench import mixed
from keel.core import canonical, certificates, liquidation, matching, perps
from keel.core.accounts import INSURANCE_ACCOUNT_ID
from keel.core.commands import PlaceOrder, SetIndexPrices, Tick
from keel.core.engine import Engine
from keel.core.errors import Rejected
from keel.core.events import EntryReason, Event, LedgerPosted
from keel.core.invariants import audit
from keel.core.liquidation import below_maintenance
from keel.core.perps import DRIFT_CAP_E9, check_order_margin
from keel.core.snapshot import decode_state, encode_state
from keel.core.state import ExchangeState
from keel.testing.harness import Harness

USDC = 1_000_000
LONG = os.environ.get("KEEL_LONG_TESTS") == "1"  # many more examples


def _order_outcome(state: ExchangeState, account_id: int, market_id: int, is_buy: bool, steps: int) -> int:
    """check_order_margin's answer: 0 for accepted, else the reject code."""
    try:
        check_order_margin(state, state.accounts[account_id], state.markets[market_id], is_buy, steps, False)
    except Rejected as rejected:
        return int(rejected.code)
    return 0


@settings(max_examples=800 if LONG else 80, deadline=None)
@given(st.data())
def test_decisions_on_stale_terms_equal_decisions_on_fresh_terms(data: st.DataObject) -> None:
    h = Harness()
    h.list_defaults()
    sol = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    btc = h.list_perp("BTC_USDC_PERP", base_asset_id=h.asset("BTC"), fee_maker_bps=0, fee_taker_bps=0)
    assets = {sol: h.asset("SOL"), btc: h.asset("BTC")}
    h.ok(SetIndexPrices, prices=tuple((asset, 100 * USDC) for asset in assets.values()))
    maker = h.new_account(USDC=10**9 * USDC)
    traders = [h.new_account(USDC=data.draw(st.integers(3, 3_000), "usdc") * USDC) for _ in range(4)]
    for trader in traders:
        for perp in (sol, btc):
            if not data.draw(st.booleans(), "holds"):
                continue
            steps = data.draw(st.integers(1, 3_000), "steps")
            side = data.draw(st.integers(0, 1), "side")
            fields = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": steps}
            h.submit(PlaceOrder, account_id=maker, side=1 - side, **fields)
            h.submit(PlaceOrder, account_id=trader, side=side, **fields)  # may be refused for margin
            if data.draw(st.booleans(), "rests"):  # an open order widens the worst case
                price = 9_000 if side == 0 else 11_000
                h.submit(PlaceOrder, account_id=trader, side=side, **{**fields, "price_ticks": price})
    for _ in range(data.draw(st.integers(1, 8), "rounds")):
        if data.draw(st.booleans(), "tick"):
            h.submit(Tick)
        else:
            # Small moves accumulate drift; large ones pass the cap at once.
            prices = tuple(
                (asset, data.draw(st.integers(60, 160), "index") * USDC // 2 + data.draw(st.integers(0, 99), "cents"))
                for asset in assets.values()
                if data.draw(st.booleans(), "moves")
            )
            if prices:
                h.submit(SetIndexPrices, prices=prices)
        assert audit(h.state) == []  # includes the bound's inequalities for every account
        fresh = decode_state(encode_state(h.state))  # a restore values every term afresh
        for trader in traders:
            stale = copy.deepcopy(h.state)  # asking may refresh terms: keep h.state's stale ones
            assert below_maintenance(stale, stale.accounts[trader]) == below_maintenance(fresh, fresh.accounts[trader])
            for perp in (sol, btc):
                is_buy = data.draw(st.booleans(), "buy")
                steps = data.draw(st.integers(1, 5_000), "order steps")
                stale = copy.deepcopy(h.state)
                assert _order_outcome(stale, trader, perp, is_buy, steps) == _order_outcome(
                    fresh, trader, perp, is_buy, steps
                )


def _well_funded_long() -> tuple[Harness, int, int, int]:
    """SOL_USDC_PERP at an index of 100; a taker with 1,000,000 USDC long 1 SOL from a
    maker. Returns (harness, perpetual, SOL's asset id, the taker)."""
    h = Harness()
    h.list_defaults()
    perp = h.list_perp(fee_maker_bps=0, fee_taker_bps=0)
    sol = h.asset("SOL")
    h.ok(SetIndexPrices, prices=((sol, 100 * USDC),))
    maker, taker = h.new_account(USDC=10**6 * USDC), h.new_account(USDC=10**6 * USDC)
    fields = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": 100}
    h.ok(PlaceOrder, account_id=maker, side=1, **fields)
    h.ok(PlaceOrder, account_id=taker, side=0, **fields)
    return h, perp, sol, taker


def test_terms_stay_stale_across_small_moves_and_are_valued_again_past_the_cap() -> None:
    """A well-funded holder is not revalued at a small move (its bound decides); past the
    drift cap, the next question values its terms again."""
    h, perp, sol, taker = _well_funded_long()
    account = h.account(taker)
    valued_at = account.margin_terms[perp].mark
    h.ok(SetIndexPrices, prices=((sol, 101 * USDC),))
    assert h.state.markets[perp].mark_ticks != valued_at
    assert account.margin_terms[perp].mark == valued_at  # the engine's scan did not revalue it
    assert 0 < h.state.mark_drift - account.terms_drift <= DRIFT_CAP_E9
    assert not below_maintenance(h.state, account)
    assert account.margin_terms[perp].mark == valued_at  # the bound answered
    drift_before = account.terms_drift
    h.ok(SetIndexPrices, prices=((sol, 101 * USDC // 4),))  # a 75% fall: past the cap
    assert h.state.mark_drift - drift_before > DRIFT_CAP_E9
    assert account.margin_terms[perp].mark == h.state.markets[perp].mark_ticks  # the scan revalued it
    assert account.terms_drift == h.state.mark_drift
    assert audit(h.state) == []


Action = tuple[str, int, int, int]  # (kind, who or asset, side or price, steps)


def _run(actions: list[Action], deposits: list[int]) -> tuple[list[list[Event]], bytes]:
    """Replay actions on a fresh exchange: two perpetuals, a market maker and traders."""
    h = Harness()
    h.list_defaults()
    perps_ = [h.list_perp(fee_maker_bps=0, fee_taker_bps=0)]
    perps_.append(h.list_perp("BTC_USDC_PERP", base_asset_id=h.asset("BTC"), fee_maker_bps=0, fee_taker_bps=0))
    assets = [h.asset("SOL"), h.asset("BTC")]
    h.ok(SetIndexPrices, prices=tuple((asset, 100 * USDC) for asset in assets))
    sol = 10 ** h.state.assets[assets[0]].decimals
    maker = h.new_account(USDC=10**9 * USDC, SOL=10**6 * sol)
    traders = [h.new_account(USDC=usdc * USDC, SOL=5 * sol) for usdc in deposits]
    spot = h.market("SOL_USDC")
    answers: list[list[Event]] = []
    for kind, first, second, steps in actions:
        if kind == "index":
            answers.append(h.submit(SetIndexPrices, prices=((assets[first], second),)))
        elif kind == "tick":
            answers.append(h.submit(Tick))
        elif kind == "quote":  # the maker rests an order at a price
            market, side = divmod(first, 2)
            fields = {"market_id": perps_[market], "order_type": 0, "price_ticks": second, "quantity_steps": steps}
            answers.append(h.submit(PlaceOrder, account_id=maker, side=side, **fields))
        elif kind == "spot":  # the maker rests at the index on SOL_USDC; a trader's limit order meets it
            trader, side = divmod(first, 2)
            price = h.state.index_prices[assets[0]] // 10_000  # SOL_USDC's tick: 0.01 USDC
            quote = {"market_id": spot, "order_type": 0, "price_ticks": price, "quantity_steps": steps}
            answers.append(h.submit(PlaceOrder, account_id=maker, side=1 - side, **quote))
            taking = {**quote, "quantity_steps": steps + second}  # the rest, if any, rests and is held
            answers.append(h.submit(PlaceOrder, account_id=traders[trader], side=side, **taking))
        else:  # the maker rests at the index, a trader takes it with a market order
            trader, market, side = first // 4, (first // 2) % 2, first % 2
            price = h.state.index_prices[assets[market]] // 10_000  # the perpetuals' tick: 0.01 USDC
            quote = {"market_id": perps_[market], "order_type": 0, "price_ticks": price, "quantity_steps": steps}
            answers.append(h.submit(PlaceOrder, account_id=maker, side=1 - side, **quote))
            fields = {"market_id": perps_[market], "order_type": 1, "quantity_steps": steps}
            answers.append(h.submit(PlaceOrder, account_id=traders[trader], side=side, **fields))
    assert audit(h.state) == []
    return answers, canonical.state_hash(h.state)


@st.composite
def _actions(draw: st.DrawFn, traders: int) -> list[Action]:
    """Traders' market orders against the maker at the index, which walks at random; the
    maker's resting quotes near it now and then (mostly one-sided books: the mark follows
    the index); traders' spot orders on SOL_USDC; Ticks."""
    prices = [100 * USDC, 100 * USDC]
    actions: list[Action] = []
    for _ in range(draw(st.integers(20, 80))):
        kind = draw(st.sampled_from(["index", "index", "tick", "quote", "order", "order", "order", "spot"]))
        if kind == "index":
            asset = draw(st.integers(0, 1))
            move = draw(st.sampled_from([1, 30, 100, 300, 1_000, 3_000]))  # at most bps
            prices[asset] = max(USDC, prices[asset] * (10_000 + draw(st.integers(-move, move))) // 10_000)
            actions.append(("index", asset, prices[asset], 0))
        elif kind == "tick":
            actions.append(("tick", 0, 0, 0))
        elif kind == "quote":
            market, side = draw(st.integers(0, 1)), draw(st.integers(0, 1))
            ticks = prices[market] // 10_000  # the perpetuals' tick is 0.01 USDC
            offset = draw(st.integers(0, max(1, ticks // 50)))
            price = ticks - offset if side == 0 else ticks + offset
            actions.append(("quote", market * 2 + side, max(1, price), draw(st.integers(1, 5_000))))
        elif kind == "spot":  # a margin account's spot order: held, so margin-checked (up to 6 SOL: some refused)
            who = draw(st.integers(0, traders * 2 - 1))
            actions.append(("spot", who, draw(st.integers(0, 200)), draw(st.integers(1, 400))))
        else:
            who = draw(st.integers(0, traders * 4 - 1))
            actions.append(("order", who, 0, draw(st.integers(1, 3_000))))
    return actions


@settings(max_examples=3_000 if LONG else 150, deadline=None)
@given(
    st.lists(st.integers(2, 300), min_size=1, max_size=4).flatmap(
        lambda deposits: st.tuples(st.just(deposits), _actions(len(deposits)))
    )
)
def test_an_engine_with_the_bound_decides_as_one_without_it(case: tuple[list[int], list[Action]]) -> None:
    """The same commands through the engine as it is, then with the bound switched off
    (every question values the terms again and the exact rule answers): the same events,
    command by command, and the same state hash, liquidations included."""
    deposits, actions = case
    with_bound = _run(actions, deposits)
    answers = [type(one).__name__ for events in with_bound[0] for one in events]
    event("liquidated" if "LiquidationStarted" in answers else "no liquidation")
    event("refused for margin" if "CommandRejected" in answers else "nothing refused")
    with pytest.MonkeyPatch.context() as patch:
        for module in (perps, liquidation, matching):
            patch.setattr(module, "drift_delta_e9", lambda state, account: -1)
        # and the spot margin check's shortcut on fresh terms: the exact rule alone
        patch.setattr(matching, "covered_without_collateral", lambda *arguments: False)
        patch.setattr(certificates, "ENABLED", False)  # they rest on the bound (certificates.py)
        without_bound = _run(actions, deposits)
    assert with_bound == without_bound


def test_the_bound_is_switched_off_by_the_patch_the_differential_test_uses() -> None:
    """The differential test above compares something: with the bound off, a small move
    makes the scan value a holder's terms again (with it, test_terms_stay_stale... shows
    they stay stale)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(liquidation, "drift_delta_e9", lambda state, account: -1)
        patch.setattr(certificates, "ENABLED", False)
        h, perp, sol, taker = _well_funded_long()
        h.ok(SetIndexPrices, prices=((sol, 101 * USDC),))
    assert h.account(taker).margin_terms[perp].mark == h.state.markets[perp].mark_ticks


@pytest.mark.parametrize("extra_drift", [0, DRIFT_CAP_E9 + 1])
def test_the_deficit_ranking_takes_from_holders_in_the_order_of_every_one_valued(extra_drift: int) -> None:
    """liquidation._cover_deficit ranks from bounds of stale terms (or, past the drift cap,
    from PnL summed at the marks) and values an account only when it comes to the top: its
    takes must be those of every other holder valued afresh and sorted by (profit
    descending, id ascending), for deficits that one holder covers, that several do, and
    that all of them together cannot."""
    engine = Engine()
    stamp = mixed.Stamp()
    for command in mixed.setup_commands(300, stamp):
        engine.apply(command)
    for _, segment in mixed.generate_flow(20_000, 7, 300, stamp).segments:
        for command in segment:
            engine.apply(command)
    base = engine.state
    base.mark_drift += extra_drift  # a larger drift is still a bound of the marks' moves
    bankrupt = next(iter(base.position_holders))
    valued = copy.deepcopy(base)
    ranking = sorted(
        (-profit, account_id)
        for account_id in valued.position_holders
        if account_id > 0
        and account_id != bankrupt
        and (profit := perps.unrealized_total_atomic(valued, valued.accounts[account_id])) > 0
    )
    assert len(ranking) > 10
    stale = [account for account in base.accounts.values() if account.terms_drift != base.mark_drift]
    assert stale, "the ranking must meet stale terms"
    profits = [-negative for negative, _ in ranking]
    margin_asset = base.margin_asset_id
    for deficit in (1, profits[0] + profits[1] + 1, sum(profits) + 7):
        state = copy.deepcopy(base)
        state.accounts[INSURANCE_ACCOUNT_ID].balances[margin_asset] = 0
        account = state.accounts[bankrupt]
        account.balances[margin_asset] = -deficit
        events: list[Event] = []
        liquidation._cover_deficit(state, account, state.seq_last, events, {})
        takes = [
            (event.lines[0][0], -event.lines[0][2])
            for event in events
            if isinstance(event, LedgerPosted) and event.reason == EntryReason.ADL
        ]
        expected = []
        left = deficit
        for negative_profit, account_id in ranking:
            if left == 0:
                break
            take = min(left, -negative_profit)
            expected.append((account_id, take))
            left -= take
        assert takes == expected
