"""validate_order and validate_cancel: every refusal names its field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from solders.pubkey import Pubkey

from market import (
    BadSignature,
    CancelExpired,
    CancelRequest,
    DuplicateClientOrderId,
    InvalidField,
    InvalidPrice,
    InvalidSize,
    MarketError,
    OrderExpired,
    Side,
    SignedOrder,
    TokenAccount,
    UnknownMarket,
    WrongAccountMint,
    WrongAccountOwner,
    WrongSigner,
    decode_token_account,
    sign_cancel,
    validate_cancel,
    validate_order,
)

from .factories import (
    BASE_MINT,
    LOT_ATOMS,
    MAKERS,
    NOW_S,
    QUOTE_MINT,
    make_market,
    make_order,
    signed,
    token_account_data,
)

MARKETS = {"SOL-USDC": make_market()}


def test_a_good_order_is_accepted_and_its_market_returned() -> None:
    """A signed, on-tick, whole-lot, unexpired, new order passes and names its market."""
    assert validate_order(signed(make_order()), markets=MARKETS, now_s=NOW_S) is MARKETS["SOL-USDC"]


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"market_id": "BTC-USDC"}, UnknownMarket, "market_id"),
        ({"price_atoms": 0}, InvalidPrice, "price_atoms"),
        ({"price_atoms": 1_005}, InvalidPrice, "price_atoms"),
        ({"size_atoms": 0}, InvalidSize, "size_atoms"),
        ({"size_atoms": 5_500}, InvalidSize, "size_atoms"),
        ({"price_atoms": 10 * 2**60, "size_atoms": 4 * LOT_ATOMS}, InvalidSize, "size_atoms"),
        ({"expiry_s": NOW_S}, OrderExpired, "expiry_s"),
        ({"expiry_s": NOW_S - 1}, OrderExpired, "expiry_s"),
    ],
    ids=[
        "unknown-market",
        "zero-price",
        "off-tick",
        "zero-size",
        "partial-lot",
        "quote-overflows-u64",
        "expires-now",
        "expired",
    ],
)
def test_each_bad_term_is_refused_by_name(
    changes: dict[str, Any], error: type[MarketError], field: str
) -> None:
    """The order (validly signed) is refused with the specific error naming the field."""
    with pytest.raises(error) as refused:
        validate_order(signed(make_order(**changes)), markets=MARKETS, now_s=NOW_S)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_a_bad_signature_is_refused_by_name() -> None:
    """An order whose signature is another order's fails with BadSignature on signature."""
    forged = SignedOrder(make_order(nonce=2), signed(make_order()).signature)
    with pytest.raises(BadSignature) as refused:
        validate_order(forged, markets=MARKETS, now_s=NOW_S)
    assert refused.value.field == "signature"


def test_a_duplicate_client_order_id_is_refused_with_a_set_or_a_predicate() -> None:
    """(maker, client_order_id) already taken, given as a set or as a predicate, is
    refused naming client_order_id; another id of the same maker passes."""
    order = make_order()
    taken = {(order.maker, order.client_order_id)}
    for existing in (taken, lambda maker, client_id: (maker, client_id) in taken):
        with pytest.raises(DuplicateClientOrderId) as refused:
            validate_order(signed(order), markets=MARKETS, now_s=NOW_S, existing=existing)
        assert refused.value.field == "client_order_id"
        fresh = signed(make_order(client_order_id=8))
        validate_order(fresh, markets=MARKETS, now_s=NOW_S, existing=existing)


def _account(address: Pubkey, mint: Pubkey, owner: Pubkey) -> TokenAccount:
    return decode_token_account(address, token_account_data(mint, owner, 0))


def test_token_accounts_of_the_wrong_mint_or_owner_are_refused_by_name() -> None:
    """A buy's pay account holding base (not quote) names pay_account; a receive account
    owned by someone else names receive_account; the right pair passes."""
    order = make_order(Side.BUY)
    good_pay = _account(order.pay_account, QUOTE_MINT, order.maker)
    good_receive = _account(order.receive_account, BASE_MINT, order.maker)
    cases = [
        (
            _account(order.pay_account, BASE_MINT, order.maker),
            good_receive,
            WrongAccountMint,
            "pay_account",
        ),
        (
            good_pay,
            _account(order.receive_account, BASE_MINT, MAKERS[1].pubkey()),
            WrongAccountOwner,
            "receive_account",
        ),
    ]
    for pay, receive, error, field in cases:
        with pytest.raises(error) as refused:
            validate_order(
                signed(order),
                markets=MARKETS,
                now_s=NOW_S,
                pay_account=pay,
                receive_account=receive,
            )
        assert refused.value.field == field
    validate_order(
        signed(order),
        markets=MARKETS,
        now_s=NOW_S,
        pay_account=good_pay,
        receive_account=good_receive,
    )


def test_a_fresh_cancel_by_the_maker_is_accepted() -> None:
    """Signed by the order's maker within the time window: no error."""
    order = make_order()
    cancel = sign_cancel(CancelRequest(order.order_id, order.maker, NOW_S - 10), MAKERS[0])
    validate_cancel(cancel, order, now_s=NOW_S)


def test_each_bad_cancel_is_refused_by_name() -> None:
    """Another order's id, another maker, a stale or future timestamp and a forged
    signature each name their field."""
    order = make_order()
    request = CancelRequest(order.order_id, order.maker, NOW_S)
    other_maker = replace(request, maker=MAKERS[1].pubkey())
    cases = [
        (
            sign_cancel(replace(request, order_id=make_order(nonce=5).order_id), MAKERS[0]),
            InvalidField,
            "order_id",
        ),
        (sign_cancel(other_maker, MAKERS[1]), WrongSigner, "maker"),
        (
            sign_cancel(replace(request, timestamp_s=NOW_S - 301), MAKERS[0]),
            CancelExpired,
            "timestamp_s",
        ),
        (
            sign_cancel(replace(request, timestamp_s=NOW_S + 31), MAKERS[0]),
            CancelExpired,
            "timestamp_s",
        ),
        (
            replace(sign_cancel(request, MAKERS[0]), signature=signed(order).signature),
            BadSignature,
            "signature",
        ),
    ]
    for cancel, error, field in cases:
        with pytest.raises(error) as refused:
            validate_cancel(cancel, order, now_s=NOW_S)
        assert refused.value.field == field
