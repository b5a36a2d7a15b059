"""Upgrade rehearsal: replay the whole log with the code installed now and compare it with
everything the log recorded, without stopping at the first difference.

`keel verify --from-genesis` refuses at the first checkpoint the code cannot reproduce.
Before reopening after an upgrade the operator needs more: which checkpoints differ
(the first one bounds the first differing command from above; the checkpoint before it
from below), which sections, and which accounts, orders and markets are affected. The
rehearsal replays from genesis with an engine whose checkpoints record mismatches instead
of raising, then compares the replayed state with every snapshot the data directory
holds (snapshots are written at checkpoints, so each is a full recorded picture) and
names the entities that differ there.

It runs in its own process (the `keel` installed now, i.e. the new code) and only reads.

Imports: keel.core, keel.log, keel.snapshots, keel.node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from keel.core import canonical
from keel.core.commands import Checkpoint, decode_command
from keel.core.engine import Engine
from keel.core.events import Event
from keel.core.state import ExchangeState
from keel.log.record import GENESIS_HASH, LogCorrupted, verify_chain
from keel.node.config import load_config
from keel.node.node import open_log
from keel.snapshots.store import SnapshotInvalid, list_snapshots, load_snapshot


@dataclass(slots=True)
class CheckpointDifference:
    seq: int
    previous_good_seq: int  # the last checkpoint before it that matched (0: none)
    sections: list[str]


@dataclass(slots=True)
class Rehearsal:
    ok: bool = True
    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    state_hash: str = ""
    seconds: float = 0.0
    differences: list[CheckpointDifference] = field(default_factory=list)
    entities: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # snapshot seq -> section -> keys
    error: str = ""

    @property
    def first_bad_seq(self) -> int | None:
        return self.differences[0].seq if self.differences else None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "last_seq": self.last_seq,
            "state_hash": self.state_hash,
            "seconds": round(self.seconds, 3),
            "first_bad_seq": self.first_bad_seq,
            "differences": [
                {"seq": d.seq, "previous_good_seq": d.previous_good_seq, "sections": d.sections}
                for d in self.differences
            ],
            "entities": {str(seq): sections for seq, sections in self.entities.items()},
            "error": self.error,
        }


class _RecordingEngine(Engine):
    """An engine whose Checkpoint records a mismatch instead of raising."""

    __slots__ = ("good", "last_good", "mismatches")

    def __init__(self) -> None:
        super().__init__()
        self.mismatches: list[CheckpointDifference] = []
        self.good = 0
        self.last_good = 0
        self.handlers[Checkpoint] = self._record_checkpoint

    def _record_checkpoint(self, state: ExchangeState, command: Checkpoint, events: list[Event]) -> None:
        hashes = self.section_hashes()
        if canonical.combine(hashes) == command.state_hash:
            self.good += 1
            self.last_good = command.seq
            return
        recorded = dict(zip(canonical.SECTIONS, command.section_hashes, strict=False))
        sections = [section for section in canonical.SECTIONS if recorded.get(section) != hashes[section]]
        self.mismatches.append(CheckpointDifference(command.seq, self.last_good, sections))


def _differing_keys(recorded: ExchangeState, replayed: ExchangeState) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for section in canonical.SECTIONS:
        if section == "position":
            continue
        left = canonical.entity_map(recorded, section)
        right = canonical.entity_map(replayed, section)
        keys = [key for key in sorted(set(left) | set(right)) if left.get(key) != right.get(key)]
        if keys:
            found[section] = [repr(msgspec.msgpack.decode(key)) if key else "(whole section)" for key in keys[:50]]
    return found


def rehearse(data_dir: Path) -> Rehearsal:
    """Replay the log of `data_dir` from genesis with this code; see the module docstring."""
    started = time.perf_counter()
    result = Rehearsal()
    config = load_config(data_dir)
    log = open_log(data_dir, config)
    engine = _RecordingEngine()
    snapshots = {info.seq: info.path for info in list_snapshots(data_dir)}
    try:
        last_seq = log.last_seq()
        for record in verify_chain(log.rows(1, last_seq), 1, GENESIS_HASH):
            command = decode_command(record.payload)
            engine.apply(command)
            result.records += 1
            if type(command) is Checkpoint:
                result.checkpoints += 1
                path = snapshots.get(command.seq)
                if path is not None:
                    try:
                        _, _, recorded = load_snapshot(path)
                    except SnapshotInvalid:
                        continue
                    differing = _differing_keys(recorded, engine.state)
                    if differing:
                        result.entities[command.seq] = differing
    except (LogCorrupted, msgspec.DecodeError, AssertionError) as error:
        result.ok = False
        result.error = f"the log cannot be replayed at seq {engine.state.seq_last + 1}: {error}"
    finally:
        log.close()
    result.differences = engine.mismatches
    result.ok = result.ok and not engine.mismatches and not result.entities
    result.last_seq = engine.state.seq_last
    result.state_hash = canonical.state_hash(engine.state).hex()
    result.seconds = time.perf_counter() - started
    return result
