"""`keel deposit`, `keel withdrawals ...` and `keel adjust`: value crossing the boundary, by hand.

- `keel deposit` reports a deposit as a chain watcher would (`ReportDeposit`): the
  operator's manual credit. By default it is credited at once (it claims the asset's
  required confirmations) on the asset's chain, under a fresh transaction id
  "manual-<16 hex digits>" (so running it twice credits twice: give --tx to make a report
  idempotent, as the engine credits each (chain, tx, index) at most once).
- `keel withdrawals list` shows withdrawals newest first (--status, --account);
  `approve`, `reject`, `mark-sent`, `mark-completed` and `mark-failed` are the operator's
  steps (`UpdateWithdrawal`); `freeze` and `unfreeze` stop and restart every withdrawal
  step (`FreezeWithdrawals`).
- `keel adjust` is a visible correction with an incident reference (`Adjust`): a
  positive amount credits the account, a negative one debits it.

Every command goes through the serving node's operator API, or a node of its own when
none serves the directory (operator_api.py). The engine decides (docs/transfers.md): a
refusal prints its code and message and exits 1; a bad argument exits 2 and logs nothing.

Imports: keel.core, keel.node, keel.cli.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import typer
from rich.table import Table

from keel.cli.market_commands import OPERATOR_HELP, default_operator, group, iso
from keel.cli.node_commands import DATA_HELP, console, fail
from keel.cli.operator_api import (
    CommandFailed,
    OperatorApi,
    open_node,
    open_read_only,
    serving_url,
    submit,
)
from keel.core.commands import Adjust, FreezeWithdrawals, ReportDeposit, UpdateWithdrawal
from keel.core.errors import Rejected
from keel.core.events import Adjusted, DepositUpdated, LedgerPosted, WithdrawalsFrozen, WithdrawalUpdated
from keel.core.money import format_decimal, parse_decimal
from keel.core.state import ExchangeState
from keel.core.transfers import DepositStatus, WithdrawalAction, WithdrawalStatus

WITHDRAWAL_STATUSES: Final = [status.name.lower() for status in WithdrawalStatus]
ACTIONS: Final = {  # command name -> (core action, API action, past tense)
    "approve": (WithdrawalAction.APPROVE, "approve", "approved"),
    "reject": (WithdrawalAction.REJECT, "reject", "rejected"),
    "mark-sent": (WithdrawalAction.MARK_SENT, "markSent", "marked sent"),
    "mark-completed": (WithdrawalAction.MARK_COMPLETED, "markCompleted", "marked completed"),
    "mark-failed": (WithdrawalAction.MARK_FAILED, "markFailed", "marked failed"),
}


def _run(action: Any) -> Any:
    try:
        return action()
    except CommandFailed as failed:
        raise fail(failed.message, failed.code) from None


def _through(result: dict[str, Any]) -> str:
    return f" (through {result['through']})" if result["through"] else ""


def _asset_id(state: ExchangeState, symbol: str) -> int:
    asset_id = state.asset_ids_by_symbol.get(symbol.upper())
    if asset_id is None:
        listed = ", ".join(asset.symbol for asset in state.assets)
        raise CommandFailed(f"unknown asset {symbol} (listed: {listed})", 2)
    return asset_id


def _amount_atomic(state: ExchangeState, asset_id: int, text: str, signed: bool = False) -> int:
    asset = state.assets[asset_id]
    negative = signed and text.strip().startswith("-")
    try:
        atomic = parse_decimal(
            text.strip().removeprefix("-") if negative else text.strip(), asset.decimals, field="amount"
        )
    except Rejected as rejected:
        raise CommandFailed(f"{rejected.message} (an amount of {asset.symbol})", 2) from None
    if atomic <= 0:
        raise CommandFailed(f"the amount must be {'non-zero' if signed else 'positive'}, got {text}", 2)
    return -atomic if negative else atomic


def _check_decimal(text: str, signed: bool = False) -> str:
    """The API path's check of an amount before anything is sent (the node checks precision)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CommandFailed(f"the amount {text!r} is not a decimal number", 2) from None
    if not value.is_finite() or (value <= 0 and not signed) or value == 0:
        raise CommandFailed(f"the amount must be {'non-zero' if signed else 'positive'}, got {text}", 2)
    return text.strip()


def _api_asset(url: str, symbol: str) -> str:
    """Check an asset symbol against the serving node's listing (exit 2 naming the listed ones)."""
    with urllib.request.urlopen(url.rstrip("/") + "/api/v1/assets", timeout=30) as response:
        listed = [asset["symbol"] for asset in json.loads(response.read())]
    if symbol.upper() not in listed:
        raise CommandFailed(f"unknown asset {symbol} (listed: {', '.join(listed)})", 2)
    return symbol.upper()


