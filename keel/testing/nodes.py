"""Helpers for tests that run real nodes: configure a data directory, drive a sequencer.

`node_config` turns a test's log settings (the `log_config` fixture's backend, dsn and
schema) into a keel.node Config; `submit_all` sends commands through a running
sequencer and waits for every durable outcome; `run_load` feeds a LoadGenerator's
commands through in chunks so that it learns order ids as it goes; `build_data_dir`
makes a data directory with some history in it. Only tests use this module.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keel.core.commands import Command
from keel.node.config import Config
from keel.node.node import Node, init_data_dir
from keel.sequencer.clock import Clock
from keel.sequencer.sequencer import Outcome, Sequencer, SequencerStopped
from keel.testing.load import LoadGenerator


def node_config(log: Mapping[str, str], **settings: Any) -> Config:
    """Return a Config for the log a `log_config` fixture names, with other settings as given."""
    return Config(backend=log["backend"], dsn=log["dsn"], schema=log["schema"], **settings)


def submit_all(sequencer: Sequencer, commands: Sequence[Command], timeout: float = 120.0) -> list[Outcome]:
    """Submit `commands` in order and return their durable outcomes; raise SequencerStopped if any failed."""
    results: list[Outcome | SequencerStopped] = []
    done = threading.Event()
    if not commands:
        return []

    def deliver(result: Outcome | SequencerStopped) -> None:
        results.append(result)
        if len(results) == len(commands):
            done.set()

    sequencer.submit_many(commands, deliver)
    if not done.wait(timeout):
        raise TimeoutError(f"{len(results)} of {len(commands)} outcomes within {timeout} s")
    for result in results:
        if isinstance(result, SequencerStopped):
            raise result
    outcomes = [result for result in results if isinstance(result, Outcome)]
    return outcomes


def run_load(sequencer: Sequencer, generator: LoadGenerator, count: int, chunk: int = 250) -> list[Outcome]:
    """Send `count` generated commands in chunks, letting the generator observe each chunk's outcomes."""
    outcomes: list[Outcome] = []
    while len(outcomes) < count:
        chunk_outcomes = submit_all(sequencer, generator.commands(min(chunk, count - len(outcomes))))
        for outcome in chunk_outcomes:
            generator.observe(outcome.events)
        outcomes.extend(chunk_outcomes)
    return outcomes


def build_data_dir(
    data_dir: Path,
    config: Config,
    commands: int,
    *,
    seed: int = 1,
    clock: Clock | None = None,
) -> int:
    """Initialise `data_dir`, run `commands` generated commands through a node, close it; return the last seq."""
    init_data_dir(data_dir, config, clock=clock)
    with Node.open(data_dir) as node:
        generator = LoadGenerator(random.Random(seed), node.engine.state)
        sequencer = node.start(clock)
        run_load(sequencer, generator, commands)
    with Node.open(data_dir, read_only=True) as node:
        return node.report.last_seq


# The ways a node can write its log (keel.toml's `writer`): "thread" appends through the
# node's own `node.log` handle on the sequencer's committer thread, so a test can wrap
# that handle; "process" chains and writes in a child process (keel.log.writer).
WRITERS = ("thread", "process")


def writer_settings(writer: str) -> dict[str, Any]:
    """Return the Config settings that select `writer` (one of WRITERS)."""
    assert writer in WRITERS
    return {"writer": writer}


def inline_writer_settings() -> dict[str, Any]:
    """Return the Config settings under which the sequencer appends through `node.log` itself."""
    return writer_settings("thread")
