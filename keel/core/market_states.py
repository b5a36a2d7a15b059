"""Market states and the maintenance schedule: what each market accepts, and when it changes.

Acceptance (docs/market-states.md has the table; every cell is tested):

    state       new order that would rest  taking order / IOC / FOK  market order  cancel
    Open        yes                        yes                       yes           yes
    PostOnly    yes                        MARKET_POST_ONLY          MARKET_POST_ONLY yes
    LimitOnly   yes                        yes                       MARKET_LIMIT_ONLY yes
    CancelOnly  MARKET_NOT_OPEN            MARKET_NOT_OPEN           MARKET_NOT_OPEN yes
    Closed      MARKET_NOT_OPEN            MARKET_NOT_OPEN           MARKET_NOT_OPEN MARKET_NOT_OPEN

Closed means nothing but reading (issue 6), so even cancels wait. Resting orders survive
every state change. Transitions: any state may go to any other, except that a market
leaves Closed only for PostOnly (or CancelOnly), and a perpetual leaves Closed only once
its index price has been updated after it closed (a stale or migrated price must not
reopen a book). While a market is Closed it pays no funding (the round is skipped, not
deferred) and its positions are not liquidated (the book cannot take them).

A maintenance schedule is engine state created by `ScheduleMaintenance`: steps (time,
markets, state) applied by the first Tick at or after each step's time, in order. A step
whose transition is refused (say, the index was not refreshed yet) stays pending and
is retried at every Tick, with a `MaintenanceStepBlocked` event the first time; later
steps wait for it. Schedules can be cancelled; finished ones stay listed.

Resting orders survive halts untouched unless the schedule says otherwise: a step named in
`cancel_orders_steps` cancels, right after its state change, every open order of its
markets (order id order, EndReason ORDER_BOOK_CLOSED, holds released) and then every
pending trigger of those markets (order id order), all in the same Tick.

Imports: commands, errors, events, markets, matching, orders, state, triggers.
"""

from __future__ import annotations

from keel.core import limits
from keel.core.commands import CancelMaintenance, ScheduleMaintenance, SetMarketState, Tick
from keel.core.errors import RejectCode, Rejected
from keel.core.events import (
    Event,
    MaintenanceCancelled,
    MaintenanceScheduled,
    MaintenanceStepApplied,
    MaintenanceStepBlocked,
    MarketStateChanged,
)
from keel.core.markets import Maintenance, MaintenanceStep, Market, MarketKind, MarketState
from keel.core.matching import cancel_open_order
from keel.core.orders import EndReason
from keel.core.state import ExchangeState
from keel.core.triggers import remove_trigger

ALL_MARKETS = -1
_CLOSED = int(MarketState.CLOSED)
_NAMES = {int(state): state.name for state in MarketState}
_LEAVES_CLOSED = (_CLOSED, int(MarketState.POST_ONLY), int(MarketState.CANCEL_ONLY))
_BOOK_CLOSED = int(EndReason.ORDER_BOOK_CLOSED)


def _transition_problem(state: ExchangeState, market: Market, target: int) -> str:
    """Return why a market may not move to `target` now ('' when it may)."""
    if market.state == _CLOSED and target not in _LEAVES_CLOSED:
        return f"{market.symbol} is Closed: it reopens through PostOnly"
    if (
        market.state == _CLOSED
        and target not in (_CLOSED, MarketState.CANCEL_ONLY)  # CancelOnly trades nothing: no price needed
        and market.kind == MarketKind.PERP
        and state.index_updated_ns[market.base_asset_id] <= market.state_changed_ns
    ):
        return f"{market.symbol}: the index price has not been refreshed since the market closed"
    return ""


def _targets(state: ExchangeState, market_id: int) -> list[Market]:
    if market_id == ALL_MARKETS:
        return list(state.markets)
    if not 0 <= market_id < len(state.markets):
        raise Rejected(RejectCode.UNKNOWN_MARKET, f"market {market_id} does not exist")
    return [state.markets[market_id]]


def _apply_state(
    state: ExchangeState, markets: list[Market], target: int, reason: str, operator: str, events: list[Event]
) -> None:
    now = state.timestamp_ns_last
    for market in markets:
        if market.state == target:
            continue
        before = market.state
        market.state = MarketState(target)
        market.state_changed_ns = now
        events.append(MarketStateChanged(market.market_id, int(before), target, reason, operator))


def _check_state_value(target: int) -> None:
    if target not in _NAMES:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"unknown market state {target}")


def _check_text(reason: str, operator: str) -> None:
    if not operator or len(operator) > 64:
        raise Rejected(RejectCode.ORDER_MALFORMED, "name the operator (1 to 64 characters)")
    if not reason or len(reason) > limits.text_max:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"give a reason (1 to {limits.text_max} characters)")


def set_market_state(state: ExchangeState, command: SetMarketState, events: list[Event]) -> None:
    """Move one market, or every market (market_id -1), to a state (operator).

    Raises Rejected(UNKNOWN_MARKET, ORDER_MALFORMED, MARKET_STATE_TRANSITION)."""
    _check_state_value(command.state)
    _check_text(command.reason, command.operator)
    markets = _targets(state, command.market_id)
    problems = [problem for market in markets if (problem := _transition_problem(state, market, command.state))]
    if problems:
        raise Rejected(RejectCode.MARKET_STATE_TRANSITION, "; ".join(problems))
    _apply_state(state, markets, command.state, command.reason, command.operator, events)


