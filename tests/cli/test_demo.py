"""`keel demo`: the served demo that ccxt drives, and the scripted `keel demo --offline`.

Served: `keel demo --port 0` runs as a real subprocess (the README's first command); the
test reads the URL, key and secret it prints, and with the real, pinned, unmodified ccxt
backpack class loads the markets, sees both sides of the SOL_USDC book filled by the
simulated market makers within seconds, reads its balance, places and cancels an order,
and runs the printed ccxt snippet verbatim in a fresh interpreter. SIGINT must then stop
it cleanly (exit 0) and remove its temporary data directory. A taken port is refused at
once, naming the port.

Chain watcher: against the running demo, the simulated chain watcher's first deposit
(reported with rising confirmations, a duplicate and a late report among them, and a
rescan after it was credited) shows in ccxt's fetch_deposits for the demo account, once,
with status ok, its amount and transaction id; the account's USDC is then exactly the
opening 10,000 plus every credited deposit, each counted once.

Offline: the command's text is checked for a trade, ledger lines, the post-only
refusal's stable code and a clean audit; a second process with another PYTHONHASHSEED
must print exactly the same text, state hash included. The summary test recomputes every
balance by hand from the fee rules in keel/core/matching.py (fees are ceil(notional x bps
/ 10,000) per role and order).
"""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
from rich.console import Console

from keel.demo import run_offline_demo


def run_demo(*args: str, hash_seed: str = "0") -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, COLUMNS="80", PYTHONHASHSEED=hash_seed)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return result, time.perf_counter() - started


def test_demo_offline_prints_trades_ledger_rejection_and_clean_audit() -> None:
    result, elapsed = run_demo("--offline")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Trades" in out
    # Trade 1: bob bid 152 and traded at alice's resting 150 (trade, price, quantity, taker, maker).
    assert re.search(r"│\s+1 │\s+150 │\s+4 │ bob \(buy\)\s+│ alice\s+│", out), out
    assert "Ledger" in out
    assert "deposit" in out
    assert "+599.88" in out  # alice's quote leg of trade 1: 600 less the 0.12 maker fee
    assert "POST_ONLY_WOULD_TAKE" in out
    assert "2007" in out
    assert "invariants: all hold" in out
    assert "state hash: " in out
    assert elapsed < 2.0, f"keel demo --offline took {elapsed:.2f} s"


def test_demo_output_does_not_depend_on_hash_seed() -> None:
    first, _ = run_demo("--offline", hash_seed="0")
    second, _ = run_demo("--offline", hash_seed="4242")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_summary_balances_equal_hand_computed_values() -> None:
    summary = run_offline_demo(Console(file=io.StringIO(), width=120))
    usdc, sol = 10**6, 10**9  # atomic units per whole USDC and SOL
    # Trade 1: bob takes 4 SOL at 150 = 600 USDC; taker fee 600 x 5 bps = 0.3, alice's maker fee 600 x 2 bps = 0.12.
    # Trade 2: carol takes 3 SOL at 150 = 450 USDC; taker fee 0.225; alice's maker fee on her cumulative
    # maker notional: ceil(1050 x 2 bps) - ceil(600 x 2 bps) = 0.21 - 0.12 = 0.09.
    assert summary["trades"] == [(15_000, 400), (15_000, 300)]
    assert summary["rejections"] == ["POST_ONLY_WOULD_TAKE"]
    balances = summary["balances"]
    assert balances["alice"]["SOL"] == (13 * sol, 3 * sol)  # 10 offered, 7 sold, 3 still locked
    assert balances["alice"]["USDC"] == (600 * usdc - 120_000 + 450 * usdc - 90_000, 0)
    assert balances["bob"]["SOL"] == (4 * sol, 0)
    assert balances["bob"]["USDC"] == (2_000 * usdc - 600 * usdc - 300_000, 0)  # the cancelled bid holds nothing
    assert balances["carol"]["SOL"] == (3 * sol, 0)
    assert balances["carol"]["USDC"] == (1_000 * usdc - 450 * usdc - 225_000, 0)
    assert balances["fees"]["USDC"] == (300_000 + 120_000 + 225_000 + 90_000, 0)
    assert balances["external"]["USDC"] == (-3_000 * usdc, 0)
    assert balances["external"]["SOL"] == (-20 * sol, 0)
    for symbol in ("USDC", "SOL", "BTC", "ETH"):
        assert sum(assets[symbol][0] for assets in balances.values()) == 0
    assert summary["ledger_entries"] == 5  # three credits, two trades
    assert summary["audit"] == []
    assert len(summary["state_hash"]) == 64


