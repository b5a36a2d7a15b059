"""Operator API for prices and markets: index prices, market states, maintenance schedules.

Routes under `/operator/v1/`, signed with the operator key like every operator route
(operator.py). Each write is one logged core command (`SetIndexPrices`,
`SetMarketState`, `ScheduleMaintenance`, `CancelMaintenance`) answered from its events
once durable; an engine refusal is the REJECTIONS status and code with the engine's
code named in the message. Reads copy engine state under the read lock.

Flat bodies (a signed body holds scalars only, spec 2.3):
- index prices: `prices` "SOL=142.5,BTC=97000", in the margin asset (USDC);
- maintenance steps: `steps` "TIME_MS=STATE,TIME_MS=STATE" (ms since the epoch, state
  names as in `orderBookState`; `STATE+cancel` also cancels the markets' orders),
  `markets` "SOL_USDC,BTC_USDC" ("" or absent: every market).

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post

from keel.core.commands import CancelMaintenance, ScheduleMaintenance, SetIndexPrices, SetMarketState
from keel.core.errors import Rejected
from keel.core.events import (
    LiquidationStarted,
    MaintenanceCancelled,
    MaintenanceScheduled,
    MarketStateChanged,
)
from keel.core.markets import MarketKind, MarketState
from keel.core.money import format_decimal, parse_decimal
from keel.core.state import ExchangeState
from keel.gateway import convert
from keel.gateway import format as fmt
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError, bad_request, raise_if_refused
from keel.gateway.markets import BOOK_STATES
from keel.gateway.web import body_of, gateway_of, json_response

OPERATOR: Final = {"operator": True}
STATES_IN: Final = {name: int(state) for state, name in BOOK_STATES.items()}
ALL_MARKETS: Final = -1
_PERP = int(MarketKind.PERP)


class IndexPricesBody(msgspec.Struct, rename="camel", kw_only=True):
    prices: str


class MarketStateBody(msgspec.Struct, rename="camel", kw_only=True):
    """One market (`symbol`) or every market (`all` true) to a state, with a reason and the operator."""

    state: str
    reason: str
    operator: str
    symbol: str | None = None
    all: bool = False


class ScheduleBody(msgspec.Struct, rename="camel", kw_only=True):
    announcement: str
    operator: str
    steps: str
    markets: str = ""


class CancelScheduleBody(msgspec.Struct, rename="camel", kw_only=True):
    schedule_id: int
    reason: str
    operator: str


BODIES: Final[dict[tuple[str, str], Any]] = {
    ("/operator/v1/indexPrices", "post"): IndexPricesBody,
    ("/operator/v1/marketState", "post"): MarketStateBody,
    ("/operator/v1/maintenance", "post"): ScheduleBody,
    ("/operator/v1/maintenance/cancel", "post"): CancelScheduleBody,
}


def state_of(name: str) -> int:
    """Return a market state by its API name (Open, PostOnly, LimitOnly, CancelOnly, Closed)."""
    found = STATES_IN.get(name)
    if found is None:
        raise bad_request(f"state must be one of {', '.join(STATES_IN)}, got {name[:32]!r}")
    return found


def _state_name(state: int) -> str:
    return BOOK_STATES[MarketState(state)]


@post(
    "/operator/v1/indexPrices",
    opt={"instruction": "operatorIndexPrices", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Set index prices (SetIndexPrices): marks follow, liquidations may start",
)
async def index_prices(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), IndexPricesBody, "index prices")
    margin_id, margin_decimals = gateway.read(
        lambda state: (
            state.margin_asset_id,
            state.assets[state.margin_asset_id].decimals if state.margin_asset_id >= 0 else 0,
        )
    )
    if margin_id < 0:
        raise bad_request("no perpetual is listed, so there is no margin asset to give index prices in")
    prices: list[tuple[int, int]] = []
    texts: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in body.prices.split(","))):
        symbol, separator, text = part.partition("=")
        if not separator:
            raise bad_request(f"prices are ASSET=PRICE separated by commas, not {part[:64]!r}")
        asset = gateway.asset(symbol.strip())
        if asset.asset_id == margin_id:
            raise bad_request(f"{asset.symbol} is the margin asset: its price is always 1")
        if asset.symbol in texts:
            raise bad_request(f"{asset.symbol} is priced twice")
        try:
            price_atomic = parse_decimal(text.strip(), margin_decimals, field=f"{asset.symbol} price")
        except Rejected as rejected:
            raise ApiError(400, "INVALID_PRICE", rejected.message) from None
        if price_atomic <= 0:
            raise ApiError(400, "INVALID_PRICE", f"{asset.symbol} price must be positive, got {text.strip()}")
        prices.append((asset.asset_id, price_atomic))
        texts[asset.symbol] = text.strip()
    if not prices:
        raise bad_request("give at least one ASSET=PRICE")
    outcome = await gateway.submit(SetIndexPrices(seq=0, timestamp_ns=0, prices=tuple(prices)))
    raise_if_refused(outcome.events, operator=True)
    priced = {asset_id for asset_id, _ in prices}

    def read(state: ExchangeState) -> list[tuple[int, int, int]]:
        return [
            (market.market_id, market.index_ticks, market.mark_ticks)
            for market in state.markets
            if market.kind == _PERP and market.base_asset_id in priced
        ]

    markets = gateway.markets()
    return json_response(
        {
            "seq": outcome.seq,
            "prices": texts,
            "markets": [
                {
                    "symbol": markets[market_id].symbol,
                    "indexPrice": markets[market_id].price(index),
                    "markPrice": markets[market_id].price(mark),
                }
                for market_id, index, mark in gateway.read(read)
            ],
            "liquidations": [
                {
                    "accountId": event.account_id,
                    "equity": format_decimal(event.equity_atomic, margin_decimals),
                    "maintenance": format_decimal(event.maintenance_atomic, margin_decimals),
                }
                for event in outcome.events
                if isinstance(event, LiquidationStarted)
            ],
        }
    )


@get(
    "/operator/v1/markets",
    opt={"instruction": "operatorMarketStates", **OPERATOR},
    tags=["operator"],
    summary="Every market's state (or one market's: symbol), with index and mark of perpetuals",
)
async def market_states(request: Request[Any, Any, Any], symbol: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    chosen = [gateway.market(symbol)] if symbol is not None else list(gateway.markets())
    ids = [market.market_id for market in chosen]

    def read(state: ExchangeState) -> list[tuple[int, int, int, int, int]]:
        return [
            (
                int(state.markets[market_id].state),
                state.markets[market_id].state_changed_ns,
                int(state.markets[market_id].kind),
                state.markets[market_id].index_ticks,
                state.markets[market_id].mark_ticks,
            )
            for market_id in ids
        ]

    return json_response(
        [
            {
                "symbol": market.symbol,
                "marketType": "PERP" if kind == _PERP else "SPOT",
                "orderBookState": _state_name(state),
                "stateChangedAt": fmt.iso(changed_ns) if changed_ns else None,
                "indexPrice": market.price(index) if kind == _PERP else None,
                "markPrice": market.price(mark) if kind == _PERP else None,
            }
            for market, (state, changed_ns, kind, index, mark) in zip(chosen, gateway.read(read), strict=True)
        ]
    )


@post(
    "/operator/v1/marketState",
    opt={"instruction": "operatorMarketState", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Move one market (symbol) or every market (all) to a state (SetMarketState)",
)
async def market_state(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), MarketStateBody, "market state")
    if body.all == (body.symbol is not None):
        raise bad_request("give either symbol or all (true), not both")
    market_id = ALL_MARKETS if body.all else gateway.market(body.symbol).market_id
    outcome = await gateway.submit(
        SetMarketState(
            seq=0,
            timestamp_ns=0,
            market_id=market_id,
            state=state_of(body.state),
            reason=body.reason,
            operator=body.operator,
        )
    )
    raise_if_refused(outcome.events, operator=True)
    markets = gateway.markets()
    return json_response(
        {
            "seq": outcome.seq,
            "changes": [
                {
                    "symbol": markets[event.market_id].symbol,
                    "before": _state_name(event.state_before),
                    "state": _state_name(event.state),
                }
                for event in outcome.events
                if isinstance(event, MarketStateChanged)
            ],
        }
    )


CANCEL_SUFFIX = "+cancel"  # a step written STATE+cancel also cancels its markets' orders


def parse_steps(
    gateway: Gateway, steps: str, markets: str
) -> tuple[tuple[tuple[int, tuple[int, ...], int], ...], tuple[int, ...]]:
    """Return a schedule's steps (time ns, market ids, state) from the flat body fields, and
    the indexes of the steps written STATE+cancel."""
    market_ids = tuple(
        gateway.market(symbol).market_id for symbol in filter(None, (piece.strip() for piece in markets.split(",")))
    )
    parsed: list[tuple[int, tuple[int, ...], int]] = []
    cancels: list[int] = []
    for part in filter(None, (piece.strip() for piece in steps.split(","))):
        time_text, separator, state_name = part.partition("=")
        if not separator:
            raise bad_request(f"steps are TIME_MS=STATE[+cancel] separated by commas, not {part[:64]!r}")
        time_ms = convert.bounded_int(time_text, "step time", 0, 1, 2**43)
        state_name = state_name.strip()
        if state_name.endswith(CANCEL_SUFFIX):
            cancels.append(len(parsed))
            state_name = state_name[: -len(CANCEL_SUFFIX)]
        parsed.append((time_ms * 1_000_000, market_ids, state_of(state_name)))
    if not parsed:
        raise bad_request("give at least one step, e.g. steps=1767261600000=Closed")
    return tuple(parsed), tuple(cancels)


def _step_objects(
    markets: list[Any],
    steps: tuple[tuple[int, tuple[int, ...], int], ...] | list[tuple[int, tuple[int, ...], int]],
    cancels: tuple[int, ...] | list[int],
) -> list[dict[str, Any]]:
    return [
        {
            "time": fmt.ms(time_ns),
            "at": fmt.iso(time_ns),
            "state": _state_name(state),
            "markets": [markets[market_id].symbol for market_id in market_ids],
            "cancelOrders": index in cancels,
        }
        for index, (time_ns, market_ids, state) in enumerate(steps)
    ]


@post(
    "/operator/v1/maintenance",
    opt={"instruction": "operatorMaintenanceSchedule", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Schedule maintenance: state steps applied by the first Tick at or after each time",
)
async def schedule(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), ScheduleBody, "maintenance schedule")
    steps, cancels = parse_steps(gateway, body.steps, body.markets)
    outcome = await gateway.submit(
        ScheduleMaintenance(
            seq=0,
            timestamp_ns=0,
            announcement=body.announcement,
            operator=body.operator,
            steps=steps,
            cancel_orders_steps=cancels,
        )
    )
    raise_if_refused(outcome.events, operator=True)
    event = outcome.events[0]
    assert isinstance(event, MaintenanceScheduled)
    return json_response(
        {
            "seq": outcome.seq,
            "scheduleId": event.schedule_id,
            "announcement": event.announcement,
            "operator": event.operator,
            "steps": _step_objects(gateway.markets(), event.steps, event.cancel_orders_steps),
        }
    )


def _schedules(state: ExchangeState) -> list[tuple[Any, ...]]:
    return [
        (
            schedule.schedule_id,
            schedule.announcement,
            schedule.operator,
            schedule.cancelled,
            schedule.active,
            [
                (step.time_ns, tuple(step.market_ids), int(step.state), step.done, step.blocked, step.cancel_orders)
                for step in schedule.steps
            ],
        )
        for schedule in state.maintenances
    ]


@get(
    "/operator/v1/maintenance",
    opt={"instruction": "operatorMaintenanceList", **OPERATOR},
    tags=["operator"],
    summary="Every maintenance schedule with its steps: active, done or cancelled",
)
async def schedules(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    markets = gateway.markets()
    found = gateway.read(_schedules)
    body = []
    for schedule_id, announcement, operator, cancelled, active, steps in found:
        objects = _step_objects(
            markets,
            [(time_ns, ids, state) for time_ns, ids, state, _, _, _ in steps],
            [index for index, step in enumerate(steps) if step[5]],
        )
        for one, (_, _, _, done, blocked, _) in zip(objects, steps, strict=True):
            one["done"] = done
            one["blocked"] = blocked
        body.append(
            {
                "scheduleId": schedule_id,
                "announcement": announcement,
                "operator": operator,
                "status": "cancelled" if cancelled else "active" if active else "done",
                "steps": objects,
            }
        )
    return json_response(body)


@post(
    "/operator/v1/maintenance/cancel",
    opt={"instruction": "operatorMaintenanceCancel", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Cancel the remaining steps of a maintenance schedule",
)
async def cancel(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), CancelScheduleBody, "maintenance cancel")
    if not 0 < body.schedule_id < 2**62:
        raise ApiError(404, "RESOURCE_NOT_FOUND", f"maintenance schedule {body.schedule_id} does not exist")
    outcome = await gateway.submit(
        CancelMaintenance(
            seq=0, timestamp_ns=0, schedule_id=body.schedule_id, reason=body.reason, operator=body.operator
        )
    )
    raise_if_refused(outcome.events, operator=True)
    event = outcome.events[0]
    assert isinstance(event, MaintenanceCancelled)
    return json_response({"seq": outcome.seq, "scheduleId": event.schedule_id, "reason": event.reason})


HANDLERS: Final = [index_prices, market_states, market_state, schedule, schedules, cancel]
