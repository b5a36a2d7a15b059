"""`keel market state|list` and `keel maintenance schedule|list|cancel`: market states and maintenance.

Each change is one logged command (`SetMarketState`, `ScheduleMaintenance`,
`CancelMaintenance`) carrying the operator's name and a reason, sent through the
operator API of the node serving the directory, or through a node of its own when none
does (operator_api.py). The engine decides every transition (docs/market-states.md): a
refusal is printed with its code and message and exits 1; nothing is logged for a bad
argument (unknown symbol, bad state name, bad time), which exits 2.

Times are UTC. A step is TIME=STATE where TIME is HH:MM[:SS] on the day given by
--date (YYYY-MM-DD), or a full ISO date and time (2026-01-05T10:00); steps must be in
time order and in the future. State names are the API's (Open, PostOnly, LimitOnly,
CancelOnly, Closed), in any case.

Imports: keel.core, keel.node, keel.cli.
"""

from __future__ import annotations

import datetime
import getpass
import json
import time
from pathlib import Path
from typing import Any, Final

import typer
from rich.table import Table

from keel.cli.node_commands import DATA_HELP, console, fail
from keel.cli.operator_api import (
    CommandFailed,
    OperatorApi,
    open_node,
    open_read_only,
    serving_url,
    submit,
)
from keel.core.commands import CancelMaintenance, ScheduleMaintenance, SetMarketState
from keel.core.events import MaintenanceCancelled, MaintenanceScheduled, MarketStateChanged
from keel.core.markets import MarketKind, MarketState
from keel.core.state import ExchangeState

STATE_NAMES: Final = {
    MarketState.OPEN: "Open",
    MarketState.POST_ONLY: "PostOnly",
    MarketState.LIMIT_ONLY: "LimitOnly",
    MarketState.CANCEL_ONLY: "CancelOnly",
    MarketState.CLOSED: "Closed",
}
_STATES_IN: Final = {name.lower(): state for state, name in STATE_NAMES.items()}
ALL_MARKETS: Final = -1
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def default_operator() -> str:
    """The operator's name when --operator is not given: the login name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


OPERATOR_HELP: Final = "Who makes the change (logged with it); default: your login name."


def parse_state(name: str) -> MarketState:
    """Return a market state by name (Open, PostOnly, LimitOnly, CancelOnly, Closed; any case)."""
    found = _STATES_IN.get(name.replace("-", "").replace("_", "").lower())
    if found is None:
        raise CommandFailed(f"unknown state {name!r}: expected one of {', '.join(STATE_NAMES.values())}", 2)
    return found


def iso(timestamp_ns: int) -> str:
    """A time as operators read it: '2026-01-05 10:00:00 UTC'."""
    moment = _EPOCH + datetime.timedelta(microseconds=timestamp_ns // 1_000)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _run(action: Any) -> Any:
    try:
        return action()
    except CommandFailed as failed:
        raise fail(failed.message, failed.code) from None


def _market_ids(state: ExchangeState, symbols: list[str]) -> tuple[int, ...]:
    ids = []
    for symbol in symbols:
        market_id = state.market_ids_by_symbol.get(symbol.upper())
        if market_id is None:
            listed = ", ".join(market.symbol for market in state.markets)
            raise CommandFailed(f"unknown market {symbol} (listed: {listed})", 2)
        ids.append(market_id)
    return tuple(ids)


def _api_symbols(api: OperatorApi, symbols: list[str]) -> list[str]:
    """Check symbols against the serving node's markets (exit 2 naming the listed ones)."""
    listed = [market["symbol"] for market in api.call("GET", "/operator/v1/markets", "operatorMarketStates")]
    for symbol in symbols:
        if symbol.upper() not in listed:
            raise CommandFailed(f"unknown market {symbol} (listed: {', '.join(listed)})", 2)
    return [symbol.upper() for symbol in symbols]


# ---- keel market state / list ------------------------------------------------------------
def _set_state(data: Path, symbol: str | None, state: MarketState, reason: str, operator: str) -> dict[str, Any]:
    url = serving_url(data)
    if url is not None:
        api = OperatorApi(url, data)
        params: dict[str, Any] = {"state": STATE_NAMES[state], "reason": reason, "operator": operator}
        if symbol is None:
            params["all"] = True
        else:
            params["symbol"] = _api_symbols(api, [symbol])[0]
        answer = api.call("POST", "/operator/v1/marketState", "operatorMarketState", params)
        return {"seq": answer["seq"], "through": url, "changes": answer["changes"]}
    node = open_node(data, "keel market state")
    try:
        engine_state = node.engine.state
        market_id = ALL_MARKETS if symbol is None else _market_ids(engine_state, [symbol])[0]
        outcome = submit(
            node,
            SetMarketState(
                seq=0, timestamp_ns=0, market_id=market_id, state=int(state), reason=reason, operator=operator
            ),
        )
        markets = engine_state.markets
        changes = [
            {
                "symbol": markets[event.market_id].symbol,
                "before": STATE_NAMES[MarketState(event.state_before)],
                "state": STATE_NAMES[MarketState(event.state)],
            }
            for event in outcome.events
            if isinstance(event, MarketStateChanged)
        ]
    finally:
        node.close()
    return {"seq": outcome.seq, "through": None, "changes": changes}