def _lines_of(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Return a queue that receives the process's stdout line by line (None at its end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_until(lines: queue.Queue[str | None], last: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith(last):
            return seen
    raise AssertionError(f"no line starting {last!r} within {timeout_s} s; got:\n" + "\n".join(seen))


def test_served_demo_is_driven_by_ccxt_and_stops_cleanly_on_sigint() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.cli.main", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    try:
        lines = _lines_of(process)
        out = "\n".join(_read_until(lines, "Ctrl-C stops the demo.", timeout_s=90))
        url = re.search(r"^Keel demo exchange at (http://127\.0\.0\.1:\d+)$", out, re.M)
        api_key = re.search(r"^  API key:    (\S+)$", out, re.M)
        api_secret = re.search(r"^  API secret: (\S+)$", out, re.M)
        data_dir = re.search(r"^  data directory: (\S+) \(removed on exit", out, re.M)
        assert url and api_key and api_secret and data_dir, out
        assert Path(data_dir[1]).is_dir()

        exchange = ccxt.backpack(
            {
                "apiKey": api_key[1],
                "secret": api_secret[1],
                "urls": {"api": {"public": url[1], "private": url[1]}},
            }
        )
        markets = exchange.load_markets()
        assert {"SOL/USDC", "BTC/USDC", "ETH/USDC", "SOL/USDC:USDC"} <= set(markets)
        deadline = time.monotonic() + 5
        book = exchange.fetch_order_book("SOL/USDC")
        while not (book["bids"] and book["asks"]) and time.monotonic() < deadline:
            time.sleep(0.2)
            book = exchange.fetch_order_book("SOL/USDC")
        assert book["bids"] and book["asks"], book
        assert book["bids"][0][0] < book["asks"][0][0]
        balance = exchange.fetch_balance()
        # The chain watcher may have credited a deposit by now (test_demo_chain_watcher_credits_...).
        assert balance["USDC"]["free"] >= 10_000.0 and balance["SOL"]["free"] == 100.0, balance
        bid = book["bids"][-1][0]  # the deepest bid shown: far from the makers' takers
        order = exchange.create_order("SOL/USDC", "limit", "buy", 1, bid)
        assert order["status"] == "open"
        assert exchange.fetch_balance()["USDC"]["used"] > 0
        assert exchange.cancel_order(order["id"], "SOL/USDC")["status"] == "canceled"

        # The snippet as printed, in a fresh interpreter: it must run as pasted.
        snippet = out[out.index("import ccxt") :].split("\n\n")[0]
        ran = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert "placed" in ran.stdout and "cancelled canceled" in ran.stdout, ran.stdout

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
        rest = "\n".join(line for line in iter(lines.get, None))
        assert "stopped: the market makers placed" in rest, rest
        assert not Path(data_dir[1]).exists()
        stderr = process.stderr.read() if process.stderr else ""
        assert "failed" not in stderr, stderr  # no market maker request failed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_served_demo_refuses_a_taken_port_at_once() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result, elapsed = run_demo("--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert "--port 0" in result.stderr
    assert elapsed < 10


CREDITED = re.compile(
    r"^chain watcher: deposit (?P<id>\d+) credited: (?P<amount>[\d.]+) USDC on Solana to account (?P<account>\d+) "
    r"\(tx (?P<tx>\w+), (?P<confirmations>\d+) confirmations; (?P<reports>\d+) reports, "
    r"of which (?P<ignored>\d+) changed nothing: (?P<kinds>[a-z, ]+)\)$"
)


def _usdc_snapshot(exchange: Any) -> tuple[list[dict[str, Any]], Decimal]:
    """The USDC deposits and USDC balance at one moment: deposits read before and after the balance agree."""
    for _ in range(20):
        before = exchange.fetch_deposits("USDC")
        total = Decimal(str(exchange.fetch_balance()["USDC"]["total"]))
        after = exchange.fetch_deposits("USDC")
        if [(d["id"], d["status"]) for d in before] == [(d["id"], d["status"]) for d in after]:
            return after, total
    raise AssertionError("deposits kept changing while the balance was read")


def test_demo_chain_watcher_credits_a_deposit_once_despite_repeated_reports() -> None:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.cli.main", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    try:
        lines = _lines_of(process)
        out = "\n".join(_read_until(lines, "Ctrl-C stops the demo.", timeout_s=60))
        url = re.search(r"^Keel demo exchange at (http://127\.0\.0\.1:\d+)$", out, re.M)
        account = re.search(r"^Demo account (\d+), funded with 10000 USDC", out, re.M)
        api_key = re.search(r"^  API key:    (\S+)$", out, re.M)
        api_secret = re.search(r"^  API secret: (\S+)$", out, re.M)
        assert url and account and api_key and api_secret, out
        assert "a simulated chain watcher reports a USDC deposit to the demo account" in out

        line = _read_until(lines, "chain watcher: deposit 1 credited:", timeout_s=20)[-1]
        credited = CREDITED.match(line)
        assert credited, line
        assert credited["account"] == account[1]
        # Reported 0, 8, 8 (a duplicate), 16, 8 (late), 24, 32: the duplicate and the late one changed nothing.
        assert (credited["confirmations"], credited["reports"], credited["ignored"]) == ("32", "7", "2"), line
        assert credited["kinds"] == "duplicate, late", line
        time.sleep(1.5)  # the watcher's rescan of the credited deposit (one more report) has been answered

        exchange = ccxt.backpack(
            {"apiKey": api_key[1], "secret": api_secret[1], "urls": {"api": {"public": url[1], "private": url[1]}}}
        )
        exchange.load_markets()
        deposits, total = _usdc_snapshot(exchange)
        first = [deposit for deposit in deposits if deposit["txid"] == credited["tx"]]
        assert len(first) == 1, deposits  # one deposit, however many reports
        assert first[0]["status"] == "ok", first
        assert Decimal(str(first[0]["amount"])) == Decimal(credited["amount"]), first
        assert first[0]["info"]["source"] == "solana", first
        # Exactly the opening 10,000 USDC (an operator credit, listed too) plus every credited
        # chain deposit, each once: no report was credited twice.
        ok = [Decimal(str(deposit["amount"])) for deposit in deposits if deposit["status"] == "ok"]
        chain_ok = [d for d in deposits if d["status"] == "ok" and d["info"]["source"] == "solana"]
        assert len(ok) == len(chain_ok) + 1, deposits
        assert total == sum(ok, Decimal(0)), (total, deposits)
        assert total >= Decimal(10_000) + Decimal(credited["amount"]), total

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
        stderr = process.stderr.read() if process.stderr else ""
        assert "chain watcher" not in stderr, stderr  # no report was answered other than expected
        assert time.monotonic() - started < 30, f"took {time.monotonic() - started:.1f} s"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
