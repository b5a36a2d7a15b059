"""Turn keel.toml's assets and markets into the listing commands at the head of the log."""

from __future__ import annotations

from keel.core.commands import Command, ListAsset, ListMarket
from keel.core.markets import MarketKind
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
        try:
            weight_bps = parse_decimal(asset.collateral_weight, 4, field=f"{asset.symbol} collateral_weight")
            amounts = {
                name: parse_decimal(getattr(asset, name), asset.decimals, field=f"{asset.symbol} {name}")
                for name in (
                    "withdrawal_fee",
                    "withdrawal_daily_limit",
                    "withdrawal_auto_approve",
                    "two_person_min",
                    "minimum_deposit",
                    "minimum_withdrawal",
                )
            }
            # Fractions in bps (as collateral_weight), yearly rates in 1e-9 (lending.py).
            lending_bps = {
                name: parse_decimal(getattr(asset, name), 4, field=f"{asset.symbol} {name}")
                for name in ("borrow_imf", "borrow_mmf", "optimal_utilization", "interest_spread")
            }
            rates_e9 = {
                name: parse_decimal(getattr(asset, name), 9, field=f"{asset.symbol} {name}")
                for name in ("rate_base", "rate_slope1", "rate_slope2")
            }
        except Exception as error:
            raise ValueError(str(error)) from error
        if any(amount < 0 for amount in amounts.values()):
            raise ValueError(f"asset {asset.symbol}: withdrawal amounts must not be negative")
        # Their ranges are the core's to check: `keel init` reports a ListAsset it refuses.
        commands.append(
            ListAsset(
                seq=0,
                timestamp_ns=0,
                symbol=asset.symbol,
                decimals=asset.decimals,
                collateral_weight_bps=weight_bps,
                chain=asset.chain,
                confirmations_required=asset.confirmations,
                withdrawal_fee_atomic=amounts["withdrawal_fee"],
                withdrawal_daily_limit_atomic=amounts["withdrawal_daily_limit"],
                withdrawal_auto_approve_atomic=amounts["withdrawal_auto_approve"],
                two_person_min_atomic=amounts["two_person_min"],
                deposit_min_atomic=amounts["minimum_deposit"],
                withdrawal_min_atomic=amounts["minimum_withdrawal"],
                borrow_imf_bps=lending_bps["borrow_imf"],
                borrow_mmf_bps=lending_bps["borrow_mmf"],
                rate_base_e9=rates_e9["rate_base"],
                rate_slope1_e9=rates_e9["rate_slope1"],
                rate_slope2_e9=rates_e9["rate_slope2"],
                optimal_utilization_bps=lending_bps["optimal_utilization"],
                interest_spread_bps=lending_bps["interest_spread"],
            )
        )
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
        if market.kind not in ("spot", "perp"):
            raise ValueError(f"market {market.symbol}: kind must be spot or perp, not {market.kind!r}")
        perp: dict[str, int] = {}
        if market.kind == "spot" and (
            market.index_move_cap_bps or market.open_interest_max != "0" or market.price_max_age_s
        ):
            raise ValueError(f"market {market.symbol}: index_move_cap_bps and open_interest_max are for perpetuals")
        if market.kind == "perp":
            try:
                open_interest_max = parse_decimal(
                    market.open_interest_max, decimals[market.base], field=f"{market.symbol} open_interest_max"
                )
            except Exception as error:
                raise ValueError(str(error)) from error
            if open_interest_max < 0 or open_interest_max % step_atomic:
                raise ValueError(f"market {market.symbol}: open_interest_max must be a non-negative multiple of step")
            try:
                perp = {
                    "kind": int(MarketKind.PERP),
                    "imf_base_e9": parse_decimal(market.imf_base, 9, field=f"{market.symbol} imf_base"),
                    "imf_factor_e9": parse_decimal(market.imf_factor, 9, field=f"{market.symbol} imf_factor"),
                    "mmf_base_e9": parse_decimal(market.mmf_base, 9, field=f"{market.symbol} mmf_base"),
                    "mmf_factor_e9": parse_decimal(market.mmf_factor, 9, field=f"{market.symbol} mmf_factor"),
                    "funding_interval_ns": market.funding_interval_s * 1_000_000_000,
                    "funding_cap_bps": market.funding_cap_bps,
                    "open_interest_max_steps": open_interest_max // step_atomic,
                    "index_move_cap_bps": market.index_move_cap_bps,
                    "price_max_age_ns": market.price_max_age_s * 1_000_000_000,
                }
            except Exception as error:
                raise ValueError(str(error)) from error
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
                **perp,
            )
        )
    return commands
