"""The auditor in a process of its own: a read-only replica that follows the durable log.

`ProcessAuditor` (in the node) starts `python -m keel.node.audit_process DIR EVERY`. The
child opens DIR read-only (verified recovery, like any replica), then follows the log:
it reads every new durable record (checksums and hash chain checked), applies it to its
engine through a keel.audit Auditor (which verifies each Checkpoint's hash and runs the
full invariant audit at every EVERY-th checkpoint) and reports on stdout:

    READY <seq>     recovered; following from there
    AT <seq>        everything up to <seq> is applied and audited
    HALT <reason>   a violation: the node logs the halt (freeze withdrawals, CancelOnly)

It runs beside the engine on another core instead of sharing the engine's interpreter
lock, and it sees only what is durable, as a replica on another machine would. It stops
when its stdin closes (the node closed) or its parent goes away.

Imports: keel.audit, keel.core, keel.log, keel.node.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from keel.audit.auditor import Auditor
from keel.core.commands import decode_command
from keel.log.base import CommandLog
from keel.log.record import verify_chain

POLL_S = 0.05


class ProcessAuditor:
    """The node's handle on its auditor process."""

    def __init__(self, data_dir: Path, halt: Callable[[str], None], every: int) -> None:
        self.halt = halt
        self.applied_seq = -1
        self.halts: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel.node.audit_process", str(data_dir), str(every)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="keel-auditor-reader", daemon=True)
        self._reader.start()
        # Wait until it has recovered, so that it audits everything logged from now on.
        with self._changed:
            self._changed.wait_for(lambda: self.applied_seq >= 0 or self.process.poll() is not None, 120)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, _, rest = line.rstrip("\n").partition(" ")
            if word in ("READY", "AT"):
                with self._changed:
                    self.applied_seq = int(rest)
                    self._changed.notify_all()
            elif word == "HALT":
                self.halts.append(rest)
                self.halt(rest)
        with self._changed:
            self._changed.notify_all()

    def wait_until(self, seq: int, timeout: float = 30.0) -> bool:
        """Block until the auditor has applied and audited everything up to `seq`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.applied_seq < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    return self.applied_seq >= seq
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)


def _parent_gone(parent: int) -> bool:
    if os.getppid() != parent:
        return True
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready) and not sys.stdin.read(1)  # EOF: the node closed our stdin


def main(argv: list[str]) -> int:
    from keel.node.node import Node

    data_dir, every = Path(argv[0]), int(argv[1])
    parent = os.getppid()
    node = Node.open(data_dir, read_only=True)

    def halt(reason: str) -> None:
        print(f"HALT {reason}", flush=True)

    auditor = Auditor(node.engine.state, data_dir, halt, every=every)
    seq, prev_hash = node.engine.state.seq_last, node.prev_hash
    log = node.log
    print(f"READY {seq}", flush=True)
    try:
        while not _parent_gone(parent):
            try:
                seq, prev_hash = _follow(log, auditor, seq, prev_hash)
            except Exception as error:  # a damaged log or a bug: say so, and stop auditing
                print(f"HALT auditor failed after seq {seq}: {error!r}"[:300], flush=True)
                return 1
    finally:
        auditor.close()
        node.close()
    return 0


def _follow(log: CommandLog, auditor: Auditor, seq: int, prev_hash: bytes) -> tuple[int, bytes]:
    """Apply what is durable after `seq`; report it; return the new position."""
    batch = []
    # rows() without an upper bound reads what is durable now (last_seq() is the writer's
    # cached position, not a reader's).
    for record in verify_chain(log.rows(seq + 1), seq + 1, prev_hash):
        batch.append(SimpleNamespace(command=decode_command(record.payload), events=None))
        seq, prev_hash = record.seq, record.hash
    if not batch:
        time.sleep(POLL_S)
        return seq, prev_hash
    auditor(batch)
    auditor.wait_idle(300)
    print(f"AT {seq}", flush=True)
    return seq, prev_hash


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
