"""Snapshot files: the full state image at a checkpoint, with its own hashes.

    DIR/snapshots/snapshot-<seq, 12 digits>.keel
    magic b"KSNAP01\\0" | u64 seq | 32-byte state hash | 32-byte SHA-256 of the image
    | u64 image length | image (keel.core.snapshot.encode_state)

A snapshot is written to a temporary file, fsynced, renamed into place and the directory
fsynced, so a crash leaves either the whole file or none. Loading checks the image hash,
decodes the state and recomputes its state hash from scratch; any failure means the file
is skipped (and reported) in favour of an older one or the log from genesis.

Imports: keel.core.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from keel.core import canonical
from keel.core.errors import KeelError
from keel.core.snapshot import decode_state, encode_state
from keel.core.state import ExchangeState

MAGIC = b"KSNAP01\0"
_HEADER = struct.Struct("<8sQ32s32sQ")
DIRECTORY = "snapshots"


class SnapshotInvalid(KeelError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"snapshot {path.name}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: Path
    seq: int


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / DIRECTORY


def list_snapshots(data_dir: Path) -> list[SnapshotInfo]:
    """Return the snapshot files, newest (highest seq) first."""
    directory = snapshot_dir(data_dir)
    if not directory.exists():
        return []
    found = []
    for path in directory.glob("snapshot-*.keel"):
        digits = path.stem.removeprefix("snapshot-")
        if digits.isdigit():
            found.append(SnapshotInfo(path, int(digits)))
    return sorted(found, key=lambda info: info.seq, reverse=True)


def write_snapshot_bytes(data_dir: Path, seq: int, state_hash: bytes, image: bytes) -> Path:
    """Write an encoded state image durably; return its path."""
    directory = snapshot_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"snapshot-{seq:012d}.keel"
    header = _HEADER.pack(MAGIC, seq, state_hash, hashlib.sha256(image).digest(), len(image))
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as file:
        file.write(header)
        file.write(image)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
    return path


def write_snapshot(data_dir: Path, state: ExchangeState, state_hash: bytes) -> Path:
    """Encode and write `state` (whose hash the caller has computed) at its seq."""
    return write_snapshot_bytes(data_dir, state.seq_last, state_hash, encode_state(state))


def load_snapshot(path: Path) -> tuple[int, bytes, ExchangeState]:
    """Return (seq, state hash, state) from a snapshot file; raise SnapshotInvalid."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # pruned by a running node since it was listed
        raise SnapshotInvalid(path, "file disappeared (pruned since it was listed)") from None
    if len(data) < _HEADER.size:
        raise SnapshotInvalid(path, "file is shorter than its header")
    magic, seq, state_hash, image_hash, image_size = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise SnapshotInvalid(path, "not a Keel snapshot (bad magic)")
    image = data[_HEADER.size :]
    if len(image) != image_size:
        raise SnapshotInvalid(path, f"image is {len(image)} bytes, header says {image_size}")
    if hashlib.sha256(image).digest() != image_hash:
        raise SnapshotInvalid(path, "image hash mismatch (corrupted file)")
    try:
        state = decode_state(image)
    except Exception as error:  # any decoding failure means the file is unusable
        raise SnapshotInvalid(path, f"image does not decode: {error}") from error
    if state.seq_last != seq:
        raise SnapshotInvalid(path, f"image is at seq {state.seq_last}, header says {seq}")
    found = canonical.state_hash(state)
    if found != state_hash:
        raise SnapshotInvalid(path, f"state hash {found.hex()} does not match recorded {state_hash.hex()}")
    return seq, state_hash, state


def prune_snapshots(data_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots; return what was deleted."""
    removed = []
    for info in list_snapshots(data_dir)[keep:]:
        info.path.unlink(missing_ok=True)
        removed.append(info.path)
    return removed
