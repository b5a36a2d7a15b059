"""Deposits and withdrawals on the wire (spec sections 6 and 9.1).

History comes from the views (deposits, operator credits, withdrawals); a withdrawal
request is a `RequestWithdrawal` command, answered once durable from its
`WithdrawalUpdated` event. The engine decides everything about it (address, balance,
daily limit, margin, freeze); this module only checks the request's shape.

Wire rules (inferred where the spec is silent):
- Deposit `status`: Seen and Confirming are `pending`, Credited `confirmed`, Rejected
  `declined`. `source` is the chain in lower case (ccxt maps it to a network). Operator
  credits (the `Credit` command) are listed too, as `source` `administrator`, with id
  10^12 + their ledger entry id (chain deposits keep their own ids, which stay far below).
- Withdrawal `status`: Requested, Approved and Sent are `pending`, Completed `confirmed`,
  Rejected `declined`, Cancelled `cancelled`, Failed `refunded` (the funds were released:
  spec 9.1, a failed send is a refund).
- A withdrawal's `clientId` (ccxt's tag) is kept by the engine as an unsigned 32-bit
  integer (Backpack's is any string up to 255 characters): a decimal string or integer
  up to 4,294,967,295 is accepted, anything else refused with INVALID_CLIENT_REQUEST;
  answers carry it as a string, or null.
- Deposit addresses are placeholders: Keel has no wallets, so
  `/wapi/v1/capital/deposit/address` answers a deterministic address per account and
  chain, derived from SHA-256("keel-deposit:<chain>:<account>") in the chain's format
  (Solana base58, 0x-hex for EVM chains, bc1q... for Bitcoin). Nothing watches it; a
  chain watcher (or an operator with `keel deposit`) reports deposits by account.

Imports: keel.core, keel.gateway.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post

from keel.core.commands import RequestWithdrawal
from keel.core.events import CommandRejected, WithdrawalUpdated
from keel.core.transfers import DepositStatus, WithdrawalStatus
from keel.gateway import convert
from keel.gateway import format as fmt
from keel.gateway.errors import ApiError, bad_request, not_implemented, rejection
from keel.gateway.web import account_of, body_of, gateway_of, json_response, query
from keel.views import FundsIn, WithdrawalRecord

CREDIT_ID_BASE: Final = 10**12
DEPOSIT_STATUS_OUT: Final = {
    int(DepositStatus.SEEN): "pending",
    int(DepositStatus.CONFIRMING): "pending",
    int(DepositStatus.CREDITED): "confirmed",
    int(DepositStatus.REJECTED): "declined",
}
WITHDRAWAL_STATUS_OUT: Final = {
    int(WithdrawalStatus.REQUESTED): "pending",
    int(WithdrawalStatus.APPROVED): "pending",
    int(WithdrawalStatus.SENT): "pending",
    int(WithdrawalStatus.COMPLETED): "confirmed",
    int(WithdrawalStatus.REJECTED): "declined",
    int(WithdrawalStatus.CANCELLED): "cancelled",
    int(WithdrawalStatus.FAILED): "refunded",
}
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_EVM_CHAINS: Final = ("Ethereum", "Arbitrum", "Base")


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58[remainder])
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(digits))


def deposit_address(chain: str, account_id: int) -> str:
    """Return the placeholder deposit address of an account on a chain (module docstring)."""
    digest = hashlib.sha256(f"keel-deposit:{chain}:{account_id}".encode()).digest()
    if chain == "Solana":
        return _base58(digest)
    if chain in _EVM_CHAINS:
        return "0x" + digest[:20].hex()
    if chain == "Bitcoin":
        bits = int.from_bytes(digest[:20], "big")
        return "bc1q" + "".join(_BECH32[(bits >> (5 * index)) & 31] for index in reversed(range(32)))
    return digest.hex()


def _time_range(request: Request[Any, Any, Any], to_names: tuple[str, ...]) -> tuple[int | None, int | None]:
    """Return the half-open [from, to] window in ns of a history query (`to` inclusive, ms)."""
    from_ms = query(request, "from")
    from_ns = convert.bounded_int(from_ms, "from", 0, 0, 2**43) * 1_000_000 if from_ms else None
    to_ns = None
    for name in to_names:
        to_ms = query(request, name)
        if to_ms:
            to_ns = (convert.bounded_int(to_ms, name, 0, 0, 2**43) + 1) * 1_000_000
            break
    if from_ns is not None and to_ns is not None and to_ns <= from_ns:
        raise ApiError(400, "INVALID_RANGE", "`to` is before `from`")
    return from_ns, to_ns


def _deposit_object(one: FundsIn, symbol: str, decimals: int) -> dict[str, Any]:
    chain_deposit = one.deposit_id > 0
    return {
        "id": one.deposit_id if chain_deposit else CREDIT_ID_BASE + one.entry_id,
        "symbol": symbol,
        "quantity": fmt.amount(one.amount_atomic, decimals),
        "source": one.chain.lower() if chain_deposit else "administrator",
        "status": DEPOSIT_STATUS_OUT[one.status],
        "transactionHash": one.tx_id if chain_deposit else None,
        "fromAddress": None,
        "toAddress": deposit_address(one.chain, one.account_id) if chain_deposit else None,
        "createdAt": fmt.iso(one.created_ns),
        "platformMemo": None,
        "fiatAmount": None,
        "fiatCurrency": None,
        "institutionBic": None,
    }


@get(
    "/wapi/v1/capital/deposits",
    opt={"instruction": "depositQueryAll"},
    tags=["capital"],
    summary="Deposit history: chain deposits in any status and operator credits, newest first",
)
async def deposits(
    request: Request[Any, Any, Any], limit: str | None = None, offset: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, 2**62)
    from_ns, to_ns = _time_range(request, ("to", "endTime"))  # ccxt sends endTime (spec 6)
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.funds_in(account_id, from_ns, to_ns, count, skip)
    return json_response(
        [_deposit_object(one, assets[one.asset_id].symbol, assets[one.asset_id].decimals) for one in found]
    )


@get(
    "/wapi/v1/capital/deposit/address",
    opt={"instruction": "depositAddressQuery"},
    tags=["capital"],
    summary="The account's deposit address on a chain (a deterministic placeholder: docs/api.md)",
)
async def deposit_address_query(request: Request[Any, Any, Any], blockchain: str | None = None) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    if not blockchain:
        raise bad_request("blockchain is required")
    chains = gateway.read(lambda state: sorted({asset.chain for asset in state.assets if asset.chain}))
    if blockchain not in chains:
        raise ApiError(
            400, "INVALID_CLIENT_REQUEST", f"no asset is deposited on {blockchain[:32]!r} (chains: {', '.join(chains)})"
        )
    return json_response({"address": deposit_address(blockchain, account_id)})


def _withdrawal_object(
    withdrawal_id: int,
    symbol: str,
    decimals: int,
    amount_atomic: int,
    fee_atomic: int,
    chain: str,
    address: str,
    tx_id: str,
    status: int,
    created_ns: int,
    client_id: int,
) -> dict[str, Any]:
    return {
        "id": withdrawal_id,
        "symbol": symbol,
        "quantity": fmt.amount(amount_atomic, decimals),
        "fee": fmt.amount(fee_atomic, decimals),
        "blockchain": chain,
        "toAddress": address,
        "transactionHash": tx_id or None,
        "status": WITHDRAWAL_STATUS_OUT[status],
        "clientId": str(client_id) if client_id >= 0 else None,
        "createdAt": fmt.iso(created_ns),
        "isInternal": False,
        "subaccountId": None,
        "triggerAt": None,
        "identifier": None,
        "providerId": None,
        "accountIdentifier": None,
        "bankIdentifier": None,
        "bankName": None,
        "fiatFee": None,
        "fiatState": None,
        "fiatSymbol": None,
    }


def withdrawal_record_object(one: WithdrawalRecord, symbol: str, decimals: int) -> dict[str, Any]:
    """The Withdrawal object of spec 9.1 for a history record."""
    return _withdrawal_object(
        one.withdrawal_id,
        symbol,
        decimals,
        one.amount_atomic,
        one.fee_atomic,
        one.chain,
        one.address,
        one.tx_id,
        one.status,
        one.created_ns,
        one.client_id,
    )


@get(
    "/wapi/v1/capital/withdrawals",
    opt={"instruction": "withdrawalQueryAll"},
    tags=["capital"],
    summary="Withdrawals with their current status, newest first",
)
async def withdrawals(
    request: Request[Any, Any, Any], limit: str | None = None, offset: str | None = None, id: str | None = None
) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    count = convert.bounded_int(limit, "limit", 100, 1, 1000)
    skip = convert.bounded_int(offset, "offset", 0, 0, 2**62)
    withdrawal_id = convert.bounded_int(id, "id", 0, 1, 2**62) if id else None
    from_ns, to_ns = _time_range(request, ("to",))
    assets = gateway.assets()
    await gateway.history_caught_up()
    found = gateway.history.withdrawals(account_id, withdrawal_id, None, from_ns, to_ns, count, skip)
    return json_response(
        [withdrawal_record_object(one, assets[one.asset_id].symbol, assets[one.asset_id].decimals) for one in found]
    )


class WithdrawBody(msgspec.Struct, rename="camel", kw_only=True):
    """POST /wapi/v1/capital/withdrawals (spec 6): unknown fields are ignored (they were signed)."""

    symbol: str
    quantity: str
    address: str
    blockchain: str
    client_id: str | int | None = None
    two_factor_token: str | None = None
    auto_borrow: bool | None = None
    auto_lend_redeem: bool | None = None


@post(
    "/wapi/v1/capital/withdrawals",
    opt={"instruction": "withdraw"},
    status_code=200,
    tags=["capital"],
    summary="Request a withdrawal (RequestWithdrawal): pending until approved, sent and completed",
)
async def withdraw(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = gateway_of(request)
    account_id = account_of(request)
    body = convert.decode(body_of(request), WithdrawBody, "withdrawal")
    asset = gateway.asset(body.symbol)
    if body.auto_borrow or body.auto_lend_redeem:
        raise not_implemented("Withdrawing with autoBorrow or autoLendRedeem")
    amount_atomic = convert.positive_amount(body.quantity, asset.decimals, "quantity")
    chain = gateway.read(lambda state: state.assets[asset.asset_id].chain)
    if chain and body.blockchain.lower() != chain.lower():  # "Solana" (ccxt, bpx) or "solana"
        raise bad_request(f"{asset.symbol} is withdrawn on {chain}, not {body.blockchain[:32]!r}")
    if not body.address or len(body.address) > 128:
        raise bad_request("address must be 1 to 128 characters")
    client_id = convert.client_id_of(body.client_id)
    outcome = await gateway.submit(
        RequestWithdrawal(
            seq=0,
            timestamp_ns=0,
            account_id=account_id,
            asset_id=asset.asset_id,
            amount_atomic=amount_atomic,
            address=body.address,
            client_id=client_id,
        )
    )
    first = outcome.events[0] if outcome.events else None
    if isinstance(first, CommandRejected):
        raise rejection(first.code, first.message)
    assert isinstance(first, WithdrawalUpdated), first
    return json_response(
        _withdrawal_object(
            first.withdrawal_id,
            asset.symbol,
            asset.decimals,
            first.amount_atomic,
            first.fee_atomic,
            first.chain,
            first.address,
            first.tx_id,
            int(first.status),
            outcome.timestamp_ns,
            first.client_id,
        )
    )


HANDLERS: Final = [deposits, deposit_address_query, withdrawals, withdraw]
