"""`keel demo`: a live demo exchange on this machine that ccxt can drive, until Ctrl-C.

What it does, in order:

1. Refuses at once, naming the port, if `--port` is taken (`--port 0` picks a free one).
2. Makes a temporary data directory with the default assets and markets (as `keel init`
   does) and logs one `SetIndexPrices` for SOL, BTC and ETH, so the perpetuals have a
   mark price and accept orders from the first second.
3. Starts `keel serve` on it as a subprocess (the command line is given by the CLI,
   which is the edge allowed to run the gateway; this package never imports it), in a
   process group of its own so that a terminal's Ctrl-C reaches the demo first and the
   demo stops the server itself, after its market makers. On Linux the server is also
   told to stop if the demo dies without cleaning up (PR_SET_PDEATHSIG).
4. Creates three market-maker accounts and one funded demo account through the
   operator API (signed with the directory's operator key), exactly as
   `keel account create` does against a serving node.
5. Runs the market makers (market_makers.py): signed REST orders against the live
   server, quoting every spot and perpetual market around a random-walk reference price
   and trading now and then. Every two seconds the same prices go to the perpetuals as
   index prices through the operator API (`/operator/v1/indexPrices`); a server without
   that route keeps the index logged at start, and the demo says so. Once each maker
   has quoted every market, it prints the base URL, the demo account's API key and
   secret, and a ccxt snippet that works as printed.
6. Then a simulated chain watcher (chain_watcher.py) starts: every few seconds it sees a
   USDC deposit to the demo account on Solana and reports it through the operator API
   with rising confirmations, a duplicate and a late report among them, until it is
   credited; it prints a line for each credited deposit.
7. On Ctrl-C (SIGINT) or SIGTERM: stops the makers, stops the server with SIGINT (it
   makes everything acknowledged durable and exits), and removes the data directory
   unless `--keep` was given. The server's output is in DIR/serve.log.

The server listens on 127.0.0.1 only: the demo prints its keys, and a demo exchange has
no business on a public address.

Imports: keel.core, keel.node, keel.demo.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from keel.core.commands import SetIndexPrices
from keel.core.events import CommandRejected
from keel.core.money import parse_decimal
from keel.demo.chain_watcher import ChainWatcher
from keel.demo.client import ApiError, SignedClient, new_key_pair
from keel.demo.market_makers import CYCLE_S, IndexWalk, MarketMaker, market_specs
from keel.node.config import Config
from keel.node.node import OPERATOR_KEY_NAME, OPERATOR_PUBLIC_KEY_NAME, Node, init_data_dir

HOST: Final = "127.0.0.1"
# Where the index and the makers' reference prices start, in USDC.
START_PRICES: Final = {"SOL": "150", "BTC": "95000", "ETH": "3500"}
MAKER_SPREADS_BPS: Final = (6.0, 10.0, 15.0)  # one maker per entry, each with its own half-spread
MAKER_DEPOSITS: Final = "USDC=10000000,SOL=100000,BTC=1000,ETH=10000"
DEMO_DEPOSITS: Final = {"USDC": "10000", "SOL": "100", "BTC": "1", "ETH": "10"}
SERVE_START_S: Final = 60.0
FIRST_QUOTES_S: Final = 30.0
SERVER_STOP_S: Final = 30.0
SERVE_LOG: Final = "serve.log"
INDEX_FEED_S: Final = 2.0  # how often the walk's prices are sent as the perpetuals' index
INDEX_ROUTE: Final = "/operator/v1/indexPrices"


class DemoFailed(Exception):
    """The demo could not start; the message says why in a user's words."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    account_id: int
    api_key: str
    api_secret: str


