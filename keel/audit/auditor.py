"""The continuous auditor: a shadow engine that re-applies every durable command, checks
the node's checkpoints and every invariant, and halts payouts and trading on a violation.

Theory of operation. The node gives the auditor a copy of the recovered state; the
auditor is a sequencer listener, so it receives every durable command with the events
the node's engine produced, in order. On its own thread it applies each command to its
shadow engine and checks that the shadow produced the same events (a replica
cross-check, DESIGN.md), adds the ledger entries to running totals (seeded with the
balances it started from, which recovery verified against the log), and at every
`every`-th Checkpoint it runs the full audit (keel/core/invariants.py) plus balance ==
ledger sum for every account. Checkpoint commands carry the node's state hash; the
shadow engine verifies it when it applies them, like any replica.

A finding is reported once: the auditor writes DIR/audit.json (status, seq, findings)
and calls `halt(reason)`, which the node turns into logged commands that freeze
withdrawals and move every market to CancelOnly. It then stops auditing (the node needs
an operator). `audit.json` is rewritten after every audit, so `keel` tools and the API
can show the last audited seq.

Imports: keel.core.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from keel.core.commands import Checkpoint, Command
from keel.core.engine import Engine
from keel.core.errors import CheckpointMismatch
from keel.core.events import Event, encode_events
from keel.core.invariants import audit
from keel.core.ledger import LedgerTotals
from keel.core.snapshot import decode_state, encode_state
from keel.core.state import ExchangeState

AUDIT_FILE = "audit.json"
Halt = Callable[[str], None]


def _seeded_ledger(state: ExchangeState) -> LedgerTotals:
    ledger = LedgerTotals()
    for account_id, account in state.accounts.items():
        for asset_id, balance in enumerate(account.balances):
            if balance:
                ledger.totals[(account_id, asset_id)] = balance
    ledger.next_entry_id = state.entry_id_next
    ledger.entries = state.entry_id_next - 1
    return ledger


class Auditor:
    """A sequencer listener (call it with a list of published commands); see the module docstring."""

    def __init__(self, state: ExchangeState, data_dir: Path | None, halt: Halt, *, every: int = 1) -> None:
        self.engine = Engine(decode_state(encode_state(state)))
        self.ledger = _seeded_ledger(self.engine.state)
        self.data_dir = data_dir
        self.halt = halt
        self.every = max(1, every)
        self.audits = 0
        self.audited_seq = self.engine.state.seq_last
        self.findings: list[str] = []
        self.failed: BaseException | None = None
        self._checkpoints = 0
        self._queue: queue.SimpleQueue[Sequence[Any] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="keel-auditor", daemon=True)
        self._thread.start()
        self._keep_previous_violation()
        self._write()

    def __call__(self, published: Sequence[Any]) -> None:
        """Listener entry point (committer thread): queue and return."""
        self._idle.clear()
        self._queue.put(published)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything queued so far has been audited (tests and tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle.wait(0.05) and self._queue.empty():
                return True
        return False

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    # ---- the auditor thread ---------------------------------------------------------
    def _run(self) -> None:
        while True:
            if self._queue.empty():
                self._idle.set()
            batch = self._queue.get()
            if batch is None:
                return
            if self.findings or self.failed is not None:
                continue  # halted: an operator must look
            try:
                for published in batch:
                    self._apply(published.command, published.events)
                    if self.findings:
                        break
            except BaseException as error:  # the auditor must never take the node down
                self.failed = error
                self._report([f"auditor failed at seq {self.engine.state.seq_last + 1}: {error!r}"])

    def _apply(self, command: Command, events: list[Event] | None) -> None:
        try:
            shadow = self.engine.apply(command)
        except CheckpointMismatch as mismatch:
            self._report(
                [
                    f"seq {mismatch.seq}: the shadow engine's state differs from the node's checkpoint "
                    f"in sections {', '.join(mismatch.sections)}"
                ]
            )
            return
        if events is not None and encode_events(shadow) != encode_events(events):
            self._report([f"seq {command.seq}: the shadow engine produced different events than the node"])
            return
        self.ledger.add(shadow)
        if type(command) is Checkpoint:
            self._checkpoints += 1
            if self._checkpoints % self.every == 0:
                findings = audit(self.engine.state, self.ledger)
                self.audits += 1
                self.audited_seq = command.seq
                if findings:
                    self._report([f"seq {command.seq}: {finding}" for finding in findings])
                else:
                    self._write()

    def _report(self, findings: list[str]) -> None:
        self.findings = findings
        self._write()
        shown = "; ".join(findings[:3]) + (f"; and {len(findings) - 3} more" if len(findings) > 3 else "")
        self.halt(f"invariant violation: {shown}"[:200])

    def status(self) -> dict[str, Any]:
        return {
            "status": "violation" if self.findings else "ok",
            "audited_seq": self.audited_seq,
            "audits": self.audits,
            "findings": self.findings,
        }

    def _keep_previous_violation(self) -> None:
        """A violation found before a restart stays on disk as audit-violation-<seq>.json."""
        if self.data_dir is None:
            return
        path = self.data_dir / AUDIT_FILE
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if previous.get("status") == "violation":
            os.replace(path, self.data_dir / f"audit-violation-{previous.get('audited_seq', 0)}.json")

    def _write(self) -> None:
        if self.data_dir is None:
            return
        path = self.data_dir / AUDIT_FILE
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.status(), indent=2) + "\n")
        os.replace(temporary, path)
