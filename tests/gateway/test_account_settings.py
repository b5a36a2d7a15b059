"""PATCH /api/v1/account sets the leverage limit on a live served node (real HTTP, signed
as Backpack signs), GET /api/v1/account shows it, and an order beyond it is refused with
the error ccxt maps to InsufficientFunds; bad values are 400s that change nothing."""

from __future__ import annotations

from typing import Any

from gateway_support import Api, Key, error_of


def account_settings(api: Api, key: Key) -> dict[str, Any]:
    answer = api.signed(key, "GET", "/api/v1/account", "accountQuery")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def update(api: Api, key: Key, **fields: Any) -> Any:
    return api.signed(key, "PATCH", "/api/v1/account", "accountUpdate", fields)


def test_the_leverage_limit_is_set_shown_and_enforced(api: Api) -> None:
    prices = api.signed(api.operator, "POST", "/operator/v1/indexPrices", "operatorIndexPrices", {"prices": "SOL=100"})
    assert prices.status_code == 200, prices.text
    key = api.account(USDC="100")
    other = api.account(USDC="100")
    default = account_settings(api, key)["leverageLimit"]
    assert default == "50"  # with no limit of its own: 1 / the perpetuals' 2% base initial margin

    order = {"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit", "price": "99", "quantity": "5.01"}
    accepted = api.order(other, **order)  # 501 USDC at the mark: fine at 50x
    assert accepted.status_code == 200, accepted.text

    for wrong in ("0", "101", "2.5", "ten", "-3"):
        refused = update(api, key, leverageLimit=wrong)
        assert error_of(refused) == (400, "INVALID_CLIENT_REQUEST"), (wrong, refused.text)
        assert "leverageLimit must be a whole number from 1 to 100" in refused.json()["message"]
    assert account_settings(api, key)["leverageLimit"] == default
    turned_on = update(api, key, autoLend=True)
    assert error_of(turned_on)[0] == 400 and "autoLend is not available" in turned_on.json()["message"]

    done = update(api, key, leverageLimit="5", autoLend=False)
    assert (done.status_code, done.content) == (200, b"")
    assert account_settings(api, key)["leverageLimit"] == "5"
    assert account_settings(api, other)["leverageLimit"] == default  # one account's setting only

    beyond = api.order(key, **order)  # 501 USDC of notional needs 100.20 USDC at 5x
    assert error_of(beyond) == (400, "INSUFFICIENT_MARGIN"), beyond.text
    assert "100.2 USDC of initial margin" in beyond.json()["message"]
    within = api.order(key, **{**order, "quantity": "5"})
    assert within.status_code == 200, within.text
