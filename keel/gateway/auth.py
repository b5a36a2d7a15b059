"""Backpack request signing (spec section 2): the signing string, verification, replay.

A signed request carries X-API-Key (base64 ED25519 public key), X-Signature (base64 of
the signature), X-Timestamp (ms) and optionally X-Window (ms, default 5000, at most
60000). The signed text is

    instruction=<i>&<k1>=<v1>&...&timestamp=<X-Timestamp>&window=<X-Window>

with the query parameters (GET) or the top-level JSON body fields sorted by key; a batch
body (a JSON array) signs `instruction=orderExecute&<sorted item>` per item, joined with
`&`. bpx and the SDK sign raw values while ccxt signs percent-encoded ones, so the raw
form is tried first and the percent-encoded one only when some value has a character
outside [A-Za-z0-9_.~-] (the only case where they differ).

Checks run in the spec's order (2.4): headers, window, key, signature, expiry, future
skew, replay, permission. Replay: a mutating instruction's (key, signature) is refused
if already accepted within its window (`ReplayCache`), and, since that cache does not
survive a restart, any mutating request stamped before this gateway started is refused
too: a request captured before a restart cannot be sent again after it.

Imports: keel.gateway.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import quote

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from keel.gateway.errors import ApiError

WINDOW_DEFAULT_MS: Final = 5_000
WINDOW_MAX_MS: Final = 60_000
FUTURE_SKEW_MS: Final = 1_000
SIGNATURE_BYTES: Final = 64  # ED25519

# Instructions that change something: a replayed copy must never act twice (spec 2.4).
MUTATING: Final = frozenset(
    {
        "orderExecute",
        "orderCancel",
        "orderCancelAll",
        "withdraw",
        "borrowLendExecute",
        "accountUpdate",
        "convertDust",
    }
)

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-")


class Unsignable(ValueError):
    """A value the verifier cannot render (null, object, array): the request cannot verify."""


def render(value: Any) -> str:
    """Return a received value as the clients put it in the signing string (spec 2.3 table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise Unsignable(f"a {type(value).__name__} value cannot be signed")


def render_query(value: str) -> str:
    """Query values arrive as text; Python clients send booleans as True/False but sign true/false."""
    if value in ("True", "False"):
        return value.lower()
    return value


def _pairs(items: Iterable[tuple[str, str]], encoded: bool) -> str:
    if encoded:
        return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in items)
    return "&".join(f"{key}={value}" for key, value in items)


def signing_strings(
    instruction: str,
    params: Sequence[tuple[str, str]] | None,
    batch: Sequence[Sequence[tuple[str, str]]] | None,
    timestamp: str,
    window: str,
) -> list[bytes]:
    """Return the candidate signed texts: raw, then percent-encoded when that differs.

    `params` are (key, rendered value) pairs of a query or object body; `batch` the pairs
    of each item of an array body."""
    tail = f"timestamp={timestamp}&window={window}"
    needs_encoding = False
    groups = [sorted(params or ())] if batch is None else [sorted(item) for item in batch]
    for group in groups:
        for key, value in group:
            if not _SAFE.issuperset(key) or not _SAFE.issuperset(value):
                needs_encoding = True
    texts = []
    for encoded in (False, True) if needs_encoding else (False,):
        if batch is None:
            query = _pairs(groups[0], encoded)
            texts.append(f"instruction={instruction}&" + (f"{query}&" if query else "") + tail)
        else:
            parts = [f"instruction={instruction}&" + _pairs(group, encoded) for group in groups]
            texts.append("&".join(parts) + "&" + tail)
    return [text.encode() for text in texts]


def verify_signature(verifier: VerifyKey, signature: bytes, texts: Sequence[bytes]) -> bool:
    """Return whether `signature` is `verifier`'s ED25519 signature of one of `texts`.

    libsodium (through PyNaCl) does the work: about half the CPU of OpenSSL's Ed25519 here,
    and cffi lets go of the GIL while it runs (docs/benchmarks.md, `keel bench api`). It
    refuses non-canonical signatures and small-order keys, which no honest signer makes."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    public = bytes(verifier)
    for text in texts:
        try:
            crypto_sign_open(signature + text, public)
            return True
        except BadSignatureError:
            continue
    return False


class Headers:
    """The auth headers of one request, checked for presence and form (spec 2.4, first two rows)."""

    __slots__ = ("api_key", "signature", "timestamp", "timestamp_ms", "window", "window_ms")

    def __init__(self, get: Any) -> None:
        api_key = get("x-api-key")
        signature = get("x-signature")
        timestamp = get("x-timestamp")
        if not api_key or not signature or not timestamp:
            raise ApiError(401, "UNAUTHORIZED", "Missing/invalid authentication headers")
        try:
            signature_raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            signature_raw = b""
        if len(signature_raw) != SIGNATURE_BYTES:
            raise ApiError(
                401, "UNAUTHORIZED", "Missing/invalid authentication headers: X-Signature is not a signature"
            )
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
            raise ApiError(401, "UNAUTHORIZED", "Missing/invalid authentication headers: X-Timestamp must be ms")
        window = get("x-window")
        if window is None:
            window = str(WINDOW_DEFAULT_MS)
        elif not (window.isascii() and window.isdigit() and len(window) <= 6 and 1 <= int(window) <= WINDOW_MAX_MS):
            raise ApiError(400, "INVALID_CLIENT_REQUEST", f"Invalid X-Window: must be 1 to {WINDOW_MAX_MS} ms")
        self.api_key: str = api_key
        self.signature: bytes = signature_raw
        self.timestamp: str = timestamp
        self.timestamp_ms = int(timestamp)
        self.window: str = window
        self.window_ms = int(window)


def check_time(headers: Headers, now_ms: int) -> None:
    """Refuse an expired request or one from the future (spec 2.4)."""
    if now_ms > headers.timestamp_ms + headers.window_ms:
        raise ApiError(401, "UNAUTHORIZED", "Request has expired")
    if headers.timestamp_ms > now_ms + FUTURE_SKEW_MS:
        raise ApiError(401, "UNAUTHORIZED", "Request timestamp is in the future")


class ReplayCache:
    """Signatures of mutating requests accepted within their window; each is accepted once.

    Bounded by what the rate limits let through in one maximum window: entries leave at
    their expiry (a heap orders them)."""

    def __init__(self, started_ms: int) -> None:
        self.started_ms = started_ms
        self._seen: dict[bytes, int] = {}
        self._expiries: list[tuple[int, bytes]] = []

    def accept(self, headers: Headers, now_ms: int) -> None:
        """Record a mutating request's signature; raise if it was seen or predates this gateway."""
        if headers.timestamp_ms < self.started_ms:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Duplicate request: it was signed before this gateway started; sign it again",
            )
        expiries = self._expiries
        while expiries and expiries[0][0] < now_ms:
            _, old = heapq.heappop(expiries)
            self._seen.pop(old, None)
        if headers.signature in self._seen:
            raise ApiError(401, "UNAUTHORIZED", "Duplicate request")
        expiry = headers.timestamp_ms + headers.window_ms
        self._seen[headers.signature] = expiry
        heapq.heappush(expiries, (expiry, headers.signature))

    def __len__(self) -> int:
        return len(self._seen)
