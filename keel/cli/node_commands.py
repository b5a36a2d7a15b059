"""`keel init`, `keel verify`, `keel log show`, `keel snapshot`, `keel replay`."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from keel.core import canonical
from keel.core.commands import decode_command
from keel.log.record import LogCorrupted, decode_record
from keel.node.config import Config, load_config
from keel.node.node import Node, init_data_dir, open_log
from keel.node.recovery import Progress as ProgressCallback
from keel.node.recovery import RecoveryReport

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
DATA_HELP = "The data directory (keel.toml, the log or its DSN, snapshots, operator key)."


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Yield a recovery progress callback drawing a rich bar (None when disabled)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=errors, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def init(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    backend: str = typer.Option("sqlite", help="Log backend: sqlite (embedded) or postgres."),
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN, or the SQLite file (default log.sqlite in DIR)."),
    schema: str = typer.Option("keel", help="PostgreSQL schema for the log table."),
    checkpoint_every: int = typer.Option(10_000, min=1, help="Commands between checkpoints."),
    snapshot_every: int = typer.Option(100_000, min=1, help="Commands between snapshots."),
    from_config: bool = typer.Option(
        False, "--from-config", help="Use the keel.toml already in DIR (backend, markets, fees) instead of flags."
    ),
) -> None:
    """Create a data directory: keel.toml, operator key, the log and its genesis records."""
    if from_config:
        try:
            config = load_config(data)
        except (OSError, ValueError) as error:
            raise fail(str(error)) from None
    else:
        if backend not in ("sqlite", "postgres"):
            raise fail(f"--backend must be sqlite or postgres, not {backend!r}", 2)
        if backend == "postgres" and not dsn:
            raise fail("--backend postgres needs --dsn, e.g. postgresql://127.0.0.1:5432/test", 2)
        config = Config(
            backend=backend,
            dsn=dsn or "log.sqlite",
            schema=schema,
            checkpoint_every=checkpoint_every,
            snapshot_every=snapshot_every,
        )
    try:
        report = init_data_dir(data, config, from_existing_config=from_config)
    except Exception as error:  # any failure (a database down, a bad market) is a message, not a traceback
        raise fail(str(error)) from None
    console.print(f"initialised [bold]{data}[/] ({report.backend} log, {report.records} genesis records)")
    console.print(f"state hash {report.state_hash.hex()}")
    console.print(f"markets: {', '.join(market.symbol for market in config.markets)}")


def _report_dict(report: RecoveryReport) -> dict[str, Any]:
    return {
        "ok": True,
        "last_seq": report.last_seq,
        "snapshot_seq": report.snapshot_seq,
        "snapshots_skipped": report.snapshots_skipped,
        "records_replayed": report.records_replayed,
        "prefix_records_checked": report.prefix_records_checked,
        "checkpoints_verified": report.checkpoints_verified,
        "full_checks": report.full_checks,
        "torn_tail_discarded": report.torn_tail_discarded,
        "seconds": round(report.seconds, 3),
        "records_per_s": round(report.records_replayed / report.seconds) if report.seconds else None,
        "state_hash": report.state_hash.hex(),
    }


def verify(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    from_genesis: bool = typer.Option(False, "--from-genesis", help="Replay the whole log, ignoring snapshots."),
    full: bool = typer.Option(False, "--full", help="Also recompute the state hash from scratch at every checkpoint."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Replay the log and check every checkpoint; exit 0 only if every one reproduces."""
    try:
        with progress_bar("verifying", not json_output) as progress:
            node = Node.open(
                data, from_genesis=from_genesis, full_check=full, progress=progress, read_only=True, check_prefix=True
            )
    except Exception as error:  # a database down, a corrupt log: a message, not a traceback
        if json_output:
            typer.echo(json.dumps({"ok": False, "error": str(error), "seq": getattr(error, "seq", None)}))
            raise typer.Exit(1) from None
        raise fail(str(error)) from None
    report = node.report
    node.close()
    if json_output:
        typer.echo(json.dumps(_report_dict(report)))
        return
    start = (
        f"snapshot at seq {report.snapshot_seq} (the {report.prefix_records_checked} records before it: "
        f"checksums and hash chain checked)"
        if report.snapshot_seq
        else "genesis"
    )
    console.print(
        f"[green]verified[/]: {report.records_replayed} records replayed from {start}, "
        f"{report.checkpoints_verified} checkpoints reproduced"
        + (f" ({report.full_checks} also by full recompute)" if full else "")
        + f", last seq {report.last_seq}, {report.seconds:.2f} s"
    )
    for skipped in report.snapshots_skipped:
        console.print(f"[yellow]skipped[/] {skipped}")
    console.print(f"state hash {report.state_hash.hex()}")


