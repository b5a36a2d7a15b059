"""Projection bookkeeping, catch-up and rebuild, on both backends, without a node.

The scripted session's items (views_session.py, applied by the engine alone) stand in for
what a node replays: `CatchUp` is fed the items a recovery starting after a given
snapshot would replay, and `replay_from_genesis` feeds all of them. Checked: a store in
the replayed tail is caught up without a rebuild; a store behind the snapshot, an empty
one and one of an older schema version are rebuilt from genesis, with the same rows, and
the replaced store is kept; a store ahead of the log or different at its position is
refused and left as it was; a rebuild whose replay fails leaves the live store alone and
removes its half-built store; the projector skips what it has, refuses gaps, and
ignores event kinds it does not know.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from views_session import LAST_SEQ, expected_dump, session_items

from keel.views import (
    CatchUp,
    HistoryStore,
    Item,
    Projector,
    StoreSettings,
    ViewsGap,
    ViewsMismatch,
    open_store,
    rebuild,
)
from keel.views.catchup import Replayed
from keel.views.store import remove_store, store_exists

ITEMS = session_items()


def as_lists(rows: dict[str, object]) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(row) for row in table] for name, table in rows.items()}  # type: ignore[attr-defined]


EXPECTED = as_lists(expected_dump())  # type: ignore[arg-type]


def store_at(settings: StoreSettings, seq: int, items: list[Item] = ITEMS) -> HistoryStore:
    store = open_store(settings)
    Projector(store).apply([item for item in items if item[0] <= seq])
    return store


def replay_all(feed: Replayed) -> int:
    for seq, timestamp_ns, command, events in ITEMS:
        feed(seq, timestamp_ns, command, list(events))
    return ITEMS[-1][0]


def replay_must_not_run(feed: Replayed) -> int:
    raise AssertionError("no rebuild was expected")


def recover_after(catch: CatchUp, snapshot_seq: int) -> None:
    """Feed what a recovery from a snapshot at `snapshot_seq` replays."""
    for seq, timestamp_ns, command, events in ITEMS:
        if seq > snapshot_seq:
            catch(seq, timestamp_ns, command, list(events))


def dump(settings: StoreSettings) -> dict[str, list[tuple[object, ...]]]:
    with open_store(settings, create=False) as store:
        return store.dump()


@pytest.fixture
def settings(store_settings: StoreSettings) -> Iterator[StoreSettings]:
    yield store_settings
    remove_store(store_settings.previous())


def test_a_store_within_the_replayed_tail_is_caught_up(settings: StoreSettings) -> None:
    catch = CatchUp(store_at(settings, 19), chunk=2)
    recover_after(catch, 12)
    report = catch.finish(LAST_SEQ, replay_must_not_run)
    assert (report.rebuilt, report.position_before, report.projected, report.position) == (
        False,
        19,
        LAST_SEQ - 19,
        LAST_SEQ,
    )
    assert report.rows["orders"] == 22
    assert dump(settings) == EXPECTED


@pytest.mark.parametrize(
    ("store_seq", "snapshot_seq", "reason"),
    [
        (15, 19, "the store is at seq 15 and the node recovered from a snapshot at seq 19"),
        (0, LAST_SEQ, f"the store is at seq 0 and the node recovered from a snapshot at seq {LAST_SEQ}"),
    ],
)
def test_a_store_behind_the_snapshot_is_rebuilt_and_the_old_one_kept(
    settings: StoreSettings, store_seq: int, snapshot_seq: int, reason: str
) -> None:
    catch = CatchUp(store_at(settings, store_seq))
    recover_after(catch, snapshot_seq)
    report = catch.finish(LAST_SEQ, replay_all)
    assert report.rebuilt
    assert report.reason == reason
    assert report.position == LAST_SEQ
    assert report.rebuild is not None
    assert report.rebuild.rows == {
        name: len(rows) for name, rows in EXPECTED.items() if name not in ("meta", "position")
    }
    assert report.rebuild.previous == settings.previous()
    assert dump(settings) == EXPECTED
    with open_store(settings.previous(), create=False) as previous:
        assert previous.position().seq == store_seq
    assert not store_exists(settings.staging())


def test_a_store_of_an_older_schema_version_is_rebuilt(settings: StoreSettings) -> None:
    store = store_at(settings, LAST_SEQ)
    with store.connection.transaction():
        store.connection.execute("UPDATE meta SET value = 0 WHERE name = 'schema_version'")
    catch = CatchUp(store)
    recover_after(catch, 8)
    report = catch.finish(LAST_SEQ, replay_all)
    assert report.rebuilt
    assert "schema version 0" in report.reason
    assert dump(settings) == EXPECTED


def test_a_store_ahead_of_the_log_is_refused_and_left_alone(settings: StoreSettings) -> None:
    catch = CatchUp(store_at(settings, LAST_SEQ))
    recover_after(catch, 8)
    with pytest.raises(ViewsMismatch, match=rf"at seq {LAST_SEQ}, beyond the log's last seq 20.*keel views rebuild"):
        catch.finish(20, replay_must_not_run)
    assert dump(settings) == EXPECTED


def test_a_store_of_another_history_is_refused(settings: StoreSettings) -> None:
    """The store's last command (seq 19) has another timestamp than the log's seq 19."""
    other = [
        (seq, timestamp_ns - 1 if seq == 19 else timestamp_ns, command, events)
        for seq, timestamp_ns, command, events in ITEMS
    ]
    catch = CatchUp(store_at(settings, 19, other))
    recover_after(catch, 8)
    with pytest.raises(ViewsMismatch, match="seq 19, has timestamp"):
        catch.finish(LAST_SEQ, replay_must_not_run)
    with open_store(settings, create=False) as store:
        assert store.position().seq == 19


def test_a_failed_rebuild_leaves_the_live_store_and_no_half_built_one(settings: StoreSettings) -> None:
    store_at(settings, 19).close()
    before = dump(settings)
    remove_store(settings.staging())
    open_store(settings.staging()).close()  # what an interrupted rebuild may leave behind

    def replay_then_fail(feed: Replayed) -> int:
        for seq, timestamp_ns, command, events in ITEMS[:20]:
            feed(seq, timestamp_ns, command, list(events))
        raise RuntimeError("the log's record 21 is corrupted (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        rebuild(settings, replay_then_fail, chunk=7)
    assert dump(settings) == before
    assert not store_exists(settings.staging())
    report = rebuild(settings, replay_all, chunk=7)
    assert report.position == LAST_SEQ
    assert dump(settings) == EXPECTED


def test_the_projector_skips_what_it_has_refuses_gaps_and_ignores_unknown_events(settings: StoreSettings) -> None:
    class SomethingNew(msgspec.Struct, frozen=True):
        amount_atomic: int

    with open_store(settings) as store:
        projector = Projector(store)
        assert projector.apply(ITEMS[:19]) == 19
        with pytest.raises(ViewsGap, match="at seq 19 and was given seq 21 next; it needs 20"):
            projector.apply(ITEMS[20:])
        assert store.position().seq == 19
        assert projector.apply(ITEMS[10:23]) == 4  # 20 to 23; the rest it has
        with pytest.raises(ViewsGap):
            projector.apply([ITEMS[23], ITEMS[25]])
        assert store.position().seq == 23
        seq, timestamp_ns, command, events = ITEMS[23]
        assert projector.apply([(seq, timestamp_ns, command, [*events, SomethingNew(5)])]) == 1  # type: ignore[list-item]
        assert projector.apply(ITEMS) == LAST_SEQ - 24
        assert store.dump() == EXPECTED
        assert projector.apply(ITEMS) == 0
        assert store.dump() == EXPECTED
