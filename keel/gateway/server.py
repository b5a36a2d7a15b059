"""`keel serve`: open a data directory's node, start its sequencer, serve the API with uvicorn.

Start: `Node.open` recovers and verifies the log (it refuses a directory whose log or
replayed state is not what was recorded: RecoveryFailed, DataDirError), the history
store is fed the replayed tail and then every durable command (a sequencer listener),
and the node starts. While serving, DIR/serve.json says where ({"url", "pid"}) so that
`keel account create` can go through the operator API. SIGINT or SIGTERM stops uvicorn
(in-flight requests finish), then the node closes: the sequencer makes everything
submitted durable and stops, and serve.json is removed.

Imports: keel.core, keel.log, keel.node, keel.gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import uvicorn

from keel.core.commands import ListMarket, decode_command
from keel.gateway.app import app_factory
from keel.gateway.context import Gateway, Limits
from keel.gateway.fastlane import FastLane, Protocol
from keel.gateway.history import ViewsHistory
from keel.gateway.keys import KeyStore, operator_public_key_b64
from keel.gateway.streams import HANDLERS as STREAM_HANDLERS
from keel.gateway.streams import PING_INTERVAL_S, PING_TIMEOUT_S, StreamHub
from keel.gateway.streams.mirror import orders_to_recall
from keel.log.record import decode_record
from keel.node.config import Config, load_config
from keel.node.node import Node, open_log, settle_collector
from keel.node.recovery import recover
from keel.views import CatchUp, ViewsWriter, open_store
from keel.views.catchup import Replayed, ReplayFromGenesis
from keel.views.store import settings_for

SERVE_NAME: Final = "serve.json"


def listed_timestamps(node: Node) -> dict[str, int]:
    """Return each market's listing time (ns) from the head of its log, where genesis lists them."""
    state = node.engine.state
    head = len(state.assets) + len(state.markets) + 1
    listed: dict[str, int] = {}
    for seq, data in node.log.rows(1, head):
        command = decode_command(decode_record(data, seq).payload)
        if isinstance(command, ListMarket):
            listed[command.symbol] = command.timestamp_ns
    return listed


def serve_file(data_dir: Path) -> Path:
    return data_dir / SERVE_NAME


def _write_serve_file(data_dir: Path, url: str) -> None:
    path = serve_file(data_dir)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    temporary.replace(path)


def _remove_serve_file(data_dir: Path) -> None:
    path = serve_file(data_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


class _Server(uvicorn.Server):
    """uvicorn, telling the data directory (and the caller) where it listens once it does."""

    def __init__(
        self,
        config: uvicorn.Config,
        data_dir: Path,
        on_listening: Callable[[str], None],
        streams: StreamHub | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        super().__init__(config)
        self.data_dir = data_dir
        self.on_listening = on_listening
        self.streams = streams
        self.gateway = gateway

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version re-raises the signal once it has stopped, which would kill
        # the process before the node is closed; here SIGINT and SIGTERM only stop serving.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self.handle_exit) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        url = f"http://{host}:{port}"
        if self.streams is not None:  # WebSocket streams: deliver on this loop from now on
            self.streams.attach(asyncio.get_running_loop())
        if self.gateway is not None:  # signatures: verified in a child process from now on
            await self.gateway.signatures.start()
        _write_serve_file(self.data_dir, url)
        self.on_listening(url)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.streams is not None:  # WebSocket clients get a Close 1001 before the server goes
            await self.streams.close_sessions()
            self.streams.detach()
        await super().shutdown(sockets)
        if self.gateway is not None:  # after the requests in flight, which may wait on it
            await self.gateway.signatures.close()


def _replay_read_only(data_dir: Path, config: Config) -> ReplayFromGenesis:
    """A replay from genesis through a log handle of its own that never discards anything
    (for rebuilding the history store while the node is open; docs/views.md)."""

    def replay(feed: Replayed) -> int:
        log = open_log(data_dir, config)
        try:
            _, _, report = recover(data_dir, log, from_genesis=True, discard_torn_tail=False, on_replayed=feed)
        finally:
            log.close()
        return report.last_seq

    return replay


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: Limits = Limits(),
    extra_handlers: Sequence[Any] = (),
    on_listening: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve `data_dir` until SIGINT or SIGTERM. Raises DataDirError or RecoveryFailed before serving."""
    config = load_config(data_dir)
    settings = settings_for(data_dir, config)
    catch = CatchUp(open_store(settings))
    try:
        node = Node.open(data_dir, on_replayed=catch)
    except BaseException:
        catch.store.close()
        raise
    writer: ViewsWriter | None = None
    reader = None
    try:
        catch.finish(node.report.last_seq, _replay_read_only(data_dir, config))
        writer = ViewsWriter(open_store(settings, create=False))
        reader = open_store(settings, create=False)
        keys = KeyStore(data_dir)
        listed = listed_timestamps(node)
        # Before the sequencer starts: nothing moves yet, and the views are at the engine's seq.
        state = node.engine.state
        recalled = {record.order_id: record for record in reader.orders_by_id(orders_to_recall(state))}
        streams = StreamHub.seeded(state, recalled)
        sequencer = node.start(listeners=[writer, streams.listener])
        lots: dict[int, int] = {}

        def lot_of(market_id: int) -> int:
            if market_id not in lots:
                lots.update((market.market_id, market.lot_atomic) for market in gateway.markets())
            return lots[market_id]

        history = ViewsHistory(reader, writer, lot_of)
        gateway = Gateway(
            node, sequencer, history, keys, operator_public_key_b64(data_dir), limits=limits, listed_ns=listed
        )
        streams.bind(gateway)
        app = app_factory(gateway, [*extra_handlers, *STREAM_HANDLERS])
        app.state.streams = streams
        server_config = uvicorn.Config(
            FastLane(app, gateway),
            http=Protocol,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
            ws_ping_interval=PING_INTERVAL_S,
            ws_ping_timeout=PING_TIMEOUT_S,
        )
        settle_collector()
        _Server(server_config, data_dir, on_listening, streams, gateway).run()
    finally:
        _remove_serve_file(data_dir)
        node.close()  # the sequencer makes everything durable and publishes it to the writer
        if writer is not None:
            writer.close()
        if reader is not None:
            reader.close()