def schedule_maintenance(state: ExchangeState, command: ScheduleMaintenance, events: list[Event]) -> None:
    """Record a maintenance schedule (operator). Raises Rejected(ORDER_MALFORMED, UNKNOWN_MARKET,
    MARKET_STATE_TRANSITION)."""
    _check_text(command.announcement, command.operator)
    steps = command.steps
    if not 1 <= len(steps) <= limits.maintenance_steps_max:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"a schedule has 1 to {limits.maintenance_steps_max} steps")
    if sum(1 for schedule in state.maintenances if schedule.active) >= limits.maintenances_active_max:
        raise Rejected(RejectCode.ORDER_MALFORMED, f"at most {limits.maintenances_active_max} active schedules")
    cancels = command.cancel_orders_steps
    if any(not 0 <= index < len(steps) for index in cancels) or list(cancels) != sorted(set(cancels)):
        raise Rejected(
            RejectCode.ORDER_MALFORMED, "the steps that cancel orders are step indexes, each once, in ascending order"
        )
    previous = command.timestamp_ns
    # Walk the planned states so an illegal path is refused now, not at 10:00 on the day.
    planned = {market.market_id: int(market.state) for market in state.markets}
    for time_ns, market_ids, target in steps:
        _check_state_value(target)
        if time_ns < previous:
            raise Rejected(RejectCode.ORDER_MALFORMED, "steps must be in time order and not in the past")
        previous = time_ns
        for market_id in market_ids:
            if not 0 <= market_id < len(state.markets):
                raise Rejected(RejectCode.UNKNOWN_MARKET, f"market {market_id} does not exist")
        for market_id in market_ids or tuple(planned):
            if planned[market_id] == _CLOSED and target not in (
                _CLOSED,
                MarketState.POST_ONLY,
                MarketState.CANCEL_ONLY,
            ):
                raise Rejected(
                    RejectCode.MARKET_STATE_TRANSITION,
                    f"{state.markets[market_id].symbol} would leave Closed for {_NAMES[target]}: "
                    "a market reopens through PostOnly",
                )
            planned[market_id] = target
    schedule_id = len(state.maintenances) + 1
    state.maintenances.append(
        Maintenance(
            schedule_id,
            command.announcement,
            command.operator,
            [
                MaintenanceStep(time_ns, tuple(market_ids), target, cancel_orders=index in cancels)
                for index, (time_ns, market_ids, target) in enumerate(steps)
            ],
        )
    )
    events.append(MaintenanceScheduled(schedule_id, command.announcement, command.operator, command.steps, cancels))


def cancel_maintenance(state: ExchangeState, command: CancelMaintenance, events: list[Event]) -> None:
    """Cancel the remaining steps of a schedule (operator). Raises Rejected(UNKNOWN_SCHEDULE)."""
    _check_text(command.reason, command.operator)
    if not 1 <= command.schedule_id <= len(state.maintenances):
        raise Rejected(RejectCode.UNKNOWN_SCHEDULE, f"maintenance schedule {command.schedule_id} does not exist")
    schedule = state.maintenances[command.schedule_id - 1]
    if not schedule.active:
        raise Rejected(RejectCode.UNKNOWN_SCHEDULE, f"maintenance schedule {command.schedule_id} is not active")
    schedule.cancelled = True
    events.append(MaintenanceCancelled(command.schedule_id, command.reason, command.operator))


def run_due_steps(state: ExchangeState, command: Tick, events: list[Event]) -> None:
    """Apply every due step of every active schedule, in schedule then step order."""
    now = command.timestamp_ns
    for schedule in state.maintenances:
        if not schedule.active:
            continue
        for index, step in enumerate(schedule.steps):
            if step.done:
                continue
            if step.time_ns > now:
                break
            markets = list(state.markets) if not step.market_ids else [state.markets[m] for m in step.market_ids]
            problems = [problem for market in markets if (problem := _transition_problem(state, market, step.state))]
            if problems:
                if not step.blocked:
                    step.blocked = True
                    events.append(MaintenanceStepBlocked(schedule.schedule_id, index, "; ".join(problems)))
                break
            _apply_state(
                state,
                markets,
                step.state,
                f"maintenance {schedule.schedule_id} step {index + 1}",
                schedule.operator,
                events,
            )
            step.done = True
            events.append(MaintenanceStepApplied(schedule.schedule_id, index, step.state))
            if step.cancel_orders:
                _cancel_everything(state, [market.market_id for market in markets], events)


def _cancel_everything(state: ExchangeState, market_ids: list[int], events: list[Event]) -> None:
    """Cancel every open order, then every pending trigger, of the markets (order id order)."""
    chosen = set(market_ids)
    for order in sorted(
        (order for order in state.orders.values() if order.market_id in chosen), key=lambda order: order.order_id
    ):
        cancel_open_order(state, order, state.accounts[order.account_id], _BOOK_CLOSED, events)
    for trigger in sorted(
        (trigger for trigger in state.triggers.values() if trigger.market_id in chosen),
        key=lambda trigger: trigger.order_id,
    ):
        remove_trigger(state, trigger, events, _BOOK_CLOSED)
