"""The log writer child process (see appender.ProcessAppender): `python -m keel.log.writer BACKEND SCHEMA`.

The DSN arrives on standard input first, so a password never shows in the process list."""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

import msgspec

from keel.log.appender import ERROR_SEQ, InlineAppender, last_record_hash
from keel.log.open import open_log

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send_error(output: BinaryIO, message: str) -> None:
    data = message.encode()
    output.write(_U64.pack(ERROR_SEQ) + _U32.pack(len(data)) + data)
    output.flush()


def main(arguments: list[str]) -> int:
    backend, schema = arguments
    output = sys.stdout.buffer
    source = sys.stdin.buffer
    header = _read_exact(source, 4)
    dsn_bytes = _read_exact(source, _U32.unpack(header)[0]) if header is not None else None
    if dsn_bytes is None:
        return 1
    dsn = dsn_bytes.decode()
    try:
        log = open_log(backend, dsn, schema)
        appender = InlineAppender(log, last_record_hash(log))
    except Exception as error:
        _send_error(output, f"cannot open the log: {error}")
        return 1
    output.write(_U64.pack(log.last_seq()) + appender.prev_hash)
    output.flush()
    decoder = msgspec.msgpack.Decoder(list[tuple[int, int, bytes]])
    while True:
        header = _read_exact(source, 4)
        if header is None:
            break  # the parent closed our input: it stopped or died
        (size,) = _U32.unpack(header)
        blob = _read_exact(source, size)
        if blob is None:
            break  # a torn frame from a dying parent: never written, never acknowledged
        items = decoder.decode(blob)
        try:
            appender.append(items)
        except Exception as error:
            _send_error(output, f"append at seq {items[0][0]} failed: {error}")
            return 1
        output.write(_U64.pack(items[-1][0]) + appender.prev_hash)
        output.flush()
    log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
