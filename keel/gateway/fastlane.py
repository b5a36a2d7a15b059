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

One send per answer. uvicorn writes a response's head and its body to the socket
separately, two system calls and two TCP segments (its sockets set TCP_NODELAY), and on
this loop thread the `writev` calls were the largest single cost left (a third of its
time, with the interpreter lock held). `Protocol` is uvicorn's httptools protocol whose
connections write through `HeadHolding`, offered to the app as the ASGI scope extension
`keel.hold_head`: the lane asks it to hold its answer's head, and the head leaves with
the body in one write. Nothing else is held, and a held head is written at the latest
when the lane finishes its answer or the connection closes.

Imports: keel.gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from litestar import Litestar
from litestar._asgi.utils import is_valid_host
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from keel.gateway import orders
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError
from keel.gateway.web import JSON, admit, encode_json

log = logging.getLogger("keel.gateway")

# Far below Litestar's request_max_body_size (10 MB): a larger body goes through Litestar,
# which refuses it or reads it as it always did.
BODY_MAX_BYTES: Final = 65_536

_JSON_BYTES: Final = JSON.encode("latin-1")
HOLD_HEAD: Final = "keel.hold_head"  # the ASGI scope extension (module docstring)
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

        holding: HeadHolding | None = scope.get("extensions", {}).get(HOLD_HEAD)
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
            await _answer(send, holding, error.status, error.body(), error.headers)
            return
        except _Disconnected:
            log.error("HTTP %s on %s %s: %s", 500, method, scope["path"], "client disconnected prematurely")
            await _answer(send, holding, 500, ApiError(500, "SERVER_ERROR", "Internal error").body(), None)
            return
        except Exception as error:
            log.error("unexpected error on %s %s", method, scope["path"], exc_info=error)
            await _answer(send, holding, 500, ApiError(500, "SERVER_ERROR", "Internal error").body(), None)
            return
        await _answer(send, holding, 200, content, None)


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


async def _answer(
    send: Send, holding: HeadHolding | None, status: int, content: bytes, extra: dict[str, str] | None
) -> None:
    # Header order as Litestar sends it: the answer's own headers, then type and length.
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (extra or {}).items()]
    headers.append((b"content-type", _JSON_BYTES))
    headers.append((b"content-length", str(len(content)).encode("latin-1")))
    if holding is not None:
        holding.hold()
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})
    finally:
        if holding is not None:
            holding.release()


class HeadHolding:
    """A connection's transport that can hold one response head back until the next write
    (its body), so that both leave in one send. Everything else passes straight through."""

    __slots__ = ("_held", "_holding", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._holding = False
        self._held: bytes | None = None

    def hold(self) -> None:
        """Keep the next write (a head) until the one after it."""
        self._holding = True

    def release(self) -> None:
        """Stop holding, writing anything still held."""
        held, self._held, self._holding = self._held, None, False
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._holding:
            if self._held is None:
                self._held = bytes(data)
                return
            data = self._held + data
            self._held, self._holding = None, False
        self._transport.write(data)

    def close(self) -> None:
        self.release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, its connections writing through HeadHolding."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_holding = HeadHolding(transport)
        super().connection_made(self._head_holding)  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[HOLD_HEAD] = self._head_holding
