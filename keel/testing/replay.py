"""Replay a command file in a fresh process and print what it produced, for determinism tests.

A command file is a sequence of records, each a 4-byte big-endian length followed by
`encode_command` bytes. `python -m keel.testing.replay FILE` applies every command to a
new Engine and prints one JSON object: the number of commands, the SHA-256 of the
concatenated `encode_events` of every command's events, the state hash (full recompute
and the engine's incremental one), every section hash, and the SHA-256 of the full-state
image. Two processes with different PYTHONHASHSEEDs must print the same line.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Iterable, Iterator

from keel.core import canonical
from keel.core.commands import Command, decode_command, encode_command
from keel.core.engine import Engine
from keel.core.events import encode_events
from keel.core.snapshot import encode_state

_LENGTH = struct.Struct(">I")


def write_commands(path: str, commands: Iterable[Command]) -> int:
    """Write commands to `path` as length-prefixed records; return how many."""
    count = 0
    with open(path, "wb") as file:
        for command in commands:
            data = encode_command(command)
            file.write(_LENGTH.pack(len(data)))
            file.write(data)
            count += 1
    return count


def read_commands(path: str) -> Iterator[Command]:
    """Yield the commands of a file written by `write_commands`; refuse a truncated file."""
    with open(path, "rb") as file:
        blob = file.read()
    offset = 0
    while offset < len(blob):
        if offset + _LENGTH.size > len(blob):
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        (length,) = _LENGTH.unpack_from(blob, offset)
        offset += _LENGTH.size
        if offset + length > len(blob):
            raise ValueError(f"{path}: truncated record at byte {offset}")
        yield decode_command(blob[offset : offset + length])
        offset += length


def summarize(engine: Engine, events_digest: str, count: int) -> dict[str, object]:
    """Return what a replay produced, as JSON-ready values."""
    state = engine.state
    return {
        "commands": count,
        "events_sha256": events_digest,
        "state_hash": canonical.state_hash(state).hex(),
        "state_hash_incremental": engine.state_hash().hex(),
        "sections": {section: digest.hex() for section, digest in canonical.section_hashes(state).items()},
        "image_sha256": hashlib.sha256(encode_state(state)).hexdigest(),
    }


def replay(commands: Iterable[Command]) -> dict[str, object]:
    """Apply commands to a new engine; return `summarize` of the result."""
    engine = Engine()
    hasher = hashlib.sha256()
    count = 0
    for command in commands:
        hasher.update(encode_events(engine.apply(command)))
        count += 1
    return summarize(engine, hasher.hexdigest(), count)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m keel.testing.replay COMMAND_FILE", file=sys.stderr)
        return 2
    print(json.dumps(replay(read_commands(args[0])), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
