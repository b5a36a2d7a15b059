"""The fast lane of POST and DELETE /api/v1/order answers exactly as the Litestar handlers do.

Each request is sent twice over real HTTP: to `/api/v1/order` (the fast lane) and to
`/api/v1/order/`, which the lane leaves to Litestar (whose router ignores the trailing
slash), so the same handler code is reached through both ways in. The status, every
header but Date and the body must be the same, for answers and for each kind of refusal
(headers, signature, body, engine). A chunked body, which the lane also leaves to
Litestar, is answered too, and the OpenAPI document still lists both routes.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from gateway_support import Api, Key

from keel.gateway.client import sign_headers
from keel.gateway.keys import new_key_pair

ORDER = {"symbol": "SOL_USDC", "side": "Bid", "orderType": "Limit", "price": "100", "quantity": "0.1"}


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], str]:
    assert response.headers["content-length"] == str(len(response.content))
    headers = [
        (name, value) for name, value in response.headers.multi_items() if name not in ("date", "content-length")
    ]
    # The two orders of a pair differ only in their ids and times.
    body = re.sub(r'"(id|clientId|createdAt)":"?\d+"?', r'"\1":N', response.text)
    return response.status_code, headers, body


_last_timestamp_ms = [0]


def _send(
    api: Api, key: Key, method: str, path: str, instruction: str, fields: dict[str, Any], **change: Any
) -> httpx.Response:
    # A strictly later timestamp each time: two requests with the same fields signed in the
    # same millisecond have the same signature, and the second is refused as a replay.
    timestamp_ms = _last_timestamp_ms[0] = max(time.time_ns() // 1_000_000, _last_timestamp_ms[0] + 1)
    headers = {
        **sign_headers(key.api_key, key.secret, instruction, fields, timestamp_ms=timestamp_ms),
        "Content-Type": "application/json",
    }
    headers.update(change.get("headers", {}))
    content = change.get("content", json.dumps(fields).encode())
    return api.http.request(method, path, content=content, headers=headers)


def test_both_ways_in_answer_alike(api: Api) -> None:
    key = api.account(USDC="10000", SOL="10")
    stranger, _ = new_key_pair()
    client_ids = iter(range(1, 1_000))

    def order(**extra: Any) -> Callable[[], dict[str, Any]]:
        return lambda: {**ORDER, "clientId": next(client_ids), **extra}

    cases: list[tuple[str, str, Callable[[], dict[str, Any]], dict[str, Any]]] = [
        ("POST", "orderExecute", order(), {}),
        ("POST", "orderExecute", order(price="100.0000001"), {}),  # off the grid
        ("POST", "orderExecute", order(symbol="NOPE_USDC"), {}),
        ("POST", "orderExecute", order(quantity=5), {}),  # a number where a string belongs
        ("POST", "orderExecute", order(price=None), {}),  # a value that cannot be signed
        ("POST", "orderExecute", order(quantity="100000"), {}),  # more than the account holds
        ("POST", "orderExecute", order(), {"content": b"{nope"}),
        ("POST", "orderExecute", order(), {"content": b"[1]"}),
        ("POST", "orderExecute", order(), {"content": b""}),
        ("POST", "orderExecute", order(), {"headers": {"X-Signature": base64.b64encode(bytes(64)).decode()}}),
        ("POST", "orderExecute", order(), {"headers": {"X-Window": "999999"}}),
        ("POST", "orderExecute", order(), {"headers": {"X-API-Key": stranger}}),
        ("POST", "orderExecute", order(), {"headers": {"X-Timestamp": str(int(time.time() * 1000) - 60_000)}}),
        ("DELETE", "orderExecute", lambda: {"symbol": "SOL_USDC", "clientId": 1}, {}),  # the wrong instruction
        ("DELETE", "orderCancel", lambda: {"symbol": "SOL_USDC", "clientId": 999_999}, {}),
        ("DELETE", "orderCancel", lambda: {"symbol": "SOL_USDC", "orderId": "5", "clientId": 1}, {}),
    ]
    for method, instruction, fields, change in cases:
        fast = _send(api, key, method, "/api/v1/order", instruction, fields(), **change)
        slow = _send(api, key, method, "/api/v1/order/", instruction, fields(), **change)
        assert _comparable(fast) == _comparable(slow), (method, instruction, change)
    # Cancels that succeed: each way in cancels an order the other placed.
    for placed_through, cancelled_through in (("/api/v1/order", "/api/v1/order/"), ("/api/v1/order/", "/api/v1/order")):
        client_id = next(client_ids)
        placed = _send(api, key, "POST", placed_through, "orderExecute", {**ORDER, "clientId": client_id})
        assert placed.status_code == 200, placed.text
        cancel = {"symbol": "SOL_USDC", "clientId": client_id}
        cancelled = _send(api, key, "DELETE", cancelled_through, "orderCancel", cancel)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "Cancelled"
    assert [order["clientId"] for order in api.open_orders(key)] == [1, 2]  # the first case's pair


def test_a_replayed_request_is_refused_by_either_way_in(api: Api) -> None:
    key = api.account(USDC="1000")
    fields = {**ORDER, "clientId": 1}
    headers = {**sign_headers(key.api_key, key.secret, "orderExecute", fields), "Content-Type": "application/json"}
    content = json.dumps(fields).encode()
    first = api.http.post("/api/v1/order", content=content, headers=headers)
    assert first.status_code == 200, first.text
    for path in ("/api/v1/order", "/api/v1/order/"):
        again = api.http.post(path, content=content, headers=headers)
        assert (again.status_code, again.json()["message"]) == (401, "Duplicate request")


def test_a_chunked_body_goes_through_litestar(api: Api) -> None:
    key = api.account(USDC="1000")
    fields = {**ORDER, "clientId": 1}
    headers = {**sign_headers(key.api_key, key.secret, "orderExecute", fields), "Content-Type": "application/json"}
    answer = api.http.post("/api/v1/order", content=iter([json.dumps(fields).encode()]), headers=headers)
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    assert answer.status_code == 200, answer.text
    assert answer.json()["clientId"] == 1


def test_openapi_still_lists_the_order_routes(api: Api) -> None:
    document = api.get("/openapi.json").json()
    operations = document["paths"]["/api/v1/order"]
    assert {"post", "delete", "get"} <= set(operations)
    assert operations["post"]["requestBody"]["content"]["application/json"]["schema"]
