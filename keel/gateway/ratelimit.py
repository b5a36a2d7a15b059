"""Token buckets per API key and per client IP (spec section 10).

A bucket holds up to `burst` tokens and refills at `rate_per_s`; each request takes one.
An empty bucket answers 429 TOO_MANY_REQUESTS (ccxt RateLimitExceeded) with Retry-After,
in whole seconds, until one token is back. The defaults let a ccxt client at its own pace
(one request per 50 ms) never trip them; `keel serve --key-rate/--ip-rate` changes them
and 0 turns a limit off. Buckets idle long enough to be full again are dropped, so
memory follows the number of recently active keys and addresses.

Imports: keel.gateway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keel.gateway.errors import ApiError


@dataclass(frozen=True, slots=True)
class Limit:
    rate_per_s: float  # 0: unlimited
    burst: int


class TokenBuckets:
    """One bucket per name (a key or an address); `take` raises ApiError(429) when empty."""

    def __init__(self, limit: Limit, what: str) -> None:
        self.limit = limit
        self.what = what
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at seconds)
        self._swept_s = 0.0

    def take(self, name: str, now_s: float) -> None:
        limit = self.limit
        if limit.rate_per_s <= 0:
            return
        tokens, at = self._buckets.get(name, (float(limit.burst), now_s))
        tokens = min(float(limit.burst), tokens + (now_s - at) * limit.rate_per_s)
        if tokens < 1.0:
            self._buckets[name] = (tokens, now_s)
            retry_s = max(1, math.ceil((1.0 - tokens) / limit.rate_per_s))
            raise ApiError(
                429,
                "TOO_MANY_REQUESTS",
                f"Too many requests for this {self.what}: at most {limit.rate_per_s:g}/s "
                f"(bursts of {limit.burst}); retry in {retry_s} s",
                headers={"Retry-After": str(retry_s)},
            )
        self._buckets[name] = (tokens - 1.0, now_s)
        if now_s - self._swept_s > 60.0:
            self._sweep(now_s)

    def _sweep(self, now_s: float) -> None:
        self._swept_s = now_s
        full_after_s = self.limit.burst / self.limit.rate_per_s
        idle = [name for name, (_, at) in self._buckets.items() if now_s - at > full_after_s]
        for name in idle:
            del self._buckets[name]
