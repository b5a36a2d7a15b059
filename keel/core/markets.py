"""Markets: the price and quantity grid, order filters, fees and trading state.

A spot market trades `base` against `quote`. Prices are integers of ticks, where one
tick is `tick_atomic` quote atomic units per whole base unit; quantities are integers
of steps, where one step is `step_atomic` base atomic units. The quote value of one
tick times one step is `lot_atomic`, which listing requires to be an exact integer, so
every notional is exact: notional_atomic = price_ticks * quantity_steps * lot_atomic.

Filters follow Backpack's market object (spec section 5.1): a limit price must lie
within [band_low_bps, band_high_bps] / 10,000 of the last trade price, and a market
order may not trade beyond best opposite price * impact bps / 10,000.

Imports: msgspec, errors, money.
"""

from __future__ import annotations

import enum

import msgspec

from keel.core.errors import RejectCode, Rejected
from keel.core.money import parse_decimal


@enum.unique
class MarketState(enum.IntEnum):
    """What a market accepts (DESIGN.md, market states)."""

    OPEN = 0
    POST_ONLY = 1
    LIMIT_ONLY = 2
    CANCEL_ONLY = 3
    CLOSED = 4


@enum.unique
class MarketKind(enum.IntEnum):
    """SPOT moves base and quote; PERP (a USDC-margined linear perpetual) moves positions."""

    SPOT = 0
    PERP = 1


class Market(msgspec.Struct, array_like=True, gc=False):
    """A listed market. The fields from `state` on change as the market trades; the rest
    is fixed at listing. Margin fractions are in units of 1e-9 (E9 = 1.0), as are funding
    rates; see perps.py."""

    market_id: int
    symbol: str
    base_asset_id: int
    quote_asset_id: int
    tick_atomic: int  # quote atomic units per whole base unit, per price tick
    step_atomic: int  # base atomic units per quantity step
    lot_atomic: int  # quote atomic value of 1 tick x 1 step
    quantity_min_steps: int
    quantity_max_steps: int  # 0: no maximum
    notional_min_atomic: int
    fee_maker_bps: int  # may be negative: a rebate
    fee_taker_bps: int
    band_low_bps: int  # limit price >= last price * band_low_bps / 10,000
    band_high_bps: int
    impact_low_bps: int  # a market sell trades no lower than best bid * impact_low_bps / 10,000
    impact_high_bps: int
    state: MarketState = MarketState.OPEN
    last_price_ticks: int = 0  # 0: no trade yet, so no band applies
    volume_steps: int = 0  # quantity traded since listing
    # ---- perpetuals (kind PERP); spot markets keep the defaults ----
    kind: int = MarketKind.SPOT
    imf_base_e9: int = 0  # initial margin fraction = max(base, factor x sqrt(notional in whole quote units))
    imf_factor_e9: int = 0
    mmf_base_e9: int = 0  # maintenance margin fraction, same shape
    mmf_factor_e9: int = 0
    funding_interval_ns: int = 0
    funding_cap_bps: int = 0  # |funding rate| <= cap per interval
    open_interest_max_steps: int = 0  # 0: no limit
    index_ticks: int = 0  # from the base asset's index price; 0: none yet
    mark_ticks: int = 0  # median of index, book mid and last trade (perps.mark_price)
    funding_next_ns: int = 0  # the next funding time; 0: not scheduled yet
    open_interest_steps: int = 0  # sum of long positions (== sum of short positions)
    funding_rate_e9: int = 0  # the rate of the last funding round
    state_changed_ns: int = 0  # when `state` last changed
    index_move_cap_bps: int = 0  # perp: an index update moving more than this is refused (0: no cap)
    price_max_age_ns: int = 0  # perp: no funding or liquidation on an index older than this (0: no limit)


class MaintenanceStep(msgspec.Struct, array_like=True, gc=False):
    time_ns: int
    market_ids: tuple[int, ...]  # empty: every market
    state: int  # MarketState
    done: bool = False
    blocked: bool = False  # a refusal was reported; retried at every Tick
    cancel_orders: bool = False  # applying it also cancels every order and trigger of its markets


class Maintenance(msgspec.Struct, array_like=True, gc=False):
    schedule_id: int
    announcement: str
    operator: str
    steps: list[MaintenanceStep]
    cancelled: bool = False

    @property
    def active(self) -> bool:
        return not self.cancelled and not all(step.done for step in self.steps)


def price_ticks_from_decimal(market: Market, quote_decimals: int, text: str) -> int:
    """Return the price in ticks for a decimal string; refuse off-tick prices.

    Raises Rejected(DECIMAL_MALFORMED, DECIMAL_TOO_PRECISE, PRICE_OFF_TICK, PRICE_NOT_POSITIVE).
    """
    atomic = parse_decimal(text, quote_decimals, field="price")
    if atomic <= 0:
        raise Rejected(RejectCode.PRICE_NOT_POSITIVE, f"price must be positive, got {text}")
    ticks, remainder = divmod(atomic, market.tick_atomic)
    if remainder:
        raise Rejected(
            RejectCode.PRICE_OFF_TICK,
            f"price {text} is not a multiple of the tick size of {market.symbol}",
        )
    return ticks


def quantity_steps_from_decimal(market: Market, base_decimals: int, text: str) -> int:
    """Return the quantity in steps for a decimal string; refuse off-step quantities.

    Raises Rejected(DECIMAL_MALFORMED, DECIMAL_TOO_PRECISE, QUANTITY_OFF_STEP,
    QUANTITY_NOT_POSITIVE).
    """
    atomic = parse_decimal(text, base_decimals, field="quantity")
    if atomic <= 0:
        raise Rejected(RejectCode.QUANTITY_NOT_POSITIVE, f"quantity must be positive, got {text}")
    steps, remainder = divmod(atomic, market.step_atomic)
    if remainder:
        raise Rejected(
            RejectCode.QUANTITY_OFF_STEP,
            f"quantity {text} is not a multiple of the step size of {market.symbol}",
        )
    return steps
