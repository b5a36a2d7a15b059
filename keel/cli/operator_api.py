"""How an operator command reaches a data directory: through the serving node, or by itself.

Commands that log something (`keel market state`, `keel maintenance`, `keel deposit`,
`keel withdrawals`, `keel adjust`) work in two ways, chosen per run:

- **A node serves the directory** (DIR/serve.json names a URL that answers /api/v1/ping):
  the command is sent to that node's operator API (`/operator/v1/...`, docs/api.md),
  signed the Backpack way with the operator key (DIR/operator.key). The node logs it.
- **Otherwise** the command opens the directory's node itself (taking its lock),
  submits through the sequencer, waits until the record is durable and closes it.

keel/cli does not import keel/gateway (STYLE.md section 5: nothing imports an edge), so
this module signs requests itself with the standard library and `cryptography`, as any
client of the API would (spec 2.3: sorted key=value pairs, booleans true/false).

Imports: keel.core, keel.node.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel.core.commands import Command
from keel.core.errors import KeelError, RejectCode
from keel.core.events import CommandRejected, Event
from keel.node.node import LOCK_NAME, OPERATOR_KEY_NAME, OPERATOR_PUBLIC_KEY_NAME, DataDirError, Node
from keel.sequencer.sequencer import Outcome

SERVE_NAME: Final = "serve.json"  # written by `keel serve` while it serves (keel/gateway/server.py)
WINDOW_MS: Final = 5_000
TIMEOUT_S: Final = 30.0


class CommandFailed(KeelError):
    """The command could not be carried out; `code` is the exit code (1 refused or unusable, 2 bad input)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def serving_url(data_dir: Path) -> str | None:
    """Return the URL of a node serving DIR, if DIR/serve.json names one that answers."""
    try:
        url = str(json.loads((data_dir / SERVE_NAME).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/v1/ping", timeout=5) as response:
            response.read()
    except (OSError, ValueError):
        return None
    return url


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class OperatorApi:
    """The operator API of the node serving a data directory."""

    url: str
    data_dir: Path

    def _headers(self, instruction: str, params: dict[str, Any]) -> dict[str, str]:
        seed = bytes.fromhex((self.data_dir / OPERATOR_KEY_NAME).read_text().strip())
        public = bytes.fromhex((self.data_dir / OPERATOR_PUBLIC_KEY_NAME).read_text().strip())
        timestamp_ms = time.time_ns() // 1_000_000
        pairs = "&".join(f"{key}={_text(params[key])}" for key in sorted(params))
        text = (
            f"instruction={instruction}&"
            + (f"{pairs}&" if pairs else "")
            + f"timestamp={timestamp_ms}&window={WINDOW_MS}"
        )
        signature = Ed25519PrivateKey.from_private_bytes(seed[:32]).sign(text.encode())
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-API-Key": base64.b64encode(public).decode(),
            "X-Signature": base64.b64encode(signature).decode(),
            "X-Timestamp": str(timestamp_ms),
            "X-Window": str(WINDOW_MS),
        }

    def call(self, method: str, path: str, instruction: str, params: dict[str, Any] | None = None) -> Any:
        """Send one signed operator request; return its decoded JSON answer.

        Raises CommandFailed with the node's message for any refusal, or when it does not answer."""
        params = {key: value for key, value in (params or {}).items() if value is not None}
        url = self.url.rstrip("/") + path
        data = None
        if method == "GET":
            if params:
                url += "?" + urllib.parse.urlencode({key: _text(value) for key, value in params.items()})
        else:
            data = json.dumps(params).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers(instruction, params))
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                body = json.loads(raw)
                message = str(body.get("message", body)) if isinstance(body, dict) else str(body)
            except ValueError:
                message = raw.decode(errors="replace")
            raise CommandFailed(f"refused: {message}") from None
        except OSError as error:
            raise CommandFailed(f"the node serving {self.data_dir} at {self.url} did not answer: {error}") from None


def open_node(data_dir: Path, command_name: str) -> Node:
    """Open the directory's node with its lock, or explain why not (CommandFailed, exit 1)."""
    try:
        return Node.open(data_dir)
    except DataDirError as error:
        if LOCK_NAME in str(error):
            raise CommandFailed(
                f"{data_dir} is in use by another keel process (it holds {LOCK_NAME}) and no node serving it "
                f"answers (DIR/{SERVE_NAME}); `{command_name}` needs the serving node's operator API or the "
                "directory to itself"
            ) from None
        raise CommandFailed(str(error)) from None
    except (KeelError, OSError, ValueError) as error:  # a corrupt log, a database down: a message
        raise CommandFailed(str(error)) from None


def open_read_only(data_dir: Path) -> Node:
    """Open the directory without its lock (it works beside a serving node)."""
    try:
        return Node.open(data_dir, read_only=True)
    except (KeelError, OSError, ValueError) as error:
        raise CommandFailed(str(error)) from None


def submit(node: Node, command: Command) -> Outcome:
    """Log one command through the node's sequencer and return its durable outcome; a
    refusal raises CommandFailed naming the engine's code (as the operator API does)."""
    try:
        outcome = node.start().call(command)
    except KeelError as error:
        raise CommandFailed(f"the node could not log the command: {error}") from None
    refusal(outcome.events)
    return outcome


def refusal(events: list[Event]) -> None:
    """Raise CommandFailed if the command was refused: 'refused: NAME (code): message'."""
    first = events[0] if events else None
    if isinstance(first, CommandRejected):
        raise CommandFailed(f"refused: {RejectCode(first.code).name} ({first.code}): {first.message}")
