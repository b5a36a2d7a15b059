"""`keel maintenance run` and `keel maintenance status`: the operator procedure, step by step.

The steps (issue 6), each reported as it goes and recorded in DIR/maintenance.json:

 1. announce     log a maintenance schedule closing every market in --close-in seconds
                 (with --cancel-orders the close also cancels every resting order)
 2. close        wait until the schedule has moved every market to Closed
 3. checkpoint   stop serving (or trading), append a checkpoint and write a snapshot
 4. upgrade      run --upgrade COMMAND (the new code is installed here), if given
 5. rehearse     `keel rehearse`, in a new process (the new code): replay the whole log
                 and reproduce every checkpoint and the snapshot
 6. restart      start `keel serve` again (it recovers and verifies), or open the node
 7. verify       the state at the checkpoint's seq, replayed by the new code, has the
                 checkpoint's hash
 8. post-only    refresh index prices (--index), then every market PostOnly for --post-only s
 9. open         every market Open

Any failed step stops the procedure there, with the markets still Closed (or PostOnly if
it failed at the open), and says exactly why; the status file keeps the reason.

A node serving DIR (DIR/serve.json) is driven through its operator API and restarted as
`keel serve` with the same address; an idle DIR is driven through a node of its own.

Imports: keel.core, keel.node, keel.cli.operator_api, keel.cli.market_commands.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer
from rich.console import Console

from keel.cli.market_commands import STATE_NAMES, _schedule, _set_state, default_operator
from keel.cli.operator_api import SERVE_NAME, CommandFailed, OperatorApi, open_node, serving_url, submit
from keel.core.commands import SetIndexPrices, Tick
from keel.core.markets import MarketState
from keel.core.money import parse_decimal
from keel.node.node import Node, wait_for_lock_release

STATUS_NAME = "maintenance.json"
STEPS = ("announce", "close", "checkpoint", "upgrade", "rehearse", "restart", "verify", "post-only", "open")
console = Console(soft_wrap=True, highlight=False)
KEEL = [sys.executable, "-m", "keel.cli.main"]


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Procedure:
    """One run; writes DIR/maintenance.json after every change."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.status: dict[str, Any] = {
            "started": _now_iso(),
            "finished": None,
            "result": "running",
            "steps": [{"name": name, "status": "pending", "detail": ""} for name in STEPS],
        }
        self.write()

    def write(self) -> None:
        path = self.data / STATUS_NAME
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.status, indent=2) + "\n")
        os.replace(temporary, path)

    def step(self, name: str, action: Callable[[], str]) -> None:
        entry = next(step for step in self.status["steps"] if step["name"] == name)
        entry["status"] = "running"
        self.write()
        number = STEPS.index(name) + 1
        console.print(f"[bold]{number}/{len(STEPS)} {name}[/] ...")
        try:
            detail = action()
        except CommandFailed as error:
            entry.update(status="failed", detail=error.message)
            self.status.update(result="failed", finished=_now_iso())
            self.write()
            console.print(f"[red]failed[/]: {error.message}")
            raise
        entry.update(status="done", detail=detail)
        self.write()
        console.print(f"   [green]done[/]: {detail}")


def _markets_closed(data: Path) -> bool:
    node = Node.open(data, read_only=True)
    try:
        return all(market.state == MarketState.CLOSED for market in node.engine.state.markets)
    finally:
        node.close()


def _stop_server(data: Path, timeout: float) -> None:
    pid = int(json.loads((data / SERVE_NAME).read_text())["pid"])
    os.kill(pid, signal.SIGTERM)
    wait_for_lock_release(data, timeout)


