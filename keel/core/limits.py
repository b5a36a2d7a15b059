"""Bounds on everything the core holds or loops over (TigerBeetle: put a limit on it).

Module-level asserts state how the limits relate.
"""

from __future__ import annotations

orders_open_per_account_max = 2_000
accounts_max = 50_000_000  # user accounts one engine holds
fills_per_command_max = 5_000
batch_orders_max = 20
assets_max = 256
markets_max = 1_024
client_id_max = 2**32 - 1  # Backpack's clientId is a uint32
# Integers that leave the process (log encoding, PostgreSQL BIGINT) must fit in i64.
amount_atomic_max = 2**62
price_ticks_max = 2**40
quantity_steps_max = 2**40
fee_bps_abs_max = 1_000  # 10%
text_max = 200  # reasons and announcements in operator commands
maintenance_steps_max = 16
maintenances_active_max = 8
deposits_max = 100_000_000
triggers_per_account_max = 100
withdrawals_max = 100_000_000
leverage_limit_max = 100  # the highest account leverage limit a user may set

assert fills_per_command_max >= batch_orders_max
assert price_ticks_max * quantity_steps_max <= 2**80  # notional before scaling stays small
assert fee_bps_abs_max < 10_000
