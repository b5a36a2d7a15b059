"""The operator API: `/operator/v1/...`, signed the Backpack way with the operator key.

The operator key is DIR/operator.key (its public half DIR/operator.pub), written by
`keel init`; only it may call these routes, and every write is replay-checked like a
user's order. Each operator command is one handler here: decode, check everything
(decide), submit the core command, answer from its events. Adding one is a handler with
`opt={"instruction": ..., "operator": True}` appended to HANDLERS.

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post

from keel.core.commands import CreateAccount, Credit
from keel.core.events import AccountCreated, CommandRejected, LedgerPosted
from keel.gateway import convert
from keel.gateway.context import Gateway
from keel.gateway.errors import ApiError, bad_request, not_found, rejection
from keel.gateway.keys import public_key_from_b64
from keel.gateway.web import body_of, gateway_of, json_response

OPERATOR: Final = {"operator": True}


class AccountBody(msgspec.Struct, rename="camel", kw_only=True):
    """Create an account; optionally register its API public key and credit deposits.

    `deposits` is "ASSET=AMOUNT,ASSET=AMOUNT" (flat, because a signed body holds only
    scalar values: spec 2.3)."""

    public_key: str | None = None
    deposits: str = ""


class CreditBody(msgspec.Struct, rename="camel", kw_only=True):
    account_id: int
    symbol: str
    quantity: str


class KeyBody(msgspec.Struct, rename="camel", kw_only=True):
    account_id: int
    public_key: str


def _deposit_commands(gateway: Gateway, deposits: str) -> list[tuple[int, int, str, str]]:
    """Return (asset id, atomic amount, symbol, decimal text) per deposit of "ASSET=AMOUNT,...",
    refusing any bad one before anything happens."""
    checked = []
    for part in filter(None, (piece.strip() for piece in deposits.split(","))):
        symbol, separator, quantity = part.partition("=")
        if not separator:
            raise bad_request(f"deposits are ASSET=AMOUNT separated by commas, not {part[:64]!r}")
        asset = gateway.asset(symbol.strip())
        amount_atomic = convert.positive_amount(quantity.strip(), asset.decimals, "quantity")
        checked.append((asset.asset_id, amount_atomic, asset.symbol, quantity.strip()))
    return checked


async def _credit(gateway: Gateway, account_id: int, asset_id: int, amount_atomic: int) -> int:
    outcome = await gateway.submit(
        Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=amount_atomic)
    )
    first = outcome.events[0]
    if isinstance(first, CommandRejected):
        raise rejection(first.code, first.message)
    assert isinstance(first, LedgerPosted)
    return first.entry_id


def _check_new_key(gateway: Gateway, public_key: str) -> None:
    try:
        public_key_from_b64(public_key)
    except ValueError as error:
        raise bad_request(str(error)) from None
    if gateway.keys.get(public_key) is not None or public_key == gateway.operator_key_b64:
        raise bad_request("this public key is already registered")


@post(
    "/operator/v1/accounts",
    opt={"instruction": "operatorAccountCreate", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Create an account, register its API public key, credit deposits",
)
async def create_account(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request) if body_of(request) is not None else {}, AccountBody, "account")
    if body.public_key is not None:
        _check_new_key(gateway, body.public_key)
    deposits = _deposit_commands(gateway, body.deposits)
    outcome = await gateway.submit(CreateAccount(seq=0, timestamp_ns=0))
    first = outcome.events[0]
    if isinstance(first, CommandRejected):
        raise rejection(first.code, first.message)
    assert isinstance(first, AccountCreated)
    account_id = first.account_id
    if body.public_key is not None:
        try:
            gateway.keys.add(body.public_key, account_id)
        except ValueError as error:  # registered by a concurrent request since the check
            raise bad_request(f"account {account_id} was created without a key: {error}") from None
    credited = []
    for asset_id, amount_atomic, symbol, quantity in deposits:
        await _credit(gateway, account_id, asset_id, amount_atomic)
        credited.append({"symbol": symbol, "quantity": quantity})
    return json_response({"accountId": account_id, "publicKey": body.public_key, "deposits": credited})


@post(
    "/operator/v1/credits",
    opt={"instruction": "operatorCredit", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Credit an account from outside (ledger reason deposit)",
)
async def credit(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), CreditBody, "credit")
    asset = gateway.asset(body.symbol)
    amount_atomic = convert.positive_amount(body.quantity, asset.decimals, "quantity")
    if not 0 < body.account_id < 2**62:
        raise not_found(f"account {body.account_id} does not exist")
    entry_id = await _credit(gateway, body.account_id, asset.asset_id, amount_atomic)
    return json_response(
        {"accountId": body.account_id, "symbol": asset.symbol, "quantity": body.quantity, "entryId": entry_id}
    )


@post(
    "/operator/v1/keys",
    opt={"instruction": "operatorKeyAdd", **OPERATOR},
    status_code=200,
    tags=["operator"],
    summary="Register another API public key for an existing account",
)
async def add_key(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    body = convert.decode(body_of(request), KeyBody, "key")
    _check_new_key(gateway, body.public_key)
    exists = gateway.read(lambda state: body.account_id > 0 and body.account_id in state.accounts)
    if not exists:
        raise not_found(f"account {body.account_id} does not exist")
    try:
        gateway.keys.add(body.public_key, body.account_id)
    except ValueError as error:
        raise ApiError(400, "INVALID_CLIENT_REQUEST", str(error)) from None
    return json_response({"accountId": body.account_id, "publicKey": body.public_key})


@get(
    "/operator/v1/status",
    opt={"instruction": "operatorStatus", **OPERATOR},
    tags=["operator"],
    summary="Where the node is: last seq, accounts, open orders",
)
async def node_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)

    def read(state: Any) -> dict[str, Any]:
        return {
            "seq": state.seq_last,
            "accounts": state.account_id_next - 1,
            "ordersOpen": len(state.orders),
            "markets": len(state.markets),
        }

    body = gateway.read(read)
    body["startedAt"] = gateway.started_ms
    body["historySeq"] = gateway.history.seq_last()
    return json_response(body)


HANDLERS: Final = [create_account, credit, add_key, node_status]