def _start_server(data: Path, host: str, port: int, timeout: float) -> subprocess.Popen[bytes]:
    log = open(data / "serve.log", "ab")  # noqa: SIM115 - the server's output outlives this call
    process = subprocess.Popen(
        [*KEEL, "serve", "--data", str(data), "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (data / "serve.log").read_bytes()[-2000:].decode(errors="replace")
            raise CommandFailed(f"keel serve exited with {process.returncode} while starting:\n{tail}")
        if serving_url(data) is not None:
            return process
        time.sleep(0.2)
    raise CommandFailed(f"keel serve did not answer within {timeout:.0f} s (see {data / 'serve.log'})")


def _index_prices(data: Path, prices: list[str]) -> str:
    url = serving_url(data)
    if url is not None:
        OperatorApi(url, data).call(
            "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": ",".join(prices)}
        )
        return f"index prices {', '.join(prices)} (through {url})"
    node = open_node(data, "keel maintenance run")
    try:
        state = node.engine.state
        margin = state.assets[state.margin_asset_id]
        pairs = []
        for text in prices:
            symbol, _, price = text.partition("=")
            asset_id = state.asset_ids_by_symbol.get(symbol.upper())
            if asset_id is None:
                raise CommandFailed(f"unknown asset {symbol}", 2)
            pairs.append((asset_id, parse_decimal(price, margin.decimals, field=f"{symbol} index price")))
        submit(node, SetIndexPrices(seq=0, timestamp_ns=0, prices=tuple(pairs)))
    except ValueError as error:
        raise CommandFailed(str(error), 2) from None
    finally:
        node.close()
    return f"index prices {', '.join(prices)}"


def run_procedure(
    data: Path,
    *,
    announcement: str,
    close_in: float,
    post_only: float,
    upgrade: str | None,
    index: list[str],
    operator: str,
    timeout: float,
    cancel_orders: bool = False,
) -> dict[str, Any]:
    if not (data / "keel.toml").exists():
        raise CommandFailed(f"{data} is not a Keel data directory (no keel.toml)", 2)
    procedure = Procedure(data)
    served = serving_url(data)
    address = urlparse(served) if served else None
    facts: dict[str, Any] = {"served": served}

    def announce() -> str:
        close_at = time.time_ns() + int(close_in * 1e9) + 1_000_000_000
        answer = _schedule(data, [(close_at, MarketState.CLOSED, cancel_orders)], [], announcement, operator)
        facts["close_at"] = close_at
        when = answer["steps"][0]["time"]
        cancels = ", cancelling every resting order" if cancel_orders else ""
        return f"schedule {answer['schedule_id']} (seq {answer['seq']}): every market Closed at {when}{cancels}"

    def close() -> str:
        deadline = time.monotonic() + close_in + timeout
        if served is None:  # no node runs: one of our own applies the step with a Tick
            while time.time_ns() < facts["close_at"]:
                time.sleep(0.1)
            node = open_node(data, "keel maintenance run")
            try:
                submit(node, Tick(seq=0, timestamp_ns=0))
            finally:
                node.close()
        while not _markets_closed(data):
            if time.monotonic() > deadline:
                raise CommandFailed("the markets did not close in time; the schedule's step may be blocked")
            time.sleep(0.2)
        return "every market is Closed; nothing trades"

    def checkpoint() -> str:
        if served is not None:
            _stop_server(data, timeout)
        node = open_node(data, "keel maintenance run")
        try:
            seq, path = node.snapshot_now()
            facts["checkpoint_seq"] = seq
            facts["checkpoint_hash"] = node.engine.state_hash().hex()
        finally:
            node.close()
        short = facts["checkpoint_hash"][:16]
        return f"checkpoint at seq {seq}, state hash {short}..., snapshot {path.name}; node stopped"

    def do_upgrade() -> str:
        if not upgrade:
            return "no --upgrade command given: the installed code is the new code"
        result = subprocess.run(shlex.split(upgrade), capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandFailed(f"upgrade command failed ({result.returncode}): {result.stderr[-2000:]}")
        return f"ran {upgrade!r}"

    def rehearse() -> str:
        result = subprocess.run([*KEEL, "rehearse", "--data", str(data), "--json"], capture_output=True, text=True)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise CommandFailed(f"the rehearsal did not run: {result.stderr[-2000:]}") from None
        if not report["ok"]:
            parts = [report.get("error") or ""]
            if report["differences"]:
                first = report["differences"][0]
                parts.append(
                    f"first differing checkpoint at seq {first['seq']} "
                    f"(diverged after seq {first['previous_good_seq']}), "
                    f"sections {', '.join(first['sections'])}"
                )
            for seq, sections in report["entities"].items():
                for section, keys in sections.items():
                    parts.append(f"at snapshot {seq}, {section} differ: {', '.join(keys[:10])}")
            raise CommandFailed("the new code does not reproduce the log: " + "; ".join(p for p in parts if p))
        return f"{report['records']} records replayed, {report['checkpoints']} checkpoints reproduced"

    def restart() -> str:
        if served is not None and address is not None:
            _start_server(data, address.hostname or "127.0.0.1", address.port or 8080, timeout)
            return f"keel serve is serving {served} again (its recovery verified every checkpoint)"
        node = open_node(data, "keel maintenance run")  # recovery verifies the log
        node.close()
        return "the node opened: recovery verified every checkpoint"

    def verify() -> str:
        seq = facts["checkpoint_seq"]
        result = subprocess.run(
            [*KEEL, "replay", "--data", str(data), "--to", str(seq), "--json"], capture_output=True, text=True
        )
        try:
            found = json.loads(result.stdout)["state_hash"]
        except (ValueError, KeyError):
            raise CommandFailed(f"replay to seq {seq} failed: {result.stderr[-2000:]}") from None
        if found != facts["checkpoint_hash"]:
            raise CommandFailed(
                f"state at seq {seq} hashes to {found}, the checkpoint recorded {facts['checkpoint_hash']}"
            )
        return f"state at seq {seq} has the checkpoint's hash"

    def post_only_window() -> str:
        refreshed = _index_prices(data, index) + "; " if index else ""
        answer = _set_state(
            data, None, MarketState.POST_ONLY, f"maintenance: post-only window ({announcement})", operator
        )
        time.sleep(post_only)
        return f"{refreshed}every market PostOnly at seq {answer['seq']} for {post_only:g} s"

    def reopen() -> str:
        answer = _set_state(data, None, MarketState.OPEN, f"maintenance over ({announcement})", operator)
        return f"every market {STATE_NAMES[MarketState.OPEN]} at seq {answer['seq']}"

    for name, action in zip(
        STEPS,
        (announce, close, checkpoint, do_upgrade, rehearse, restart, verify, post_only_window, reopen),
        strict=True,
    ):
        procedure.step(name, action)
    procedure.status.update(result="done", finished=_now_iso())
    procedure.write()
    return procedure.status


def maintenance_run(
    data: Path = typer.Option(..., "--data", help="The data directory."),
    announcement: str = typer.Option("scheduled maintenance", "--announce", help="What users see in /api/v1/status."),
    close_in: float = typer.Option(5.0, "--close-in", min=0, help="Seconds between the announcement and the close."),
    post_only: float = typer.Option(5.0, "--post-only", min=0, help="Seconds of the PostOnly window."),
    upgrade: str | None = typer.Option(None, "--upgrade", help="Command that installs the new code while stopped."),
    index: list[str] = typer.Option([], "--index", help="ASSET=PRICE to refresh before reopening (repeatable)."),
    operator: str = typer.Option(default_operator(), "--operator", help="Who runs it (logged)."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds to wait for each step."),
    cancel_orders: bool = typer.Option(
        False, "--cancel-orders", help="Cancel every resting order and trigger when the markets close."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the final status as JSON."),
) -> None:
    """Run the whole maintenance procedure, reporting each step; stop with markets closed on any failure."""
    try:
        status = run_procedure(
            data,
            announcement=announcement,
            close_in=close_in,
            post_only=post_only,
            upgrade=upgrade,
            index=index,
            operator=operator,
            timeout=timeout,
            cancel_orders=cancel_orders,
        )
    except CommandFailed as error:
        if json_output:
            typer.echo(
                json.dumps(json.loads((data / STATUS_NAME).read_text()) if (data / STATUS_NAME).exists() else {})
            )
        raise typer.Exit(error.code) from None
    if json_output:
        typer.echo(json.dumps(status))
    else:
        console.print("[green]maintenance done[/]: the exchange is open")


def maintenance_status(
    data: Path = typer.Option(..., "--data", help="The data directory."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show where the last `keel maintenance run` is (or stopped, and why)."""
    path = data / STATUS_NAME
    if not path.exists():
        console.print(f"no maintenance has been run on {data}")
        raise typer.Exit(0)
    status = json.loads(path.read_text())
    if json_output:
        typer.echo(json.dumps(status))
        return
    console.print(f"maintenance started {status['started']}: {status['result']}")
    for number, step in enumerate(status["steps"], start=1):
        console.print(f"{number}. {step['name']:<10} {step['status']:<8} {step['detail']}")
