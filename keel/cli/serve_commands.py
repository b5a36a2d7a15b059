"""`keel serve` and `keel account create`: they exec the gateway's own entry point.

The gateway is an edge like the CLI (STYLE.md section 5), so the CLI does not import it:
these commands take their options here (for `keel --help`) and replace this process with
`python -m keel.gateway serve|account-create` given the same options. Signals, exit codes
and output are then the gateway's own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

DATA_HELP = "The data directory (keel.toml, the log or its DSN, snapshots, operator key)."


def _exec_gateway(arguments: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "keel.gateway", *arguments])


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
    _exec_gateway(
        [
            "serve",
            f"--data={data}",
            f"--host={host}",
            f"--port={port}",
            f"--key-rate={key_rate}",
            f"--key-burst={key_burst}",
            f"--ip-rate={ip_rate}",
            f"--ip-burst={ip_burst}",
        ]
    )


def account_create(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    deposit: list[str] = typer.Option([], "--deposit", help="ASSET=AMOUNT to credit (repeatable), e.g. USDC=1000."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create an account with a fresh ED25519 API key; print the key and its secret (shown only this once).

    Goes through the operator API of the node serving DIR if there is one, else opens DIR itself."""
    _exec_gateway(
        [
            "account-create",
            f"--data={data}",
            *(f"--deposit={one}" for one in deposit),
            *(["--json"] if json_output else []),
        ]
    )


def register(app: typer.Typer) -> None:
    """Add `keel serve` and `keel account create` to the `keel` app."""
    app.command("serve")(serve)
    account_app = typer.Typer(help="User accounts and their API keys.", no_args_is_help=True)
    account_app.command("create")(account_create)
    app.add_typer(account_app, name="account")
