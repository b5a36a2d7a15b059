"""The fast lane: placing and cancelling one order without Litestar's per-request layers.

`POST /api/v1/order` and `DELETE /api/v1/order` are most of an exchange's traffic, and on
the gateway's one event-loop thread Litestar's routing, connection, state, signature-model
and response objects cost about as much per request as the order's own work (profiled
under `keel bench api`; docs/benchmarks.md). `FastLane` wraps the Litestar app as the
ASGI application uvicorn serves and answers those two routes itself, with the same code
the Litestar handlers run: `web.admit` (the address's and key's rate limits, signature,
time window, maintenance, replay) and `orders.place` / `orders.cancel`. Answers, errors
(`{"code", "message"}` with the same status and headers, 500 SERVER_ERROR for anything
unexpected, logged) and the OpenAPI document (the Litestar handlers stay registered) are
the same as through Litestar.

Anything the lane is not sure to answer alike goes to Litestar untouched: any other
method or path (a trailing slash, HEAD, OPTIONS), a body without Content-Length or
larger than `BODY_MAX_BYTES`, a chunked body, or a Host header Litestar would refuse.

Imports: keel.gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from litestar import Litestar
from litestar._asgi.utils import is_valid_host

from keel.gateway import orders
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError
from keel.gateway.web import JSON, admit, encode_json

log = logging.getLogger("keel.gateway")

# Far below Litestar's request_max_body_size (10 MB): a larger body goes through Litestar,
# which refuses it or reads it as it always did.
BODY_MAX_BYTES: Final = 65_536

_JSON_BYTES: Final = JSON.encode("latin-1")
_NO_QUERY: Final[list[tuple[str, str]]] = []

Handler = Callable[[Gateway, int, Any], Awaitable[Any]]
# ASGI's own types, as plain as uvicorn hands them over.
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Disconnected(Exception):
    """The client went away before its body was read."""


def _routes() -> dict[tuple[str, str], tuple[Handler, dict[str, Any]]]:
    # The instructions come from the Litestar handlers' own `opt`, so the lanes cannot disagree.
    return {
        ("POST", "/api/v1/order"): (orders.place, dict(orders.execute_order.opt)),
        ("DELETE", "/api/v1/order"): (orders.cancel, dict(orders.cancel_order.opt)),
    }


def _no_query() -> Iterable[tuple[str, str]]:
    return _NO_QUERY  # the lane serves no GET: admit reads the query only for GET


class FastLane:
    """The ASGI app `keel serve` runs: the two order routes here, everything else in Litestar."""

    def __init__(self, app: Litestar, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self.routes = _routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
            if route is not None:
                headers = _header_map(scope["headers"])
                if headers is not None:
                    await self._serve(route, headers, scope, receive, send)
                    return
        await self.app(scope, receive, send)  # type: ignore[arg-type]  # the same ASGI messages

    async def _serve(
        self,
        route: tuple[Handler, dict[str, Any]],
        headers: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        handler, opt = route
        method: str = scope["method"]
        client = scope.get("client")

        async def read_body() -> bytes:
            return await _body(receive)

        try:
            account_id, body = await admit(
                self.gateway,
                method,
                opt,
                headers.get,
                _no_query,
                read_body,
                client[0] if client else "unknown",
            )
            content = encode_json(await handler(self.gateway, account_id, body))
        except ApiError as error:
            await _answer(send, error.status, error.body(), error.headers)
            return
        except _Disconnected:
            log.error("HTTP %s on %s %s: %s", 500, method, scope["path"], "client disconnected prematurely")
            await _answer(send, 500, ApiError(500, "SERVER_ERROR", "Internal error").body(), None)
            return
        except Exception as error:
            log.error("unexpected error on %s %s", method, scope["path"], exc_info=error)
            await _answer(send, 500, ApiError(500, "SERVER_ERROR", "Internal error").body(), None)
            return
        await _answer(send, 200, content, None)


def _header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """Return the request's headers by lower-case name (the first of repeated ones, as
    Litestar's `headers.get`), or None when the request is one for Litestar (module docstring)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    length = headers.get("content-length")
    if length is None or not (length.isascii() and length.isdigit()) or int(length) > BODY_MAX_BYTES:
        return None
    if "transfer-encoding" in headers:
        return None
    host = headers.get("host")
    if host is not None and not is_valid_host(host.encode("latin-1")):
        return None
    return headers


async def _body(receive: Receive) -> bytes:
    """Return the whole request body (at most BODY_MAX_BYTES were announced)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, content: bytes, extra: dict[str, str] | None) -> None:
    # Header order as Litestar sends it: the answer's own headers, then type and length.
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (extra or {}).items()]
    headers.append((b"content-type", _JSON_BYTES))
    headers.append((b"content-length", str(len(content)).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": False})
