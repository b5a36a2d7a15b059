"""The programs behind `keel serve` and `keel account create` (run as `python -m keel.gateway`).

keel/cli does not import the gateway (STYLE.md section 5: nothing imports the edges), so
those two commands exec this module's entry point with the options they were given.

Imports: keel.core, keel.node, keel.gateway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
DATA_HELP = "The data directory (keel.toml, the log or its DSN, snapshots, operator key)."
app = typer.Typer(help="Keel's API gateway (what `keel serve` and `keel account create` run).", no_args_is_help=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@app.command("serve")
def serve(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port to listen on (0: any free port; see DIR/serve.json)."),
    key_rate: float = typer.Option(100.0, min=0, help="Requests per second per API key (0: unlimited)."),
    key_burst: int = typer.Option(200, min=1, help="Burst per API key."),
    ip_rate: float = typer.Option(500.0, min=0, help="Requests per second per client address (0: unlimited)."),
    ip_burst: int = typer.Option(1_000, min=1, help="Burst per client address."),
) -> None:
    """Serve the Backpack-compatible REST API and the operator API over DIR's node (verified recovery first)."""
    from keel.core.errors import KeelError
    from keel.gateway.context import Limits
    from keel.gateway.ratelimit import Limit
    from keel.gateway.server import serve as run

    limits = Limits(key=Limit(key_rate, key_burst), ip=Limit(ip_rate, ip_burst))

    def listening(url: str) -> None:
        console.print(f"serving {data} at {url} (OpenAPI: {url}/openapi.json); Ctrl-C stops", highlight=False)

    try:
        run(data, host, port, limits=limits, on_listening=listening)
    except (KeelError, OSError, ValueError) as error:
        raise fail(str(error)) from None
    console.print("stopped; everything acknowledged is durable")


def _parse_deposits(deposits: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for text in deposits:
        symbol, separator, amount = text.partition("=")
        if not separator or not symbol or not amount:
            raise fail(f"--deposit takes ASSET=AMOUNT (e.g. USDC=1000), not {text!r}", 2)
        parsed.append((symbol.strip().upper(), amount.strip()))
    return parsed


def _serving_url(data: Path) -> str | None:
    """Return the URL of a node serving DIR, if DIR/serve.json names one that answers."""
    from keel.gateway.client import ApiFailure, call
    from keel.gateway.server import serve_file

    path = serve_file(data)
    try:
        url = str(json.loads(path.read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        call(url, "GET", "/api/v1/ping", timeout_s=5)
    except (OSError, ApiFailure):
        return None
    return url


def _create_through_api(url: str, data: Path, api_key: str, deposits: list[tuple[str, str]]) -> int:
    from keel.gateway.client import ApiFailure, call
    from keel.gateway.keys import operator_public_key_b64, operator_secret_b64

    try:
        answer = call(
            url,
            "POST",
            "/operator/v1/accounts",
            instruction="operatorAccountCreate",
            params={
                "publicKey": api_key,
                "deposits": ",".join(f"{symbol}={amount}" for symbol, amount in deposits),
            },
            api_key=operator_public_key_b64(data),
            secret_b64=operator_secret_b64(data),
        )
    except ApiFailure as failure:
        body = failure.body
        message = body.get("message", body) if isinstance(body, dict) else body
        raise fail(f"the serving node refused: {message}") from None
    return int(answer["accountId"])


def _create_offline(data: Path, api_key: str, deposits: list[tuple[str, str]]) -> int:
    from keel.core.commands import CreateAccount, Credit
    from keel.core.errors import KeelError
    from keel.core.events import AccountCreated, CommandRejected
    from keel.core.money import parse_decimal
    from keel.gateway.keys import KeyStore
    from keel.node.node import Node

    try:
        node = Node.open(data)
    except (KeelError, OSError, ValueError) as error:
        raise fail(str(error)) from None
    try:
        state = node.engine.state
        credits = []
        for symbol, amount in deposits:  # decide before anything is logged
            asset_id = state.asset_ids_by_symbol.get(symbol)
            if asset_id is None:
                raise fail(f"no asset {symbol} is listed")
            try:
                atomic = parse_decimal(amount, state.assets[asset_id].decimals, field=f"{symbol} deposit")
            except KeelError as error:
                raise fail(str(error)) from None
            if atomic <= 0:
                raise fail(f"a deposit must be positive, not {amount}")
            credits.append((asset_id, atomic))
        keys = KeyStore(data)
        sequencer = node.start()
        created = sequencer.call(CreateAccount(seq=0, timestamp_ns=0)).events[0]
        if not isinstance(created, AccountCreated):
            raise fail(f"the account was refused: {getattr(created, 'message', created)}")
        account_id = created.account_id
        keys.add(api_key, account_id)
        for asset_id, atomic in credits:
            outcome = sequencer.call(
                Credit(seq=0, timestamp_ns=0, account_id=account_id, asset_id=asset_id, amount_atomic=atomic)
            )
            if isinstance(outcome.events[0], CommandRejected):
                raise fail(f"account {account_id} was created but a deposit was refused: {outcome.events[0].message}")
    finally:
        node.close()
    return account_id


@app.command("account-create")
def account_create(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    deposit: list[str] = typer.Option([], "--deposit", help="ASSET=AMOUNT to credit (repeatable), e.g. USDC=1000."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create an account with a fresh ED25519 API key; print the key and its secret (shown only this once)."""
    from keel.gateway.keys import new_key_pair

    deposits = _parse_deposits(deposit)
    api_key, api_secret = new_key_pair()
    url = _serving_url(data)
    if url is not None:
        account_id = _create_through_api(url, data, api_key, deposits)
    else:
        account_id = _create_offline(data, api_key, deposits)
    result: dict[str, Any] = {
        "account_id": account_id,
        "api_key": api_key,
        "api_secret": api_secret,
        "deposits": {symbol: amount for symbol, amount in deposits},
    }
    if json_output:
        typer.echo(json.dumps(result))
        return
    console.print(f"account {account_id} created" + (f" through {url}" if url else ""), highlight=False)
    console.print(f"API key:    {api_key}", highlight=False)
    console.print(f"API secret: {api_secret}  (shown only now: Keel keeps the public key only)", highlight=False)
    for symbol, amount in deposits:
        console.print(f"deposited {amount} {symbol}", highlight=False)
