"""Authentication as spec section 2 describes it, against a real `keel serve`.

Each refusal is checked for its status and Backpack code (what makes ccxt raise
AuthenticationError or BadRequest) and, where the request would have changed something,
that nothing changed: balances and open orders are read back afterwards. Also checked:
both signing forms (raw and percent-encoded) verify, booleans in queries are signed as
true/false, a byte-identical replay of an order is refused (one order only), a request
signed before the gateway started is refused, and accounts never see or touch each
other's orders.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

from gateway_support import Api, Key, error_of

from keel.gateway.client import sign_headers
from keel.gateway.keys import new_key_pair

ORDER = {"symbol": "SOL_USDC", "side": "Bid", "orderType": "Limit", "price": "10", "quantity": "1"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_request_signed_before_the_gateway_started_is_refused(api: Api) -> None:
    """The replay cache does not survive a restart, so a mutating request stamped before this
    gateway started is refused even inside its window; a read stamped the same is fine."""
    key = api.account(USDC="100")
    started_ms = api.status()["startedAt"]
    stamp = started_ms - 1
    assert _now_ms() - stamp < 55_000, "the module's server is too old for this check"
    refused = api.signed(key, "POST", "/api/v1/order", "orderExecute", ORDER, timestamp_ms=stamp, window_ms=60_000)
    assert error_of(refused) == (401, "UNAUTHORIZED")
    assert "before this gateway started" in refused.json()["message"]
    read = api.signed(key, "GET", "/api/v1/capital", "balanceQuery", timestamp_ms=stamp, window_ms=60_000)
    assert read.status_code == 200
    assert api.open_orders(key) == []


def test_unknown_key_wrong_signature_and_bad_headers_are_refused(api: Api) -> None:
    key = api.account(USDC="100")
    stranger_key, stranger_secret = new_key_pair()
    unknown = api.signed(Key(stranger_key, stranger_secret, 0), "GET", "/api/v1/capital", "balanceQuery")
    assert error_of(unknown) == (401, "UNAUTHORIZED")
    forged = api.signed(Key(key.api_key, stranger_secret, 0), "POST", "/api/v1/order", "orderExecute", ORDER)
    assert error_of(forged) == (401, "INVALID_SIGNATURE")
    # Signed for another instruction: the same key, the same body, a different signed text.
    headers = sign_headers(key.api_key, key.secret, "orderCancel", ORDER)
    wrong_instruction = api.http.post("/api/v1/order", content=json.dumps(ORDER), headers=headers)
    assert error_of(wrong_instruction) == (401, "INVALID_SIGNATURE")
    # A body changed after signing.
    headers = sign_headers(key.api_key, key.secret, "orderExecute", ORDER)
    tampered = api.http.post("/api/v1/order", content=json.dumps({**ORDER, "quantity": "2"}), headers=headers)
    assert error_of(tampered) == (401, "INVALID_SIGNATURE")
    missing = api.http.get("/api/v1/capital")
    assert error_of(missing) == (401, "UNAUTHORIZED")
    not_base64 = api.http.get(
        "/api/v1/capital", headers={**sign_headers(key.api_key, key.secret, "balanceQuery", None), "X-Signature": "!!"}
    )
    assert error_of(not_base64) == (401, "UNAUTHORIZED")
    window = api.signed(key, "GET", "/api/v1/capital", "balanceQuery", window_ms=60_001)
    assert error_of(window) == (400, "INVALID_CLIENT_REQUEST")
    assert api.balances(key) == {"USDC": {"available": "100", "locked": "0", "staked": "0"}}
    assert api.open_orders(key) == []


def test_expired_and_future_requests_are_refused(api: Api) -> None:
    key = api.account(USDC="100")
    expired = api.signed(key, "POST", "/api/v1/order", "orderExecute", ORDER, timestamp_ms=_now_ms() - 6_000)
    assert error_of(expired) == (401, "UNAUTHORIZED")
    assert expired.json()["message"] == "Request has expired"
    future = api.signed(key, "POST", "/api/v1/order", "orderExecute", ORDER, timestamp_ms=_now_ms() + 10_000)
    assert error_of(future) == (401, "UNAUTHORIZED")
    assert "future" in future.json()["message"]
    assert api.open_orders(key) == []
    assert api.balances(key)["USDC"]["locked"] == "0"


def test_a_replayed_order_is_refused_and_places_nothing(api: Api) -> None:
    """The same signed request sent twice byte for byte: one order, then 401 Duplicate request."""
    key = api.account(USDC="100")
    headers = {**sign_headers(key.api_key, key.secret, "orderExecute", ORDER), "Content-Type": "application/json"}
    body = json.dumps(ORDER).encode()
    first = api.http.post("/api/v1/order", content=body, headers=headers)
    assert first.status_code == 200, first.text
    again = api.http.post("/api/v1/order", content=body, headers=headers)
    assert error_of(again) == (401, "UNAUTHORIZED")
    assert again.json()["message"] == "Duplicate request"
    assert [order["id"] for order in api.open_orders(key)] == [first.json()["id"]]
    # Reads are not replay-checked: clients legitimately repeat them within a millisecond.
    read_headers = sign_headers(key.api_key, key.secret, "balanceQuery", None)
    assert api.http.get("/api/v1/capital", headers=read_headers).status_code == 200
    assert api.http.get("/api/v1/capital", headers=read_headers).status_code == 200


def test_both_signing_forms_verify(api: Api) -> None:
    """bpx signs raw values, ccxt percent-encoded ones (spec 2.3); a Python client's True is signed true."""
    key = api.account(USDC="100")
    params = {"symbol": "SOL_USDC", "note": "a b/c:d+e"}
    raw = api.signed(key, "GET", "/api/v1/orders", "orderQueryAll", params)
    assert raw.status_code == 200, raw.text
    encoded_text = (
        "instruction=orderQueryAll&"
        + "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))
        + f"&timestamp={_now_ms()}&window=5000"
    )
    stamp = encoded_text.rsplit("timestamp=", 1)[1].split("&")[0]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key.secret))
    signature = base64.b64encode(private.sign(encoded_text.encode())).decode()
    encoded = api.http.get(
        "/api/v1/orders",
        params=params,
        headers={"X-API-Key": key.api_key, "X-Signature": signature, "X-Timestamp": stamp, "X-Window": "5000"},
    )
    assert encoded.status_code == 200, encoded.text
    headers = sign_headers(key.api_key, key.secret, "orderQueryAll", {"symbol": "SOL_USDC", "flag": True})
    booleans = api.http.get("/api/v1/orders", params={"symbol": "SOL_USDC", "flag": "True"}, headers=headers)
    assert booleans.status_code == 200, booleans.text


