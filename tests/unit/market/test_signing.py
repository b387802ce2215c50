"""Maker signatures on orders and cancels: they verify, and nothing else does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from solders.pubkey import Pubkey

from market import (
    BadSignature,
    CancelRequest,
    Side,
    SignedCancel,
    SignedOrder,
    WrongSigner,
    sign_cancel,
    sign_order,
)

from .factories import MAKERS, NOW_S, make_order

TAMPERS: dict[str, Any] = {
    "market_id": "SOL-USDT",
    "side": Side.SELL,
    "price_atoms": 1_010,
    "size_atoms": 6_000,
    "maker": MAKERS[1].pubkey(),
    "pay_account": Pubkey(b"\x01" * 32),
    "receive_account": Pubkey(b"\x02" * 32),
    "client_order_id": 8,
    "expiry_s": NOW_S + 3_601,
    "nonce": 2,
}


def test_a_signed_order_verifies_against_its_maker() -> None:
    """sign_order with the maker's keypair gives a signature that verify accepts."""
    signed = sign_order(make_order(), MAKERS[0])
    assert signed.is_signed_by_maker()
    signed.verify()


def test_every_order_field_is_covered_by_the_signature() -> None:
    """Changing any one field after signing makes verification fail with BadSignature
    naming the signature field."""
    signed = sign_order(make_order(), MAKERS[0])
    assert set(TAMPERS) == {field.name for field in dataclasses.fields(signed.order)}
    for field, value in TAMPERS.items():
        tampered = SignedOrder(
            dataclasses.replace(signed.order, **{field: value}), signed.signature
        )
        with pytest.raises(BadSignature) as refused:
            tampered.verify()
        assert refused.value.field == "signature", field


def test_signing_with_someone_elses_keypair_is_refused() -> None:
    """sign_order refuses a keypair that is not the order's maker, naming the maker field."""
    with pytest.raises(WrongSigner) as refused:
        sign_order(make_order(), MAKERS[1])
    assert refused.value.field == "maker"


def test_a_signature_over_the_cancel_cannot_pass_as_the_order_signature() -> None:
    """Domain separation: the maker's valid cancel signature does not verify as an order."""
    order = make_order()
    cancel = sign_cancel(CancelRequest(order.order_id, order.maker, NOW_S), MAKERS[0])
    assert not SignedOrder(order, cancel.signature).is_signed_by_maker()


def test_a_signed_cancel_verifies_and_a_tampered_one_does_not() -> None:
    """A cancel signed by the maker verifies; the same signature over a later timestamp
    or another order id does not."""
    order = make_order()
    signed = sign_cancel(CancelRequest(order.order_id, order.maker, NOW_S), MAKERS[0])
    signed.verify()
    for tampered in (
        dataclasses.replace(signed.request, timestamp_s=NOW_S + 1),
        dataclasses.replace(signed.request, order_id=make_order(nonce=9).order_id),
    ):
        with pytest.raises(BadSignature):
            SignedCancel(tampered, signed.signature).verify()


def test_signing_a_cancel_with_someone_elses_keypair_is_refused() -> None:
    """sign_cancel refuses a keypair that is not the request's maker."""
    order = make_order()
    with pytest.raises(WrongSigner) as refused:
        sign_cancel(CancelRequest(order.order_id, order.maker, NOW_S), MAKERS[2])
    assert refused.value.field == "maker"
