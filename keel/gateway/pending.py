"""Backpack endpoints whose features the engine does not have yet (docs/api.md, "Pending").

Spec 2.5: never a 404 or a 500 for them. Queries of things that cannot exist yet
(RFQs, strategies, dust conversions; PnL history, removed upstream) answer the empty
list a client expects; actions (RFQ, strategies, account update) answer 400 NOT_IMPLEMENTED.
Signed queries still authenticate, so a bad key is told so.
When a feature lands, its endpoint moves out of these tables into a module of its own.

Imports: keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, route
from litestar.handlers import HTTPRouteHandler

from keel.gateway.errors import not_implemented
from keel.gateway.web import json_response

# (path, instruction or None for public): answered [] to GET.
EMPTY_LISTS: Final[tuple[tuple[str, str | None], ...]] = (
    ("/api/v1/securities", None),  # ccxt's fetchMarkets asks for tokenized stocks
    ("/api/v1/wallets", None),
    ("/api/v1/rfqs", "rfqQuery"),
    ("/wapi/v1/history/pnl", "pnlHistoryQueryAll"),
    ("/wapi/v1/history/dust", "dustHistoryQueryAll"),
    ("/wapi/v1/history/rfq", "rfqHistoryQueryAll"),
    ("/wapi/v1/history/rfq/fill", "rfqFillHistoryQueryAll"),
    ("/wapi/v1/history/quote", "quoteHistoryQueryAll"),
    ("/wapi/v1/history/quote/fill", "quoteFillHistoryQueryAll"),
    ("/wapi/v1/history/strategies", "strategyHistoryQueryAll"),
)

# (path, methods, what): answered 400 NOT_IMPLEMENTED, before authentication (nothing happens).
NOT_IMPLEMENTED: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("/api/v1/borrowLend/position/liquidationPrice", ("GET",), "Borrow/lend liquidation prices"),
    ("/api/v1/account/convertDust", ("POST",), "Dust conversion"),
    ("/api/v1/account/limits/borrow", ("GET",), "Borrow limits"),
    ("/api/v1/account/limits/order", ("GET",), "Order quantity limits"),
    ("/api/v1/account/limits/withdrawal", ("GET",), "Withdrawal limits"),
    ("/api/v1/rfq", ("POST",), "RFQ"),
    ("/api/v1/rfq/accept", ("POST",), "RFQ"),
    ("/api/v1/rfq/cancel", ("POST",), "RFQ"),
    ("/api/v1/rfq/quote", ("POST",), "RFQ"),
    ("/api/v1/strategy", ("GET", "POST", "DELETE"), "Strategies"),
    ("/api/v1/strategies", ("GET", "DELETE"), "Strategies"),
    ("/api/v1/prediction", ("GET",), "Prediction markets"),
)


def _operation_id(route_handler: Any, method: Any, path_components: list[str | Any]) -> str:
    # Generated handlers share one function name; the path and method make the id unique.
    return "pending_" + str(method).lower() + "_" + "_".join(str(part) for part in path_components)


def _empty_list(path: str, instruction: str | None) -> HTTPRouteHandler:
    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response([])

    opt = {"instruction": instruction} if instruction else {}
    return route(
        path,
        http_method=["GET"],
        opt=opt,
        name=f"pending-empty:{path}",
        operation_id=_operation_id,
        tags=["pending"],
        summary="Pending feature: always an empty list for now",
    )(handler)


def _not_implemented(path: str, methods: tuple[Any, ...], what: str) -> HTTPRouteHandler:
    async def handler() -> Response[bytes]:
        raise not_implemented(what)

    return route(
        path,
        http_method=list(methods),
        status_code=400,
        name=f"pending-not-implemented:{path}",
        operation_id=_operation_id,
        tags=["pending"],
        summary=f"Pending feature ({what}): 400 NOT_IMPLEMENTED",
    )(handler)


def handlers() -> list[HTTPRouteHandler]:
    """Return a fresh route handler per pending endpoint (a Litestar handler belongs to one app)."""
    made = [_empty_list(path, instruction) for path, instruction in EMPTY_LISTS]
    made += [_not_implemented(path, methods, what) for path, methods, what in NOT_IMPLEMENTED]
    return made
