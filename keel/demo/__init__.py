"""`keel demo`: the offline scripted session and the served, live demo exchange.

- `offline.py`: `keel demo --offline`, a scripted session on an engine in this process.
- `served.py`: `keel demo`, a temporary data directory served by `keel serve`, with
  simulated market makers (`market_makers.py`) trading through the real API
  (`client.py` signs their requests) and a funded demo account for the user.

Imports: everything left of the edges (STYLE.md section 5) and keel.testing; never
keel.gateway, which the served demo runs as a subprocess instead.
"""

from keel.demo.offline import run_offline_demo

__all__ = ["run_offline_demo"]
