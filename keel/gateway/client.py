"""A minimal Backpack-signing HTTP client (standard library only): `keel account create`
uses it for the operator API of a serving node; tests use its signing for raw requests.

It signs exactly as bpx-py does: raw values, keys sorted, booleans as true/false.

Imports: keel.gateway.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signing_text(
    instruction: str, params: dict[str, Any] | list[dict[str, Any]] | None, timestamp_ms: int, window_ms: int
) -> str:
    """Return the text a client signs (spec 2.3) for a query or body."""
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


def sign_headers(
    api_key: str,
    secret_b64: str,
    instruction: str,
    params: dict[str, Any] | list[dict[str, Any]] | None,
    *,
    timestamp_ms: int | None = None,
    window_ms: int = 5000,
) -> dict[str, str]:
    """Return the X-API-Key, X-Signature, X-Timestamp and X-Window headers for a request."""
    timestamp_ms = timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret_b64)[:32])
    signature = private.sign(signing_text(instruction, params, timestamp_ms, window_ms).encode())
    return {
        "X-API-Key": api_key,
        "X-Signature": base64.b64encode(signature).decode(),
        "X-Timestamp": str(timestamp_ms),
        "X-Window": str(window_ms),
    }


class ApiFailure(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def call(
    base_url: str,
    method: str,
    path: str,
    *,
    instruction: str | None = None,
    params: dict[str, Any] | list[dict[str, Any]] | None = None,
    api_key: str = "",
    secret_b64: str = "",
    timeout_s: float = 30.0,
) -> Any:
    """Send one request (signed when `instruction` is given); return the decoded JSON or text.

    Raises ApiFailure with the status and body of any non-2xx answer, OSError if nothing answers."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if instruction is not None:
        headers.update(sign_headers(api_key, secret_b64, instruction, params))
    url = base_url.rstrip("/") + path
    data = None
    if method == "GET":
        if params:
            url += "?" + urllib.parse.urlencode({key: _text(value) for key, value in params.items()})  # type: ignore[union-attr]
    elif params is not None:
        data = json.dumps(params).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        raise ApiFailure(error.code, body) from None
    if "json" in content_type:
        return json.loads(raw) if raw else None
    return raw.decode()
