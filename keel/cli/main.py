"""The `keel` command."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.market_commands import register as register_market_commands
from keel.cli.node_commands import register as register_node_commands
from keel.cli.perps_commands import register as register_perps_commands
from keel.cli.serve_commands import register as register_serve_commands
from keel.cli.transfer_commands import register as register_transfer_commands
from keel.cli.views_commands import register as register_views_commands

app = typer.Typer(help="Keel: a deterministic, log-sourced exchange.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (results belong in docs/benchmarks.md).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
register_node_commands(app)
register_serve_commands(app)
register_perps_commands(app)  # after serve: `account show` joins its `account` group
register_views_commands(app)
register_market_commands(app)
register_transfer_commands(app)


@bench_app.command("engine")
def bench_engine(
    flow: str | None = typer.Option(None, help="Flow file in the shared format; generated when absent."),
    runs: int = typer.Option(3, min=1, help="Fresh-process runs; the median is reported."),
    n: int = typer.Option(1_000_000, min=1, help="Records to generate when no --flow is given."),
    seed: int = typer.Option(42, help="Seed for a generated flow."),
    mixed: bool = typer.Option(False, "--mixed", help="Spot and perpetuals, index updates and funding (not --flow)."),
    accounts: int = typer.Option(10_000, min=2, help="Accounts in the --mixed flow."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Replay the shared order flow (--mixed: a spot and perpetuals flow) through Engine.apply; report ops/s."""
    import json

    if mixed:
        from keel.bench.mixed import bench_mixed

        if flow is not None:
            raise typer.BadParameter("--mixed generates its own flow; it takes no --flow", param_hint="--flow")
        result = bench_mixed(n, runs, seed, accounts)
    else:
        from keel.bench.engine import bench

        result = bench(flow, runs, n, seed)
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>24}: {value}")


@bench_app.command("log")
def bench_log(
    backend: str = typer.Option(..., help="Log backend: sqlite or postgres."),
    n: int = typer.Option(10_000, min=1, help="Records appended at each batch size."),
    dsn: str | None = typer.Option(
        None, help="PostgreSQL DSN (default: the local server's `test` database); for sqlite, a directory."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Append N records at batch sizes 1, 10, 100 and 1000 and report durable records/s and commits."""
    import json

    from keel.bench.log import bench

    if backend not in ("sqlite", "postgres"):
        raise typer.BadParameter("expected sqlite or postgres", param_hint="--backend")
    result = bench(backend, n, dsn)
    if json_output:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{result['backend']}: {result['n']} records of {result['record_bytes']} bytes at each batch size")
    for row in result["results"]:
        typer.echo(
            f"batch {row['batch']:>5}: {row['records_per_s']:>9} records/s"
            f"  {row['commits']:>7} commits  {row['seconds']:.3f} s"
        )


@bench_app.command("pipeline")
def bench_pipeline_command(
    flow: str | None = typer.Option(None, help="Flow file in the shared format; generated when absent."),
    backend: str = typer.Option("sqlite", help="Log backend: sqlite or postgres."),
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (default: the local server's `test` database)."),
    data: Path | None = typer.Option(None, "--data", help="Write into (and leave) this new data directory."),
    n: int = typer.Option(1_000_000, min=1, help="Records to generate when no --flow is given."),
    seed: int = typer.Option(42, help="Seed for a generated flow."),
    rate: int = typer.Option(0, min=0, help="Offer this many commands/s (0: as fast as acknowledged)."),
    auditor: bool = typer.Option(
        True,
        "--auditor/--no-auditor",
        help="Run the node's continuous auditor (a replica process replaying every durable command), "
        "as a node does by default; --no-auditor measures sequencer, log and engine alone.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Run the flow through sequencer, durable log and engine; report commands/s and ack latency."""
    import json

    from keel.bench.pipeline import bench_pipeline

    if backend not in ("sqlite", "postgres"):
        raise typer.BadParameter("expected sqlite or postgres", param_hint="--backend")
    if data is not None and data.exists() and any(data.iterdir()):
        raise typer.BadParameter(f"{data} exists and is not empty", param_hint="--data")
    result = bench_pipeline(flow, n, seed, backend, dsn, data, rate, auditor=auditor)
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>20}: {value}")


@bench_app.command("checkpoint")
def bench_checkpoint_command(
    accounts: int = typer.Option(1_000_000, min=1, help="Funded accounts in the state."),
    orders: int = typer.Option(100_000, min=0, help="Resting orders in the state."),
    interval: int = typer.Option(10_000, min=1, help="Commands between checkpoints."),
    intervals: int = typer.Option(10, min=1, help="Checkpoints to time."),
    refreshes: int = typer.Option(2, min=0, help="Hash refreshes within each interval, as keel.toml's hash_refreshes."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time the incremental state hash a checkpoint computes on a large state."""
    import json

    from keel.bench.checkpoint import bench_checkpoint

    result = bench_checkpoint(accounts, orders, interval, intervals, refreshes)
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>30}: {value}")


@bench_app.command("recovery")
def bench_recovery_command(
    data: Path = typer.Option(..., "--data", help="A data directory (e.g. one `keel bench pipeline --data` left)."),
    runs: int = typer.Option(3, min=1, help="Fresh-process runs; medians are reported."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time a fresh process to trading-ready, and replay from genesis in records/s."""
    import json

    from keel.bench.recovery import bench_recovery

    result = bench_recovery(data, runs)
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>28}: {value}")


@bench_app.command("api")
def bench_api_command(
    clients: int = typer.Option(8, min=1, help="Clients: each one account, one connection, one closed loop."),
    seconds: float = typer.Option(10.0, min=0.1, help="Length of the timed run."),
    data: Path | None = typer.Option(None, "--data", help="Use (and keep) this new data directory."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    processes: int = typer.Option(
        0, min=0, help="Client processes the clients are spread over (0: twice the cores; --clients: one each)."
    ),
) -> None:
    """Place and cancel signed orders over HTTP against keel serve; report orders/s and latency to ack."""
    import json
    import sys

    from keel.bench.api import bench_api

    if data is not None and data.exists() and any(data.iterdir()):
        raise typer.BadParameter(f"{data} exists and is not empty", param_hint="--data")
    # The gateway's entry point, as `keel serve` execs it: the benchmark runs it, never imports it.
    result = bench_api([sys.executable, "-m", "keel.gateway", "serve"], clients, seconds, data, processes)
    if json_output:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:>26}: {value}")
    if result["errors"]:
        raise typer.Exit(1)


@app.command("demo")
def demo(
    port: int = typer.Option(8080, min=0, max=65535, help="Port on 127.0.0.1 to serve on (0: any free port)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary data directory on exit."),
    offline: bool = typer.Option(
        False, "--offline", help="Instead: a scripted session on an engine in this process (no server)."
    ),
) -> None:
    """Serve a live demo exchange (market makers, a funded account, a ccxt snippet) until Ctrl-C."""
    if offline:
        from rich.console import Console

        from keel.demo import run_offline_demo

        summary = run_offline_demo(Console())
        if summary["audit"]:
            raise typer.Exit(1)
        return
    import sys

    from keel.demo.served import run_served_demo

    # The gateway's entry point, as `keel serve` execs it: the demo runs it, never imports it.
    raise typer.Exit(run_served_demo([sys.executable, "-m", "keel.gateway", "serve"], port=port, keep=keep))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
