"""The ASGI application: every route, the error edge, and the OpenAPI document.

`app_factory(gateway, extra_handlers)` builds a Litestar app around a started node's
`Gateway`. The WebSocket streams (built later) mount through `extra_handlers`: any
Litestar route handler, for example a `websocket` listener at `/ws`, reached with the
same `request.app.state.gateway`. The OpenAPI document is served at `/openapi.json`
(Litestar's, with the request bodies that handlers decode themselves added in).

Errors: every failure leaves as `{"code", "message"}` with its status (spec 4.1):
ApiError as raised; Litestar's own (bad query types, unknown route, wrong method) as
400/404/405 INVALID_CLIENT_REQUEST or RESOURCE_NOT_FOUND; anything unexpected as a
500 SERVER_ERROR, logged with its traceback.

Imports: keel.gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig

from keel.gateway import (
    borrow_lend,
    capital,
    markets,
    operator,
    operator_markets,
    operator_transfers,
    orders,
    pending,
    perps,
    transfers,
)
from keel.gateway.context import Gateway
from keel.gateway.convert import CancelAllBody, CancelBody, OrderBody
from keel.gateway.errors import ApiError
from keel.gateway.web import JSON, gate

log = logging.getLogger("keel.gateway")

# Request bodies the handlers decode themselves, for the OpenAPI document: (path, method) -> type.
BODIES: dict[tuple[str, str], Any] = {
    ("/api/v1/order", "post"): OrderBody,
    ("/api/v1/orders", "post"): list[OrderBody],
    ("/api/v1/order", "delete"): CancelBody,
    ("/api/v1/orders", "delete"): CancelAllBody,
    ("/operator/v1/accounts", "post"): operator.AccountBody,
    ("/operator/v1/credits", "post"): operator.CreditBody,
    ("/operator/v1/keys", "post"): operator.KeyBody,
    ("/wapi/v1/capital/withdrawals", "post"): transfers.WithdrawBody,
    **operator_markets.BODIES,
    **operator_transfers.BODIES,
    **borrow_lend.BODIES,
}


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode({"code": code, "message": message}),
        status_code=status,
        media_type=JSON,
        headers=headers,
    )


def _api_error(_: Request[Any, Any, Any], error: ApiError) -> Response[bytes]:
    return _error_response(error.status, error.code, error.message, error.headers or None)


def _validation_error(_: Request[Any, Any, Any], error: ValidationException) -> Response[bytes]:
    details = error.extra if isinstance(error.extra, list) else []
    parts = []
    for detail in details:
        if isinstance(detail, dict):
            key = detail.get("key")
            parts.append(f"{key}: {detail.get('message')}" if key else str(detail.get("message")))
    return _error_response(400, "INVALID_CLIENT_REQUEST", "; ".join(parts) or str(error.detail))


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    if isinstance(error, NotFoundException):
        return _error_response(404, "RESOURCE_NOT_FOUND", f"No endpoint {request.method} {request.url.path}")
    if error.status_code == 405:
        return _error_response(405, "INVALID_CLIENT_REQUEST", f"{request.method} is not allowed on {request.url.path}")
    if error.status_code >= 500:
        log.error("HTTP %s on %s %s: %s", error.status_code, request.method, request.url.path, error.detail)
        return _error_response(500, "SERVER_ERROR", "Internal error")
    return _error_response(error.status_code, "INVALID_CLIENT_REQUEST", str(error.detail))


def _internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return _error_response(500, "SERVER_ERROR", "Internal error")


@get("/openapi.json", include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> Response[bytes]:
    document = request.app.state.openapi_document
    if document is None:
        document = request.app.openapi_schema.to_schema()
        schemas, components = msgspec.json.schema_components(
            list(BODIES.values()), ref_template="#/components/schemas/{name}"
        )
        document.setdefault("components", {}).setdefault("schemas", {}).update(components)
        for (path, method), schema in zip(BODIES, schemas, strict=True):
            operation = document.get("paths", {}).get(path, {}).get(method)
            if operation is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        request.app.state.openapi_document = document
    return Response(content=msgspec.json.encode(document), media_type=JSON)


def app_factory(gateway: Gateway, extra_handlers: Sequence[BaseRouteHandler] = ()) -> Litestar:
    """Return the ASGI app serving `gateway` (a started node) plus `extra_handlers`."""
    handlers: list[Any] = [
        *markets.HANDLERS,
        *capital.HANDLERS,
        *orders.HANDLERS,
        *operator.HANDLERS,
        *perps.HANDLERS,
        *transfers.HANDLERS,
        *borrow_lend.HANDLERS,
        *operator_markets.HANDLERS,
        *operator_transfers.HANDLERS,
        *pending.handlers(),
        openapi_document,
        *extra_handlers,
    ]
    app = Litestar(
        route_handlers=handlers,
        before_request=gate,
        exception_handlers={
            ApiError: _api_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        openapi_config=OpenAPIConfig(
            title="Keel (Backpack-compatible API)",
            version="1",
            path="/schema",
            description="Backpack Exchange REST API as Keel serves it; see docs/api.md.",
        ),
        logging_config=None,
        debug=False,
    )
    app.state.gateway = gateway
    app.state.openapi_document = None
    return app
