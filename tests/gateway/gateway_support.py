"""Helpers for the gateway tests: a real `keel serve`: a subprocess over a data directory made by
`keel init`, on a free port, driven over real HTTP.

`served` (one per test module) starts `python -m keel.gateway serve --port 0` (what
`keel serve` execs), waits for DIR/serve.json, and at teardown stops it with SIGTERM and
checks that it exited cleanly and removed serve.json. `Api` signs requests the Backpack
way; `api.account(...)` makes a fresh funded account through the operator API, so each
test works on accounts of its own and can check that nothing else changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from keel.gateway.client import sign_headers
from keel.gateway.keys import new_key_pair, operator_public_key_b64, operator_secret_b64

SERVE_START_S = 30.0


def keel(*arguments: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `keel ARGUMENTS` as the operator would and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=timeout,
    )


@dataclass
class Key:
    api_key: str
    secret: str
    account_id: int


@dataclass
class Server:
    data_dir: Path
    url: str
    process: subprocess.Popen[str]


def past_a_minutes_first_second() -> None:
    """Wait, if need be, until the current minute is more than a second old. ccxt asks for
    candles that start before now in whole seconds (spec: start < endTime), so a candle
    that began in the very second of the fetch is rightly not in the answer yet: a test
    that trades and then fetches its candle calls this first."""
    into_minute = time.time() % 60
    if into_minute < 1.05:
        time.sleep(1.05 - into_minute)


def start_server(data_dir: Path, *extra: str) -> Server:
    """Start `python -m keel.gateway serve` on a free port and wait until it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.gateway", "serve", f"--data={data_dir}", "--port=0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    serve_json = data_dir / "serve.json"
    deadline = time.monotonic() + SERVE_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"keel serve exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        if serve_json.exists():
            try:
                url = json.loads(serve_json.read_text())["url"]
                httpx.get(url + "/api/v1/ping", timeout=2)
                return Server(data_dir, url, process)
            except (ValueError, KeyError, httpx.HTTPError):
                pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError("keel serve did not start in time")


def stop_server(server: Server) -> tuple[int, str, str]:
    server.process.send_signal(signal.SIGTERM)
    stdout, stderr = server.process.communicate(timeout=30)
    return server.process.returncode, stdout, stderr


class Api:
    """An HTTP client for one served node: public calls, signed calls, operator calls."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.operator = Key(operator_public_key_b64(server.data_dir), operator_secret_b64(server.data_dir), 0)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def signed(
        self,
        key: Key,
        method: str,
        path: str,
        instruction: str,
        params: dict[str, Any] | list[dict[str, Any]] | None = None,
        **sign: Any,
    ) -> httpx.Response:
        headers = sign_headers(key.api_key, key.secret, instruction, params, **sign)
        if method == "GET":
            return self.http.request(method, path, params=params, headers=headers)
        content = json.dumps(params).encode() if params is not None else b""
        return self.http.request(method, path, content=content, headers={**headers, "Content-Type": "application/json"})

    def account(self, **deposits: str) -> Key:
        """Return a new account's key, credited with `deposits` (symbol=amount)."""
        api_key, secret = new_key_pair()
        answer = self.signed(
            self.operator,
            "POST",
            "/operator/v1/accounts",
            "operatorAccountCreate",
            {"publicKey": api_key, "deposits": ",".join(f"{symbol}={amount}" for symbol, amount in deposits.items())},
        )
        assert answer.status_code == 200, answer.text
        return Key(api_key, secret, answer.json()["accountId"])

    def balances(self, key: Key) -> dict[str, Any]:
        answer = self.signed(key, "GET", "/api/v1/capital", "balanceQuery")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def open_orders(self, key: Key, symbol: str | None = None) -> list[dict[str, Any]]:
        answer = self.signed(key, "GET", "/api/v1/orders", "orderQueryAll", {"symbol": symbol} if symbol else None)
        assert answer.status_code == 200, answer.text
        body: list[dict[str, Any]] = answer.json()
        return body

    def order(self, key: Key, **fields: Any) -> httpx.Response:
        return self.signed(key, "POST", "/api/v1/order", "orderExecute", fields)

    def status(self) -> dict[str, Any]:
        answer = self.signed(self.operator, "GET", "/operator/v1/status", "operatorStatus")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def error_of(response: httpx.Response) -> tuple[int, str]:
    """Return (status, Backpack code) of an error answer, checking its shape (spec 4.1)."""
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["message"], body
    assert response.headers["content-type"].startswith("application/json")
    return response.status_code, body["code"]
