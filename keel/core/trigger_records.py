"""Pending trigger orders (rules in triggers.py).

Imports: msgspec, commands.
"""

from __future__ import annotations

import msgspec

from keel.core.commands import PlaceOrder


class Trigger(msgspec.Struct, array_like=True, gc=False):
    order_id: int
    account_id: int
    market_id: int
    trigger_price_ticks: int
    trigger_by: int  # triggers.TriggerBy
    fires_upward: bool  # fires when the reference reaches the price from below
    order: PlaceOrder  # what is placed when it fires (its own trigger fields cleared)
