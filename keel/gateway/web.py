"""What every handler shares: JSON responses, query values, the gate every request passes.

`gate` is the app's before_request hook. It charges the client address's token bucket,
and for a route whose handler declares an `instruction` (in its `opt`) it verifies the
Backpack signature (auth.py) over the query or JSON body, checks the time window and,
for mutating instructions, replay; then it charges the key's bucket and leaves the
account id (and the decoded body) on `request.state`. Operator routes (`opt["operator"]`)
accept only the operator key, and every operator write is replay-checked.

Exchange-wide maintenance (spec 7): while every market is Closed ("nothing but reading",
docs/market-states.md), a signed mutating request (orders, cancels, withdrawals,
borrow/lend, account settings) is answered 503 MAINTENANCE once authenticated, before its
signature is spent on the replay cache, so it may be sent again after the reopening.
Operator routes and reads are not affected.

Imports: keel.gateway.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import msgspec
from litestar import Request, Response

from keel.core.markets import MarketState
from keel.core.state import ExchangeState
from keel.gateway import auth
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError, bad_request

JSON: Final = "application/json; charset=utf-8"
TEXT: Final = "text/plain; charset=utf-8"
_decoder = msgspec.json.Decoder()
encode_json: Final = msgspec.json.Encoder().encode


def json_response(content: Any, status: int = 200) -> Response[bytes]:
    return Response(content=encode_json(content), status_code=status, media_type=JSON)


def gateway_of(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def query(request: Request[Any, Any, Any], name: str) -> str | None:
    value: str | None = request.query_params.get(name)
    return value


def account_of(request: Request[Any, Any, Any]) -> int:
    account_id: int = request.state.account_id
    return account_id


def body_of(request: Request[Any, Any, Any]) -> Any:
    return request.state.body


def _decoded_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from None


def _rendered(mapping: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        return [(str(key), auth.render(value)) for key, value in mapping.items()]
    except auth.Unsignable as error:
        raise ApiError(401, "INVALID_SIGNATURE", f"Invalid signature: {error}") from None


_CLOSED = MarketState.CLOSED


def _in_maintenance(state: ExchangeState) -> bool:
    """Whether the whole exchange is in maintenance: every market Closed."""
    return bool(state.markets) and all(market.state == _CLOSED for market in state.markets)


async def gate(request: Request[Any, Any, Any]) -> None:
    """The before_request hook: rate limits, then authentication for signed routes."""
    client = request.client
    account_id, body = await admit(
        gateway_of(request),
        request.method,
        request.route_handler.opt,
        request.headers.get,
        request.query_params.multi_items,
        request.body,
        client.host if client is not None else "unknown",
    )
    request.state.account_id = account_id
    request.state.body = body


async def admit(
    gateway: Gateway,
    method: str,
    opt: Mapping[str, Any],
    header: Callable[[str], str | None],
    query_items: Callable[[], Iterable[tuple[str, str]]],
    read_body: Callable[[], Awaitable[bytes]],
    client_host: str,
) -> tuple[int, Any]:
    """Charge the address's bucket and, on a signed route (`opt["instruction"]`), authenticate
    the request; return (account id, decoded JSON body). Raise ApiError on any refusal.

    Both ways in run this: Litestar's before_request hook (`gate`) and the fast lane of the
    hot order routes (fastlane.py), so the two answer every request alike. `header` looks a
    header up by lower-case name; the query is read only for GET and the body only for the
    other methods, after the headers and the key have been checked."""
    gateway.ip_buckets.take(client_host, time.monotonic())
    instruction: str | None = opt.get("instruction")
    if instruction is None:
        return 0, None
    operator = bool(opt.get("operator"))
    headers = auth.Headers(header)
    if operator:
        if headers.api_key != gateway.operator_key_b64:
            if gateway.keys.get(headers.api_key) is not None:
                raise ApiError(403, "FORBIDDEN", "This API key may not use the operator API")
            raise ApiError(401, "UNAUTHORIZED", "Invalid API key")
        verifier = gateway.operator_verifier
        account_id = 0
    else:
        key = gateway.keys.get(headers.api_key)
        if key is None:
            raise ApiError(401, "UNAUTHORIZED", "Invalid API key")
        verifier = key.verifier
        account_id = key.account_id
    params: list[tuple[str, str]] | None = None
    batch: list[list[tuple[str, str]]] | None = None
    body: Any = None
    literal: list[tuple[str, str]] = []
    if method == "GET":
        literal = list(query_items())
        params = [(key, auth.render_query(value)) for key, value in literal]
    else:
        body = _decoded_body(await read_body())
        if body is None:
            params = []
        elif isinstance(body, dict):
            params = _rendered(body)
        elif isinstance(body, list) and opt.get("batch"):
            if not all(isinstance(item, dict) for item in body):
                raise bad_request("every order in a batch must be a JSON object")
            batch = [_rendered(item) for item in body]
        else:
            raise bad_request("the request body must be a JSON object")
    texts = auth.signing_strings(instruction, params, batch, headers.timestamp, headers.window)
    if any(value in ("True", "False") for _, value in literal):
        # bpx sends True and signs true (rendered above); a client that signs what it sends also verifies.
        texts += auth.signing_strings(instruction, literal, None, headers.timestamp, headers.window)
    if not await gateway.signatures.verify(verifier, headers.signature, texts):
        raise ApiError(401, "INVALID_SIGNATURE", "Invalid signature")
    now_ms = gateway.now_ms()
    auth.check_time(headers, now_ms)
    if instruction in auth.MUTATING and not operator and gateway.read(_in_maintenance):
        raise ApiError(
            503,
            "MAINTENANCE",
            "The exchange is in maintenance: every market is Closed, so nothing can be placed, cancelled, "
            "borrowed, lent or withdrawn until it reopens (see /api/v1/status)",
        )
    if instruction in auth.MUTATING or (operator and method != "GET"):
        gateway.replays.accept(headers, now_ms)
    gateway.key_buckets.take(headers.api_key, time.monotonic())
    return account_id, body
