"""JSON forms of orders, cancels and markets: round trips, and parse errors that name
the field."""

from __future__ import annotations

import json

import pytest

from market import (
    BadBase58,
    CancelRequest,
    InvalidField,
    Market,
    MissingField,
    NumberOutOfRange,
    Order,
    SignedCancel,
    SignedOrder,
    UnknownField,
    WrongFieldType,
    sign_cancel,
)

from .factories import MAKERS, NOW_S, make_market, make_order, signed


def test_a_signed_order_round_trips_through_json_text() -> None:
    """to_json gives base58 keys and plain integers; through json text and back it is
    the same signed order, still verifying."""
    original = signed(make_order())
    document = original.to_json()
    assert document["price_atoms"] == 1_000 and document["side"] == "buy"
    assert document["maker"] == str(MAKERS[0].pubkey())
    parsed = SignedOrder.from_json(json.loads(json.dumps(document)))
    assert parsed == original
    parsed.verify()


def test_an_unsigned_order_round_trips_through_json() -> None:
    """Order.to_json has exactly the ten signed fields, and from_json inverts it."""
    order = make_order()
    assert len(order.to_json()) == 10
    assert Order.from_json(order.to_json()) == order


def test_a_signed_cancel_and_a_market_round_trip_through_json() -> None:
    """Cancels and markets have JSON forms too, inverted by from_json."""
    order = make_order()
    cancel = sign_cancel(CancelRequest(order.order_id, order.maker, NOW_S), MAKERS[0])
    assert SignedCancel.from_json(json.loads(json.dumps(cancel.to_json()))) == cancel
    assert Market.from_json(make_market().to_json()) == make_market()


def _order_document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = dict(signed(make_order()).to_json())
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"price_atoms": -5}, NumberOutOfRange, "price_atoms"),
        ({"size_atoms": 2**64}, NumberOutOfRange, "size_atoms"),
        ({"nonce": "01"}, WrongFieldType, "nonce"),
        ({"nonce": " 1"}, WrongFieldType, "nonce"),
        ({"nonce": "1_000"}, WrongFieldType, "nonce"),
        ({"nonce": "-1"}, WrongFieldType, "nonce"),
        ({"nonce": "\u0665"}, WrongFieldType, "nonce"),
        ({"nonce": "1e3"}, WrongFieldType, "nonce"),
        ({"size_atoms": str(2**64)}, NumberOutOfRange, "size_atoms"),
        ({"expiry_s": 1.5}, WrongFieldType, "expiry_s"),
        ({"client_order_id": True}, WrongFieldType, "client_order_id"),
        ({"maker": 12}, WrongFieldType, "maker"),
        ({"pay_account": "0OIl"}, BadBase58, "pay_account"),
        ({"receive_account": "abc"}, BadBase58, "receive_account"),
        ({"signature": "1111"}, BadBase58, "signature"),
        ({"side": "bid"}, InvalidField, "side"),
        ({"market_id": "no spaces"}, InvalidField, "market_id"),
        ({"market_id": None}, WrongFieldType, "market_id"),
        ({"comment": "hi"}, UnknownField, "comment"),
    ],
)
def test_a_bad_field_in_an_order_document_is_refused_by_name(
    changes: dict[str, object], error: type[Exception], field: str
) -> None:
    """Each kind of bad value raises its MalformedJson/InvalidField subclass with the
    offending key as ``field`` and in the message."""
    with pytest.raises(error) as refused:
        SignedOrder.from_json(_order_document(**changes))
    assert getattr(refused.value, "field", None) == field
    assert str(refused.value).startswith(f"{field}: ")


@pytest.mark.parametrize("missing", ["market_id", "price_atoms", "maker", "nonce", "signature"])
def test_a_missing_field_is_refused_by_name(missing: str) -> None:
    """Dropping any required key raises MissingField naming it."""
    document = _order_document()
    del document[missing]
    with pytest.raises(MissingField) as refused:
        SignedOrder.from_json(document)
    assert refused.value.field == missing


def test_a_document_that_is_not_an_object_is_refused() -> None:
    """A JSON array where an order should be names the whole document, ``order``."""
    with pytest.raises(WrongFieldType) as refused:
        SignedOrder.from_json([1, 2])
    assert refused.value.field == "order"
    assert "array" in str(refused.value)


def test_a_non_canonical_base58_spelling_is_refused() -> None:
    """Base58 with the right length but not as solders writes it is refused, so one key or
    id always has one spelling in the database."""
    maker = str(MAKERS[0].pubkey())
    document = _order_document(maker="1" + maker)
    with pytest.raises(BadBase58) as refused:
        SignedOrder.from_json(document)
    assert refused.value.field == "maker"


def test_a_cancel_with_a_bad_order_id_is_refused_by_name() -> None:
    """The cancel's order_id must be base58 of 32 bytes."""
    document = {"order_id": "xyz", "maker": str(MAKERS[0].pubkey()), "timestamp_s": NOW_S}
    with pytest.raises(BadBase58) as refused:
        CancelRequest.from_json(document)
    assert refused.value.field == "order_id"


def test_a_market_document_with_a_zero_lot_is_refused_by_name() -> None:
    """Market.from_json applies the same construction checks as Market()."""
    document = {**make_market().to_json(), "lot_size_atoms": 0}
    with pytest.raises(InvalidField) as refused:
        Market.from_json(document)
    assert refused.value.field == "lot_size_atoms"


@pytest.mark.parametrize("value", [0, 1, 2**53 + 1, 2**64 - 1])
def test_a_u64_is_read_from_a_json_integer_or_its_decimal_string_alike(value: int) -> None:
    """``"9007199254740993"`` and ``9007199254740993`` are the same nonce (docs/API.md:
    JavaScript clients send u64s as strings)."""
    as_number = SignedOrder.from_json(_order_document(nonce=value, size_atoms=value))
    as_string = SignedOrder.from_json(_order_document(nonce=str(value), size_atoms=str(value)))

    assert as_number == as_string
    assert as_string.order.nonce == value
