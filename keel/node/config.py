"""The data directory's configuration file, `keel.toml`.

    [log]
    backend = "sqlite"            # or "postgres"
    dsn = "log.sqlite"            # sqlite: a path relative to the data directory; postgres: a DSN
    schema = "keel"               # postgres only: the schema holding the log table
    writer = "process"            # "process": chain and write records in a child process
                                  # (another core); "thread": on the node's committer thread

    [sequencer]
    batch_max = 1000              # flush a group commit at this many records ...
    batch_us = 1000               # ... or this many microseconds after its first record
    tick_interval_ms = 1000       # inject a Tick this often (0: never)
    checkpoint_every = 10000      # append a Checkpoint every K commands
    hash_refreshes = 2            # hash what changed this often within an interval, so a
                                  # checkpoint pauses only for the rest (0: all at the checkpoint)

    [snapshots]
    every = 100000                # write a snapshot at the first checkpoint M commands after the last
    keep = 3                      # how many snapshot files to keep

    [auditor]                     # the continuous auditor (keel/audit, docs/operator-guide.md)
    enabled = true                # a shadow engine re-applies every durable command
    every = 1                     # full invariant audit at every Nth checkpoint
    mode = "process"              # a replica process following the durable log, or "thread"

    [views]                       # optional: the history store (keel/views, docs/views.md)
    backend = "sqlite"            # or "postgres"
    dsn = "views.sqlite"          # sqlite: a path relative to the data directory (the default);
                                  # postgres: a DSN (default: the log's, when the log is on PostgreSQL)
    schema = "keel_views"         # postgres only; default "<log schema>_views"

    [[assets]]                    # listed by `keel init` as logged commands
    symbol = "USDC"
    decimals = 6
    collateral_weight = "1"       # the share of its value that counts as margin collateral
    chain = "Solana"              # deposits and withdrawals ("": neither)
    confirmations = 32            # a deposit is credited once it has this many
    withdrawal_fee = "1"          # decimals in the asset's units; "0" turns a rule off
    withdrawal_daily_limit = "1000000"   # per account and UTC day
    withdrawal_auto_approve = "10000"    # at or below: approved without an operator
    two_person_min = "100000"     # at or above: two operators must approve
    minimum_deposit = "1"         # a smaller deposit is recorded as rejected, never credited
    minimum_withdrawal = "2"      # a smaller withdrawal request is refused
    borrow_imf = "0.1"            # initial margin on a borrow's value ("0": cannot be borrowed)
    borrow_mmf = "0.05"           # maintenance margin on a borrow's value
    rate_base = "0.05"            # yearly borrow rate at zero utilization
    rate_slope1 = "0.15"          # added up to the optimal utilization
    rate_slope2 = "1"             # added from the optimal utilization to full
    optimal_utilization = "0.8"
    interest_spread = "0.1"       # the exchange's share of borrowers' interest

    [[markets]]
    symbol = "SOL_USDC"
    base = "SOL"
    quote = "USDC"
    tick = "0.01"                 # decimal, in quote units
    step = "0.01"                 # decimal, in base units
    min_quantity = "0.01"
    min_notional = "1"
    maker_fee_bps = 2
    taker_fee_bps = 5
    # perpetuals also: kind = "perp", imf_base, imf_factor, mmf_base, mmf_factor,
    # funding_interval_s, funding_cap_bps, index_move_cap_bps (an index update moving more
    # than this is refused; 0: no cap), open_interest_max (base units; "0": no limit) and
    # price_max_age_s (no funding or liquidation on an older index; 0: no limit)

Markets and assets in keel.toml are read once, by `keel init` (`--from-config` uses a
keel.toml the operator wrote into the new directory; otherwise init writes the defaults),
which turns them into ListAsset and ListMarket commands at the head of the log: from then
on the log, not the file, is the truth.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "keel.toml"


@dataclass(frozen=True, slots=True)
class AssetConfig:
    """An asset to list. Amounts are decimal strings in the asset's units; "0" turns a
    withdrawal rule off (no fee, no daily limit, no automatic approval, no second person)."""

    symbol: str
    decimals: int
    collateral_weight: str = "1"  # haircut: the share of its value that counts as collateral
    chain: str = ""  # where deposits come from and withdrawals go ("": neither)
    confirmations: int = 1  # a deposit is credited once it has this many
    withdrawal_fee: str = "0"  # charged on top of each withdrawal, to the fee account
    withdrawal_daily_limit: str = "0"  # per account and UTC day
    withdrawal_auto_approve: str = "0"  # at or below: approved without an operator
    two_person_min: str = "0"  # at or above: two different operators must approve
    # Borrowing and lending (docs/perpetuals.md): fractions and yearly rates as decimals,
    # like collateral_weight ("0.1" is 10%); "0" borrow_imf: the asset cannot be borrowed.
    borrow_imf: str = "0"  # initial margin on a borrow's value
    borrow_mmf: str = "0"  # maintenance margin on a borrow's value (at most borrow_imf)
    rate_base: str = "0"  # yearly borrow rate at zero utilization
    rate_slope1: str = "0"  # added up to the optimal utilization
    rate_slope2: str = "0"  # added from the optimal utilization to full
    optimal_utilization: str = "0.8"  # strictly between 0 and 1
    interest_spread: str = "0.1"  # the exchange's share of borrowers' interest
    minimum_deposit: str = "0"  # a smaller deposit is recorded as rejected, never credited
    minimum_withdrawal: str = "0"  # a smaller withdrawal request is refused (the fee is extra)


@dataclass(frozen=True, slots=True)
class MarketConfig:
    symbol: str
    base: str
    quote: str
    tick: str
    step: str
    min_quantity: str
    min_notional: str
    maker_fee_bps: int
    taker_fee_bps: int
    kind: str = "spot"  # or "perp": a USDC-margined linear perpetual (docs/perpetuals.md)
    imf_base: str = "0"  # perp: initial margin fraction = max(base, factor x sqrt(notional))
    imf_factor: str = "0"
    mmf_base: str = "0"  # perp: maintenance margin fraction, same shape
    mmf_factor: str = "0"
    funding_interval_s: int = 0  # perp: seconds between funding rounds
    funding_cap_bps: int = 0  # perp: |funding rate| per round
    index_move_cap_bps: int = 0  # perp: an index update moving more than this is refused (0: no cap)
    open_interest_max: str = "0"  # perp: open interest limit in base units ("0": none)
    price_max_age_s: int = 0  # perp: no funding or liquidation on an index older than this (0: no limit)


def perp_config(symbol: str, base: str, tick: str, step: str) -> MarketConfig:
    """A default perpetual: Backpack's published margin functions, hourly funding capped at
    1%, and an index update may move the index by at most 20%."""
    return MarketConfig(
        symbol,
        base,
        "USDC",
        tick,
        step,
        step,
        "1",
        2,
        5,
        "perp",
        "0.02",
        "0.0001275",
        "0.0125",
        "0.0000765",
        3600,
        100,
        index_move_cap_bps=2_000,
        price_max_age_s=300,
    )


# Interest rates of every default asset: 5% a year idle, 20% at the optimal utilization
# of 80%, 120% when fully borrowed; lenders get 90% of what borrowers pay.
_RATES = {
    "rate_base": "0.05",
    "rate_slope1": "0.15",
    "rate_slope2": "1",
    "optimal_utilization": "0.8",
    "interest_spread": "0.1",
}


def _mins(deposit: str, withdrawal: str) -> dict[str, str]:
    return {"minimum_deposit": deposit, "minimum_withdrawal": withdrawal}


# Chains by Backpack's names (spec 1.4); fees near Backpack's; limits an operator would tune;
# minimum withdrawals twice the fee, minimum deposits the fee.
# Borrowing USDC needs 10% initial and 5% maintenance margin on its value, the others 20% and 10%.
DEFAULT_ASSETS = (
    AssetConfig(
        "USDC", 6, "1", "Solana", 32, "1", "1000000", "10000", "100000", "0.1", "0.05", **_RATES, **_mins("1", "2")
    ),
    AssetConfig(
        "SOL", 9, "0.9", "Solana", 32, "0.01", "10000", "50", "1000", "0.2", "0.1", **_RATES, **_mins("0.01", "0.02")
    ),
    AssetConfig(
        "BTC", 8, "0.9", "Bitcoin", 3, "0.0001", "20", "0.1", "2", "0.2", "0.1", **_RATES, **_mins("0.0001", "0.0002")
    ),
    AssetConfig(
        "ETH", 8, "0.9", "Ethereum", 12, "0.002", "300", "3", "30", "0.2", "0.1", **_RATES, **_mins("0.001", "0.004")
    ),
)
DEFAULT_MARKETS = (
    MarketConfig("SOL_USDC", "SOL", "USDC", "0.01", "0.01", "0.01", "1", 2, 5),
    MarketConfig("BTC_USDC", "BTC", "USDC", "0.1", "0.00001", "0.00001", "1", 2, 5),
    MarketConfig("ETH_USDC", "ETH", "USDC", "0.01", "0.0001", "0.0001", "1", 2, 5),
    perp_config("SOL_USDC_PERP", "SOL", "0.01", "0.01"),
    perp_config("BTC_USDC_PERP", "BTC", "0.1", "0.00001"),
    perp_config("ETH_USDC_PERP", "ETH", "0.01", "0.0001"),
)


@dataclass(frozen=True, slots=True)
class Config:
    backend: str = "sqlite"
    dsn: str = "log.sqlite"
    schema: str = "keel"
    writer: str = "process"
    batch_max: int = 1000
    batch_us: int = 1000
    tick_interval_ms: int = 1000
    checkpoint_every: int = 10_000
    hash_refreshes: int = 2
    snapshot_every: int = 100_000
    snapshot_keep: int = 3
    views_backend: str = "sqlite"
    views_dsn: str = ""  # "": views.sqlite in the data directory, or the log's DSN for postgres
    views_schema: str = ""  # "": "<schema>_views"
    auditor_enabled: bool = True  # [auditor] enabled: a shadow engine audits every durable command
    auditor_every: int = 1  # [auditor] every: run the full invariant audit at every Nth checkpoint
    auditor_mode: str = "process"  # [auditor] mode: "process" (a replica process) or "thread"
    assets: tuple[AssetConfig, ...] = DEFAULT_ASSETS
    markets: tuple[MarketConfig, ...] = DEFAULT_MARKETS
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.backend not in ("sqlite", "postgres"):
            raise ValueError(f"log backend must be sqlite or postgres, not {self.backend!r}")
        if not self.dsn:
            raise ValueError("log dsn must not be empty")
        if self.views_backend not in ("sqlite", "postgres"):
            raise ValueError(f"views backend must be sqlite or postgres, not {self.views_backend!r}")
        if self.views_backend == "postgres" and not self.views_dsn and self.backend != "postgres":
            raise ValueError("views backend postgres needs a dsn in [views] (the log is not on PostgreSQL)")
        if self.auditor_mode not in ("process", "thread"):
            raise ValueError(f"auditor mode must be process or thread, not {self.auditor_mode!r}")
        if self.writer not in ("process", "thread"):
            raise ValueError(f"log writer must be process or thread, not {self.writer!r}")
        for name in (
            "batch_max",
            "batch_us",
            "tick_interval_ms",
            "checkpoint_every",
            "snapshot_every",
            "snapshot_keep",
            "auditor_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def config_path(data_dir: Path) -> Path:
    return data_dir / CONFIG_NAME


def load_config(data_dir: Path) -> Config:
    """Read DIR/keel.toml; raise FileNotFoundError or ValueError with the reason."""
    path = config_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `keel init --data {data_dir}` first")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from error
    log = raw.get("log", {})
    sequencer = raw.get("sequencer", {})
    snapshots = raw.get("snapshots", {})
    views = raw.get("views", {})
    auditor = raw.get("auditor", {})
    try:
        config = Config(
            backend=str(log.get("backend", "sqlite")),
            dsn=str(log.get("dsn", "log.sqlite")),
            schema=str(log.get("schema", "keel")),
            writer=str(log.get("writer", "process")),
            batch_max=int(sequencer.get("batch_max", 1000)),
            batch_us=int(sequencer.get("batch_us", 1000)),
            tick_interval_ms=int(sequencer.get("tick_interval_ms", 1000)),
            checkpoint_every=int(sequencer.get("checkpoint_every", 10_000)),
            hash_refreshes=int(sequencer.get("hash_refreshes", 2)),
            snapshot_every=int(snapshots.get("every", 100_000)),
            snapshot_keep=int(snapshots.get("keep", 3)),
            views_backend=str(views.get("backend", "sqlite")),
            views_dsn=str(views.get("dsn", "")),
            views_schema=str(views.get("schema", "")),
            auditor_enabled=bool(auditor.get("enabled", True)),
            auditor_every=int(auditor.get("every", 1)),
            auditor_mode=str(auditor.get("mode", "process")),
            assets=tuple(AssetConfig(**entry) for entry in raw.get("assets", [])),
            markets=tuple(MarketConfig(**entry) for entry in raw.get("markets", [])),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    config.validate()
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_config(config: Config) -> str:
    """Return keel.toml text for `config`."""
    lines = [
        "# Keel data directory configuration. Assets and markets are read by `keel init` only",
        "# (`keel init --from-config` initialises from a keel.toml you write); after that the",
        "# command log is the truth.",
        "",
        "[log]",
        f"backend = {_toml_value(config.backend)}",
        f"dsn = {_toml_value(config.dsn)}",
        f"schema = {_toml_value(config.schema)}",
        f"writer = {_toml_value(config.writer)}",
        "",
        "[sequencer]",
        f"batch_max = {config.batch_max}",
        f"batch_us = {config.batch_us}",
        f"tick_interval_ms = {config.tick_interval_ms}",
        f"checkpoint_every = {config.checkpoint_every}",
        f"hash_refreshes = {config.hash_refreshes}",
        "",
        "[snapshots]",
        f"every = {config.snapshot_every}",
        f"keep = {config.snapshot_keep}",
    ]
    lines += [
        "",
        "[auditor]",
        f"enabled = {_toml_value(config.auditor_enabled)}",
        f"every = {config.auditor_every}",
        f"mode = {_toml_value(config.auditor_mode)}",
    ]
    if (config.views_backend, config.views_dsn, config.views_schema) != ("sqlite", "", ""):
        lines += [
            "",
            "[views]",
            f"backend = {_toml_value(config.views_backend)}",
            f"dsn = {_toml_value(config.views_dsn)}",
            f"schema = {_toml_value(config.views_schema)}",
        ]
    for table, entries in (("assets", config.assets), ("markets", config.markets)):
        for entry in entries:
            lines += ["", f"[[{table}]]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in asdict(entry).items()]
    return "\n".join(lines) + "\n"


def write_config(data_dir: Path, config: Config) -> Path:
    config.validate()
    path = config_path(data_dir)
    path.write_text(render_config(config))
    return path
