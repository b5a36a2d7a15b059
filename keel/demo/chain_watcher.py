"""A simulated chain watcher for `keel demo` (issue 6): deposits arrive the way a real watcher reports them.

A chain watcher follows a chain and reports every deposit output it sees to the
exchange, again and again as the output gains confirmations, until the exchange has
credited it; it cannot know whether an earlier report arrived, so it repeats itself, and
reports from two scans or two watcher instances can arrive out of order. Keel credits
each output exactly once whatever arrives (docs/transfers.md, "ReportDeposit and the
exactly-once rule"). This watcher simulates one against the demo account: every
DEPOSIT_GAP_S it "sees" a USDC deposit on Solana, with a random-looking but
deterministic transaction id and amount (derived from the account and the deposit's
number, so every demo run sees the same deposits), and reports it through the operator
API's deposit route (`POST /operator/v1/deposits`, docs/api.md) once per simulated
block, REPORT_GAP_S apart, with rising confirmations:

    0, 8, 8 (a duplicate), 16, 8 (late: an older scan's report), 24, 32, ...

until the answer says `credited` (USDC on Solana needs 32 in the default listing; the
watcher does not need to know: it goes on until the exchange says so, up to
MAX_CONFIRMATIONS), then once more with the same confirmations, as a watcher that
rescans after a restart would. It prints one line when a deposit is credited, and checks
every answer: the repeated and late reports, and the rescan, must change nothing
(`changed` false), every other report must. A disagreement is printed on stderr as a
`chain watcher:` warning (the demo's test fails on any).

A server without the deposit route (404) gets one note on stderr and no deposits.

Imports: keel.demo.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from keel.demo.client import ApiError, SignedClient

DEPOSIT_ROUTE: Final = "/operator/v1/deposits"
CHAIN: Final = "Solana"
ASSET: Final = "USDC"
FIRST_DEPOSIT_S: Final = 1.0  # after the watcher starts
DEPOSIT_GAP_S: Final = 3.0  # between one deposit's last report and the next deposit
REPORT_GAP_S: Final = 0.5  # one simulated block: between two reports of one deposit
CONFIRMATION_STEP: Final = 8  # confirmations gained per block
MAX_CONFIRMATIONS: Final = 10_000  # the most an asset may require (docs/transfers.md)
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58[remainder])
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(digits))


@dataclass(frozen=True, slots=True)
class SeenDeposit:
    """One deposit output the simulated chain shows: to `account_id`, `amount` of ASSET."""

    number: int  # the watcher's count, from 1
    account_id: int
    tx_id: str
    output_index: int
    amount: str  # decimal, in ASSET


def seen_deposit(account_id: int, number: int) -> SeenDeposit:
    """Return the `number`th deposit the chain shows for `account_id`: the same in every run.

    The transaction id looks like a Solana signature (base58 of 64 bytes); the amount
    is between 5 and 500 USDC with cents."""
    digest = hashlib.sha512(f"keel demo chain watcher: {CHAIN} deposit {number} to account {account_id}".encode())
    raw = digest.digest()
    cents = 500 + int.from_bytes(raw[:4], "big") % 49_501
    return SeenDeposit(number, account_id, _base58(raw), raw[4] % 3, str(Decimal(cents) / 100))


@dataclass(frozen=True, slots=True)
class Report:
    confirmations: int
    kind: str  # "first", "rising", "duplicate", "late" or "rescan"

    @property
    def should_change(self) -> bool:
        return self.kind in ("first", "rising")


def reports_until_credited() -> Iterator[Report]:
    """The reports of one deposit before it is credited: rising, with one duplicate and one late report.

    0, 8, 8 (duplicate), 16, 8 (late), 24, 32, 40, ... up to MAX_CONFIRMATIONS; the
    caller stops when the exchange answers `credited` and then sends one rescan."""
    step = CONFIRMATION_STEP
    yield Report(0, "first")
    yield Report(step, "rising")
    yield Report(step, "duplicate")
    yield Report(2 * step, "rising")
    yield Report(step, "late")
    confirmations = 3 * step
    while confirmations <= MAX_CONFIRMATIONS:
        yield Report(confirmations, "rising")
        confirmations += step


class ChainWatcher:
    """Reports simulated deposits to one account through the operator API, until `stop` is set.

    `operator` signs with the data directory's operator key; the client belongs to this
    watcher's thread."""

    def __init__(self, operator: SignedClient, account_id: int) -> None:
        self.operator = operator
        self.account_id = account_id
        self.credited: list[SeenDeposit] = []
        self.reports_sent = 0
        self.warnings = 0
        self.available = True

    def _report(self, deposit: SeenDeposit, report: Report) -> dict[str, Any]:
        answer: dict[str, Any] = self.operator.request(
            "POST",
            DEPOSIT_ROUTE,
            instruction="operatorDepositReport",
            params={
                "accountId": deposit.account_id,
                "symbol": ASSET,
                "quantity": deposit.amount,
                "chain": CHAIN,
                "txId": deposit.tx_id,
                "outputIndex": deposit.output_index,
                "confirmations": report.confirmations,
            },
        )
        self.reports_sent += 1
        if bool(answer.get("changed")) != report.should_change:
            self.warnings += 1
            what = "changed nothing" if report.should_change else "changed the deposit"
            print(
                f"chain watcher: warning: deposit {answer.get('depositId')}: the {report.kind} report "
                f"({report.confirmations} confirmations) {what}: {answer}",
                file=sys.stderr,
                flush=True,
            )
        return answer

    def follow(self, deposit: SeenDeposit, stop: threading.Event) -> bool:
        """Report one deposit until it is credited, then rescan it once; False if stopped or refused first."""
        sent: list[Report] = []
        for report in reports_until_credited():
            if sent and stop.wait(REPORT_GAP_S):
                return False
            answer = self._report(deposit, report)
            sent.append(report)
            if answer.get("status") == "credited":
                break
            if answer.get("status") == "rejected":
                print(f"chain watcher: deposit {answer.get('depositId')} was rejected by an operator", flush=True)
                return True
        else:
            print(f"chain watcher: deposit of tx {deposit.tx_id} was never credited", file=sys.stderr, flush=True)
            return True
        self.credited.append(deposit)
        ignored = [report.kind for report in sent if not report.should_change]
        print(
            f"chain watcher: deposit {answer.get('depositId')} credited: {deposit.amount} {ASSET} on {CHAIN} "
            f"to account {deposit.account_id} (tx {deposit.tx_id}, {answer.get('confirmations')} confirmations; "
            f"{len(sent)} reports, of which {len(ignored)} changed nothing: {', '.join(ignored)})",
            flush=True,
        )
        if not stop.wait(REPORT_GAP_S):
            self._report(deposit, Report(sent[-1].confirmations, "rescan"))
        return True

    def run(self, stop: threading.Event) -> None:
        errors = 0
        number = 0
        delay = FIRST_DEPOSIT_S
        while not stop.wait(delay):
            delay = DEPOSIT_GAP_S
            number += 1
            try:
                self.follow(seen_deposit(self.account_id, number), stop)
            except ApiError as error:
                if error.status == 404 and error.text.startswith("No endpoint"):  # not an unknown account
                    self.available = False
                    print(
                        f"note: this server has no {DEPOSIT_ROUTE}, so the demo sees no chain deposits",
                        file=sys.stderr,
                        flush=True,
                    )
                    break
                errors += 1
                if errors <= 3 and not stop.is_set():
                    print(f"chain watcher: {error}", file=sys.stderr, flush=True)
            except OSError as error:
                self.operator.close()
                errors += 1
                if errors <= 3 and not stop.is_set():
                    print(f"chain watcher: {error}", file=sys.stderr, flush=True)
        self.operator.close()
