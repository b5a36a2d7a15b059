"""The WebSocket endpoint `/ws`: one socket, public and private streams (spec 11.1).

A client sends JSON text frames `{"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params":
[stream, ...]}`; a subscribe to `account.*` streams carries `"signature": [apiKey,
signature, timestamp ms, window ms]` over `instruction=subscribe&timestamp=T&window=W`,
checked as a REST request's (auth.py: key, signature, window, expiry, future skew; no
replay check, so a client may resubscribe inside its window). A frame is all or nothing:
one bad stream name refuses the whole frame with an error frame
`{"id": <the frame's id or null>, "error": {"code", "message"}}` and subscribes nothing.
Successful subscribes are not acknowledged (upstream sends nothing either).

Error codes (Keel's; upstream documents only 4006):

| code | when |
|---:|---|
| 4000 | the frame is not JSON, not an object, has an unknown method or malformed params |
| 4001 | the signature does not verify |
| 4002 | missing or malformed signature, unknown key, expired or future timestamp |
| 4006 | an unknown stream, or a symbol that is not listed (or not a perpetual, for markPrice and openInterest) |
| 4008 | more than `STREAMS_MAX` subscriptions on one socket |
| 4029 | too many frames from this address (the REST per-address rate limit) |

Each session has a writer task that sends its queued frames in order; the handler's
own loop reads client frames. Keep-alive is the server's: uvicorn sends a Ping every
60 s and closes a socket whose Pong is 60 s late (`keel serve` configures it), and
answers the client's Pings. On shutdown every session is closed with 1001.

Imports: keel.gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import WebSocket, websocket

from keel.gateway import auth
from keel.gateway.errors import ApiError
from keel.gateway.history import INTERVALS
from keel.gateway.streams.hub import DEPTH_PERIODS_MS, SESSION_QUEUE_MAX, StreamHub, Subscriber

if TYPE_CHECKING:
    from keel.gateway.context import Gateway

log = logging.getLogger("keel.gateway.streams")

PATH: Final = "/ws"
STREAMS_MAX: Final = 256  # subscriptions per socket
FRAME_CHARS_MAX: Final = 65_536  # a client frame longer than this is refused
CLOSE_POLICY: Final = 1008

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_PUBLIC_KINDS: Final = ("depth", "trade", "ticker", "bookTicker", "kline", "markPrice", "openInterest")
_PRIVATE_KINDS: Final = ("orderUpdate", "positionUpdate", "rfqUpdate")
_PERP_ONLY: Final = ("markPrice", "openInterest", "positionUpdate")


class StreamRefused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Stream:
    """A parsed stream name."""

    name: str
    kind: str
    market_id: int  # -1: every market (private streams without a symbol, `liquidation`)
    detail: str = ""  # kline interval, or the depth period in ms
    private: bool = False


def parse_stream(name: Any, gateway: Gateway, hub: StreamHub) -> Stream:
    """Return the stream `name` names; raise StreamRefused(4006) if it is not one Keel serves.

    Public: `KIND.SYMBOL`, `depth.PERIODms.SYMBOL`, `kline.INTERVAL.SYMBOL`, `liquidation`.
    Private: `account.KIND` (every market) or `account.KIND.SYMBOL`."""
    if not isinstance(name, str) or not name or len(name) > 128:
        raise StreamRefused(4006, "Invalid stream")
    if name == "liquidation":
        return Stream(name, "liquidation", -1)
    parts = name.split(".")
    private = parts[0] == "account"
    if private:
        parts = parts[1:]
        if len(parts) not in (1, 2) or parts[0] not in _PRIVATE_KINDS:
            raise StreamRefused(4006, f"Invalid stream {name[:64]!r}")
        if len(parts) == 1:
            return Stream(name, parts[0], -1, private=True)
    elif len(parts) not in (2, 3) or parts[0] not in _PUBLIC_KINDS:
        raise StreamRefused(4006, f"Invalid stream {name[:64]!r}")
    kind = parts[0]
    detail = ""
    if len(parts) == 3:
        if kind == "kline":
            detail = parts[1]
            if detail not in INTERVALS:
                raise StreamRefused(4006, f"Invalid stream {name!r}: intervals are {', '.join(INTERVALS)}")
        elif kind == "depth":
            detail = parts[1].removesuffix("ms")
            if parts[1] not in {f"{period}ms" for period in DEPTH_PERIODS_MS}:
                raise StreamRefused(4006, f"Invalid stream {name!r}: depth periods are 200ms, 600ms and 1000ms")
        else:
            raise StreamRefused(4006, f"Invalid stream {name[:64]!r}")
    elif kind == "kline":
        raise StreamRefused(4006, f"Invalid stream {name!r}: a kline stream is kline.INTERVAL.SYMBOL")
    symbol = parts[-1]
    market = gateway.catalog.market_by_symbol.get(symbol)
    if market is None or market.market_id >= len(hub.mirror.markets):
        raise StreamRefused(4006, f"Invalid stream {name!r}: no market {symbol[:32]!r}")
    if kind in _PERP_ONLY and not hub.mirror.markets[market.market_id].is_perp:
        raise StreamRefused(4006, f"Invalid stream {name!r}: {symbol} is not a perpetual")
    return Stream(name, kind, market.market_id, detail, private)


def verify_subscribe(signature: Any, gateway: Gateway) -> int:
    """Check a private subscribe's signature (spec 11.1) and return its key's account id."""
    if not (isinstance(signature, list) and len(signature) == 4 and all(isinstance(part, str) for part in signature)):
        raise StreamRefused(4002, "Private streams need signature: [apiKey, signature, timestamp, window]")
    api_key, signed, timestamp, window = signature
    fields = {"x-api-key": api_key, "x-signature": signed, "x-timestamp": timestamp, "x-window": window}
    try:
        headers = auth.Headers(fields.get)
    except ApiError as error:
        raise StreamRefused(4002, error.message) from None
    key = gateway.keys.get(headers.api_key)
    if key is None:
        raise StreamRefused(4002, "Invalid API key")
    texts = auth.signing_strings("subscribe", None, None, headers.timestamp, headers.window)
    if not auth.verify_signature(key.verifier, headers.signature, texts):
        raise StreamRefused(4001, "Invalid signature")
    try:
        auth.check_time(headers, gateway.now_ms())
    except ApiError as error:
        raise StreamRefused(4002, error.message) from None
    return key.account_id


class Session(Subscriber):
    """One socket: its subscriptions and the frames queued for it."""

    def __init__(self, socket: WebSocket[Any, Any, Any], hub: StreamHub) -> None:
        self.socket = socket
        self.hub = hub
        self.queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self.streams: dict[str, tuple[Stream, int]] = {}  # name -> (stream, account id or 0)
        self.closing = False

    def push(self, frame: str) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= SESSION_QUEUE_MAX:
            self.close(CLOSE_POLICY, f"too slow: {SESSION_QUEUE_MAX} messages waiting")
            return
        self.queue.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued (the writer sends the Close frame)."""
        if not self.closing:
            self.closing = True
            self.queue.put_nowait((code, reason))

    def error(self, request_id: Any, code: int, message: str) -> None:
        body = {
            "id": request_id if isinstance(request_id, int | str) else None,
            "error": {"code": code, "message": message},
        }
        self.push(_encoder.encode(body).decode())

    async def write(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, tuple):
                code, reason = item
                await self.socket.close(code, reason)
                return
            await self.socket.send_text(item)

    def handle(self, raw: str, gateway: Gateway) -> None:
        """Act on one client frame; errors become error frames."""
        request_id: Any = None
        try:
            client = self.socket.client
            try:
                gateway.ip_buckets.take(client.host if client is not None else "unknown", time.monotonic())
            except ApiError as error:
                raise StreamRefused(4029, error.message) from None
            if len(raw) > FRAME_CHARS_MAX:
                raise StreamRefused(4000, f"a frame may hold at most {FRAME_CHARS_MAX} characters")
            try:
                request = _decoder.decode(raw)
            except msgspec.DecodeError:
                raise StreamRefused(4000, "the frame is not JSON") from None
            if not isinstance(request, dict):
                raise StreamRefused(4000, "the frame must be a JSON object")
            request_id = request.get("id")
            method = request.get("method")
            names = request.get("params")
            if not isinstance(names, list) or not names:
                raise StreamRefused(4000, "params must be a list of stream names")
            if method == "SUBSCRIBE":
                self.subscribe(names, request.get("signature"), gateway)
            elif method == "UNSUBSCRIBE":
                self.unsubscribe(names)
            else:
                raise StreamRefused(4000, "method must be SUBSCRIBE or UNSUBSCRIBE")
        except StreamRefused as refused:
            self.error(request_id, refused.code, refused.message)

    def subscribe(self, names: list[Any], signature: Any, gateway: Gateway) -> None:
        hub = self.hub
        if hub.failed is not None:
            raise StreamRefused(4000, "the streams have stopped; reconnect after the exchange restarts")
        streams = [parse_stream(name, gateway, hub) for name in names]
        account_id = 0
        if any(stream.private for stream in streams):
            account_id = verify_subscribe(signature, gateway)
        fresh = {stream.name for stream in streams} - set(self.streams)
        if len(self.streams) + len(fresh) > STREAMS_MAX:
            raise StreamRefused(4008, f"at most {STREAMS_MAX} subscriptions per connection")
        for stream in streams:
            held = self.streams.get(stream.name)
            if held is not None and held[1] == account_id:
                continue
            if held is not None:  # the same private stream under another key: replace it
                self._drop(*held)
            if stream.private:
                hub.add_private(self, account_id, stream.name, stream.kind, stream.market_id)
            else:
                hub.add_public(self, stream.name, stream.market_id, stream.kind, stream.detail)
            self.streams[stream.name] = (stream, account_id)

    def unsubscribe(self, names: list[Any]) -> None:
        for name in names:
            held = self.streams.pop(name, None) if isinstance(name, str) else None
            if held is not None:
                self._drop(*held)

    def _drop(self, stream: Stream, account_id: int) -> None:
        if stream.private:
            self.hub.remove_private(self, account_id, stream.name, stream.kind)
        else:
            self.hub.remove_public(self, stream.name)

    def drop_all(self) -> None:
        for stream, account_id in self.streams.values():
            self._drop(stream, account_id)
        self.streams.clear()


@websocket(PATH, name="streams")
async def streams(socket: WebSocket[Any, Any, Any]) -> None:
    """The WebSocket streams (spec 11): public market data and signed account streams."""
    hub: StreamHub = socket.app.state.streams
    gateway: Gateway = socket.app.state.gateway
    await socket.accept()
    session = Session(socket, hub)
    hub.sessions[session] = None
    writer = asyncio.create_task(session.write())
    try:
        while not writer.done():
            receiving = asyncio.ensure_future(socket.receive())
            done, _ = await asyncio.wait((receiving, writer), return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:
                receiving.cancel()
                break
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                break
            text: Any = message.get("text")
            if not isinstance(text, str):
                data: Any = message.get("bytes")
                text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else ""
            session.handle(text, gateway)
    except Exception as error:  # a socket error: the client is gone
        log.debug("WebSocket session ended: %s", error)
    finally:
        session.drop_all()
        session.closing = True
        del hub.sessions[session]
        if not writer.done():
            writer.cancel()
        with contextlib.suppress(BaseException):
            await writer


HANDLERS: Final = [streams]