def test_an_account_cannot_see_or_cancel_another_accounts_order(api: Api) -> None:
    owner = api.account(USDC="100")
    other = api.account(USDC="100")
    placed = api.order(owner, **ORDER, clientId=77)
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["id"]
    owner_balances = api.balances(owner)
    queried = api.signed(other, "GET", "/api/v1/order", "orderQuery", {"symbol": "SOL_USDC", "orderId": order_id})
    assert error_of(queried) == (403, "FORBIDDEN")
    cancelled = api.signed(other, "DELETE", "/api/v1/order", "orderCancel", {"symbol": "SOL_USDC", "orderId": order_id})
    assert error_of(cancelled) == (403, "FORBIDDEN")
    # By client id the other account only ever finds its own orders: it has none.
    by_client = api.signed(other, "DELETE", "/api/v1/order", "orderCancel", {"symbol": "SOL_USDC", "clientId": 77})
    assert error_of(by_client) == (404, "RESOURCE_NOT_FOUND")
    everything = api.signed(other, "DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": "SOL_USDC"})
    assert everything.status_code == 200 and everything.json() == []
    assert [order["id"] for order in api.open_orders(owner)] == [order_id]
    assert api.balances(owner) == owner_balances
    assert api.open_orders(other) == []
    history = api.signed(other, "GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", {"orderId": order_id})
    assert history.status_code == 200 and history.json() == []


def test_the_operator_api_takes_only_the_operator_key(api: Api) -> None:
    key = api.account(USDC="1")
    as_user = api.signed(
        key,
        "POST",
        "/operator/v1/credits",
        "operatorCredit",
        {"accountId": key.account_id, "symbol": "USDC", "quantity": "1000"},
    )
    assert error_of(as_user) == (403, "FORBIDDEN")
    operator_as_user = api.signed(api.operator, "GET", "/api/v1/capital", "balanceQuery")
    assert error_of(operator_as_user) == (401, "UNAUTHORIZED")
    assert api.balances(key)["USDC"]["available"] == "1"
    credit = {"accountId": key.account_id, "symbol": "USDC", "quantity": "2.5"}
    headers = {
        **sign_headers(api.operator.api_key, api.operator.secret, "operatorCredit", credit),
        "Content-Type": "application/json",
    }
    first = api.http.post("/operator/v1/credits", content=json.dumps(credit), headers=headers)
    assert first.status_code == 200, first.text
    replayed = api.http.post("/operator/v1/credits", content=json.dumps(credit), headers=headers)
    assert error_of(replayed) == (401, "UNAUTHORIZED")
    assert api.balances(key)["USDC"]["available"] == "3.5"
