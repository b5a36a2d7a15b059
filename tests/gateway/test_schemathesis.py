"""Schemathesis against the served OpenAPI document: no 5xx on any generated input (issue 7).

A real `keel serve` (a subprocess on a free port over a `keel init` data directory, rate
limits off so nothing is answered 429) serves `GET /openapi.json` (docs/api.md);
schemathesis loads that document from the live server and, for every operation in it,
sends requests it generates from the document, both valid ones (positive) and ones that
break it (negative), checking `not_a_server_error` on every answer. One test per
operation, so a failure names its operation (and Hypothesis shrinks it to a minimal
request, printed with a curl command that reproduces it).

Two in three generated requests are made plausible first (`_make_plausible`): fields a
signed body cannot carry (null, objects, arrays) are dropped, made-up fields are dropped
and declared ones added at random, and known fields get values that mean something to
Keel (PLAUSIBLE: real symbols, sides, prices, the test account's id, ...) or keep the
generated one. Without that, nearly every request stops at "unknown market" or at the
signature; with it, generated input reaches the engine (orders placed and cancelled,
deposits reported and credited, markets closed, withdrawals frozen).

Public operations go unsigned. Signed operations are signed the Backpack way (spec 2.3)
by `BackpackAuth`, a requests auth that signs each request exactly as it goes on the
wire: the query of a GET, the JSON body of anything else (per item for the batch order
route), with its own timestamp. User routes sign with a funded test account's key,
operator routes with the data directory's operator key, so generated input gets past
authentication into the handlers (`test_the_signing_gets_past_authentication` shows it
does). Which instruction a route wants is read from the gateway's own route table
(`opt["instruction"]`, what the server checks), so a route added later is signed
without touching this file, and `test_every_served_operation_is_covered` fails if the
document and the table ever disagree. Operator routes run last because they change the
exchange for everyone (closed markets, frozen withdrawals).

Driven through schemathesis's Python API (`APIOperation.as_strategy` under Hypothesis),
not its pytest plugin, whose lazy-fixture runner does not work with pytest 9 (it sets
`Function._nodeid`, which pytest 9 no longer has); the plugin is disabled in pyproject's
`addopts`.

Bounded: at most MAX_EXAMPLES requests per operation (positive and negative together;
an operation without parameters or body gets the few distinct ones there are), no
deadline, derandomized (the same requests every run) and no example database: about
2,100 requests in about 35 s on the two-core machine.

Only `not_a_server_error` is checked. Response schema conformance fails on every answer
today, because the document does not describe the answers: each handler returns bytes
it encoded itself, so every 200 is documented as `{"type": "string"}`; the 400 body
documented is Litestar's `{status_code, detail, extra}`, not Keel's `{code, message}`;
401, 403, 404 (and 400 on body routes) are not documented; and `/api/v1/ping` and
`/api/v1/time` answer `text/plain; charset=utf-8; charset=utf-8` where the document
says application/json. Turn the check on once the document says what is sent.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_support import Api, Key, Server, keel, start_server, stop_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from keel.gateway.app import app_factory
from keel.gateway.client import signing_text
from keel.gateway.keys import new_key_pair

MAX_EXAMPLES = 50
WINDOW_MS = 5_000
REQUEST_TIMEOUT_S = 15.0
FUNDS = {"USDC": "1000000", "SOL": "10000", "BTC": "10", "ETH": "100"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Values that mean something to Keel, by field name, valid and not: the plausible variant
# of a generated request (two in three) replaces fields with one of these or keeps the
# generated value, so that generated input also gets past "unknown market" to the engine.
PLAUSIBLE: dict[str, tuple[Any, ...]] = {
    "symbol": ("SOL_USDC", "BTC_USDC", "SOL_USDC_PERP", "BTC_USDC_PERP", "ETH_USDC_PERP", "SOL_BTC"),
    "side": ("Bid", "Ask"),
    "orderType": ("Limit", "Market"),
    "price": ("150", "1", "0.01", "149.995", "0", "-1", "1e3", "99999999999999999999999"),
    "quantity": ("1", "0.01", "0.5", "100", "0", "-1", "0.0000000001", "123456789012345678901234567890"),
    "quoteQuantity": ("10", "150", "0", "1e30"),
    "timeInForce": ("GTC", "IOC", "FOK", "gtc"),
    "selfTradePrevention": ("RejectTaker", "RejectMaker", "RejectBoth"),
    "postOnly": (True, False),
    "reduceOnly": (True, False),
    "marketType": ("SPOT", "PERP"),
    "interval": ("1m", "1h", "1d", "1w", "1month"),
    "startTime": ("0", "1700000000", "-1", "9223372036854775808"),
    "endTime": ("1", "4102444800", "-5", "99999999999999999999"),
    "limit": ("1", "100", "1000", "0", "-1", "1001"),
    "offset": ("0", "10", "-1", "9223372036854775808"),
    "sortDirection": ("Asc", "Desc"),
    "orderId": ("1", "2", "3", "18446744073709551616"),
    "clientId": (1, 42, 4294967295, 4294967296, -1),
    "id": ("1", "2", "-1"),
    "depositId": (1, 2, 0, -1),
    "withdrawalId": (1, 2, 0),
    "scheduleId": (1, 2, 0),
    "confirmations": (0, 1, 2, 10_000, -1),
    "outputIndex": (0, 1, 4294967296),
    "state": ("Open", "PostOnly", "LimitOnly", "CancelOnly", "Closed"),
    "action": ("approve", "reject", "markSent", "markCompleted", "markFailed"),
    "blockchain": ("Solana", "Ethereum", "Bitcoin"),
    "chain": ("Solana", "Ethereum", "Bitcoin"),
    "prices": ("SOL=150", "SOL=151,BTC=95000,ETH=3500", "SOL=0", "XYZ=1", "SOL=1e400"),
    "deposits": ("USDC=10", "USDC=10,SOL=1", "XYZ=1", "USDC=-1", "USDC=99999999999999999999"),
    "steps": ("4102444800000=PostOnly", "4102444800000=Closed,4102444900000=Open", "0=Open", "x=Open"),
    "markets": ("", "SOL_USDC", "SOL_USDC,BTC_USDC_PERP", "NOPE"),
    "address": ("So11111111111111111111111111111111111111112", "0x" + "ab" * 20, "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkf"),
    "txId": ("tx-1", "5" * 88, "tx-2"),
    "fillType": ("User", "Liquidation"),
    "priceType": ("Last", "Index", "Mark"),
    "status": ("requested", "approved", "sent"),
    "frozen": (True, False),
    "all": (True, False),
    "operator": ("alice", "bob"),
    "incident": ("INC-1", "INC-2"),
    "reason": ("a test", ""),
    "announcement": ("maintenance at noon",),
}
ASSETS = ("USDC", "SOL", "BTC", "ETH", "USDT")
# Routes whose `symbol` is an asset, not a market.
ASSET_SYMBOL_PATHS = (
    "/wapi/v1/capital/withdrawals",
    "/operator/v1/credits",
    "/operator/v1/adjustments",
    "/operator/v1/deposits",
    "/api/v1/borrowLend",
    "/api/v1/borrowLend/markets/history",
    "/wapi/v1/history/borrowLend",
    "/wapi/v1/history/borrowLend/positions",
    "/wapi/v1/history/interest",
)
# Borrowing and lending have sides of their own.
BORROW_LEND_PATHS = ("/api/v1/borrowLend", "/wapi/v1/history/borrowLend/positions")

# Operations known to answer 5xx to some input: (METHOD, path) -> the bug, a strict xfail
# on that operation only, until it is fixed. None today.
KNOWN_SERVER_ERRORS: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------------------------------
# Which instruction each route is signed with: the gateway's own route table.


@dataclass(frozen=True)
class Route:
    instruction: str | None
    operator: bool
    batch: bool


def _route_table() -> dict[tuple[str, str], Route]:
    """(METHOD, path as in the OpenAPI document) -> how the gateway authenticates it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Litestar's deprecation notes about the handlers' signatures
        app = app_factory(None)  # type: ignore[arg-type]  # the route table only: no node behind it
    assert app.openapi_config is not None
    own_docs = app.openapi_config.path  # Litestar's own pages about the document (/schema/swagger, ...)
    table: dict[tuple[str, str], Route] = {}
    for route in app.routes:
        if route.path == own_docs or route.path.startswith(own_docs + "/"):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # Litestar's {symbol:str} is the document's {symbol}
        for handler in getattr(route, "route_handlers", ()):
            if not getattr(handler, "include_in_schema", True):
                continue
            for method in getattr(handler, "http_methods", ()):
                if method in METHODS:
                    opt = handler.opt
                    route_ = Route(opt.get("instruction"), bool(opt.get("operator")), bool(opt.get("batch")))
                    table[(method, path)] = route_
    return table


