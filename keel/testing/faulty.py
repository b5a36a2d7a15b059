"""A deliberately wrong build, for the negative maintenance drill (issue 6).

    python -m keel.testing.faulty FAULT keel-arguments...

installs FAULT into the core and then runs the `keel` command line with the remaining
arguments, so `python -m keel.testing.faulty flip-positions rehearse --data DIR` is an
upgrade rehearsal by code that replays some positions with the wrong sign. Faults:

- flip-positions: every fill of an account whose id is 3 modulo 7 moves its position
  the wrong way (a long becomes a short).
- drop-withdrawal-completion: marking a withdrawal completed does nothing.

Imports: anything (a test tool).
"""

from __future__ import annotations

import sys
from typing import Any

from keel.core import engine, liquidation, matching, perps
from keel.core.commands import UpdateWithdrawal
from keel.core.positions import Position
from keel.core.transfers import WithdrawalAction


def _flip_positions() -> None:
    real = perps.apply_fill

    def apply_fill(position: Position, delta_steps: int, price_ticks: int, lot_atomic: int) -> int:
        if position.account_id % 7 == 3:
            delta_steps = -delta_steps
        return real(position, delta_steps, price_ticks, lot_atomic)

    for module in (matching, liquidation):
        setattr(module, "apply_fill", apply_fill)  # noqa: B010 - patching the build on purpose


def _drop_withdrawal_completion() -> None:
    real = engine._HANDLERS[UpdateWithdrawal]

    def update_withdrawal(state: Any, command: UpdateWithdrawal, events: list[Any]) -> None:
        if command.action == WithdrawalAction.MARK_COMPLETED:
            return
        real(state, command, events)

    engine._HANDLERS[UpdateWithdrawal] = update_withdrawal


FAULTS = {"flip-positions": _flip_positions, "drop-withdrawal-completion": _drop_withdrawal_completion}


def main() -> None:
    fault = sys.argv[1]
    FAULTS[fault]()
    from keel.cli.main import app

    sys.argv = ["keel", *sys.argv[2:]]
    app()


if __name__ == "__main__":
    main()
