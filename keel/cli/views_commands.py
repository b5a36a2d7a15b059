"""`keel views rebuild` and `keel views status`, and the node binding of keel/views.

keel/views sits below keel/node, so it cannot open a node or read keel.toml; this module
does both for it. `views_settings` says where a data directory's history store is
(keel.toml `[views]`), and `open_node_with_views` is what `keel serve` runs at start:
open the node with the store catching up on the replayed tail, rebuilding it from
genesis when it cannot (docs/views.md, "Catch-up and rebuild").
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from keel.cli.node_commands import DATA_HELP, console, fail, progress_bar
from keel.core.errors import KeelError
from keel.node.config import Config, load_config
from keel.node.node import DataDirError, Node, open_log
from keel.node.recovery import Progress, recover
from keel.views.catchup import CatchUp, CatchUpReport, Replayed, ReplayFromGenesis, rebuild
from keel.views.schema import SCHEMA_VERSION
from keel.views.store import StoreSettings, open_store, settings_for, store_exists


def views_settings(data_dir: Path, config: Config) -> StoreSettings:
    """Return where the data directory's history store is (keel.views.store.settings_for)."""
    return settings_for(data_dir, config)


def replay_read_only(data_dir: Path, config: Config, progress: Progress | None = None) -> ReplayFromGenesis:
    """Return a replay from genesis through a log handle of its own that never discards
    anything (as `keel verify`), usable while the node itself is open."""

    def replay(feed: Replayed) -> int:
        log = open_log(data_dir, config)
        try:
            _, _, report = recover(
                data_dir, log, from_genesis=True, discard_torn_tail=False, on_replayed=feed, progress=progress
            )
        finally:
            log.close()
        return report.last_seq

    return replay


def open_node_with_views(
    data_dir: Path, *, progress: Progress | None = None
) -> tuple[Node, StoreSettings, CatchUpReport]:
    """Open the node (read-write, recovered and verified) with its history store caught up
    to the log's last seq, rebuilt from genesis if it was behind the node's snapshot.

    Then start projecting live: `writer = ViewsWriter(open_store(settings, create=False))`
    and `node.start(listeners=[writer])`; read through stores of their own
    (`open_store(settings, create=False)`). Raises what Node.open raises, StoreError,
    ViewsMismatch."""
    config = load_config(data_dir)
    settings = views_settings(data_dir, config)
    catch = CatchUp(open_store(settings))
    try:
        node = Node.open(data_dir, on_replayed=catch, progress=progress)
    except BaseException:
        catch.store.close()
        raise
    try:
        report = catch.finish(node.report.last_seq, replay_read_only(data_dir, config, progress))
    except BaseException:
        node.close()
        raise
    return node, settings, report


def _settings_for(data: Path) -> tuple[Config, StoreSettings]:
    if not data.is_dir():
        raise fail(f"{data} is not a directory; create one with `keel init --data {data}`")
    try:
        config = load_config(data)
    except (OSError, ValueError) as error:
        raise fail(str(error)) from None
    return config, views_settings(data, config)


def _rows_table(rows: dict[str, int]) -> Table:
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    return table


def rebuild_command(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Rebuild the history store from the whole log (the node must be stopped).

    Builds a new store beside the live one, replaying every command from genesis with
    every checkpoint verified, then swaps it in atomically; the old store is kept as
    <file>.previous (PostgreSQL: schema <schema>_previous)."""
    _, settings = _settings_for(data)

    def replay(feed: Replayed) -> int:
        with progress_bar("rebuilding views", not json_output) as progress:
            try:
                node = Node.open(data, from_genesis=True, on_replayed=feed, progress=progress)
            except DataDirError as error:
                raise DataDirError(
                    f"{error}; stop the node first (a serving node keeps its history store up to date itself)"
                ) from error
        last_seq = node.report.last_seq
        node.close()
        return last_seq

    try:
        report = rebuild(settings, replay)
    except Exception as error:  # a running node, a database down, a corrupt log: a message, not a traceback
        raise fail(str(error)) from None
    previous = report.previous.describe() if report.previous else None
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "ok": True,
                    "store": settings.describe(),
                    "position": report.position,
                    "rows": report.rows,
                    "seconds": round(report.seconds, 3),
                    "previous": previous,
                }
            )
        )
        return
    console.print(
        f"[green]rebuilt[/] {settings.describe()} from the log: {report.position} commands in {report.seconds:.2f} s"
    )
    console.print(_rows_table(report.rows))
    if previous:
        console.print(f"the store it replaced is kept as {previous}")


def status_command(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show the history store's position against the log's last seq, and its rows per table."""
    config, settings = _settings_for(data)
    try:
        log = open_log(data, config)
        try:
            log_last_seq = log.last_seq()
        finally:
            log.close()
        if not store_exists(settings):
            raise fail(f"no history store yet at {settings.describe()}; `keel views rebuild --data {data}` makes one")
        with open_store(settings, create=False) as store:
            position = store.position()
            version = store.schema_version()
            rows = store.counts()
    except KeelError as error:
        raise fail(str(error)) from None
    except typer.Exit:
        raise
    except Exception as error:  # a database down: a message, not a traceback
        raise fail(str(error)) from None
    summary = {
        "store": settings.describe(),
        "position": position.seq,
        "log_last_seq": log_last_seq,
        "behind": log_last_seq - position.seq,
        "schema_version": version,
        "schema_version_current": SCHEMA_VERSION,
        "rows": rows,
    }
    if json_output:
        typer.echo(json.dumps(summary))
        return
    console.print(
        f"{settings.describe()}: at seq {position.seq} of the log's {log_last_seq} "
        f"({log_last_seq - position.seq} behind; a start catches up), schema version {version}"
        + ("" if version == SCHEMA_VERSION else f" (this Keel writes {SCHEMA_VERSION}: a start rebuilds it)")
    )
    console.print(_rows_table(rows))


def register(app: typer.Typer) -> None:
    """Add `keel views ...` to the `keel` app."""
    views_app = typer.Typer(help="The history views (orders, fills, ledger, trades, klines).", no_args_is_help=True)
    views_app.command("rebuild")(rebuild_command)
    views_app.command("status")(status_command)
    app.add_typer(views_app, name="views")