ROUTES = _route_table()


def _order(item: tuple[tuple[str, str], Route]) -> tuple[bool, str, str]:
    (method, path), route = item
    return (route.operator, path, method)  # operator routes last: they change the exchange for everyone


OPERATIONS = [key for key, _ in sorted(ROUTES.items(), key=_order)]


# ---------------------------------------------------------------------------------------
# Backpack signing as a requests auth: it signs the prepared request, as sent.


def _body_params(body: bytes | str | None, batch: bool) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The JSON body's fields as the server reads them for its signing string."""
    if not body:
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None  # not JSON: the server refuses it (400) before it looks at the signature
    if isinstance(decoded, dict):
        return decoded
    if batch and isinstance(decoded, list) and all(isinstance(item, dict) for item in decoded):
        return decoded
    return None  # a body of another shape is refused (400) before the signature is checked


def _query_signing_text(instruction: str, pairs: list[tuple[str, str]], timestamp_ms: int, window_ms: int) -> str:
    """signing_text for a query whose keys may repeat: every pair, sorted (as the server sorts them).

    Without a repeated key it is exactly keel.gateway.client.signing_text of the query as a dict."""
    if len({key for key, _ in pairs}) == len(pairs):
        return signing_text(instruction, dict(pairs) or None, timestamp_ms, window_ms)
    joined = "&".join(f"{key}={value}" for key, value in sorted(pairs))
    return f"instruction={instruction}&{joined}&timestamp={timestamp_ms}&window={window_ms}"


