"""Turn keel.toml's assets and markets into the listing commands at the head of the log."""

from __future__ import annotations

from keel.core.commands import Command, ListAsset, ListMarket
from keel.core.money import parse_decimal
from keel.node.config import Config


def genesis_commands(config: Config) -> list[Command]:
    """Return ListAsset and ListMarket commands (seq and timestamp 0: the sequencer stamps them).

    Raises ValueError naming the market or asset whose configuration cannot be listed."""
    commands: list[Command] = []
    decimals: dict[str, int] = {}
    ids: dict[str, int] = {}
    for asset in config.assets:
        if asset.symbol in ids:
            raise ValueError(f"asset {asset.symbol} is configured twice")
        ids[asset.symbol] = len(ids)
        decimals[asset.symbol] = asset.decimals
        commands.append(ListAsset(seq=0, timestamp_ns=0, symbol=asset.symbol, decimals=asset.decimals))
    for market in config.markets:
        for symbol in (market.base, market.quote):
            if symbol not in ids:
                raise ValueError(f"market {market.symbol}: asset {symbol} is not configured")
        try:
            tick_atomic = parse_decimal(market.tick, decimals[market.quote], field=f"{market.symbol} tick")
            step_atomic = parse_decimal(market.step, decimals[market.base], field=f"{market.symbol} step")
            min_quantity = parse_decimal(
                market.min_quantity, decimals[market.base], field=f"{market.symbol} min_quantity"
            )
            min_notional = parse_decimal(
                market.min_notional, decimals[market.quote], field=f"{market.symbol} min_notional"
            )
        except Exception as error:
            raise ValueError(str(error)) from error
        if tick_atomic <= 0 or step_atomic <= 0:
            raise ValueError(f"market {market.symbol}: tick and step must be positive")
        if min_quantity % step_atomic:
            raise ValueError(f"market {market.symbol}: min_quantity is not a multiple of step")
        commands.append(
            ListMarket(
                seq=0,
                timestamp_ns=0,
                symbol=market.symbol,
                base_asset_id=ids[market.base],
                quote_asset_id=ids[market.quote],
                tick_atomic=tick_atomic,
                step_atomic=step_atomic,
                quantity_min_steps=max(1, min_quantity // step_atomic),
                quantity_max_steps=0,
                notional_min_atomic=min_notional,
                fee_maker_bps=market.maker_fee_bps,
                fee_taker_bps=market.taker_fee_bps,
            )
        )
    return commands