def port_taken(host: str, port: int) -> str | None:
    """Return why `port` cannot be listened on (e.g. "Address already in use"), or None if it can.

    SO_REUSEADDR as uvicorn sets it: a port left in TIME_WAIT is free, one with a listener is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def set_index_prices(data_dir: Path, prices: dict[str, str]) -> None:
    """Log one SetIndexPrices for the listed assets among `prices` (USDC per unit), through the directory's node."""
    node = Node.open(data_dir)
    try:
        state = node.engine.state
        if state.margin_asset_id < 0:
            return  # no perpetual is listed: nothing needs an index
        decimals = state.assets[state.margin_asset_id].decimals
        pairs = tuple(
            (state.asset_ids_by_symbol[symbol], parse_decimal(text, decimals, field=f"{symbol} index price"))
            for symbol, text in prices.items()
            if symbol in state.asset_ids_by_symbol
        )
        outcome = node.start().call(SetIndexPrices(seq=0, timestamp_ns=0, prices=pairs))
    finally:
        node.close()
    if outcome.events and isinstance(outcome.events[0], CommandRejected):
        raise DemoFailed(f"the engine refused the starting index prices: {outcome.events[0].message}")


def _die_with_parent() -> None:
    """In the server child, before exec: its own process group, and SIGTERM if the demo dies (Linux)."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # PR_SET_PDEATHSIG in <sys/prctl.h>
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_server(serve_command: Sequence[str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `keel serve` on `data_dir`; its output goes to DIR/serve.log."""
    log = (data_dir / SERVE_LOG).open("wb")
    try:
        return subprocess.Popen(
            [*serve_command, f"--data={data_dir}", f"--host={HOST}", f"--port={port}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # safe: no other thread runs in this process yet
        )
    finally:
        log.close()  # the child has its own descriptor


def _serve_log_tail(data_dir: Path, lines: int = 15) -> str:
    try:
        text = (data_dir / SERVE_LOG).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_for_url(server: subprocess.Popen[bytes], data_dir: Path, stop: threading.Event) -> str:
    """Return the server's base URL once DIR/serve.json names it and it answers a ping."""
    serve_json = data_dir / "serve.json"
    deadline = time.monotonic() + SERVE_START_S
    while time.monotonic() < deadline and not stop.is_set():
        if server.poll() is not None:
            raise DemoFailed(f"keel serve exited with code {server.returncode}:\n{_serve_log_tail(data_dir)}")
        try:
            url = str(json.loads(serve_json.read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
            continue
        client = SignedClient(url, timeout_s=2)
        try:
            client.request("GET", "/api/v1/ping")
            return url
        except (OSError, ApiError):
            time.sleep(0.05)
        finally:
            client.close()
    if stop.is_set():
        raise DemoFailed("stopped before the server was ready")
    raise DemoFailed(f"keel serve did not answer within {SERVE_START_S:.0f} s:\n{_serve_log_tail(data_dir)}")


def operator_client(url: str, data_dir: Path) -> SignedClient:
    """A client signing with the directory's operator key (hex files written at init)."""
    public = base64.b64encode(bytes.fromhex((data_dir / OPERATOR_PUBLIC_KEY_NAME).read_text().strip())).decode()
    secret = base64.b64encode(bytes.fromhex((data_dir / OPERATOR_KEY_NAME).read_text().strip())).decode()
    return SignedClient(url, public, secret)


def create_account(operator: SignedClient, deposits: str) -> DemoAccount:
    """Create a funded account with a fresh key through the operator API (as `keel account create`)."""
    api_key, api_secret = new_key_pair()
    answer = operator.request(
        "POST",
        "/operator/v1/accounts",
        instruction="operatorAccountCreate",
        params={"publicKey": api_key, "deposits": deposits},
    )
    return DemoAccount(int(answer["accountId"]), api_key, api_secret)


class IndexFeed:
    """Sends the walk's prices as index prices (SetIndexPrices) through the operator API.

    A server without the operator index route (404) keeps the index logged at start; the
    feed then stops and says so once."""

    def __init__(self, operator: SignedClient, walk: IndexWalk) -> None:
        self.operator = operator
        self.walk = walk
        self.sent = 0
        self.available = True

    def send(self) -> None:
        prices = ",".join(f"{base}={self.walk.price(base):.2f}" for base in self.walk.start)
        self.operator.request("POST", INDEX_ROUTE, instruction="operatorIndexPrices", params={"prices": prices})
        self.sent += 1

    def run(self, stop: threading.Event) -> None:
        errors = 0
        while not stop.wait(INDEX_FEED_S):
            try:
                self.send()
            except ApiError as error:
                if error.status == 404:
                    self.available = False
                    print(
                        f"note: this server has no {INDEX_ROUTE}, so the perpetuals keep the index set at start",
                        file=sys.stderr,
                        flush=True,
                    )
                    break
                errors += 1
                if errors <= 3 and not stop.is_set():
                    print(f"index feed: {error}", file=sys.stderr, flush=True)
            except OSError as error:
                self.operator.close()
                if not stop.is_set():
                    errors += 1
                    if errors <= 3:
                        print(f"index feed: {error}", file=sys.stderr, flush=True)
        self.operator.close()


def ccxt_snippet(url: str, account: DemoAccount) -> str:
    """Return Python that drives the demo with the unmodified ccxt backpack class (spec 1.5)."""
    return "\n".join(
        [
            "import ccxt",
            "exchange = ccxt.backpack({",
            f'    "apiKey": "{account.api_key}",',
            f'    "secret": "{account.api_secret}",',
            f'    "urls": {{"api": {{"public": "{url}", "private": "{url}"}}}},',
            "})",
            "exchange.load_markets()",
            'book = exchange.fetch_order_book("SOL/USDC")',
            'print("SOL/USDC best bid", book["bids"][0], "best ask", book["asks"][0])',
            'print("USDC", exchange.fetch_balance()["USDC"])',
            "# the deepest bid shown: the makers' own trades would soon fill the best one",
            'order = exchange.create_order("SOL/USDC", "limit", "buy", 1, book["bids"][-1][0])',
            'print("placed", order["id"], order["status"])',
            'print("cancelled", exchange.cancel_order(order["id"], "SOL/USDC")["status"])',
        ]
    )


def _say(text: str = "") -> None:
    print(text, flush=True)


def _print_banner(url: str, data_dir: Path, keep: bool, account: DemoAccount, markets: list[str]) -> None:
    funds = ", ".join(f"{amount} {symbol}" for symbol, amount in DEMO_DEPOSITS.items())
    _say()
    _say(f"Keel demo exchange at {url}")
    _say(f"  markets: {', '.join(markets)}")
    _say(f"  {len(MAKER_SPREADS_BPS)} simulated market makers quote them around a moving index price and trade")
    _say(f"  data directory: {data_dir} ({'kept' if keep else 'removed'} on exit; server log in {SERVE_LOG})")
    _say("  a simulated chain watcher reports a USDC deposit to the demo account every few seconds")
    _say()
    _say(f"Demo account {account.account_id}, funded with {funds}:")
    _say(f"  API key:    {account.api_key}")
    _say(f"  API secret: {account.api_secret}")
    _say()
    _say("Base URL for Backpack clients (ccxt urls.api.public and .private; bpx-py and the SDK take it with a")
    _say(f"trailing slash): {url}    OpenAPI document: {url}/openapi.json")
    _say()
    _say("With ccxt (pip install ccxt), paste this into python:")
    _say()
    _say(ccxt_snippet(url, account))
    _say()
    _say("Ctrl-C stops the demo.")


def _stop_server(server: subprocess.Popen[bytes]) -> int:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            _say(f"the server did not stop within {SERVER_STOP_S:.0f} s and was killed")
            return 1
    return server.returncode


def run_served_demo(serve_command: Sequence[str], port: int = 8080, keep: bool = False, seed: int | None = None) -> int:
    """Run the demo until SIGINT or SIGTERM; return the exit code (0: stopped cleanly).

    `serve_command` is the argv that runs `keel serve` (the CLI passes the gateway's
    entry point); `--data`, `--host` and `--port` are appended."""
    if port:
        reason = port_taken(HOST, port)
        if reason is not None:
            print(
                f"error: port {port} on {HOST} is taken ({reason}): stop whatever listens there, "
                f"or choose another port with --port (--port 0 picks a free one)",
                file=sys.stderr,
                flush=True,
            )
            return 1
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    data_dir = Path(tempfile.mkdtemp(prefix="keel-demo-"))
    server: subprocess.Popen[bytes] | None = None
    makers: list[MarketMaker] = []
    threads: list[threading.Thread] = []
    code = 0
    try:
        _say(f"starting a demo exchange in {data_dir} ...")
        init_data_dir(data_dir, Config())
        set_index_prices(data_dir, START_PRICES)
        server = start_server(serve_command, data_dir, port)
        url = wait_for_url(server, data_dir, stop)
        operator = operator_client(url, data_dir)
        try:
            maker_accounts = [create_account(operator, MAKER_DEPOSITS) for _ in MAKER_SPREADS_BPS]
            account = create_account(operator, ",".join(f"{s}={a}" for s, a in DEMO_DEPOSITS.items()))
            markets = market_specs(operator.request("GET", "/api/v1/markets"))
        finally:
            operator.close()
        rng = random.Random(seed)
        walk = IndexWalk({base: float(price) for base, price in START_PRICES.items()}, random.Random(rng.random()))
        quotable = [market for market in markets if market.base in START_PRICES]
        threads.append(threading.Thread(target=walk.run, args=(stop,), name="index-walk", daemon=True))
        if any(market.is_perp for market in quotable):
            feed = IndexFeed(operator_client(url, data_dir), walk)
            threads.append(threading.Thread(target=feed.run, args=(stop,), name="index-feed", daemon=True))
        for number, (maker_account, spread) in enumerate(zip(maker_accounts, MAKER_SPREADS_BPS, strict=True)):
            client = SignedClient(url, maker_account.api_key, maker_account.api_secret)
            maker = MarketMaker(f"maker-{number + 1}", client, quotable, walk, random.Random(rng.random()), spread)
            makers.append(maker)
            delay = CYCLE_S * number / len(MAKER_SPREADS_BPS)  # staggered: the book is never empty
            threads.append(threading.Thread(target=maker.run, args=(stop, delay), name=maker.name, daemon=True))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + FIRST_QUOTES_S
        for maker in makers:
            while not maker.quoted.wait(0.1) and not stop.is_set():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise DemoFailed(f"{maker.name} could not quote every market:\n{_serve_log_tail(data_dir)}")
        if not stop.is_set():
            _print_banner(url, data_dir, keep, account, [market.symbol for market in quotable])
            # After the banner, so that its lines never interleave with the banner's.
            watcher = ChainWatcher(operator_client(url, data_dir), account.account_id)
            threads.append(threading.Thread(target=watcher.run, args=(stop,), name="chain-watcher", daemon=True))
            threads[-1].start()
        while not stop.wait(0.5):
            if server.poll() is not None:
                _say(f"the server stopped unexpectedly (exit code {server.returncode}):\n{_serve_log_tail(data_dir)}")
                code = 1
                break
    except (DemoFailed, ApiError, OSError, ValueError) as error:
        print(f"error: the demo could not start: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        if server is not None:
            server_code = _stop_server(server)
            if server_code != 0 and code == 0:
                _say(f"the server exited with code {server_code}:\n{_serve_log_tail(data_dir)}")
                code = 1
        if makers:
            placed = sum(maker.orders_placed for maker in makers)
            takes = sum(maker.takes for maker in makers)
            _say(f"stopped: the market makers placed {placed} quotes and sent {takes} market orders")
        if keep:
            _say(f"the data directory is kept: {data_dir} (serve it again with `keel serve --data {data_dir}`)")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        for number, handler in previous.items():
            signal.signal(number, handler)
    return code
