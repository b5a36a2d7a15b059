"""The RejectCode -> HTTP table and the signing string, checked without a server.

Every core rejection code must have a row (a new code without one would become a 500),
every Backpack code the table uses must be one ccxt knows (else ccxt raises a bare
ExchangeError), and the rows that clients depend on give the ccxt class the spec names.
The signing string is checked against the spec's worked example.
"""

from __future__ import annotations

import ccxt

from keel.core.errors import RejectCode
from keel.gateway.auth import render, render_query, signing_strings
from keel.gateway.errors import FIELD_CODES, REJECTIONS


def test_every_reject_code_has_a_row() -> None:
    assert set(REJECTIONS) == set(RejectCode)


def test_every_code_is_one_ccxt_maps() -> None:
    exact = ccxt.backpack().exceptions["exact"]
    for status, code in [*REJECTIONS.values(), *((400, code) for code in FIELD_CODES.values())]:
        assert code in exact, code
        assert 400 <= status < 500


def test_the_rows_clients_depend_on() -> None:
    exact = ccxt.backpack().exceptions["exact"]
    expected = {
        RejectCode.INSUFFICIENT_AVAILABLE: ccxt.InsufficientFunds,
        RejectCode.INSUFFICIENT_MARGIN: ccxt.InsufficientFunds,
        RejectCode.POST_ONLY_WOULD_TAKE: ccxt.InvalidOrder,
        RejectCode.FILL_OR_KILL_UNFILLABLE: ccxt.InvalidOrder,
        RejectCode.PRICE_OFF_TICK: ccxt.InvalidOrder,
        RejectCode.PRICE_OUT_OF_BAND: ccxt.InvalidOrder,
        RejectCode.REDUCE_ONLY_WOULD_INCREASE: ccxt.InvalidOrder,
        RejectCode.QUANTITY_OFF_STEP: ccxt.BadRequest,
        RejectCode.QUANTITY_BELOW_MINIMUM: ccxt.BadRequest,
        RejectCode.UNKNOWN_MARKET: ccxt.BadSymbol,
        RejectCode.UNKNOWN_ORDER: ccxt.ExchangeNotAvailable,  # spec 4.2: ccxt has no OrderNotFound code
        RejectCode.MARKET_NOT_OPEN: ccxt.ExchangeNotAvailable,
        RejectCode.OPEN_ORDER_LIMIT: ccxt.OperationRejected,
    }
    for code, exception in expected.items():
        assert exact[REJECTIONS[code][1]] is exception, code
    assert REJECTIONS[RejectCode.UNKNOWN_ORDER][0] == 404


def test_signing_string_matches_the_spec_example() -> None:
    texts = signing_strings("orderCancel", [("symbol", "BTC_USDT"), ("orderId", "28")], None, "1614550000000", "5000")
    assert texts == [b"instruction=orderCancel&orderId=28&symbol=BTC_USDT&timestamp=1614550000000&window=5000"]
    batch = signing_strings("orderExecute", None, [[("b", "2"), ("a", "1")], [("c", "3")]], "1", "5000")
    assert batch == [b"instruction=orderExecute&a=1&b=2&instruction=orderExecute&c=3&timestamp=1&window=5000"]
    assert signing_strings("x", [("a", "b c")], None, "1", "2") == [
        b"instruction=x&a=b c&timestamp=1&window=2",
        b"instruction=x&a=b%20c&timestamp=1&window=2",
    ]
    assert [render(True), render(7), render("s"), render_query("True"), render_query("False")] == [
        "true",
        "7",
        "s",
        "true",
        "false",
    ]
