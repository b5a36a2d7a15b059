"""A small Backpack-signing HTTP client for the served demo's market makers and setup.

It signs as bpx-py does (spec 2.3): the instruction, the query or body fields sorted by
key with raw values (booleans `true`/`false`), then `timestamp` and `window`; a batch
body signs `instruction=orderExecute&<sorted item>` per item. Every request is signed
with its own timestamp. One keep-alive `http.client` connection per client, so a client
belongs to one thread. The standard library and `cryptography` only: the demo runs on a
plain `pip install -e .`, without the dev extras.

keel.gateway has its own client (keel/gateway/client.py); the demo may not import an
edge (STYLE.md section 5), so the few lines of signing are restated here.

Imports: nothing of keel.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

WINDOW_MS: Final = 5_000

Params = dict[str, Any] | list[dict[str, Any]] | None


def new_key_pair() -> tuple[str, str]:
    """Return a fresh (API key, API secret): base64 public key and base64 32-byte seed (spec 2.1)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode(), base64.b64encode(seed).decode()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signing_text(instruction: str, params: Params, timestamp_ms: int, window_ms: int) -> str:
    """Return the text a client signs for a query or body (spec 2.3)."""
    tail = f"timestamp={timestamp_ms}&window={window_ms}"
    if isinstance(params, list):
        parts = [
            f"instruction={instruction}&" + "&".join(f"{key}={_text(item[key])}" for key in sorted(item))
            for item in params
        ]
        return "&".join(parts) + "&" + tail
    fields = params or {}
    pairs = "&".join(f"{key}={_text(fields[key])}" for key in sorted(fields))
    return f"instruction={instruction}&" + (f"{pairs}&" if pairs else "") + tail


class ApiError(Exception):
    """A non-2xx answer: its HTTP status and Backpack error code and message."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.code = str(body.get("code", "")) if isinstance(body, dict) else ""
        self.text = str(body.get("message", body)) if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status} {self.code}: {self.text}")


class SignedClient:
    """Requests to one Keel base URL, signed with one key (or unsigned, for public paths)."""

    def __init__(self, base_url: str, api_key: str = "", secret_b64: str = "", timeout_s: float = 15.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        assert parsed.scheme == "http", "the demo serves plain HTTP on a local address"
        assert parsed.hostname is not None
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret_b64)[:32]) if secret_b64 else None
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _headers(self, instruction: str | None, params: Params) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if instruction is not None:
            assert self._private is not None, "a signed request needs a secret"
            timestamp_ms = time.time_ns() // 1_000_000
            signature = self._private.sign(signing_text(instruction, params, timestamp_ms, WINDOW_MS).encode())
            headers["X-API-Key"] = self.api_key
            headers["X-Signature"] = base64.b64encode(signature).decode()
            headers["X-Timestamp"] = str(timestamp_ms)
            headers["X-Window"] = str(WINDOW_MS)
        return headers

    def request(self, method: str, path: str, *, instruction: str | None = None, params: Params = None) -> Any:
        """Send one request (signed when `instruction` is given); return its decoded JSON (or text).

        Raises ApiError for a non-2xx answer and OSError (http.client errors included) when
        the server cannot be reached; a connection the server closed is reopened once."""
        body: bytes | None = None
        url = path
        if method == "GET":
            if params:
                assert isinstance(params, dict)
                url += "?" + urllib.parse.urlencode({key: _text(value) for key, value in params.items()})
        elif params is not None:
            body = json.dumps(params).encode()
        for attempt in (1, 2):
            headers = self._headers(instruction, params)  # signed afresh: a retry is a new request
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self._connection.request(method, url, body=body, headers=headers)
                response = self._connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            content_type = response.getheader("Content-Type", "")
            decoded: Any = raw.decode(errors="replace")
            if "json" in content_type and raw:
                decoded = json.loads(raw)
            if not 200 <= response.status < 300:
                raise ApiError(response.status, decoded)
            return decoded
        raise AssertionError("unreachable: the loop returns or raises")
