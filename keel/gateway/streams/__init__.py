"""The WebSocket streams (spec section 11): `/ws`, public market data and signed account streams.

`mirror.py` folds durable events into books, orders and positions with per-market
depth update ids; `messages.py` builds each stream's `data` object; `hub.py` takes the
sequencer's durable groups to the asyncio loop and fans frames out to subscribers;
`endpoint.py` is the Litestar WebSocket handler (subscribe, unsubscribe, signatures).

`keel serve` (server.py) wires it: a `StreamHub` seeded from the engine before the
sequencer starts, its `listener` among the sequencer's listeners, `HANDLERS` mounted
through `app_factory(..., extra_handlers)`, the hub on `app.state.streams`, attached to
the server's loop once it listens and closing its sockets (1001) before it stops. The
REST depth endpoint asks `depth_update_id` for its `lastUpdateId`.

Imports: keel.core, keel.sequencer, keel.gateway.
"""

from __future__ import annotations

from typing import Any, Final

from keel.gateway.streams.endpoint import HANDLERS, PATH
from keel.gateway.streams.hub import StreamHub

# Keep-alive (spec 11.1): a Ping every 60 s, and a socket whose Pong is 60 s late (so
# about 120 s without an answer) is closed. uvicorn answers the client's own Pings.
PING_INTERVAL_S: Final = 60.0
PING_TIMEOUT_S: Final = 60.0


async def depth_update_id(app_state: Any, market_id: int, seq: int) -> int:
    """Return the depth update id of a market as of log seq `seq`: what REST depth reports as
    `lastUpdateId`, on the same sequence as the depth stream's U and u (spec 11.2). Without
    streams (an app built without them, or streams that stopped) it is the log seq."""
    hub: StreamHub | None = getattr(app_state, "streams", None)
    if hub is None:
        return seq
    found = await hub.update_id_at(market_id, seq)
    return seq if found is None else found


__all__ = ["HANDLERS", "PATH", "PING_INTERVAL_S", "PING_TIMEOUT_S", "StreamHub", "depth_update_id"]
