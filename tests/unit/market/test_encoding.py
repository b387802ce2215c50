"""The canonical order and cancel encodings: layout, a pinned vector, round trips."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from market import (
    CANCEL_DOMAIN,
    ORDER_DOMAIN,
    ORDER_ENCODING_SIZE,
    CancelRequest,
    InvalidField,
    Order,
    Side,
    decode_order,
    sign_order,
)

from .factories import NOW_S, make_order

VECTOR_MAKER = Keypair.from_seed(bytes([1]) * 32)
VECTOR_ORDER = Order(
    market_id="SOL-USDC",
    side=Side.SELL,
    price_atoms=0x0102030405060708,
    size_atoms=1_000_000,
    maker=VECTOR_MAKER.pubkey(),
    pay_account=Pubkey(b"\xaa" * 32),
    receive_account=Pubkey(b"\xbb" * 32),
    client_order_id=42,
    expiry_s=1_700_000_000,
    nonce=2**64 - 1,
)
VECTOR_BYTES = b"".join(
    [
        b"crank-node:order:v1",
        b"SOL-USDC" + b"\0" * 24,
        b"\x01",  # sell
        bytes.fromhex("0807060504030201"),  # price, little-endian
        bytes.fromhex("40420f0000000000"),  # 1_000_000
        bytes.fromhex("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"),
        b"\xaa" * 32,
        b"\xbb" * 32,
        bytes.fromhex("2a00000000000000"),  # client order id 42
        bytes.fromhex("00f1536500000000"),  # 1_700_000_000
        b"\xff" * 8,  # nonce 2^64 - 1
    ]
)


def test_the_pinned_vector_encodes_to_the_documented_layout() -> None:
    """A fixed order encodes to exactly the field-by-field bytes of the v1 layout, 188 long;
    any change to the encoding breaks every signature ever made, so it must fail here."""
    assert VECTOR_ORDER.encode() == VECTOR_BYTES
    assert len(VECTOR_BYTES) == ORDER_ENCODING_SIZE == 188
    assert VECTOR_BYTES.startswith(ORDER_DOMAIN)


def test_the_pinned_vector_has_a_pinned_order_id_and_signature() -> None:
    """The order id is base58 SHA-256 of the encoding, and ed25519 signing is
    deterministic, so both are fixed strings for the fixed order and key."""
    assert VECTOR_ORDER.order_id == "CtLWfrADDdb9xWEeiyx8oXhbiCnGCcTeGsdz9ES7aPNY"
    assert bytes(Pubkey.from_string(VECTOR_ORDER.order_id)) == hashlib.sha256(VECTOR_BYTES).digest()
    assert str(sign_order(VECTOR_ORDER, VECTOR_MAKER).signature) == (
        "fBp6DVQEK6TP69a49P2RuEt8kY1PGmArJ4cLwZRwuombWRkd3opgKHizxMoKWCk5H9YdzFrbknWwHemBwPPw4RU"
    )


def test_the_order_id_does_not_depend_on_the_signature() -> None:
    """Two different signatures of one order (here: deterministic, so the same) share the
    id, and changing any term such as the nonce changes it."""
    order = make_order()
    assert order.order_id == replace(order).order_id
    assert order.order_id != replace(order, nonce=2).order_id


def test_decoding_an_encoding_gives_back_the_order() -> None:
    """decode_order inverts encode for a typical order."""
    order = make_order(side=Side.SELL)
    assert decode_order(order.encode()) == order


u64 = st.integers(min_value=0, max_value=2**64 - 1)
keys = st.binary(min_size=32, max_size=32).map(Pubkey)
market_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", fullmatch=True)


@given(
    market_id=market_ids,
    side=st.sampled_from(Side),
    price=u64,
    size=u64,
    maker=keys,
    pay=keys,
    receive=keys,
    client_order_id=u64,
    expiry=u64,
    nonce=u64,
)
def test_every_representable_order_round_trips_through_its_encoding(
    market_id: str,
    side: Side,
    price: int,
    size: int,
    maker: Pubkey,
    pay: Pubkey,
    receive: Pubkey,
    client_order_id: int,
    expiry: int,
    nonce: int,
) -> None:
    """For any field values the encoding can hold, decode(encode(order)) == order and the
    encoding is always 188 bytes."""
    order = Order(market_id, side, price, size, maker, pay, receive, client_order_id, expiry, nonce)
    encoded = order.encode()
    assert len(encoded) == ORDER_ENCODING_SIZE
    assert decode_order(encoded) == order


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (VECTOR_BYTES[:-1], "order"),
        (b"crank-node:order:v2" + VECTOR_BYTES[19:], "order"),
        (VECTOR_BYTES[:51] + b"\x02" + VECTOR_BYTES[52:], "side"),
        (VECTOR_BYTES[:19] + b"SOL\xffUSDC" + VECTOR_BYTES[27:], "market_id"),
        (VECTOR_BYTES[:19] + b"SOL\0USDC" + VECTOR_BYTES[27:], "market_id"),
    ],
    ids=["short", "other-version", "bad-side", "non-ascii-market", "nul-inside-market"],
)
def test_decoding_bad_bytes_names_the_field(data: bytes, field: str) -> None:
    """Truncated data, another version's prefix, an unknown side byte or a malformed
    market id are refused, naming the field."""
    with pytest.raises(InvalidField) as refused:
        decode_order(data)
    assert refused.value.field == field


def test_a_cancel_encodes_to_its_documented_layout() -> None:
    """A cancel is its own domain prefix, the order id's 32 bytes, the maker and the
    little-endian timestamp: 92 bytes."""
    order = make_order()
    request = CancelRequest(order.order_id, order.maker, NOW_S)
    assert request.encode() == (
        CANCEL_DOMAIN
        + bytes(Pubkey.from_string(order.order_id))
        + bytes(order.maker)
        + NOW_S.to_bytes(8, "little")
    )
    assert len(request.encode()) == 92


def test_order_and_cancel_encodings_never_collide() -> None:
    """The two domain prefixes differ, so no byte string is both an order and a cancel."""
    assert not ORDER_DOMAIN.startswith(CANCEL_DOMAIN)
    assert not CANCEL_DOMAIN.startswith(ORDER_DOMAIN)
    assert ORDER_DOMAIN[:11] == CANCEL_DOMAIN[:11] == b"crank-node:"
