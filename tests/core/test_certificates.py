"""Coverage certificates (certificates.py) only skip questions whose answer is known: the
engine gives the same events, command by command, and the same state hashes with them as
with them switched off, on random margin flows (orders, automatic borrowing, lends and
borrows, index moves, Ticks with funding and interest, deposits, cancels) and on the
mixed benchmark's flow; and a certified account is examined again as soon as it changes.
KEEL_LONG_TESTS=1 runs many more examples."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keel.bench import mixed
from keel.bench.mixed import Stamp, generate_flow, setup_commands
from keel.core import canonical, certificates, perps
from keel.core import engine as engine_module
from keel.core.commands import (
    Command,
    PlaceOrder,
    SetIndexPrices,
)
from keel.core.engine import Engine
from keel.core.events import Event, FundingSettled, LiquidationStarted
from keel.core.state import ExchangeState
from keel.testing.harness import Harness

USDC = 1_000_000
SOL = 1_000_000_000
HOUR_NS = 3_600_000_000_000
LONG = os.environ.get("KEEL_LONG_TESTS") == "1"

Action = tuple[int, str, int, int, int]  # (account, kind, side, price or index, steps or amount)


def _exchange() -> tuple[Harness, list[int]]:
    """USDC borrowable, SOL at 100 with a spot market and a perpetual; six accounts, some
    thin (50 USDC) and some with SOL, so that index moves liquidate now and then."""
    h = Harness(timestamp_step_ns=HOUR_NS // 4)
    h.list_margin_defaults()
    return h, h.margin_accounts()


def _run(actions: list[Action], hash_every: int) -> tuple[list[list[Event]], bytes]:
    h, accounts = _exchange()
    answers: list[list[Event]] = []
    for step, action in enumerate(actions):
        events = h.submit_margin_action(accounts, action)
        if events:  # a cancel with nothing open submits nothing
            answers.append(events)
        if hash_every and step % hash_every == 0:
            h.engine.state_hash()  # the hasher sweeps and clears the dirty list
    assert h.audit() == []
    assert h.engine.state_hash() == canonical.state_hash(h.state)
    return answers, canonical.state_hash(h.state)


_KINDS = ["perp", "perp", "market", "spot", "auto", "lend", "borrow", "index", "index", "tick", "deposit", "cancel"]


@settings(max_examples=3_000 if LONG else 300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(_KINDS),
            st.integers(0, 1),
            st.integers(8_500, 11_500),
            st.integers(1, 300),
        ),
        max_size=60,
    ),
    st.sampled_from([0, 1, 7]),
)
def test_certificates_change_no_event_and_no_hash(actions: list[Action], hash_every: int) -> None:
    """The same random margin flow with certificates and with them switched off: the same
    events command by command and the same end state hash (audit clean in both)."""
    with_certificates = _run(actions, hash_every)
    names = [type(one).__name__ for events in with_certificates[0] for one in events]
    event("liquidated" if LiquidationStarted.__name__ in names else "no liquidation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certificates, "ENABLED", False)
        without = _run(actions, hash_every)
    assert with_certificates == without


def _mixed(n: int, accounts: int) -> tuple[list[list[Event]], bytes, int]:
    """Replay the mixed benchmark's flow; return the events, the end state hash and how
    many candidates the scans after index updates were given."""
    engine = Engine()
    stamp = Stamp()
    commands: list[Command] = list(setup_commands(accounts, stamp))
    flow = generate_flow(n, 7, accounts, stamp, perps=True)
    for _, segment in flow.segments:
        commands.extend(segment)
    examined = [0]
    scan = engine_module.liquidate_where_needed

    def counting(state: ExchangeState, candidates: list[int], seq: int, events: list[Event]) -> None:
        if type(commands[seq - 1]) is SetIndexPrices:
            examined[0] += len(set(candidates))
        scan(state, candidates, seq, events)

    answers = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "liquidate_where_needed", counting)
        for index, command in enumerate(commands):
            answers.append(engine.apply(command))
            if index % 5_000 == 0:
                engine.state_hash()
    return answers, engine.state_hash(), examined[0]


def test_the_mixed_flow_is_the_same_with_and_without_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mixed benchmark's flow (spot and perpetual orders, index moves, a Tick every
    500 ops and funding every 5,000) gives the same events and hashes; and with
    certificates, index updates examine far fewer accounts. (Its liquidations need the
    full run's length; the random flows above liquidate.)"""
    monkeypatch.setattr(mixed, "TICK_EVERY", 500)
    with_certificates = _mixed(30_000, 300)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certificates, "ENABLED", False)
        without = _mixed(30_000, 300)
    assert sum(isinstance(one, FundingSettled) for events in without[0] for one in events) > 0
    assert with_certificates[:2] == without[:2]
    assert 0 < with_certificates[2] < without[2] // 2


