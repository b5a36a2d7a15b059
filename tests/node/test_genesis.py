"""keel.toml's lending and perpetual-limit settings become the genesis listings exactly.

The defaults are checked field by field on the engine state that genesis builds; a
keel.toml written by an operator is read back (load_config) and listed by a real
`init_data_dir`, so its decimals arrive in the core's units (bps, 1e-9, steps); values
the core refuses make `keel init` fail with the core's reason, and malformed ones fail
before anything is written.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from keel.core.engine import Engine
from keel.core.events import CommandRejected
from keel.node.config import DEFAULT_ASSETS, DEFAULT_MARKETS, Config, load_config, write_config
from keel.node.genesis import genesis_commands
from keel.node.node import Node, init_data_dir


def _listed(config: Config) -> Engine:
    engine = Engine()
    for seq, command in enumerate(genesis_commands(config), start=1):
        events = engine.apply(msgspec.structs.replace(command, seq=seq, timestamp_ns=1))
        assert not isinstance(events[0], CommandRejected), events
    return engine


def test_default_assets_are_borrowable_and_default_perpetuals_cap_index_moves() -> None:
    """USDC: 10% / 5% borrow margins; SOL, BTC, ETH: 20% / 10%; every asset 5% + 15% up to
    80% utilization, + 100% beyond, a 10% spread; every perpetual caps an index move at 20%."""
    state = _listed(Config()).state
    margins = {asset.symbol: (asset.borrow_imf_bps, asset.borrow_mmf_bps) for asset in state.assets}
    assert margins == {"USDC": (1_000, 500), "SOL": (2_000, 1_000), "BTC": (2_000, 1_000), "ETH": (2_000, 1_000)}
    for asset in state.assets:
        rates = (asset.rate_base_e9, asset.rate_slope1_e9, asset.rate_slope2_e9)
        assert rates == (50_000_000, 150_000_000, 1_000_000_000)
        assert (asset.optimal_utilization_bps, asset.interest_spread_bps) == (8_000, 1_000)
    caps = {market.symbol: (market.index_move_cap_bps, market.open_interest_max_steps) for market in state.markets}
    assert caps == {
        "SOL_USDC": (0, 0),
        "BTC_USDC": (0, 0),
        "ETH_USDC": (0, 0),
        "SOL_USDC_PERP": (2_000, 0),
        "BTC_USDC_PERP": (2_000, 0),
        "ETH_USDC_PERP": (2_000, 0),
    }


def test_an_operators_keel_toml_lists_its_lending_and_limit_settings(tmp_path: Path) -> None:
    """SOL lent at 3% + 7% + 250% around 90% utilization with a 5% spread and 25% / 12.5%
    margins; SOL_USDC_PERP capped at 5% moves and 1,234.56 SOL of open interest (123,456
    steps of 0.01)."""
    assets = (
        DEFAULT_ASSETS[0],
        replace(
            DEFAULT_ASSETS[1],
            borrow_imf="0.25",
            borrow_mmf="0.125",
            rate_base="0.03",
            rate_slope1="0.07",
            rate_slope2="2.5",
            optimal_utilization="0.9",
            interest_spread="0.05",
        ),
    )
    perp = replace(DEFAULT_MARKETS[3], index_move_cap_bps=500, open_interest_max="1234.56")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_config(data_dir, Config(assets=assets, markets=(DEFAULT_MARKETS[0], perp)))
    config = load_config(data_dir)
    assert config.assets == assets
    assert config.markets[1] == perp
    init_data_dir(data_dir, config, from_existing_config=True)
    node = Node.open(data_dir, read_only=True)
    try:
        sol = node.engine.state.assets[1]
        market = node.engine.state.markets[1]
    finally:
        node.close()
    assert (sol.borrow_imf_bps, sol.borrow_mmf_bps) == (2_500, 1_250)
    assert (sol.rate_base_e9, sol.rate_slope1_e9, sol.rate_slope2_e9) == (30_000_000, 70_000_000, 2_500_000_000)
    assert (sol.optimal_utilization_bps, sol.interest_spread_bps) == (9_000, 500)
    assert (market.index_move_cap_bps, market.open_interest_max_steps) == (500, 123_456)


@pytest.mark.parametrize(
    ("asset", "market", "problem"),
    [
        ({"borrow_mmf": "0.3"}, {}, "borrow margins"),  # maintenance above initial: the core refuses it
        ({"optimal_utilization": "1"}, {}, "optimal utilization"),
        ({"rate_base": "five"}, {}, "rate_base"),
        ({}, {"open_interest_max": "0.005"}, "open_interest_max"),  # not a multiple of the step
        ({}, {"index_move_cap_bps": 20_000}, "SOL_USDC_PERP"),
    ],
)
def test_settings_that_cannot_be_listed_fail_keel_init(
    tmp_path: Path, asset: dict[str, str], market: dict[str, object], problem: str
) -> None:
    config = Config(
        assets=(DEFAULT_ASSETS[0], replace(DEFAULT_ASSETS[1], **asset)),
        markets=(replace(DEFAULT_MARKETS[3], **market),),  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match=problem):
        init_data_dir(tmp_path / "data", config)
    assert not (tmp_path / "data" / "keel.toml").exists()


def test_a_spot_market_refuses_perpetual_limits() -> None:
    with pytest.raises(ValueError, match="for perpetuals"):
        genesis_commands(Config(markets=(replace(DEFAULT_MARKETS[0], index_move_cap_bps=100),)))
