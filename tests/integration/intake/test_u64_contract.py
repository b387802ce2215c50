"""u64 fields over HTTP (issue 17): JSON integers up to 2^53 or decimal strings up to
2^64-1 in, decimal strings out; a number above 2^53 refused saying to send a string;
every refusal with a stable ``code``."""

from __future__ import annotations

import json

import pytest

from market import SignedOrder
from tests.integration.intake.conftest import MARKET_ID, SIZE_ATOMS, Desk

pytestmark = pytest.mark.localnet(advance_slots=10)


NONCE_PAST_2_53 = 2**53 + 1  # 9007199254740993: a JavaScript number rounds it to ...992


def test_a_nonce_past_2_53_sent_as_a_decimal_string_is_stored_exactly(desk: Desk) -> None:
    """The issue's case: the signed nonce 9007199254740993 as a string is 201, stored
    and answered as the same string, under the id computed from the exact terms."""
    signed = desk.signed(nonce=NONCE_PAST_2_53)
    document = {
        key: str(value) if isinstance(value, int) else value
        for key, value in signed.to_json().items()
    }

    code, body = desk.post("/orders", document)

    assert code == 201, body
    assert (body["order_id"], body["nonce"]) == (signed.order_id, str(NONCE_PAST_2_53))
    assert SignedOrder.from_json({key: body[key] for key in document}) == signed


def test_a_json_number_above_2_53_is_refused_saying_to_send_a_string(desk: Desk) -> None:
    """9007199254740993 as a JSON number is 400 ``number_out_of_range`` naming ``nonce``,
    its reason says to send a decimal string, and nothing is stored."""
    code, body = desk.post("/orders", desk.signed(nonce=NONCE_PAST_2_53).to_json())

    assert code == 400
    assert body["error"]["field"] == "nonce"
    assert body["error"]["code"] == "number_out_of_range"
    assert "decimal string" in body["error"]["reason"]
    assert desk.orders_table() == []


def test_u64s_are_answered_as_decimal_strings_in_orders_and_the_book(desk: Desk) -> None:
    """An order read back and the book's levels carry u64s as strings."""
    signed = desk.signed()
    assert desk.post("/orders", signed.to_json())[0] == 201

    _, order = desk.get(f"/orders/{signed.order_id}")
    _, book = desk.get(f"/markets/{MARKET_ID}/book")

    u64_keys = (
        "price_atoms",
        "size_atoms",
        "remaining_atoms",
        "client_order_id",
        "expiry_s",
        "nonce",
    )
    assert all(isinstance(order[key], str) for key in u64_keys), order
    assert book["bids"] == [
        {
            "price_atoms": str(signed.order.price_atoms),
            "size_atoms": str(SIZE_ATOMS),
            "order_count": 1,
        }
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/orders", b"{", 400, "malformed_json"),
        ("POST", "/orders", b"{}", 400, "missing_field"),
        ("GET", "/orders/11111111111111111111111111111111", None, 404, "order_not_found"),
        ("GET", "/markets/NOPE/book", None, 404, "unknown_market"),
        ("GET", "/no/such/route", None, 404, "not_found"),
        ("DELETE", "/orders", None, 405, "method_not_allowed"),
    ],
)
def test_every_refusal_has_one_shape_with_a_stable_code(
    desk: Desk, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    """Refusals from our routes and from aiohttp's router alike are
    ``{"error": {field, reason, type, code}}``."""
    answer_status, answer = desk.raw_request(method, path, body)

    assert answer_status == status, answer
    assert set(answer["error"]) == {"field", "reason", "type", "code"}
    assert answer["error"]["code"] == code, json.dumps(answer)