# ---- keel deposit ------------------------------------------------------------------------
def _deposit_result(
    event: DepositUpdated, state: ExchangeState, seq: int, changed: bool, entry_id: int | None
) -> dict[str, Any]:
    asset = state.assets[event.asset_id]
    return {
        "seq": seq,
        "through": None,
        "changed": changed,
        "deposit_id": event.deposit_id,
        "account_id": event.account_id,
        "asset": asset.symbol,
        "amount": format_decimal(event.amount_atomic, asset.decimals),
        "chain": event.chain,
        "tx": event.tx_id,
        "index": event.output_index,
        "confirmations": event.confirmations,
        "status": DepositStatus(int(event.status)).name.lower(),
        "entry_id": entry_id,
    }


def _deposit(
    data: Path,
    account: int,
    symbol: str,
    amount: str,
    chain: str | None,
    tx: str,
    index: int,
    confirmations: int | None,
) -> dict[str, Any]:
    url = serving_url(data)
    if url is not None:
        answer = OperatorApi(url, data).call(
            "POST",
            "/operator/v1/deposits",
            "operatorDepositReport",
            {
                "accountId": account,
                "symbol": _api_asset(url, symbol),
                "quantity": _check_decimal(amount),
                "txId": tx,
                "chain": chain,
                "outputIndex": index,
                "confirmations": confirmations,
            },
        )
        return {
            "seq": answer["seq"],
            "through": url,
            "changed": answer["changed"],
            "deposit_id": answer["depositId"],
            "account_id": answer["accountId"],
            "asset": answer["symbol"],
            "amount": answer["quantity"],
            "chain": answer["chain"],
            "tx": answer["txId"],
            "index": answer["outputIndex"],
            "confirmations": answer["confirmations"],
            "status": answer["status"],
            "entry_id": answer["entryId"],
        }
    node = open_node(data, "keel deposit")
    try:
        state = node.engine.state
        asset_id = _asset_id(state, symbol)
        asset = state.assets[asset_id]
        amount_atomic = _amount_atomic(state, asset_id, amount)
        chain_name = chain if chain is not None else asset.chain
        if not chain_name:
            raise CommandFailed(f"{asset.symbol} has no chain configured: give --chain", 2)
        outcome = submit(
            node,
            ReportDeposit(
                seq=0,
                timestamp_ns=0,
                chain=chain_name,
                tx_id=tx,
                output_index=index,
                account_id=account,
                asset_id=asset_id,
                amount_atomic=amount_atomic,
                confirmations=confirmations if confirmations is not None else asset.confirmations_required,
            ),
        )
        entry_id = next((event.entry_id for event in outcome.events if isinstance(event, LedgerPosted)), None)
        updated = next((event for event in outcome.events if isinstance(event, DepositUpdated)), None)
        if updated is not None:
            return _deposit_result(updated, state, outcome.seq, True, entry_id)
        deposit = state.deposits[state.deposit_keys[(chain_name, tx, index)]]  # a repeated report: nothing changed
        existing = DepositUpdated(
            deposit.deposit_id,
            deposit.account_id,
            deposit.asset_id,
            deposit.amount_atomic,
            deposit.chain,
            deposit.tx_id,
            deposit.output_index,
            deposit.confirmations,
            int(deposit.status),
        )
        return _deposit_result(existing, state, outcome.seq, False, None)
    finally:
        node.close()


