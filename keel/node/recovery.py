"""Verified recovery: newest good snapshot, then the log's tail, every checkpoint checked.

One code path serves start-up, crash recovery, `keel verify` and `keel replay` (crash-only
design). Any hash-chain break, bad checksum, gap, reordering or checkpoint mismatch in
the log refuses to open and names the first bad sequence number, what was expected and
what was found; for a state mismatch, the differing sections, and — when a snapshot
written at that checkpoint exists — the differing accounts, orders, markets and levels.
The one thing that may be discarded is a torn final record (it fails its own checksum
and nothing follows it): it is reported, never silently dropped.

Imports: keel.core, keel.log, keel.snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from keel.core import canonical
from keel.core.commands import Checkpoint, Command, decode_command
from keel.core.engine import Engine
from keel.core.errors import CheckpointMismatch, KeelError
from keel.core.events import Event
from keel.log.base import CommandLog
from keel.log.record import GENESIS_HASH, LogCorrupted, decode_record, verify_chain
from keel.snapshots.store import SnapshotInvalid, list_snapshots, load_snapshot

Progress = Callable[[int, int], None]  # (records replayed so far, records to replay)
Replayed = Callable[[int, int, Command, list[Event]], None]  # (seq, timestamp_ns, command, events)
_TORN_PROBLEMS = ("checksum mismatch", "shorter than its framing", "length does not match")


class RecoveryFailed(KeelError):
    """The node must not open: the log or a replayed state is not what was recorded."""

    def __init__(
        self, seq: int, problem: str, expected: str = "", found: str = "", details: list[str] | None = None
    ) -> None:
        self.seq = seq
        self.problem = problem
        self.expected = expected
        self.found = found
        self.details = details or []
        text = f"refusing to open: first bad sequence number {seq}: {problem}"
        if expected or found:
            text += f"\n  expected: {expected}\n  found:    {found}"
        for line in self.details:
            text += f"\n  {line}"
        super().__init__(text)


@dataclass(slots=True)
class RecoveryReport:
    snapshot_seq: int = 0  # 0: replayed from genesis
    snapshots_skipped: list[str] = field(default_factory=list)
    records_replayed: int = 0
    checkpoints_verified: int = 0
    full_checks: int = 0
    last_seq: int = 0
    last_checkpoint_seq: int = 0  # the last Checkpoint replayed, or the snapshot's (taken at one)
    prefix_records_checked: int = 0  # records behind the snapshot whose checksum and chain were checked
    torn_tail_discarded: int = 0  # seq of a discarded torn final record, 0 if none
    seconds: float = 0.0
    state_hash: bytes = b""


def _start_from_snapshot(
    data_dir: Path, log: CommandLog, to_seq: int | None, report: RecoveryReport
) -> tuple[Engine, bytes, int] | None:
    """Return (engine, hash of the record at the snapshot's seq, its timestamp) from the newest usable snapshot."""
    for info in list_snapshots(data_dir):
        if to_seq is not None and info.seq > to_seq:
            continue
        try:
            seq, state_hash, state = load_snapshot(info.path)
        except SnapshotInvalid as invalid:
            report.snapshots_skipped.append(str(invalid))
            continue
        data = log.row(seq)
        if data is None:
            report.snapshots_skipped.append(f"snapshot {info.path.name}: the log has no record {seq}")
            continue
        try:
            record = decode_record(data, seq)
            command = decode_command(record.payload)
        except (LogCorrupted, msgspec.DecodeError) as error:
            report.snapshots_skipped.append(f"snapshot {info.path.name}: log record {seq} unreadable: {error}")
            continue
        # Snapshots are taken at checkpoints: the log's own record must vouch for the hash.
        if not isinstance(command, Checkpoint) or command.state_hash != state_hash:
            report.snapshots_skipped.append(
                f"snapshot {info.path.name}: its hash is not the checkpoint logged at {seq}"
            )
            continue
        report.snapshot_seq = seq
        return Engine(state), record.hash, record.timestamp_ns
    return None


def _mismatch_details(data_dir: Path, engine: Engine, mismatch: CheckpointMismatch) -> list[str]:
    """Name differing entities by comparing with a snapshot written at the same seq, if any."""
    details = [f"sections that differ: {', '.join(mismatch.sections) or 'none named'}"]
    for info in list_snapshots(data_dir):
        if info.seq != mismatch.seq:
            continue
        try:
            _, _, recorded_state = load_snapshot(info.path)
        except SnapshotInvalid:
            continue
        for section in mismatch.sections:
            recorded = canonical.entity_map(recorded_state, section)
            replayed = canonical.entity_map(engine.state, section)
            keys = [key for key in sorted(set(recorded) | set(replayed)) if recorded.get(key) != replayed.get(key)]
            names = [repr(msgspec.msgpack.decode(key)) if key else "(whole section)" for key in keys[:20]]
            more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
            details.append(f"{section} differing (key): {', '.join(names)}{more}")
    return details


def _check_prefix(log: CommandLog, snapshot_seq: int, snapshot_record_hash: bytes, report: RecoveryReport) -> None:
    """Check checksums and the hash chain of records 1..snapshot_seq; raise RecoveryFailed."""
    last_hash = GENESIS_HASH
    try:
        for record in verify_chain(log.rows(1, snapshot_seq), 1, GENESIS_HASH):
            last_hash = record.hash
            report.prefix_records_checked += 1
    except LogCorrupted as corrupted:
        raise RecoveryFailed(corrupted.seq, corrupted.problem, corrupted.expected, corrupted.found) from corrupted
    if report.prefix_records_checked != snapshot_seq or last_hash != snapshot_record_hash:
        raise RecoveryFailed(
            report.prefix_records_checked + 1, "the log before the snapshot does not chain to the record it starts from"
        )


def recover(
    data_dir: Path,
    log: CommandLog,
    *,
    from_genesis: bool = False,
    full_check: bool = False,
    to_seq: int | None = None,
    discard_torn_tail: bool = True,
    check_prefix: bool = False,
    progress: Progress | None = None,
    on_replayed: Replayed | None = None,
) -> tuple[Engine, bytes, RecoveryReport]:
    """Rebuild the engine from the newest good snapshot (unless `from_genesis`) and the log.

    Returns (engine, hash of the last record applied, report). `full_check` also
    recomputes the state hash from scratch at every checkpoint. `to_seq` stops early.
    `check_prefix` (keel verify) also checks the checksum and hash chain of every record
    the snapshot covers, without replaying them, so damage behind the newest snapshot is
    found too. `on_replayed(seq, timestamp_ns, command, events)` sees every replayed
    command with its events, in order (views catch up this way). Raises RecoveryFailed."""
    started = time.perf_counter()
    report = RecoveryReport()
    start = None if from_genesis else _start_from_snapshot(data_dir, log, to_seq, report)
    if start is None:
        engine, prev_hash, timestamp_min = Engine(), GENESIS_HASH, 0
    else:
        engine, prev_hash, timestamp_min = start
        if check_prefix:
            _check_prefix(log, engine.state.seq_last, prev_hash, report)
    seq_first = engine.state.seq_last + 1
    report.last_checkpoint_seq = report.snapshot_seq
    last_seq = log.last_seq()
    seq_to = last_seq if to_seq is None else min(to_seq, last_seq)
    total = max(0, seq_to - seq_first + 1)
    apply = engine.apply
    replayed = 0
    try:
        for record in verify_chain(log.rows(seq_first, seq_to), seq_first, prev_hash, timestamp_min):
            try:
                command = decode_command(record.payload)
            except msgspec.DecodeError as error:
                raise LogCorrupted(record.seq, f"command does not decode: {error}") from error
            if command.seq != record.seq or command.timestamp_ns != record.timestamp_ns:
                raise LogCorrupted(record.seq, "command's seq or time differs from its record's")
            events = apply(command)
            if on_replayed is not None:
                on_replayed(command.seq, command.timestamp_ns, command, events)
            if type(command) is Checkpoint:
                report.checkpoints_verified += 1
                report.last_checkpoint_seq = command.seq
                if full_check:
                    found = canonical.state_hash(engine.state)
                    if found != command.state_hash:
                        raise CheckpointMismatch(command.seq, command.state_hash, found, ["(full recompute)"])
                    report.full_checks += 1
            prev_hash = record.hash
            replayed += 1
            if progress is not None and replayed % 10_000 == 0:
                progress(replayed, total)
    except LogCorrupted as corrupted:
        is_torn = corrupted.seq == last_seq and any(text in corrupted.problem for text in _TORN_PROBLEMS)
        if not (is_torn and discard_torn_tail and to_seq is None):
            raise RecoveryFailed(corrupted.seq, corrupted.problem, corrupted.expected, corrupted.found) from corrupted
        log.discard_after(corrupted.seq - 1)
        report.torn_tail_discarded = corrupted.seq
    except CheckpointMismatch as mismatch:
        raise RecoveryFailed(
            mismatch.seq,
            "replayed state does not match the checkpoint",
            mismatch.expected.hex(),
            mismatch.found.hex(),
            _mismatch_details(data_dir, engine, mismatch),
        ) from mismatch
    except AssertionError as error:
        raise RecoveryFailed(engine.state.seq_last, f"engine refused the record: {error}") from error
    if engine.state.seq_last != seq_to and not report.torn_tail_discarded:
        raise RecoveryFailed(
            engine.state.seq_last + 1, "log ended early", f"records up to {seq_to}", f"up to {engine.state.seq_last}"
        )
    if progress is not None:
        progress(replayed, total)
    report.records_replayed = replayed
    report.last_seq = engine.state.seq_last
    report.state_hash = engine.state_hash()
    report.seconds = time.perf_counter() - started
    return engine, prev_hash, report