def market_state(
    arguments: list[str] = typer.Argument(..., metavar="[SYMBOL] STATE", help="A market and its new state."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    all_markets: bool = typer.Option(False, "--all", help="Every market (then give only STATE)."),
    reason: str = typer.Option(..., "--reason", help="Why (logged with the change)."),
    operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Move one market (or every market, --all) to Open, PostOnly, LimitOnly, CancelOnly or Closed."""
    expected = 1 if all_markets else 2
    if len(arguments) != expected:
        usage = "STATE with --all" if all_markets else "SYMBOL STATE (or --all STATE)"
        raise fail(f"expected {usage}, got {' '.join(arguments)!r}", 2)
    symbol = None if all_markets else arguments[0]
    result = _run(lambda: _set_state(data, symbol, parse_state(arguments[-1]), reason, operator))
    if json_output:
        typer.echo(json.dumps(result))
        return
    through = f" (through {result['through']})" if result["through"] else ""
    if not result["changes"]:
        target = "every market is" if symbol is None else f"{symbol.upper()} is"
        console.print(f"seq {result['seq']}: {target} already {STATE_NAMES[parse_state(arguments[-1])]}{through}")
        return
    console.print(f"seq {result['seq']}: market state changed{through}", highlight=False)
    table = Table("market", "before", "now")
    for change in result["changes"]:
        table.add_row(change["symbol"], change["before"], change["state"])
    console.print(table)


def _market_rows(state: ExchangeState) -> list[dict[str, Any]]:
    return [
        {
            "symbol": market.symbol,
            "marketType": "PERP" if market.kind == MarketKind.PERP else "SPOT",
            "orderBookState": STATE_NAMES[MarketState(market.state)],
            "since": iso(market.state_changed_ns) if market.state_changed_ns else None,
        }
        for market in state.markets
    ]


def market_list(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show every market's state (read-only)."""

    def read() -> list[dict[str, Any]]:
        url = serving_url(data)
        if url is not None:
            answer = OperatorApi(url, data).call("GET", "/operator/v1/markets", "operatorMarketStates")
            return [
                {
                    "symbol": one["symbol"],
                    "marketType": one["marketType"],
                    "orderBookState": one["orderBookState"],
                    "since": one["stateChangedAt"],
                }
                for one in answer
            ]
        node = open_read_only(data)
        try:
            return _market_rows(node.engine.state)
        finally:
            node.close()

    rows = _run(read)
    if json_output:
        typer.echo(json.dumps(rows))
        return
    table = Table("market", "type", "state", "since")
    for row in rows:
        table.add_row(row["symbol"], row["marketType"], row["orderBookState"], row["since"] or "-")
    console.print(table)


# ---- keel maintenance schedule / list / cancel --------------------------------------------
def parse_step_time(text: str, date: str | None) -> int:
    """Return a step time in ns: HH:MM[:SS] on `date`, or a full ISO date and time (UTC)."""
    try:
        if "T" in text or " " in text.strip():
            moment = datetime.datetime.fromisoformat(text.strip().removesuffix("Z"))
        else:
            if date is None:
                raise CommandFailed(f"step time {text!r} has no date: give --date YYYY-MM-DD (UTC)", 2)
            day = datetime.date.fromisoformat(date)
            clock = datetime.time.fromisoformat(text.strip())
            moment = datetime.datetime.combine(day, clock)
    except ValueError:
        raise CommandFailed(
            f"bad time {text!r}: expected HH:MM (with --date YYYY-MM-DD) or YYYY-MM-DDTHH:MM, in UTC", 2
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


CANCEL_SUFFIX = "+cancel"  # --step 10:00=Closed+cancel also cancels the markets' orders


def parse_steps(steps: list[str], date: str | None, now_ns: int) -> list[tuple[int, MarketState, bool]]:
    """Return (time ns, state, cancels orders) per --step TIME=STATE[+cancel]; refuse disorder
    and the past (exit 2)."""
    if not steps:
        raise CommandFailed("give at least one --step TIME=STATE, e.g. --step 10:00=Closed", 2)
    parsed: list[tuple[int, MarketState, bool]] = []
    for step in steps:
        time_text, separator, state_name = step.partition("=")
        if not separator:
            raise CommandFailed(f"a step is TIME=STATE[+cancel] (e.g. 10:00=Closed), not {step!r}", 2)
        cancels = state_name.lower().endswith(CANCEL_SUFFIX)
        if cancels:
            state_name = state_name[: -len(CANCEL_SUFFIX)]
        time_ns = parse_step_time(time_text, date)
        if time_ns <= now_ns:
            raise CommandFailed(f"step {step!r} is in the past ({iso(time_ns)})", 2)
        if parsed and time_ns < parsed[-1][0]:
            raise CommandFailed(f"step {step!r} comes before the step before it: steps are in time order", 2)
        parsed.append((time_ns, parse_state(state_name), cancels))
    return parsed


def _schedule(
    data: Path, steps: list[tuple[int, MarketState, bool]], symbols: list[str], announcement: str, operator: str
) -> dict[str, Any]:
    url = serving_url(data)
    if url is not None:
        api = OperatorApi(url, data)
        chosen = _api_symbols(api, symbols)
        answer = api.call(
            "POST",
            "/operator/v1/maintenance",
            "operatorMaintenanceSchedule",
            {
                "announcement": announcement,
                "operator": operator,
                "steps": ",".join(
                    f"{time_ns // 1_000_000}={STATE_NAMES[state]}{CANCEL_SUFFIX if cancels else ''}"
                    for time_ns, state, cancels in steps
                ),
                "markets": ",".join(chosen),
            },
        )
        return {
            "seq": answer["seq"],
            "through": url,
            "schedule_id": answer["scheduleId"],
            "announcement": answer["announcement"],
            "steps": [
                {
                    "time": iso(step["time"] * 1_000_000),
                    "state": step["state"],
                    "markets": step["markets"],
                    "cancel_orders": step["cancelOrders"],
                }
                for step in answer["steps"]
            ],
        }
    node = open_node(data, "keel maintenance schedule")
    try:
        state = node.engine.state
        market_ids = _market_ids(state, symbols)
        outcome = submit(
            node,
            ScheduleMaintenance(
                seq=0,
                timestamp_ns=0,
                announcement=announcement,
                operator=operator,
                steps=tuple((time_ns, market_ids, int(target)) for time_ns, target, _ in steps),
                cancel_orders_steps=tuple(index for index, (_, _, cancels) in enumerate(steps) if cancels),
            ),
        )
        event = next(event for event in outcome.events if isinstance(event, MaintenanceScheduled))
        markets = state.markets
    finally:
        node.close()
    return {
        "seq": outcome.seq,
        "through": None,
        "schedule_id": event.schedule_id,
        "announcement": event.announcement,
        "steps": [
            {
                "time": iso(time_ns),
                "state": STATE_NAMES[MarketState(target)],
                "markets": [markets[market_id].symbol for market_id in ids],
                "cancel_orders": index in event.cancel_orders_steps,
            }
            for index, (time_ns, ids, target) in enumerate(event.steps)
        ],
    }


def _steps_table(steps: list[dict[str, Any]], progress: bool = False) -> Table:
    columns = ["step", "time", "state", "markets", "cancels orders"] + (["done"] if progress else [])
    table = Table(*columns)
    for index, step in enumerate(steps, start=1):
        row = [
            str(index),
            step["time"],
            step["state"],
            ", ".join(step["markets"]) or "all",
            "yes" if step["cancel_orders"] else "no",
        ]
        if progress:
            row.append("yes" if step["done"] else "blocked" if step["blocked"] else "no")
        table.add_row(*row)
    return table


def maintenance_schedule(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    step: list[str] = typer.Option(
        [],
        "--step",
        help="TIME=STATE, e.g. 10:00=Closed (repeat, in time order); STATE+cancel, e.g. "
        "10:00=Closed+cancel, also cancels the markets' resting orders and triggers.",
    ),
    date: str | None = typer.Option(None, "--date", help="The UTC day (YYYY-MM-DD) of steps given as HH:MM."),
    announcement: str = typer.Option(..., "--announcement", help="What users see in /api/v1/status."),
    market: list[str] = typer.Option([], "--market", help="A market the steps apply to (repeat); default: all."),
    operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Schedule maintenance: market states applied when the logged clock passes each step's time."""

    def run() -> dict[str, Any]:
        steps = parse_steps(step, date, time.time_ns())
        return _schedule(data, steps, market, announcement, operator)

    result = _run(run)
    if json_output:
        typer.echo(json.dumps(result))
        return
    through = f" (through {result['through']})" if result["through"] else ""
    console.print(
        f"seq {result['seq']}: maintenance schedule {result['schedule_id']} recorded{through}: "
        f"{result['announcement']}",
        highlight=False,
    )
    console.print(_steps_table(result["steps"]))


def _schedules(state: ExchangeState) -> list[dict[str, Any]]:
    markets = state.markets
    return [
        {
            "schedule_id": schedule.schedule_id,
            "announcement": schedule.announcement,
            "operator": schedule.operator,
            "status": "cancelled" if schedule.cancelled else "active" if schedule.active else "done",
            "steps": [
                {
                    "time": iso(step.time_ns),
                    "state": STATE_NAMES[MarketState(step.state)],
                    "markets": [markets[market_id].symbol for market_id in step.market_ids],
                    "done": step.done,
                    "blocked": step.blocked,
                    "cancel_orders": step.cancel_orders,
                }
                for step in schedule.steps
            ],
        }
        for schedule in state.maintenances
    ]


def maintenance_list(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List every maintenance schedule with its steps (read-only)."""

    def read() -> list[dict[str, Any]]:
        url = serving_url(data)
        if url is not None:
            answer = OperatorApi(url, data).call("GET", "/operator/v1/maintenance", "operatorMaintenanceList")
            return [
                {
                    "schedule_id": one["scheduleId"],
                    "announcement": one["announcement"],
                    "operator": one["operator"],
                    "status": one["status"],
                    "steps": [
                        {
                            "time": iso(step["time"] * 1_000_000),
                            "state": step["state"],
                            "markets": step["markets"],
                            "done": step["done"],
                            "blocked": step["blocked"],
                            "cancel_orders": step["cancelOrders"],
                        }
                        for step in one["steps"]
                    ],
                }
                for one in answer
            ]
        node = open_read_only(data)
        try:
            return _schedules(node.engine.state)
        finally:
            node.close()

    schedules = _run(read)
    if json_output:
        typer.echo(json.dumps(schedules))
        return
    if not schedules:
        console.print("no maintenance has been scheduled")
        return
    for schedule in schedules:
        console.print(
            f"schedule {schedule['schedule_id']} ({schedule['status']}, by {schedule['operator']}): "
            f"{schedule['announcement']}",
            highlight=False,
        )
        console.print(_steps_table(schedule["steps"], progress=True))


def maintenance_cancel(
    schedule_id: int = typer.Argument(..., help="The schedule's id (see `keel maintenance list`)."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    reason: str = typer.Option(..., "--reason", help="Why (logged with the cancellation)."),
    operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Cancel the remaining steps of a maintenance schedule (steps already applied stay applied)."""

    def run() -> dict[str, Any]:
        url = serving_url(data)
        if url is not None:
            answer = OperatorApi(url, data).call(
                "POST",
                "/operator/v1/maintenance/cancel",
                "operatorMaintenanceCancel",
                {"scheduleId": schedule_id, "reason": reason, "operator": operator},
            )
            return {"seq": answer["seq"], "through": url, "schedule_id": answer["scheduleId"]}
        node = open_node(data, "keel maintenance cancel")
        try:
            outcome = submit(
                node,
                CancelMaintenance(seq=0, timestamp_ns=0, schedule_id=schedule_id, reason=reason, operator=operator),
            )
        finally:
            node.close()
        event = next(event for event in outcome.events if isinstance(event, MaintenanceCancelled))
        return {"seq": outcome.seq, "through": None, "schedule_id": event.schedule_id}

    result = _run(run)
    if json_output:
        typer.echo(json.dumps(result))
        return
    through = f" (through {result['through']})" if result["through"] else ""
    console.print(f"seq {result['seq']}: maintenance schedule {result['schedule_id']} cancelled{through}")


def group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """Return the `keel NAME` command group, creating it unless another module already has
    (so that, say, `keel maintenance run` and `keel maintenance schedule` share one group)."""
    for registered in app.registered_groups:
        if registered.name == name and registered.typer_instance is not None:
            return registered.typer_instance
    created = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(created, name=name)
    return created


def register(app: typer.Typer) -> None:
    """Add `keel market state|list` and `keel maintenance schedule|list|cancel` to the `keel` app."""
    market_app = group(app, "market", "Market states (Open, PostOnly, LimitOnly, CancelOnly, Closed).")
    market_app.command("state")(market_state)
    market_app.command("list")(market_list)
    maintenance_app = group(app, "maintenance", "Scheduled maintenance: market states by time.")
    maintenance_app.command("schedule")(maintenance_schedule)
    maintenance_app.command("list")(maintenance_list)
    maintenance_app.command("cancel")(maintenance_cancel)
    from keel.cli.maintenance_run import maintenance_run, maintenance_status

    maintenance_app.command("run")(maintenance_run)
    maintenance_app.command("status")(maintenance_status)