def deposit(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    account: int = typer.Option(..., "--account", help="The account credited."),
    asset: str = typer.Option(..., "--asset", help="The asset's symbol, e.g. USDC."),
    amount: str = typer.Option(..., "--amount", help="A positive decimal in the asset's units."),
    chain: str | None = typer.Option(None, "--chain", help="The chain (default: the asset's, e.g. Solana)."),
    tx: str | None = typer.Option(None, "--tx", help="The chain transaction id (default: a fresh manual-... id)."),
    index: int = typer.Option(0, "--index", min=0, help="The transaction's output index."),
    confirmations: int | None = typer.Option(
        None, "--confirmations", min=0, help="Confirmations seen (default: what the asset requires: credited now)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Credit a deposit by hand, as a chain watcher reports one (ReportDeposit; credited once per chain, tx, index)."""
    tx_id = tx if tx is not None else f"manual-{secrets.token_hex(8)}"
    result = _run(lambda: _deposit(data, account, asset, amount, chain, tx_id, index, confirmations))
    if json_output:
        typer.echo(json.dumps(result))
        return
    where = f"{result['chain']} {result['tx']}:{result['index']}"
    if not result["changed"]:
        console.print(
            f"seq {result['seq']}: deposit {result['deposit_id']} ({where}) was already reported; "
            f"nothing changed: it is {result['status']} with {result['confirmations']} confirmations{_through(result)}",
            highlight=False,
        )
        return
    console.print(
        f"seq {result['seq']}: deposit {result['deposit_id']} of {result['amount']} {result['asset']} to account "
        f"{result['account_id']} ({where}): {result['status']}, {result['confirmations']} confirmations"
        + (f", ledger entry {result['entry_id']}" if result["entry_id"] is not None else "")
        + _through(result),
        highlight=False,
    )


# ---- keel withdrawals --------------------------------------------------------------------
def _withdrawal_rows(state: ExchangeState, status: str | None, account: int | None, limit: int) -> list[dict[str, Any]]:
    rows = []
    for withdrawal_id in sorted(state.withdrawals, reverse=True):
        withdrawal = state.withdrawals[withdrawal_id]
        name = WithdrawalStatus(withdrawal.status).name.lower()
        if (status is not None and name != status) or (account is not None and withdrawal.account_id != account):
            continue
        asset = state.assets[withdrawal.asset_id]
        rows.append(
            {
                "id": withdrawal_id,
                "account_id": withdrawal.account_id,
                "asset": asset.symbol,
                "amount": format_decimal(withdrawal.amount_atomic, asset.decimals),
                "fee": format_decimal(withdrawal.fee_atomic, asset.decimals),
                "chain": withdrawal.chain,
                "address": withdrawal.address,
                "tx": withdrawal.tx_id or None,
                "status": name,
                "reason": withdrawal.reason or None,
                "approvals": list(withdrawal.approvals),
                "created": iso(withdrawal.created_ns),
                "updated": iso(withdrawal.updated_ns),
            }
        )
        if len(rows) >= limit:
            break
    return rows


def withdrawals_list(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    status: str | None = typer.Option(None, "--status", help=f"Only this status: {', '.join(WITHDRAWAL_STATUSES)}."),
    account: int | None = typer.Option(None, "--account", help="Only this account's."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many, newest first."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON array."),
) -> None:
    """List withdrawals, newest first, with their status and who approved them (read-only)."""
    if status is not None and status.lower() not in WITHDRAWAL_STATUSES:
        raise fail(f"unknown status {status!r}: expected one of {', '.join(WITHDRAWAL_STATUSES)}", 2)
    wanted = status.lower() if status is not None else None

    def read() -> list[dict[str, Any]]:
        url = serving_url(data)
        if url is not None:
            answer = OperatorApi(url, data).call(
                "GET",
                "/operator/v1/withdrawals",
                "operatorWithdrawals",
                {"status": wanted, "accountId": account, "limit": limit},
            )
            return [
                {
                    "id": one["id"],
                    "account_id": one["accountId"],
                    "asset": one["symbol"],
                    "amount": one["quantity"],
                    "fee": one["fee"],
                    "chain": one["chain"],
                    "address": one["address"],
                    "tx": one["txId"],
                    "status": one["status"],
                    "reason": one["reason"],
                    "approvals": one["approvals"],
                    "created": one["createdAt"].replace("T", " ")[:19] + " UTC",
                    "updated": one["updatedAt"].replace("T", " ")[:19] + " UTC",
                }
                for one in answer
            ]
        node = open_read_only(data)
        try:
            return _withdrawal_rows(node.engine.state, wanted, account, limit)
        finally:
            node.close()

    rows = _run(read)
    if json_output:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print(
            "no withdrawal" + (f" is {wanted}" if wanted else "") + (f" of account {account}" if account else "")
        )
        return
    table = Table("id", "account", "amount", "fee", "chain", "address", "status", "approved by", "tx", "requested")
    for row in rows:
        status_text = row["status"] + (f" ({row['reason']})" if row["reason"] else "")
        table.add_row(
            str(row["id"]),
            str(row["account_id"]),
            f"{row['amount']} {row['asset']}",
            row["fee"],
            row["chain"],
            row["address"],
            status_text,
            ", ".join(row["approvals"]) or "-",
            row["tx"] or "-",
            row["created"],
        )
    console.print(table)


def _update(data: Path, withdrawal_id: int, command_name: str, operator: str, tx: str, reason: str) -> dict[str, Any]:
    action, api_action, _ = ACTIONS[command_name]
    url = serving_url(data)
    if url is not None:
        answer = OperatorApi(url, data).call(
            "POST",
            "/operator/v1/withdrawals/update",
            "operatorWithdrawalUpdate",
            {"withdrawalId": withdrawal_id, "action": api_action, "operator": operator, "txId": tx, "reason": reason},
        )
        return {
            "seq": answer["seq"],
            "through": url,
            "withdrawal_id": answer["id"],
            "account_id": answer["accountId"],
            "asset": answer["symbol"],
            "amount": answer["quantity"],
            "status": answer["status"],
            "tx": answer["txId"],
            "entry_id": answer["entryId"],
        }
    node = open_node(data, f"keel withdrawals {command_name}")
    try:
        state = node.engine.state
        outcome = submit(
            node,
            UpdateWithdrawal(
                seq=0,
                timestamp_ns=0,
                withdrawal_id=withdrawal_id,
                action=int(action),
                operator=operator,
                tx_id=tx,
                reason=reason,
            ),
        )
    finally:
        node.close()
    event = next(event for event in outcome.events if isinstance(event, WithdrawalUpdated))
    asset = state.assets[event.asset_id]
    return {
        "seq": outcome.seq,
        "through": None,
        "withdrawal_id": event.withdrawal_id,
        "account_id": event.account_id,
        "asset": asset.symbol,
        "amount": format_decimal(event.amount_atomic, asset.decimals),
        "status": WithdrawalStatus(int(event.status)).name.lower(),
        "tx": event.tx_id or None,
        "entry_id": next((one.entry_id for one in outcome.events if isinstance(one, LedgerPosted)), None),
    }


def _action_command(command_name: str, needs_tx: bool, needs_reason: bool) -> Any:
    past = ACTIONS[command_name][2]

    def command(
        withdrawal_id: int = typer.Argument(..., help="The withdrawal's id (see `keel withdrawals list`)."),
        data: Path = typer.Option(..., "--data", help=DATA_HELP),
        tx: str = typer.Option(
            ... if needs_tx else "", "--tx", hidden=not needs_tx, help="The chain transaction id of the send."
        ),
        reason: str = typer.Option(
            ... if needs_reason else "", "--reason", hidden=not needs_reason, help="Why (logged with the step)."
        ),
        operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        result = _run(lambda: _update(data, withdrawal_id, command_name, operator, tx, reason))
        if json_output:
            typer.echo(json.dumps(result))
            return
        if command_name == "approve" and result["status"] == "requested":
            console.print(
                f"seq {result['seq']}: withdrawal {result['withdrawal_id']} ({result['amount']} {result['asset']} of "
                f"account {result['account_id']}) approved by {operator}; at its amount a second operator must "
                f"approve it too{_through(result)}",
                highlight=False,
            )
            return
        console.print(
            f"seq {result['seq']}: withdrawal {result['withdrawal_id']} ({result['amount']} {result['asset']} of "
            f"account {result['account_id']}) {past}: it is now {result['status']}"
            + (f", tx {result['tx']}" if result["tx"] else "")
            + (f", ledger entry {result['entry_id']}" if result["entry_id"] is not None else "")
            + _through(result),
            highlight=False,
        )

    command.__doc__ = {
        "approve": "Approve a requested withdrawal (a second operator too at or above the two-person amount).",
        "reject": "Reject a withdrawal that is not sent yet; its funds are released.",
        "mark-sent": "Record that an approved withdrawal was sent on chain, with its transaction id.",
        "mark-completed": "Complete a sent withdrawal: the ledger moves the amount out and the fee to the fee account.",
        "mark-failed": "Fail an approved or sent withdrawal that did not go through; its funds are released.",
    }[command_name]
    return command


def _freeze(data: Path, frozen: bool, reason: str, operator: str) -> dict[str, Any]:
    url = serving_url(data)
    if url is not None:
        answer = OperatorApi(url, data).call(
            "POST",
            "/operator/v1/withdrawals/freeze",
            "operatorWithdrawalsFreeze",
            {"frozen": frozen, "reason": reason, "operator": operator},
        )
        return {"seq": answer["seq"], "through": url, "frozen": answer["frozen"], "reason": answer["reason"]}
    node = open_node(data, "keel withdrawals freeze")
    try:
        outcome = submit(
            node, FreezeWithdrawals(seq=0, timestamp_ns=0, frozen=frozen, reason=reason, operator=operator)
        )
    finally:
        node.close()
    event = next(event for event in outcome.events if isinstance(event, WithdrawalsFrozen))
    return {"seq": outcome.seq, "through": None, "frozen": event.frozen, "reason": event.reason}


def _freeze_command(frozen: bool) -> Any:
    def command(
        data: Path = typer.Option(..., "--data", help=DATA_HELP),
        reason: str = typer.Option(..., "--reason", help="Why (logged; users see a freeze in /api/v1/status)."),
        operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        result = _run(lambda: _freeze(data, frozen, reason, operator))
        if json_output:
            typer.echo(json.dumps(result))
            return
        word = "frozen" if result["frozen"] else "unfrozen"
        console.print(
            f"seq {result['seq']}: withdrawals {word} ({result['reason']}){_through(result)}", highlight=False
        )

    command.__doc__ = (
        "Freeze withdrawals: no request, approval, send or completion until unfrozen."
        if frozen
        else "Unfreeze withdrawals."
    )
    return command


# ---- keel adjust -------------------------------------------------------------------------
def _adjust(data: Path, account: int, symbol: str, amount: str, incident: str, operator: str) -> dict[str, Any]:
    url = serving_url(data)
    if url is not None:
        answer = OperatorApi(url, data).call(
            "POST",
            "/operator/v1/adjustments",
            "operatorAdjust",
            {
                "accountId": account,
                "symbol": _api_asset(url, symbol),
                "quantity": _check_decimal(amount, signed=True),
                "incident": incident,
                "operator": operator,
            },
        )
        return {
            "seq": answer["seq"],
            "through": url,
            "account_id": answer["accountId"],
            "asset": answer["symbol"],
            "amount": answer["quantity"],
            "incident": answer["incident"],
            "entry_id": answer["entryId"],
        }
    node = open_node(data, "keel adjust")
    try:
        state = node.engine.state
        asset_id = _asset_id(state, symbol)
        amount_atomic = _amount_atomic(state, asset_id, amount, signed=True)
        outcome = submit(
            node,
            Adjust(
                seq=0,
                timestamp_ns=0,
                account_id=account,
                asset_id=asset_id,
                amount_atomic=amount_atomic,
                incident=incident,
                operator=operator,
            ),
        )
    finally:
        node.close()
    event = next(event for event in outcome.events if isinstance(event, Adjusted))
    asset = state.assets[asset_id]
    return {
        "seq": outcome.seq,
        "through": None,
        "account_id": event.account_id,
        "asset": asset.symbol,
        "amount": format_decimal(event.amount_atomic, asset.decimals),
        "incident": event.incident,
        "entry_id": next((one.entry_id for one in outcome.events if isinstance(one, LedgerPosted)), None),
    }


def adjust(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    account: int = typer.Option(..., "--account", help="The account corrected."),
    asset: str = typer.Option(..., "--asset", help="The asset's symbol, e.g. USDC."),
    amount: str = typer.Option(..., "--amount", help="Signed decimal: > 0 credits, < 0 debits (use --amount=-5)."),
    incident: str = typer.Option(..., "--incident", help="The incident reference (logged; in the ledger's history)."),
    operator: str = typer.Option(default_operator(), "--operator", help=OPERATOR_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A visible correction (Adjust, ledger reason adjustment) with an incident reference."""
    result = _run(lambda: _adjust(data, account, asset, amount, incident, operator))
    if json_output:
        typer.echo(json.dumps(result))
        return
    direction = "debited" if result["amount"].startswith("-") else "credited"
    console.print(
        f"seq {result['seq']}: account {result['account_id']} {direction} {result['amount'].lstrip('-')} "
        f"{result['asset']} (incident {result['incident']}, ledger entry {result['entry_id']}){_through(result)}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add `keel deposit`, `keel withdrawals list|approve|reject|mark-sent|mark-completed|mark-failed|freeze|unfreeze`
    and `keel adjust` to the `keel` app."""
    app.command("deposit")(deposit)
    app.command("adjust")(adjust)
    withdrawals_app = group(app, "withdrawals", "Withdrawals: list them and take the operator's steps.")
    withdrawals_app.command("list")(withdrawals_list)
    withdrawals_app.command("approve")(_action_command("approve", False, False))
    withdrawals_app.command("reject")(_action_command("reject", False, True))
    withdrawals_app.command("mark-sent")(_action_command("mark-sent", True, False))
    withdrawals_app.command("mark-completed")(_action_command("mark-completed", False, False))
    withdrawals_app.command("mark-failed")(_action_command("mark-failed", False, True))
    withdrawals_app.command("freeze")(_freeze_command(True))
    withdrawals_app.command("unfreeze")(_freeze_command(False))
