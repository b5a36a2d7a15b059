"""The records of deposits and withdrawals the engine keeps (rules in transfers.py).

Imports: msgspec.
"""

from __future__ import annotations

import msgspec


class Deposit(msgspec.Struct, array_like=True, gc=False):
    deposit_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    chain: str
    tx_id: str
    output_index: int
    confirmations: int
    status: int  # DepositStatus
    created_ns: int
    updated_ns: int


class Withdrawal(msgspec.Struct, array_like=True, gc=False):
    withdrawal_id: int
    account_id: int
    asset_id: int
    amount_atomic: int
    fee_atomic: int
    chain: str
    address: str
    status: int  # WithdrawalStatus
    created_ns: int
    updated_ns: int
    approvals: tuple[str, ...] = ()  # operators who approved
    tx_id: str = ""
    reason: str = ""
    client_id: int = -1