def log_show(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    seq_from: int = typer.Option(1, "--from", min=1, help="First sequence number to show."),
    limit: int = typer.Option(20, min=1, help="How many records to show."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per line."),
) -> None:
    """Show log records: sequence, time, command and fields."""
    try:
        config = load_config(data)
        log = open_log(data, config)
    except Exception as error:  # a database down, a corrupt log: a message, not a traceback
        raise fail(str(error)) from None
    table = Table("seq", "time (UTC)", "command", "fields", "hash")
    try:
        for seq, raw in log.rows(seq_from, seq_from + limit - 1):
            try:
                record = decode_record(raw, seq)
                command = decode_command(record.payload)
            except (LogCorrupted, msgspec.DecodeError) as error:
                raise fail(f"record {seq} is corrupted: {error}") from None
            fields = {
                key: (value.hex() if isinstance(value, bytes) else value)
                for key, value in msgspec.structs.asdict(command).items()
                if key not in ("seq", "timestamp_ns")
            }
            fields = {
                key: ([v.hex() if isinstance(v, bytes) else v for v in value] if isinstance(value, tuple) else value)
                for key, value in fields.items()
            }
            if json_output:
                typer.echo(
                    json.dumps(
                        {
                            "seq": seq,
                            "timestamp_ns": record.timestamp_ns,
                            "type": type(command).__name__,
                            "command": fields,
                            "hash": record.hash.hex(),
                        },
                        default=lambda value: msgspec.to_builtins(value),
                    )
                )
            else:
                moment = datetime.datetime.fromtimestamp(record.timestamp_ns / 1e9, tz=datetime.UTC)
                text = ", ".join(f"{key}={value}" for key, value in fields.items())
                table.add_row(
                    str(seq),
                    moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    type(command).__name__,
                    text[:120],
                    record.hash.hex()[:16],
                )
    finally:
        log.close()
    if not json_output:
        console.print(table)


def snapshot(data: Path = typer.Option(..., "--data", help=DATA_HELP)) -> None:
    """Append a checkpoint and write a snapshot of the state at it (the node must be stopped)."""
    try:
        with progress_bar("recovering", True) as progress:
            node = Node.open(data, progress=progress)
    except Exception as error:  # a database down, a corrupt log: a message, not a traceback
        raise fail(str(error)) from None
    report = node.report
    try:
        seq, path = node.snapshot_now()
    finally:
        node.close()
    if report.torn_tail_discarded:
        console.print(f"[yellow]discarded a torn final record at seq {report.torn_tail_discarded}[/]")
    for skipped in report.snapshots_skipped:
        console.print(f"[yellow]skipped[/] {skipped}")
    console.print(f"snapshot at seq {seq}: {path}")


def replay(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    to: int = typer.Option(..., "--to", min=0, help="Replay up to and including this sequence number."),
    json_output: bool = typer.Option(False, "--json", help="Print the hash and a summary of state as JSON."),
) -> None:
    """Replay the log up to SEQ and print the state hash there."""
    try:
        with progress_bar("replaying", not json_output) as progress:
            node = Node.open(data, to_seq=to, progress=progress, read_only=True)
    except Exception as error:  # a database down, a corrupt log: a message, not a traceback
        raise fail(str(error)) from None
    state = node.engine.state
    state_hash = canonical.state_hash(state)
    node.close()
    if state.seq_last < to:
        raise fail(f"the log ends at seq {state.seq_last}, before {to}")
    if not json_output:
        console.print(f"seq {state.seq_last}: state hash {state_hash.hex()}")
        return
    users = [account for account_id, account in state.accounts.items() if account_id > 0]
    summary = {
        "seq": state.seq_last,
        "timestamp_ns": state.timestamp_ns_last,
        "state_hash": state_hash.hex(),
        "sections": {name: value.hex() for name, value in canonical.section_hashes(state).items()},
        "accounts": len(users),
        "open_orders": len(state.orders),
        "next_ids": {
            "account": state.account_id_next,
            "order": state.order_id_next,
            "trade": state.trade_id_next,
            "ledger_entry": state.entry_id_next,
        },
        "assets": [
            {
                "symbol": asset.symbol,
                "decimals": asset.decimals,
                "held_by_users_atomic": sum(account.balances[asset.asset_id] for account in users),
                "locked_atomic": sum(account.locked[asset.asset_id] for account in users),
            }
            for asset in state.assets
        ],
        "markets": [
            {
                "symbol": market.symbol,
                "state": market.state.name if hasattr(market.state, "name") else int(market.state),
                "last_price_ticks": market.last_price_ticks,
                "volume_steps": market.volume_steps,
                "bid_levels": len(state.books[market.market_id].bids),
                "ask_levels": len(state.books[market.market_id].asks),
            }
            for market in state.markets
        ],
    }
    typer.echo(json.dumps(summary))


def rehearse_command(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Replay the whole log with the code installed now; name every checkpoint and entity it cannot reproduce."""
    from keel.node.rehearsal import rehearse

    try:
        result = rehearse(data)
    except Exception as error:  # no data dir, a database down: a message, not a traceback
        if json_output:
            typer.echo(json.dumps({"ok": False, "error": str(error)}))
            raise typer.Exit(1) from None
        raise fail(str(error)) from None
    if json_output:
        typer.echo(json.dumps(result.as_dict()))
        raise typer.Exit(0 if result.ok else 1)
    if result.ok:
        console.print(
            f"[green]rehearsal passed[/]: {result.records} records replayed from genesis, "
            f"{result.checkpoints} checkpoints reproduced, last seq {result.last_seq}, {result.seconds:.2f} s"
        )
        console.print(f"state hash {result.state_hash}")
        return
    console.print(f"[red]rehearsal failed[/]: this code does not reproduce the log. {result.error}")
    if result.differences:
        first = result.differences[0]
        console.print(
            f"first differing checkpoint: seq {first.seq} (the command that diverged is after seq "
            f"{first.previous_good_seq}, the last checkpoint that matched); sections: {', '.join(first.sections)}"
        )
        table = Table("checkpoint seq", "last good seq", "sections that differ")
        for difference in result.differences[:20]:
            table.add_row(str(difference.seq), str(difference.previous_good_seq), ", ".join(difference.sections))
        console.print(table)
    for seq, sections in result.entities.items():
        for section, keys in sections.items():
            console.print(f"at snapshot seq {seq}, {section} that differ: {', '.join(keys)}")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the node commands to the `keel` app."""
    app.command("init")(init)
    app.command("verify")(verify)
    app.command("snapshot")(snapshot)
    app.command("replay")(replay)
    app.command("rehearse")(rehearse_command)
    log_app = typer.Typer(help="Read the command log.", no_args_is_help=True)
    log_app.command("show")(log_show)
    app.add_typer(log_app, name="log")