class BackpackAuth(requests.auth.AuthBase):
    """Signs a request with one key for one instruction (spec 2.3), with a fresh timestamp.

    The signing text is keel.gateway.client's (what gateway_support signs with). Values
    that cannot be signed (null, objects, arrays) are rendered anyway; the server then
    answers 401 INVALID_SIGNATURE, which is a fine answer to such input."""

    def __init__(self, key: Key, instruction: str, batch: bool) -> None:
        self.key = key
        self.instruction = instruction
        self.batch = batch
        self.private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key.secret)[:32])

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        timestamp_ms = time.time_ns() // 1_000_000
        if request.method == "GET":
            # Parsed as Litestar parses it (every pair, blank values kept); a key may repeat.
            query = urllib.parse.urlsplit(request.url or "").query
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            text = _query_signing_text(self.instruction, pairs, timestamp_ms, WINDOW_MS)
        else:
            params = _body_params(request.body, self.batch)
            text = signing_text(self.instruction, params, timestamp_ms, WINDOW_MS)
        signature = self.private.sign(text.encode("utf-8", errors="surrogatepass"))
        request.headers["X-API-Key"] = self.key.api_key
        request.headers["X-Signature"] = base64.b64encode(signature).decode()
        request.headers["X-Timestamp"] = str(timestamp_ms)
        request.headers["X-Window"] = str(WINDOW_MS)
        return request


# ---------------------------------------------------------------------------------------
# The live server and its document.


@dataclass
class Live:
    server: Server
    user: Key
    operator: Key
    session: requests.Session
    schema: Any  # schemathesis's OpenApiSchema, loaded from the server
    document: dict[str, Any]  # the same document as JSON

    def auth_for(self, method: str, path: str) -> BackpackAuth | None:
        route = ROUTES.get((method.upper(), path))
        if route is None or route.instruction is None:
            return None
        return BackpackAuth(self.operator if route.operator else self.user, route.instruction, route.batch)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis") / "data"
    initialised = keel("init", "--data", str(data_dir))
    assert initialised.returncode == 0, initialised.stderr
    server = start_server(data_dir, "--key-rate=0", "--ip-rate=0")
    api = Api(server)
    session = requests.Session()
    try:
        user = api.account(**FUNDS)
        # Something to find: a resting order of the user's, so order and history queries have rows.
        placed = api.order(user, symbol="SOL_USDC", side="Bid", orderType="Limit", price="1", quantity="1")
        assert placed.status_code == 200, placed.text
        document = schemathesis.openapi.from_url(server.url + "/openapi.json", timeout=10)
        yield Live(server, user, api.operator, session, document, api.get("/openapi.json").json())
    finally:
        session.close()
        api.http.close()
        code, _, stderr = stop_server(server)
        assert code == 0, stderr


def _send(case: Any, live: Live) -> None:
    """Send a generated request (signed if its route is) to the live server; fail on a 5xx."""
    auth = live.auth_for(case.method, case.operation.path)
    response = case.call(base_url=live.server.url, session=live.session, auth=auth, timeout=REQUEST_TIMEOUT_S)
    case.validate_response(response, checks=[not_a_server_error])


KEEP = "<keep the generated value>"


def _plausible_fields(fields: dict[str, Any], choices: dict[str, tuple[Any, ...]], data: st.DataObject) -> None:
    """Swap in plausible values (or keep the generated one, as likely as any one of them)."""
    for name in list(fields):
        if name in choices:
            chosen = data.draw(st.sampled_from((*choices[name], KEEP)), label=name)
            if chosen != KEEP:
                fields[name] = chosen


