"""Log records: one sequenced command each, checksummed and hash-chained.

Layout (little-endian):

    header   magic b"KL" | u8 version | u8 kind | u64 seq | u64 timestamp_ns | u32 payload length
    payload  the command's canonical bytes (keel.core.commands.encode_command)
    prev     32 bytes: the hash of the previous record (32 zero bytes before seq 1)
    hash     32 bytes: SHA-256(header | payload | prev), so it covers seq, time, command and chain
    crc      u32: CRC-32 of everything before it, so a torn or corrupted record is caught
             on its own, before any chain check

The checksum is checked just before a record is written (backends assert
`has_valid_checksum`) and again just after it is read (`decode_record`), pairing the
assertions on both sides of the boundary (STYLE.md section 4). Integers that
leave the process are asserted to fit their fields.

Imports: the standard library, keel.core errors.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Iterator

import msgspec

from keel.core.errors import KeelError

MAGIC = b"KL"
VERSION = 1
KIND_COMMAND = 0
GENESIS_HASH = bytes(32)
_HEADER = struct.Struct("<2sBBQQI")
_CRC = struct.Struct("<I")
_TRAILER_SIZE = 32 + 32 + _CRC.size
_sha256 = hashlib.sha256
_crc32 = zlib.crc32
_pack_crc = _CRC.pack
RECORD_SIZE_MIN = _HEADER.size + _TRAILER_SIZE
PAYLOAD_SIZE_MAX = 16 * 1024 * 1024
_U64_MAX = 2**64 - 1


class LogCorrupted(KeelError):
    """The log is not what was written: checksum, chain, order or gap. Stop; never repair."""

    def __init__(self, seq: int, problem: str, expected: str = "", found: str = "") -> None:
        detail = f"; expected {expected}, found {found}" if expected or found else ""
        super().__init__(f"log record {seq}: {problem}{detail}")
        self.seq = seq
        self.problem = problem
        self.expected = expected
        self.found = found


class Record(msgspec.Struct, frozen=True, gc=False):
    """A decoded record. `data` is its exact bytes as stored."""

    seq: int
    timestamp_ns: int
    payload: bytes
    prev_hash: bytes
    hash: bytes
    data: bytes


def make_record(seq: int, timestamp_ns: int, payload: bytes, prev_hash: bytes) -> Record:
    """Return the record for a command's bytes, chained to `prev_hash`."""
    assert 1 <= seq <= _U64_MAX
    assert 0 <= timestamp_ns <= _U64_MAX
    assert len(payload) <= PAYLOAD_SIZE_MAX
    assert len(prev_hash) == 32
    covered = _HEADER.pack(MAGIC, VERSION, KIND_COMMAND, seq, timestamp_ns, len(payload)) + payload + prev_hash
    digest = _sha256(covered).digest()
    body = covered + digest
    return Record(seq, timestamp_ns, payload, prev_hash, digest, body + _pack_crc(_crc32(body)))


def has_valid_checksum(data: bytes) -> bool:
    """Return whether a record's CRC matches its bytes (checked again just before a write)."""
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    valid: bool = zlib.crc32(memoryview(data)[: -_CRC.size]) == crc
    return valid


def decode_record(data: bytes, seq_expected: int) -> Record:
    """Return the record in `data`, checking its framing, checksum and own hash.

    Raises LogCorrupted naming `seq_expected` and what is wrong; does not check the chain."""
    if type(data) is not bytes:  # a driver's buffer: own the bytes once; slices of bytes are bytes
        data = bytes(data)
    if len(data) < RECORD_SIZE_MIN:
        raise LogCorrupted(
            seq_expected, "record is shorter than its framing (torn?)", f">= {RECORD_SIZE_MIN} bytes", f"{len(data)}"
        )
    magic, version, kind, seq, timestamp_ns, payload_size = _HEADER.unpack_from(data, 0)
    if len(data) != _HEADER.size + payload_size + _TRAILER_SIZE:
        raise LogCorrupted(
            seq_expected,
            "record length does not match its header (torn?)",
            f"{_HEADER.size + payload_size + _TRAILER_SIZE} bytes",
            f"{len(data)}",
        )
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise LogCorrupted(seq_expected, "checksum mismatch (corrupted or torn record)")
    if magic != MAGIC or version != VERSION or kind != KIND_COMMAND:
        raise LogCorrupted(
            seq_expected,
            "unknown record magic, version or kind",
            f"{MAGIC!r} v{VERSION}",
            f"{magic!r} v{version} kind {kind}",
        )
    if seq != seq_expected:
        raise LogCorrupted(
            seq_expected, "record holds another sequence number (reordered?)", str(seq_expected), str(seq)
        )
    payload_end = _HEADER.size + payload_size
    covered_end = payload_end + 32  # the hash covers header, payload and previous hash
    digest = data[covered_end : covered_end + 32]
    if hashlib.sha256(data[:covered_end]).digest() != digest:
        raise LogCorrupted(seq_expected, "record hash does not cover its contents")
    return Record(seq, timestamp_ns, data[_HEADER.size : payload_end], data[payload_end:covered_end], digest, data)


def verify_chain(
    rows: Iterable[tuple[int, bytes]], seq_first: int, prev_hash: bytes, timestamp_ns_min: int = 0
) -> Iterator[Record]:
    """Yield decoded records from (seq, data) rows, checking order, gaps, chain and time.

    `seq_first` is the seq the first row must have and `prev_hash` the hash it must chain
    to. Raises LogCorrupted at the first record that is out of place."""
    seq_next = seq_first
    timestamp_last = timestamp_ns_min
    for seq, data in rows:
        if seq != seq_next:
            raise LogCorrupted(seq_next, "record missing (gap in the log)", f"seq {seq_next}", f"seq {seq}")
        record = decode_record(data, seq_next)
        if record.prev_hash != prev_hash:
            raise LogCorrupted(seq_next, "hash chain broken", prev_hash.hex(), record.prev_hash.hex())
        if record.timestamp_ns < timestamp_last:
            raise LogCorrupted(seq_next, "timestamp went backwards", f">= {timestamp_last}", str(record.timestamp_ns))
        yield record
        prev_hash = record.hash
        timestamp_last = record.timestamp_ns
        seq_next += 1
