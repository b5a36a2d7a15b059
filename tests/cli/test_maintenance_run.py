"""`keel maintenance run` walks the whole procedure on an idle and on a served data
directory, and stops with the markets closed when a step fails; `keel maintenance status`
shows where it is."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from keel.cli.operator_api import submit
from keel.core.commands import PlaceOrder
from keel.core.events import OrderAccepted
from keel.core.markets import MarketState
from keel.node.node import Node

KEEL = [sys.executable, "-m", "keel.cli.main"]
INDEX = ["--index", "SOL=100", "--index", "BTC=60000", "--index", "ETH=3000"]


def keel(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEEL, *args], capture_output=True, text=True, timeout=timeout)


def init(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    result = keel("init", "--data", str(data))
    assert result.returncode == 0, result.stderr
    return data


def states_logged(data: Path) -> list[int]:
    """Every market's state changes, in log order, from the log itself."""
    result = keel("log", "show", "--data", str(data), "--json", "--from", "1", "--limit", "100000")
    assert result.returncode == 0
    return [
        json.loads(line)["command"].get("state") for line in result.stdout.splitlines() if '"SetMarketState"' in line
    ]


def test_the_procedure_on_an_idle_directory_reports_every_step_and_reopens(tmp_path: Path) -> None:
    """With --cancel-orders the close also cancels the resting order placed before it."""
    data = init(tmp_path)
    created = keel("account", "create", "--data", str(data), "--deposit", "SOL=5", "--json")
    assert created.returncode == 0, created.stderr
    account_id = json.loads(created.stdout)["account_id"]
    node = Node.open(data)
    try:
        state = node.engine.state
        placed = submit(
            node,
            PlaceOrder(
                seq=0,
                timestamp_ns=0,
                account_id=account_id,
                market_id=state.market_ids_by_symbol["SOL_USDC"],
                side=1,
                order_type=0,
                price_ticks=20_000,
                quantity_steps=100,
            ),
        )
        assert any(isinstance(event, OrderAccepted) for event in placed.events)
    finally:
        node.close()
    result = keel(
        "maintenance",
        "run",
        "--data",
        str(data),
        "--close-in",
        "1",
        "--post-only",
        "0.5",
        *INDEX,
        "--announce",
        "upgrade to 0.2",
        "--operator",
        "alice",
        "--cancel-orders",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cancelling every resting order" in result.stdout
    for number, name in enumerate(
        ("announce", "close", "checkpoint", "upgrade", "rehearse", "restart", "verify", "post-only", "open"), start=1
    ):
        assert f"{number}/9 {name}" in result.stdout
    assert "maintenance done" in result.stdout
    status = json.loads(keel("maintenance", "status", "--data", str(data), "--json").stdout)
    assert status["result"] == "done" and all(step["status"] == "done" for step in status["steps"])
    node = Node.open(data, read_only=True)
    try:
        assert all(market.state == MarketState.OPEN for market in node.engine.state.markets)
        account = node.engine.state.accounts[account_id]
        assert not account.orders_open and not any(account.locked)
    finally:
        node.close()
    assert states_logged(data) == [int(MarketState.POST_ONLY), int(MarketState.OPEN)]
    shown = keel("log", "show", "--data", str(data), "--json", "--from", "1", "--limit", "100000")
    (scheduled,) = [json.loads(line) for line in shown.stdout.splitlines() if '"ScheduleMaintenance"' in line]
    assert scheduled["command"]["cancel_orders_steps"] == [0]


def test_a_failed_step_stops_with_the_markets_closed_and_says_why(tmp_path: Path) -> None:
    data = init(tmp_path)
    result = keel(
        "maintenance",
        "run",
        "--data",
        str(data),
        "--close-in",
        "0",
        "--post-only",
        "0",
        *INDEX,
        "--upgrade",
        f"{sys.executable} -c 'raise SystemExit(3)'",
    )
    assert result.returncode == 1
    assert "4/9 upgrade" in result.stdout and "upgrade command failed (3)" in result.stdout
    shown = keel("maintenance", "status", "--data", str(data))
    assert "upgrade    failed" in shown.stdout and "rehearse   pending" in shown.stdout
    node = Node.open(data, read_only=True)
    try:
        assert all(market.state == MarketState.CLOSED for market in node.engine.state.markets)
    finally:
        node.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_procedure_stops_and_restarts_a_serving_node(tmp_path: Path) -> None:
    data = init(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [*KEEL, "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (data / "serve.json").exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.2)
        arguments = ("--data", str(data), "--close-in", "1", "--post-only", "0.5", *INDEX, "--cancel-orders")
        result = keel("maintenance", "run", *arguments)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "keel serve is serving" in result.stdout and "cancelling every resting order" in result.stdout
        assert server.wait(30) == 0  # the first server was stopped cleanly by the procedure
        serving = json.loads((data / "serve.json").read_text())
        assert serving["url"].endswith(f":{port}") and serving["pid"] != server.pid
        status = keel("maintenance", "status", "--data", str(data), "--json")
        assert json.loads(status.stdout)["result"] == "done"
    finally:
        if server.poll() is None:
            server.kill()
        if (data / "serve.json").exists():
            pid = json.loads((data / "serve.json").read_text())["pid"]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            time.sleep(1)
    node = Node.open(data, read_only=True)
    try:
        events_states = [m.state for m in node.engine.state.markets]
    finally:
        node.close()
    assert all(state == MarketState.OPEN for state in events_states)
    shown = keel("log", "show", "--data", str(data), "--json", "--from", "1", "--limit", "100000")
    (scheduled,) = [json.loads(line) for line in shown.stdout.splitlines() if '"ScheduleMaintenance"' in line]
    assert scheduled["command"]["cancel_orders_steps"] == [0]  # STATE+cancel went through the operator API
