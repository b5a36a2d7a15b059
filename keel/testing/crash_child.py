"""A node under steady load, to be killed: `python -m keel.testing.crash_child DATA_DIR SEED [SECONDS]`.

Opens the data directory (recovering it, exactly as a restart after a crash does),
starts the sequencer and submits a LoadGenerator's commands seeded with SEED, keeping
at most IN_FLIGHT_MAX unacknowledged. Each outcome's seq is printed on its own line of
stdout, flushed at once, from the outcome callback only: a printed seq is one the node
acknowledged, so it must be durable. The crash tests SIGKILL this process at a random
moment and then check that every printed seq survived.

It stops by itself after SECONDS (default 60), closing the node cleanly, so that a
child whose parent died cannot run on; it exits with status 3 if the sequencer stops.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

from keel.node.node import Node
from keel.sequencer.sequencer import Outcome, SequencerStopped
from keel.testing.load import LoadGenerator

IN_FLIGHT_MAX = 64
SECONDS_DEFAULT = 60.0


def main(arguments: list[str]) -> int:
    if len(arguments) not in (2, 3):
        sys.stderr.write("usage: python -m keel.testing.crash_child DATA_DIR SEED [SECONDS]\n")
        return 2
    data_dir, seed = Path(arguments[0]), int(arguments[1])
    seconds = float(arguments[2]) if len(arguments) == 3 else SECONDS_DEFAULT
    rng = random.Random(seed)
    node = Node.open(data_dir)
    generator = LoadGenerator(rng, node.engine.state)
    sequencer = node.start()
    in_flight = threading.Semaphore(IN_FLIGHT_MAX)
    stopped = threading.Event()
    out = sys.stdout

    def acknowledge(result: Outcome | SequencerStopped) -> None:
        if isinstance(result, SequencerStopped):
            stopped.set()
        else:
            generator.observe(result.events)
            # Printed only here, after the record is durable: the parent's proof of acknowledgement.
            out.write(f"{result.seq}\n")
            out.flush()
        in_flight.release()

    deadline = time.monotonic() + seconds
    while not stopped.is_set() and time.monotonic() < deadline:
        if rng.random() < 0.1:
            commands = generator.commands(rng.randint(2, 8))
            for _ in commands:
                in_flight.acquire()
            sequencer.submit_many(commands, acknowledge)
        else:
            in_flight.acquire()
            sequencer.submit(generator.next_command(), acknowledge)
    node.close()
    return 3 if stopped.is_set() else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
