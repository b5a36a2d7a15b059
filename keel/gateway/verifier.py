"""ED25519 signature verification in a child process, beside the event loop.

Why. A verification costs about 0.06 ms of CPU per request on the two-core benchmark
machine (libsodium through PyNaCl; OpenSSL through cryptography, used before, took 0.11
to 0.3 ms and held the GIL throughout): as much as a third of what the gateway's
event-loop thread spends on a signed order. Done on that thread it would delay every
other request of the loop pass; done here it runs on the other core at the same time
(docs/benchmarks.md, `keel bench api`). `keel serve` therefore starts one child process,
`python -m keel.gateway.verifier`, that does nothing but verify.

How. `SignatureChecks.verify` queues a check; the checks queued during one pass of the
event loop go to the child as one frame over its stdin (a 4-byte big-endian length, then
msgpack: a list of [public key, signature, [candidate texts]]), and the child answers
each frame, in order, with one frame of booleans on its stdout. The child runs the same
`auth.verify_signature` as the gateway did, so a signature is accepted exactly when it
was before.

Failing closed. Nothing is accepted without a verification: if the child cannot be
started, exits, sends something malformed or takes longer than `CHECK_TIMEOUT_S` for a
frame, the waiting checks and every later one are verified in the gateway process, as
before the child existed, and the failure is logged.

Imports: keel.gateway.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import Final

import msgspec
from nacl.signing import VerifyKey

from keel.gateway.auth import verify_signature

log = logging.getLogger("keel.gateway")

CHECKS_PER_FRAME_MAX: Final = 256
CHECK_TIMEOUT_S: Final = 5.0  # for one frame's answer; then the gateway verifies itself
FRAME_BYTES_MAX: Final = 16 * 1024 * 1024
KEYS_CACHED_MAX: Final = 100_000  # parsed public keys the child keeps (cleared when full)
CLOSE_POLLS: Final = 500  # x CLOSE_POLL_S: how long the child has to exit once its stdin closes
CLOSE_POLL_S: Final = 0.01
_LENGTH = struct.Struct(">I")

Check = tuple[bytes, bytes, list[bytes]]  # (raw public key, signature, candidate texts)


class _Pending:
    """One frame sent to the child: its checks (to verify here if the child fails) and futures."""

    __slots__ = ("checks", "futures", "timer", "verifiers")

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.verifiers: list[VerifyKey] = []
        self.futures: list[asyncio.Future[bool]] = []
        self.timer: asyncio.TimerHandle | None = None


class SignatureChecks(asyncio.Protocol):
    """The gateway's side: queue checks, send one frame per loop pass, resolve from answers."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.WriteTransport | None = None
        self.reader: asyncio.ReadTransport | None = None
        self.open: _Pending | None = None  # checks of this loop pass, not sent yet
        self.sent: collections.deque[_Pending] = collections.deque()
        self.buffer = bytearray()
        self.failed = False

    async def start(self) -> None:
        """Start the child and attach it to the running loop; on failure verify in-process."""
        loop = asyncio.get_running_loop()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keel.gateway.verifier"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert self.process.stdin is not None
            assert self.process.stdout is not None
            self.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, self.process.stdin)
            self.reader, _ = await loop.connect_read_pipe(lambda: self, self.process.stdout)
        except (OSError, ValueError) as error:
            self._fail(f"the signature verifier could not start: {error}")
            return
        self.loop = loop

    async def close(self) -> None:
        """Stop the child (its stdin closes; it exits); checks still waiting are verified here."""
        if self.writer is not None:
            self.writer.close()  # the pipe closes on a later pass of the loop: keep it running
        self._verify_here_all()
        self.failed = True
        if self.process is not None:
            for _ in range(CLOSE_POLLS):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(CLOSE_POLL_S)
            else:
                self.process.kill()
                self.process.wait()
        if self.reader is not None:
            self.reader.close()

    async def verify(self, verifier: VerifyKey, signature: bytes, texts: Sequence[bytes]) -> bool:
        """Return whether `signature` signs one of `texts` under `verifier` (auth.verify_signature)."""
        loop = self.loop
        if loop is None or self.failed or self.writer is None or self.writer.is_closing():
            return verify_signature(verifier, signature, texts)
        pending = self.open
        if pending is None:
            pending = self.open = _Pending()
            loop.call_soon(self._send, pending)
        future: asyncio.Future[bool] = loop.create_future()
        pending.checks.append((bytes(verifier), signature, list(texts)))
        pending.verifiers.append(verifier)
        pending.futures.append(future)
        if len(pending.checks) >= CHECKS_PER_FRAME_MAX:
            self._send(pending)
        return await future

    def _send(self, pending: _Pending) -> None:
        if self.open is not pending:
            return  # sent already, when it filled up
        self.open = None
        if self.failed or self.writer is None or self.writer.is_closing():
            self._verify_here(pending)
            return
        assert self.loop is not None
        payload = msgspec.msgpack.encode(pending.checks)
        self.sent.append(pending)
        pending.timer = self.loop.call_later(CHECK_TIMEOUT_S, self._timed_out)
        self.writer.write(_LENGTH.pack(len(payload)) + payload)

    # ---- answers from the child (asyncio.Protocol on its stdout) -------------------------
    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < _LENGTH.size + length:
                return
            payload = bytes(self.buffer[_LENGTH.size : _LENGTH.size + length])
            del self.buffer[: _LENGTH.size + length]
            if not self.sent:
                self._fail("the signature verifier answered a frame that was not sent")
                return
            pending = self.sent.popleft()
            if pending.timer is not None:
                pending.timer.cancel()
            try:
                answers = msgspec.msgpack.decode(payload, type=list[bool])
            except msgspec.ValidationError:
                answers = []
            if len(answers) != len(pending.futures):
                self._verify_here(pending)
                self._fail("the signature verifier sent a malformed answer")
                return
            for future, valid in zip(pending.futures, answers, strict=True):
                if not future.done():
                    future.set_result(valid)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.failed:
            self._fail(f"the signature verifier stopped ({exc or 'its output closed'})")

    def _timed_out(self) -> None:
        self._fail(f"the signature verifier did not answer within {CHECK_TIMEOUT_S:g} s")

    def _fail(self, why: str) -> None:
        if not self.failed:
            log.error("%s; verifying signatures in the gateway process from now on", why)
        self.failed = True
        self._verify_here_all()
        if self.writer is not None:
            self.writer.close()

    def _verify_here_all(self) -> None:
        while self.sent:
            self._verify_here(self.sent.popleft())
        if self.open is not None:
            pending, self.open = self.open, None
            self._verify_here(pending)

    @staticmethod
    def _verify_here(pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        for (_, signature, texts), verifier, future in zip(
            pending.checks, pending.verifiers, pending.futures, strict=True
        ):
            if not future.done():
                future.set_result(verify_signature(verifier, signature, texts))


def _read_exactly(stream: object, size: int) -> bytes | None:
    read = stream.read  # type: ignore[attr-defined]
    data: bytes = read(size)
    if len(data) < size:
        return None  # the gateway closed our stdin: stop
    return data


def main() -> None:
    """The child: answer frames of checks from stdin on stdout until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway stops us (by closing stdin), not Ctrl-C
    source = sys.stdin.buffer
    sink = sys.stdout.buffer
    decoder = msgspec.msgpack.Decoder(list[tuple[bytes, bytes, list[bytes]]])
    keys: dict[bytes, VerifyKey] = {}
    while True:
        head = _read_exactly(source, _LENGTH.size)
        if head is None:
            return
        (length,) = _LENGTH.unpack(head)
        if length > FRAME_BYTES_MAX:
            return  # not from our gateway: stop, and it verifies for itself
        payload = _read_exactly(source, length)
        if payload is None:
            return
        answers = []
        for public_raw, signature, texts in decoder.decode(payload):
            key = keys.get(public_raw)
            if key is None:
                if len(keys) >= KEYS_CACHED_MAX:
                    keys.clear()
                key = keys[public_raw] = VerifyKey(public_raw)
            answers.append(verify_signature(key, signature, texts))
        answer = msgspec.msgpack.encode(answers)
        sink.write(_LENGTH.pack(len(answer)) + answer)
        sink.flush()


if __name__ == "__main__":
    main()
