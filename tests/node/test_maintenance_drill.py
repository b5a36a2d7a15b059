"""The maintenance drill of issue 6: the day an exchange halted for a planned maintenance,
built as a test. A few hundred accounts with spot balances, a margin debit, long and
short perpetual positions, resting orders, deposits in flight, withdrawals pending and
completed; a scheduled maintenance (Closed, PostOnly, Open) with a real process stop and
restart in between; the picture of every account, history included, must be identical
after it. Then the negative drill: a wrong build is caught by the rehearsal, which names
the first differing checkpoint and the affected accounts, and the market never reopens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.core.errors import RejectCode
from keel.core.markets import MarketState
from keel.node.node import Node

DRILL = [sys.executable, "-m", "keel.testing.drill"]
FAULTY = [sys.executable, "-m", "keel.testing.faulty"]
KEEL = [sys.executable, "-m", "keel.cli.main"]


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """Build the day once per backend (a separate process), up to the close and its snapshot."""
    base = tmp_path_factory.mktemp("drill")
    data, plan = base / "data", base / "plan.json"
    saved = {key: os.environ.get(key) for key in ("KEEL_DRILL_BACKEND", "KEEL_DRILL_DSN", "KEEL_DRILL_SCHEMA")}
    schema = ""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = "keel_drill_" + uuid.uuid4().hex[:10]
        os.environ.update(KEEL_DRILL_BACKEND="postgres", KEEL_DRILL_DSN=dsn, KEEL_DRILL_SCHEMA=schema)
    try:
        result = run([*DRILL, "build", str(data), str(plan)])
        assert result.returncode == 0, result.stderr[-3000:]
        yield data, json.loads(plan.read_text())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if schema:
            dsn = request.getfixturevalue("postgres_dsn")
            drop_schema(dsn, schema)
            drop_schema(dsn, schema + "_views")


def test_the_world_before_the_halt_has_what_the_incident_had(built: tuple[Path, dict]) -> None:
    _, plan = built
    accounts = plan["picture"]["accounts"]
    users = {k: v for k, v in accounts.items() if int(k) > 0}
    assert len(users) >= 200
    sides = [p["side"] for a in users.values() for p in a["positions"].values()]
    assert sides.count("long") >= 50 and sides.count("short") >= 50
    usdc = 0
    assert any(a["balances"][usdc] < 0 for a in users.values()), "someone has a margin debit"
    assert sum(len(a["open_orders"]) for a in users.values()) >= 20
    statuses = [w[1] for a in users.values() for w in a["withdrawals"]]
    assert 3 in statuses and 0 in statuses and 1 in statuses  # completed, waiting, approved
    assert any(d[1] in (0, 1) for a in users.values() for d in a["deposits"])  # in flight
    assert all(state == MarketState.CLOSED for state, _ in plan["picture"]["markets"].values())
    assert plan["refused_while_closed"] == [RejectCode.MARKET_NOT_OPEN] * 2
    assert plan["picture"]["history"]["orders"], "history is part of the picture"


def test_rehearsal_by_the_same_code_passes(built: tuple[Path, dict]) -> None:
    data, plan = built
    result = run([*KEEL, "rehearse", "--data", str(data), "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["first_bad_seq"] is None
    assert report["state_hash"] == plan["checkpoint_hash"]


@pytest.mark.parametrize(
    ("fault", "section"), [("flip-positions", "accounts"), ("drop-withdrawal-completion", "transfers")]
)
def test_a_wrong_build_is_caught_by_the_rehearsal_and_names_what_differs(
    built: tuple[Path, dict], fault: str, section: str
) -> None:
    data, _ = built
    result = run([*FAULTY, fault, "rehearse", "--data", str(data), "--json"])
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert not report["ok"]
    first = report["differences"][0]
    assert first["seq"] == report["first_bad_seq"] and first["seq"] > first["previous_good_seq"]
    assert section in first["sections"]
    # at the maintenance snapshot, the affected entities are named
    (at_snapshot,) = report["entities"].values()
    assert at_snapshot[section], at_snapshot
    # The procedure stops there: the log still says every market is Closed.
    node = Node.open(data, read_only=True)
    try:
        assert all(market.state == MarketState.CLOSED for market in node.engine.state.markets)
    finally:
        node.close()
    text = run([*FAULTY, fault, "rehearse", "--data", str(data)])
    assert "first differing checkpoint: seq" in text.stdout


def test_after_the_restart_everything_is_identical_and_the_window_behaves(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    data, plan = built
    plan_path, out = tmp_path / "plan.json", tmp_path / "after.json"
    plan_path.write_text(json.dumps(plan))
    result = run([*DRILL, "reopen", str(data), str(plan_path), str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads(out.read_text())
    # verify: the restarted node reproduces the checkpoint taken at the close
    assert after["recovered_seq"] == plan["checkpoint_seq"]
    assert after["recovered_hash"] == plan["checkpoint_hash"]
    # the picture, field for field, history included
    before_accounts, after_accounts = plan["picture"]["accounts"], after["picture"]["accounts"]
    assert before_accounts.keys() == after_accounts.keys()
    for account_id in before_accounts:
        assert after_accounts[account_id] == before_accounts[account_id], f"account {account_id} changed"
    assert after["picture"] == plan["picture"]
    # reopening: blocked until the perp's index is refreshed, then PostOnly, then Open
    assert "MaintenanceStepBlocked" in after["blocked_before_index"]
    assert after["states_in_window"] == [MarketState.POST_ONLY]
    assert after["post_only_taker"] == ["CommandRejected"]
    assert after["post_only_market"] == ["CommandRejected"]
    assert after["post_only_maker"] == ["OrderAccepted"]
    assert after["states_after"] == [MarketState.OPEN]
    assert after["open_taker_traded"]
