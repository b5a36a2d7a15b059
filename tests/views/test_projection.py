"""History views fed by a real node: exact rows, rebuild equality, idempotency, catch-up.

Each test runs a real node (sequencer, durable log, recovery) on each backend, with the
history store on the same backend, through the scripted session of views_session.py
(trades, partial fills, a cancel, an IOC remainder, market orders by quantity and by
quote quantity, a refusal, a batch with a refused item, a cancel-all), the store fed
live by a ViewsWriter listening to the sequencer. Checked:

- the store holds exactly the hand-computed rows of every table;
- `keel views rebuild` (a real subprocess) builds a store equal to the live one row for
  row, and keeps the replaced store, itself still equal;
- applying the same commands again changes nothing;
- a node stopped midway and run without views leaves the store behind; the next start
  catches it up from the replayed tail, or, once a snapshot has moved past the store's
  position, rebuilds it from genesis; either way the rows are the same;
- a writer whose store keeps failing records the errors, drops what follows, lets
  trading go on, and the next start heals the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from views_session import (
    GENESIS_LAST_SEQ,
    LAST_SEQ,
    T_BASE,
    expected_dump,
    run_script,
    session_config,
    t,
)

from keel.cli.views_commands import open_node_with_views
from keel.node.node import Node, init_data_dir
from keel.sequencer.sequencer import Published, Sequencer
from keel.testing.clock import ManualClock
from keel.views import CatchUpReport, Item, Projector, StoreSettings, ViewsFailed, ViewsWriter, open_store
from keel.views.store import store_exists


def keel(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `keel ARGUMENTS` as an operator would (a real process)."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli.main", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def initialise(views_log: dict[str, str], data_dir: Path) -> ManualClock:
    clock = ManualClock(T_BASE)
    init_data_dir(data_dir, session_config(views_log), clock=clock)
    return clock


@contextmanager
def serving(
    data_dir: Path, clock: ManualClock, captured: list[Item] | None = None, **writer_options: float
) -> Iterator[tuple[Sequencer, ViewsWriter, CatchUpReport]]:
    """Open the node with its views caught up, run it with a live ViewsWriter, and on exit
    stop the node first (every listener call made) and then the writer."""
    node, settings, report = open_node_with_views(data_dir)
    writer = ViewsWriter(open_store(settings, create=False), **writer_options)  # type: ignore[arg-type]

    def capture(published: list[Published]) -> None:
        if captured is not None:
            captured.extend((one.seq, one.timestamp_ns, one.command, one.events) for one in published)

    try:
        yield node.start(clock, listeners=[writer, capture]), writer, report
    finally:
        node.close()
        writer.close()


def dump(settings: StoreSettings) -> dict[str, list[tuple[object, ...]]]:
    with open_store(settings, create=False) as store:
        return store.dump()


def settings_of(data_dir: Path) -> StoreSettings:
    from keel.cli.views_commands import views_settings
    from keel.node.config import load_config

    return views_settings(data_dir, load_config(data_dir))


def as_lists(rows: dict[str, list[tuple[object, ...]]] | dict[str, object]) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(row) for row in table] for name, table in rows.items()}  # type: ignore[attr-defined]


def test_a_session_projects_exact_rows_and_a_rebuild_gives_the_same_store(
    views_log: dict[str, str], tmp_path: Path
) -> None:
    """The whole session through a live writer gives exactly the hand-computed rows; a second
    application of every command changes nothing; `keel views rebuild` gives the same rows
    and keeps the replaced store."""
    data_dir = tmp_path / "data"
    clock = initialise(views_log, data_dir)
    captured: list[Item] = []
    with serving(data_dir, clock, captured) as (sequencer, writer, report):
        # A new store is behind the genesis snapshot, so the first start builds it from the log.
        assert report.rebuilt
        assert report.position == GENESIS_LAST_SEQ
        assert "snapshot at seq 8" in report.reason
        run_script(sequencer, clock)
    assert writer.errors == []
    assert writer.applied == LAST_SEQ - GENESIS_LAST_SEQ
    settings = settings_of(data_dir)
    live = dump(settings)
    assert live == as_lists(expected_dump())

    with open_store(settings, create=False) as store:
        assert Projector(store).apply(captured) == 0
        assert Projector(store).apply(captured[-3:]) == 0
        assert store.dump() == live

    result = keel("views", "rebuild", "--data", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["position"] == LAST_SEQ
    assert summary["rows"] == {name: len(rows) for name, rows in live.items() if name not in ("meta", "position")}
    assert summary["previous"] == settings.previous().describe()
    assert dump(settings) == live
    assert dump(settings.previous()) == live


def test_catch_up_after_a_stop_midway_and_rebuild_after_a_newer_snapshot(
    views_log: dict[str, str], tmp_path: Path
) -> None:
    """Seqs 9-19 run with views; 20-22 run on a node without views (the store stays at 19);
    the next start catches the store up from the replayed tail (no rebuild) and the rest run
    live: the rows equal the whole session's. Then a snapshot is taken past the store's
    position (a checkpoint after the last seq), and the next start rebuilds the store from genesis."""
    data_dir = tmp_path / "data"
    clock = initialise(views_log, data_dir)
    settings = settings_of(data_dir)
    with serving(data_dir, clock) as (sequencer, _, _):
        run_script(sequencer, clock, lambda seq: seq <= 19)
    with Node.open(data_dir) as node:
        run_script(node.start(clock), clock, lambda seq: 20 <= seq <= 22)
    with open_store(settings, create=False) as store:
        assert store.position().seq == 19

    with serving(data_dir, clock) as (sequencer, writer, report):
        assert not report.rebuilt
        assert (report.position_before, report.projected, report.position) == (19, 3, 22)
        run_script(sequencer, clock, lambda seq: seq >= 23)
    assert writer.errors == []
    assert dump(settings) == as_lists(expected_dump())

    with Node.open(data_dir) as node:
        clock.set_ns(t(15_000))
        assert node.snapshot_now(clock)[0] == LAST_SEQ + 1
    with serving(data_dir, clock) as (_, _, report):
        assert report.rebuilt
        assert f"at seq {LAST_SEQ}" in report.reason
        assert report.position == LAST_SEQ + 1
    assert dump(settings) == as_lists(expected_dump(LAST_SEQ + 1, t(15_000)))
    assert store_exists(settings.previous())


def test_a_failing_store_is_reported_trading_goes_on_and_the_next_start_heals_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From seq 18 on every projection fails: the writer retries, records each error, stops
    projecting and counts what it drops, while the node acknowledges every command; `flush`
    raises ViewsFailed. The next start catches the store up to the full session's rows."""
    log = {"backend": "sqlite", "dsn": str(tmp_path / "data" / "log.sqlite"), "schema": "keel"}
    data_dir = tmp_path / "data"
    clock = initialise(log, data_dir)
    apply = Projector.apply

    def failing(self: Projector, items: list[Item]) -> int:
        if any(item[0] >= 18 for item in items):
            raise OSError("disk full (simulated)")
        return apply(self, items)

    with serving(data_dir, clock, retries=1, retry_delay_s=0.01) as (sequencer, writer, _):
        run_script(sequencer, clock, lambda seq: seq <= 17)
        assert writer.wait_until(17)
        monkeypatch.setattr(Projector, "apply", failing)
        outcomes = run_script(sequencer, clock, lambda seq: seq >= 18)
        assert [outcome.seq for outcome in outcomes] == list(range(18, LAST_SEQ + 1))
        assert not writer.wait_until(LAST_SEQ, timeout=5)
        with pytest.raises(ViewsFailed, match="disk full"):
            writer.flush()
    assert len(writer.errors) == 2  # the first attempt and one retry
    assert writer.position == 17
    assert writer.dropped == LAST_SEQ - 17
    monkeypatch.setattr(Projector, "apply", apply)
    with serving(data_dir, clock) as (_, _, report):
        assert (report.position_before, report.position, report.rebuilt) == (17, LAST_SEQ, False)
    assert dump(settings_of(data_dir)) == as_lists(expected_dump())
