"""Commands submitted in one pass of the event loop share one hand-off and one answer.

`_Group` (keel/gateway/context.py) is driven as the sequencer drives it: one `deliver`
call per command, in order, from another thread. Each future must get its own command's
outcome, only once every outcome is in; a group whose outcomes do not come within the
timeout answers None (the 504 TIMEOUT of `Gateway.submit`), and outcomes arriving after
that change nothing.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from keel.core.commands import CreateAccount
from keel.gateway import context
from keel.sequencer.sequencer import Outcome, SequencerStopped


def _group_of(loop: asyncio.AbstractEventLoop, count: int) -> context._Group:
    group = context._Group(loop)
    for _ in range(count):
        group.commands.append(CreateAccount(seq=0, timestamp_ns=0))
        group.futures.append(loop.create_future())
    return group


def test_each_future_gets_its_own_outcome_once_all_are_in() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        group = _group_of(loop, 3)
        outcomes: list[Outcome | SequencerStopped] = [
            Outcome(seq=7, timestamp_ns=1, events=[]),
            SequencerStopped("stopped"),
            Outcome(seq=9, timestamp_ns=1, events=[]),
        ]
        group.deliver(outcomes[0])  # on this thread: nothing may resolve before the last one
        await asyncio.sleep(0.01)
        assert not any(future.done() for future in group.futures)
        thread = threading.Thread(target=lambda: [group.deliver(outcome) for outcome in outcomes[1:]])
        thread.start()
        thread.join()
        assert await asyncio.gather(*group.futures) == outcomes

    asyncio.run(run())


def test_a_group_without_outcomes_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "SUBMIT_TIMEOUT_S", 0.05)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        group = _group_of(loop, 2)
        assert await asyncio.gather(*group.futures) == [None, None]
        for _ in range(2):  # late outcomes: the answers stand
            group.deliver(Outcome(seq=1, timestamp_ns=1, events=[]))
        await asyncio.sleep(0.01)
        assert [future.result() for future in group.futures] == [None, None]

    asyncio.run(run())
