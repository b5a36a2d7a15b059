"""`keel bench api`: signed HTTP order placement and cancellation against a real `keel serve`.

A data directory is initialised (a temporary one, or `--data DIR`) with the default
markets and the default, durable log (SQLite, synchronous=FULL, the writer in a child
process), and `keel serve` is started on it as a subprocess with its rate limits off
(they would otherwise cap one key at 100 requests/s; this measures the server, not the
limiter). N accounts are created and funded through the operator API, then N clients,
each with its account and one keep-alive HTTP/1.1 connection, run a closed loop for S
seconds (a client sends its next request only when its last answer is in): place a
limit order on SOL_USDC (bids at 100 and asks at 200 alternately, so nothing ever trades
and every order rests), then cancel it by its client id. Every request is signed with
its own timestamp and verified by the server (a fresh client id per order makes every
signature unique, so the replay check never refuses one); the signature is computed
just before the request is sent, outside its latency.

Latency to acknowledgement is the time from sending a request to reading its whole
answer, which the gateway writes only after the command's record is durable. Figures:
`orders_per_s` (placements answered per second over the timed run), `requests_per_s`
(placements and cancels), `p50_ms`/`p99_ms`/`p999_ms` of placements, `cancel_p50_ms`/
`cancel_p99_ms`, `errors` (any answer but 200, or a broken connection) and
`first_error`, the CPU the server process and its children (log writer, auditor,
signature verifier) used per request, the CPU the clients used per request, and
`log_records_durable` (the log's last seq after the server stopped, which must cover
every answered request). The clients warm up (their first requests are not counted) and
start together.

The clients run in `--processes` processes (multiprocessing; by default twice as many
as the machine has cores; `--processes` equal to `--clients` gives each its own). A
process with several clients waits on all their sockets at once (selectors), as load
generators do: the clients stay independent closed loops, and the machine is
spared a process switch per request, which on two shared cores is the server's time.

The client is a raw socket speaking HTTP/1.1 because http.client costs about 0.09 ms of
CPU per request against its 0.02 ms, and on two cores every client cycle is taken from
the server. It reads Content-Length framed answers only, which is what the gateway
sends.

keel.bench may not import keel.gateway (STYLE.md section 5): the CLI passes the command
line that runs the server, and the few lines of Backpack signing are restated here.

Imports: keel.core, keel.log, keel.node.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import multiprocessing.connection
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from array import array
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.signing import SigningKey

from keel.node.config import Config, load_config
from keel.node.node import OPERATOR_KEY_NAME, OPERATOR_PUBLIC_KEY_NAME, init_data_dir, open_log

SYMBOL: Final = "SOL_USDC"
BID_PRICE: Final = "100"
ASK_PRICE: Final = "200"
QUANTITY: Final = "0.1"
DEPOSITS: Final = "USDC=1000000,SOL=10000"
WINDOW_MS: Final = 5_000
WARMUP_PAIRS: Final = 50  # per client, before the timed run: connection, caches, first allocations
SERVE_START_S: Final = 60.0
SERVER_STOP_S: Final = 60.0
RECEIVE_BYTES: Final = 65_536


def _sign(private: SigningKey, instruction: str, fields: dict[str, Any], timestamp_ms: int) -> str:
    """Return the base64 signature of a request (spec 2.3: sorted fields, raw values)."""
    pairs = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    text = (
        f"instruction={instruction}&" + (f"{pairs}&" if pairs else "") + f"timestamp={timestamp_ms}&window={WINDOW_MS}"
    )
    return base64.b64encode(private.sign(text.encode()).signature).decode()


class RawHttp:
    """One keep-alive HTTP/1.1 connection sending signed JSON requests (Content-Length framed answers)."""

    def __init__(self, host: str, port: int, api_key: str, secret_b64: str) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.private = SigningKey(base64.b64decode(secret_b64)[:32])  # libsodium: a third less CPU than OpenSSL
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def prepare(self, method: str, path: str, instruction: str | None, fields: dict[str, Any] | None) -> bytes:
        """Return the request's bytes, signed now (its own timestamp) when `instruction` is given."""
        body = json.dumps(fields, separators=(",", ":")).encode() if fields is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
        if body or method != "GET":
            head += f"Content-Length: {len(body)}\r\n"
        if instruction is not None:
            timestamp_ms = time.time_ns() // 1_000_000
            signature = _sign(self.private, instruction, fields or {}, timestamp_ms)
            head += (
                f"X-API-Key: {self.api_key}\r\nX-Signature: {signature}\r\n"
                f"X-Timestamp: {timestamp_ms}\r\nX-Window: {WINDOW_MS}\r\n"
            )
        return (head + "\r\n").encode() + body

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send a prepared request and return (status, body) of its answer."""
        self.sock.sendall(request)
        while True:
            answer = self.answer()
            if answer is not None:
                return answer
            self.receive()

    def receive(self) -> None:
        """Read what the server sent (blocking until something arrives)."""
        chunk = self.sock.recv(RECEIVE_BYTES)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def answer(self) -> tuple[int, bytes] | None:
        """Take one whole answer, (status, body), off the buffer; None if it is not all here yet."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = buffer[:end].decode("latin-1")
        status = int(head[9:12])
        length = -1
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value)
            elif lowered == "transfer-encoding":
                raise ConnectionError(f"unexpected Transfer-Encoding {value.strip()} (the client reads Content-Length)")
        if length < 0:
            raise ConnectionError("an answer without Content-Length")
        start = end + 4
        if len(buffer) < start + length:
            return None
        self.buffer = buffer[start + length :]
        return status, buffer[start : start + length]

    def call(self, method: str, path: str, instruction: str | None = None, fields: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON answer; raise RuntimeError on any status but 200."""
        status, body = self.exchange(self.prepare(method, path, instruction, fields))
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:300].decode(errors='replace')}")
        return json.loads(body) if body else None


def _new_key_pair() -> tuple[str, str]:
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode(), base64.b64encode(seed).decode()


class _Client:
    """One simulated client: an account, its connection, and its closed place-then-cancel loop."""

    __slots__ = ("cancel", "client_id", "errors", "first_error", "http", "index", "pairs", "placing", "sent_ns")

    def __init__(self, http: RawHttp, index: int) -> None:
        self.http = http
        self.index = index
        self.client_id = 0
        self.placing = True
        self.pairs = 0
        self.cancel: dict[str, Any] = {}
        self.sent_ns = 0
        self.errors = 0
        self.first_error = ""

    def send_next(self) -> None:
        """Sign and send the next request of the loop: a new order, or the cancel of the last one."""
        http = self.http
        if self.placing:
            self.client_id += 1
            side, price = ("Bid", BID_PRICE) if (self.client_id + self.index) % 2 else ("Ask", ASK_PRICE)
            order = {
                "symbol": SYMBOL,
                "side": side,
                "orderType": "Limit",
                "price": price,
                "quantity": QUANTITY,
                "clientId": self.client_id,
            }
            self.cancel = {"symbol": SYMBOL, "clientId": self.client_id}
            request = http.prepare("POST", "/api/v1/order", "orderExecute", order)
        else:
            request = http.prepare("DELETE", "/api/v1/order", "orderCancel", self.cancel)
        self.sent_ns = time.perf_counter_ns()
        http.sock.sendall(request)

    def answered(self, status: int, body: bytes) -> None:
        if status != 200:
            self.errors += 1
            if not self.first_error:
                method = "POST" if self.placing else "DELETE"
                self.first_error = f"{method} /api/v1/order: HTTP {status}: {body[:300].decode(errors='replace')}"
        self.placing = not self.placing


def _run_loops(
    clients: Sequence[_Client], place_ns: array[int] | None, cancel_ns: array[int] | None, pairs: int, end_ns: int
) -> None:
    """Run every client's loop at once: `pairs` place-and-cancel pairs each, or (pairs 0) until
    the wall clock reaches `end_ns`; a client stops after a cancel. Latencies go to the arrays."""
    selector = selectors.DefaultSelector()
    try:
        for client in clients:
            client.pairs = 0
            selector.register(client.http.sock, selectors.EVENT_READ, client)
            client.send_next()
        running = len(clients)
        while running:
            for key, _ in selector.select():
                client = key.data
                http = client.http
                http.receive()
                while (answer := http.answer()) is not None:
                    if answer[0] == 200 and place_ns is not None and cancel_ns is not None:  # errors are counted
                        (place_ns if client.placing else cancel_ns).append(time.perf_counter_ns() - client.sent_ns)
                    client.answered(*answer)
                    if client.placing:  # that answered a cancel: the pair is complete
                        client.pairs += 1
                        if client.pairs == pairs or (pairs == 0 and time.time_ns() >= end_ns):
                            selector.unregister(http.sock)
                            running -= 1
                            break
                    client.send_next()
    finally:
        selector.close()


def _client_group(
    host: str,
    port: int,
    keys: Sequence[tuple[str, str, int]],
    seconds: float,
    start_at: Any,
    results: Connection,
) -> None:
    """One client process running the clients of `keys` (api key, secret, index), each its own loop.

    Every client is a closed loop on its own connection: it sends its next request only
    when its last answer is in. One process serves several of them by waiting on all their
    sockets at once (selectors), which is what a load generator does: it spares the
    machine one process switch per request, which on two shared cores is the server's
    time. The warm-up runs the same way, all the group's clients at once."""
    place_ns = array("q")
    cancel_ns = array("q")
    clients: list[_Client] = []
    try:
        clients = [_Client(RawHttp(host, port, api_key, secret), index) for api_key, secret, index in keys]
        # All at once, so that no connection of the group sits idle past the server's keep-alive.
        _run_loops(clients, None, None, WARMUP_PAIRS, 0)
        results.send(("ready", keys[0][2]))
        start_ns = start_at.value  # set by the parent once every client is ready (wall clock, ns)
        while start_ns == 0:
            time.sleep(0.0005)
            start_ns = start_at.value
        while time.time_ns() < start_ns:
            pass
        cpu_start = time.process_time()
        first_ns = time.time_ns()
        _run_loops(clients, place_ns, cancel_ns, 0, first_ns + int(seconds * 1e9))
        last_ns = time.time_ns()
        cpu_s = time.process_time() - cpu_start
    except (OSError, ValueError) as error:
        results.send(("failed", keys[0][2], f"{type(error).__name__}: {error}"))
        return
    finally:
        for client in clients:
            client.http.close()
    errors = sum(client.errors for client in clients)
    first_error = next((client.first_error for client in clients if client.first_error), "")
    results.send(
        ("done", keys[0][2], place_ns.tobytes(), cancel_ns.tobytes(), errors, first_error, first_ns, last_ns, cpu_s)
    )


def _percentile_ms(sorted_ns: Sequence[int], fraction: float) -> float:
    """Return the nearest-rank percentile of sorted nanoseconds, in ms."""
    if not sorted_ns:
        return 0.0
    rank = max(1, -(-len(sorted_ns) * fraction // 1))  # ceil(n x fraction), at least 1
    return round(sorted_ns[int(rank) - 1] / 1e6, 3)


def _cpu_s(pid: int) -> float:
    """Return user + system CPU seconds of a process and its children (Linux /proc; 0 elsewhere)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    pending = [pid]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def _start_server(serve_command: Sequence[str], data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = (data_dir / "serve.log").open("wb")
    try:
        server = subprocess.Popen(
            [*serve_command, f"--data={data_dir}", "--port=0", "--key-rate=0", "--ip-rate=0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()
    deadline = time.monotonic() + SERVE_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"keel serve exited {server.returncode}: {(data_dir / 'serve.log').read_text()[-2000:]}")
        try:
            url = str(json.loads((data_dir / "serve.json").read_text())["url"])
            host, _, port = url.removeprefix("http://").rpartition(":")
            probe = RawHttp(host, int(port), "", base64.b64encode(bytes(32)).decode())
            try:
                status, _ = probe.exchange(probe.prepare("GET", "/api/v1/ping", None, None))
                if status != 200:
                    raise RuntimeError(f"ping answered HTTP {status}")
            finally:
                probe.close()
            return server, url
        except (OSError, ValueError, KeyError, RuntimeError):
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"keel serve did not answer within {SERVE_START_S:.0f} s")


def _create_accounts(host: str, port: int, data_dir: Path, count: int) -> list[tuple[str, str]]:
    public = base64.b64encode(bytes.fromhex((data_dir / OPERATOR_PUBLIC_KEY_NAME).read_text().strip())).decode()
    secret = base64.b64encode(bytes.fromhex((data_dir / OPERATOR_KEY_NAME).read_text().strip())).decode()
    operator = RawHttp(host, port, public, secret)
    keys = []
    try:
        for _ in range(count):
            api_key, api_secret = _new_key_pair()
            operator.call(
                "POST",
                "/operator/v1/accounts",
                "operatorAccountCreate",
                {"deposits": DEPOSITS, "publicKey": api_key},
            )
            keys.append((api_key, api_secret))
    finally:
        operator.close()
    return keys


def _one_message_each(receivers: list[Connection]) -> list[tuple[Any, ...]]:
    """Return the next message from every client's pipe, in the order they arrive."""
    messages = []
    waiting = list(receivers)
    while waiting:
        for ready in multiprocessing.connection.wait(waiting):
            assert isinstance(ready, Connection)
            try:
                messages.append(ready.recv())
            except EOFError:
                messages.append(("failed", -1, "a client process exited without reporting"))
            waiting.remove(ready)
    return messages


def _run_clients(
    serve_command: Sequence[str], data_dir: Path, clients: int, processes: int, seconds: float
) -> tuple[list[tuple[Any, ...]], list[str], float, int | None]:
    """Serve `data_dir`, run the clients in `processes` processes; return their results,
    failures, server CPU s and exit code."""
    server: subprocess.Popen[bytes] | None = None
    context = multiprocessing.get_context()  # fork on Linux: the clients start in milliseconds
    processes_started: list[Any] = []
    done: list[tuple[Any, ...]] = []
    failures: list[str] = []
    server_cpu = 0.0
    try:
        server, url = _start_server(serve_command, data_dir)
        host, _, port_text = url.removeprefix("http://").rpartition(":")
        port = int(port_text)
        keys = _create_accounts(host, port, data_dir, clients)
        start_at = context.Value("q", 0, lock=False)
        # A pipe per process: messages larger than PIPE_BUF from several writers would interleave.
        receivers: list[Connection] = []
        indexed = [(api_key, secret, index) for index, (api_key, secret) in enumerate(keys)]
        for group in range(processes):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_client_group,
                args=(host, port, indexed[group::processes], seconds, start_at, sender),
                daemon=True,
            )
            process.start()
            sender.close()
            processes_started.append(process)
            receivers.append(receiver)
        for message in _one_message_each(receivers):
            if message[0] != "ready":
                failures.append(str(message[2]))
        if failures:
            raise RuntimeError(f"{len(failures)} client(s) failed to warm up: {failures[0]}")
        server_cpu_before = _cpu_s(server.pid)
        start_at.value = time.time_ns() + 50_000_000  # all clients begin at the same instant
        for message in _one_message_each(receivers):
            if message[0] == "done":
                done.append(message)
            else:
                failures.append(str(message[2]))
        server_cpu = _cpu_s(server.pid) - server_cpu_before
        for process in processes_started:
            process.join(timeout=10)
    finally:
        for process in processes_started:
            if process.is_alive():
                process.kill()
        server_code = None
        if server is not None:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=SERVER_STOP_S)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            server_code = server.returncode
    return done, failures, server_cpu, server_code


def bench_api(
    serve_command: Sequence[str], clients: int, seconds: float, data: Path | None = None, processes: int = 0
) -> dict[str, Any]:
    """Run the benchmark (module docstring) and return its figures.

    `serve_command` is the argv that runs `keel serve`; `--data`, `--port` and the rate
    limit options are appended. With `data`, the (new or empty) directory is kept."""
    assert clients >= 1
    assert seconds > 0
    processes = min(processes if processes > 0 else 2 * (os.cpu_count() or 1), clients)
    data_dir = data if data is not None else Path(tempfile.mkdtemp(prefix="keel-bench-api-"))
    try:
        init_data_dir(data_dir, Config())
        done, failures, server_cpu, server_code = _run_clients(serve_command, data_dir, clients, processes, seconds)
        log = open_log(data_dir, load_config(data_dir))
        try:
            log_records = log.last_seq()
        finally:
            log.close()
    finally:
        if data is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    places: list[int] = []
    cancels: list[int] = []
    errors = len(failures)
    first_error = failures[0] if failures else ""
    client_cpu_s = 0.0
    first_ns = min((message[6] for message in done), default=0)
    last_ns = max((message[7] for message in done), default=0)
    for _, _, place_bytes, cancel_bytes, client_errors, client_first_error, _, _, cpu_s in done:
        places.extend(array("q", place_bytes))
        cancels.extend(array("q", cancel_bytes))
        errors += client_errors
        first_error = first_error or client_first_error
        client_cpu_s += cpu_s
    places.sort()
    cancels.sort()
    elapsed_s = (last_ns - first_ns) / 1e9 if last_ns > first_ns else seconds
    requests = len(places) + len(cancels)
    if server_code not in (0, None):
        errors += 1
        first_error = first_error or f"keel serve exited with code {server_code}"
    return {
        "clients": clients,
        "client_processes": processes,
        "seconds": round(elapsed_s, 3),
        "orders": len(places),
        "cancels": len(cancels),
        "orders_per_s": round(len(places) / elapsed_s, 1),
        "requests_per_s": round(requests / elapsed_s, 1),
        "p50_ms": _percentile_ms(places, 0.50),
        "p99_ms": _percentile_ms(places, 0.99),
        "p999_ms": _percentile_ms(places, 0.999),
        "mean_ms": round(statistics.fmean(places) / 1e6, 3) if places else 0.0,
        "cancel_p50_ms": _percentile_ms(cancels, 0.50),
        "cancel_p99_ms": _percentile_ms(cancels, 0.99),
        "errors": errors,
        "first_error": first_error,
        "server_cpu_ms_per_request": round(server_cpu * 1e3 / requests, 3) if requests else 0.0,
        "client_cpu_ms_per_request": round(client_cpu_s * 1e3 / requests, 3) if requests else 0.0,
        "log_records_durable": log_records,
        "log_covers_requests": log_records >= requests,
        "cpus": os.cpu_count(),
    }