def test_a_certified_account_that_changes_is_examined_again() -> None:
    """A long is certified by a Tick's scan; a spot order then holds most of its USDC (its
    coverage falls), and the next index move, which the certificate would have covered,
    finds it below maintenance."""
    h, _ = _exchange()
    sol, spot, perp = h.asset("SOL"), h.market("SOL_USDC"), h.market("SOL_USDC_PERP")
    maker = h.new_account(USDC=10**6 * USDC, SOL=10**4 * SOL)
    long = h.new_account(USDC=1_000 * USDC)
    quote = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": 1_000}  # 10 SOL
    h.ok(PlaceOrder, account_id=maker, side=1, **quote)
    h.ok(PlaceOrder, account_id=long, side=0, **quote)
    h.ok(SetIndexPrices, prices=((sol, 100 * USDC),))
    assert long not in h.state.uncertified  # certified: its USDC covers its need at the cap
    # A resting spot buy far below the book holds 970 USDC (30 left against 20 of initial
    # margin): the account is examined at once (its hold moved its collateral), still above
    # maintenance, and no longer certified.
    h.ok(PlaceOrder, account_id=long, market_id=spot, side=0, order_type=0, price_ticks=1_000, quantity_steps=9_700)
    assert long in h.state.uncertified
    answer = h.ok(SetIndexPrices, prices=((sol, 92 * USDC),))  # the mark falls: more than 30 USDC lost
    assert [one.account_id for one in answer if isinstance(one, LiquidationStarted)] == [long]
    assert h.audit() == []


def test_a_certificate_lapses_when_the_drift_passes_its_own_cap_and_no_other_does() -> None:
    """Holders certified at different drifts: once the drift passes the older one's reach,
    only that one is examined again (no reset of every certificate); a grant that would
    lapse at once is not made."""
    h, _ = _exchange()
    perp = h.market("SOL_USDC_PERP")
    maker = h.new_account(USDC=10**6 * USDC)
    older, newer, stale = (h.new_account(USDC=10**6 * USDC) for _ in range(3))
    quote = {"market_id": perp, "order_type": 0, "price_ticks": 10_000, "quantity_steps": 100}
    for account_id in (older, newer, stale):
        h.ok(PlaceOrder, account_id=maker, side=1, **quote)
        h.ok(PlaceOrder, account_id=account_id, side=0, **quote)
    state = h.state
    certificates.reset(state)  # every holder uncertified, no certificate filed
    bucket = certificates.BUCKET_E9
    state.mark_drift = 40 * bucket
    h.account(older).terms_drift = 30 * bucket
    h.account(newer).terms_drift = 39 * bucket
    h.account(stale).terms_drift = state.mark_drift - perps.DRIFT_CAP_E9 - 1  # past reach already
    for account_id in (older, newer, stale):
        certificates.grant(state, h.account(account_id))
    assert older not in state.uncertified and newer not in state.uncertified
    assert stale in state.uncertified
    state.mark_drift = 30 * bucket + perps.DRIFT_CAP_E9  # the older one's d0 is just within reach
    assert older not in certificates.uncertified_now(state)
    state.mark_drift += 1
    uncertified = certificates.uncertified_now(state)
    assert older in uncertified and newer not in uncertified