def _body_properties(document: dict[str, Any], path: str, method: str) -> set[str]:
    """The property names the document declares for an operation's JSON body (or its items)."""
    operation = document["paths"][path][method.lower()]
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    schema = schema.get("items", schema)
    reference = schema.get("$ref", "")
    if reference.startswith("#/components/schemas/"):
        schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    return set(schema.get("properties", {}))


def _make_plausible(case: Any, live: Live, data: st.DataObject) -> None:
    """Make a generated request closer to one a client would send.

    Drops what a signed body cannot carry (null, objects, arrays: refused with 401 before
    anything else is looked at), adds some declared fields the generator left out, drops
    some it made up, and replaces known fields with values from PLAUSIBLE."""
    choices = {
        **PLAUSIBLE,
        "accountId": (live.user.account_id, 0, 999_999),
        "publicKey": (live.user.api_key, new_key_pair()[0], "not a key"),
    }
    if case.operation.path in ASSET_SYMBOL_PATHS:
        choices["symbol"] = ASSETS
    if case.operation.path in BORROW_LEND_PATHS:
        choices["side"] = ("Borrow", "Lend", "Bid")
    as_text = {
        name: tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in vs) for name, vs in choices.items()
    }
    for fields in (case.path_parameters, case.query):
        if isinstance(fields, dict):
            _plausible_fields(fields, as_text, data)
    items = case.body if isinstance(case.body, list) else [case.body]
    declared = _body_properties(live.document, case.operation.path, case.method)
    for item in items:
        if isinstance(item, dict):
            for name in [name for name, value in item.items() if value is None or isinstance(value, (dict, list))]:
                del item[name]
            for name in sorted(declared - set(item)):
                if name in choices and data.draw(st.booleans(), label=f"add {name}"):
                    item[name] = KEEP
            for name in sorted(set(item) - set(choices)):
                if data.draw(st.booleans(), label=f"drop {name}"):
                    del item[name]
            _plausible_fields(item, choices, data)
            for name in [name for name, value in item.items() if value == KEEP]:
                del item[name]


def _has_input(operation: Any) -> bool:
    """Whether the operation takes anything that negative generation could break."""
    return bool(list(operation.iter_parameters())) or bool(operation.body)


BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_every_served_operation_is_covered(live: Live) -> None:
    served = {(operation.method.upper(), operation.path) for operation in _operations(live.schema)}
    assert served == set(OPERATIONS)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_signing_gets_past_authentication(live: Live) -> None:
    """BackpackAuth's signatures verify: a query (GET), a JSON body (POST) and an operator route."""
    url = live.server.url
    answer = live.session.get(url + "/api/v1/capital", auth=live.auth_for("GET", "/api/v1/capital"))
    assert answer.status_code == 200, answer.text
    answer = live.session.get(
        url + "/wapi/v1/history/orders",
        params={"symbol": "SOL_USDC", "limit": "5"},
        auth=live.auth_for("GET", "/wapi/v1/history/orders"),
    )
    assert answer.status_code == 200, answer.text
    body = {"symbol": "SOL_USDC", "side": "Bid", "orderType": "Limit", "price": "1", "quantity": "1"}
    answer = live.session.post(url + "/api/v1/order", json=body, auth=live.auth_for("POST", "/api/v1/order"))
    assert answer.status_code == 200, answer.text
    batch = [body, {**body, "price": "2"}]
    answer = live.session.post(url + "/api/v1/orders", json=batch, auth=live.auth_for("POST", "/api/v1/orders"))
    assert answer.status_code == 200, answer.text
    answer = live.session.get(url + "/operator/v1/status", auth=live.auth_for("GET", "/operator/v1/status"))
    assert answer.status_code == 200, answer.text


def _param(key: tuple[str, str]) -> Any:
    method, path = key
    bug = KNOWN_SERVER_ERRORS.get(key)
    marks = [pytest.mark.xfail(reason=bug, strict=True)] if bug else []
    return pytest.param(method, path, id=f"{method} {path}", marks=marks)


@pytest.mark.parametrize(("method", "path"), [_param(key) for key in OPERATIONS])
def test_generated_requests_never_get_a_server_error(method: str, path: str, live: Live) -> None:
    operation = live.schema[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE)
    if _has_input(operation):
        strategy = st.one_of(strategy, operation.as_strategy(GenerationMode.NEGATIVE))

    @BOUNDED
    @given(case=strategy, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if data.draw(st.sampled_from((True, True, False)), label="plausible"):
            _make_plausible(case, live, data)
        _send(case, live)

    run()
