"""The maker-feedback routes over HTTP (issue 17): the OpenAPI document as served,
an order's fills, a maker's fills by cursor, and a signed cancel-all."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from solders.keypair import Keypair

from market.cancel_all import CancelAllRequest, sign_cancel_all
from tests.integration.intake.conftest import MARKET_ID, Desk
from tests.signed_cancels import assert_cancel_holds

pytestmark = pytest.mark.localnet(advance_slots=10)


CHECKED_IN = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_served_openapi_json_is_the_checked_in_one(desk: Desk) -> None:
    """GET /openapi.json answers exactly docs/openapi.json: a drift fails here."""
    code, served = desk.get("/openapi.json")

    assert code == 200
    assert served == json.loads(CHECKED_IN.read_text())


def test_an_order_without_fills_lists_none_and_an_unknown_order_is_404(desk: Desk) -> None:
    """GET /orders/{id}/fills: [] for a resting order; 404 order_not_found otherwise."""
    signed = desk.signed()
    assert desk.post("/orders", signed.to_json())[0] == 201

    assert desk.get(f"/orders/{signed.order_id}/fills") == (
        200,
        {"order_id": signed.order_id, "fills": []},
    )
    code, body = desk.get(f"/orders/{Keypair().pubkey()}/fills")
    assert (code, body["error"]["code"]) == (404, "order_not_found")


def test_a_makers_fills_answer_a_cursor_and_refuse_one_not_given_out(desk: Desk) -> None:
    """GET /fills?maker= answers a cursor that is accepted back; a forged one is 400
    bad_cursor naming ``since``; a missing maker is 400 naming ``maker``."""
    maker = str(desk.maker.pubkey())
    code, page = desk.get(f"/fills?maker={maker}")
    assert (code, page["fills"]) == (200, [])

    assert desk.get(f"/fills?maker={maker}&since={page['cursor']}")[0] == 200
    code, bad = desk.get(f"/fills?maker={maker}&since=bm90LWEtY3Vyc29y")
    assert (code, bad["error"]["field"], bad["error"]["code"]) == (400, "since", "bad_cursor")
    code, missing = desk.get("/fills")
    assert (code, missing["error"]["field"]) == (400, "maker")


def test_cancel_all_signed_by_the_maker_cancels_its_open_orders_in_the_market(
    desk: Desk,
) -> None:
    """A signed cancel-all cancels the maker's two open orders and answers their ids; a
    forged one is 422 bad_signature and cancels nothing."""
    orders = [desk.signed(nonce=n, client_order_id=n) for n in (1, 2)]
    for order in orders:
        assert desk.post("/orders", order.to_json())[0] == 201
    request = CancelAllRequest(MARKET_ID, desk.maker.pubkey(), int(time.time()) + 1)
    forged = sign_cancel_all(CancelAllRequest(MARKET_ID, desk.maker.pubkey(), 5), desk.maker)
    document = {**forged.to_json(), "timestamp_s": request.timestamp_s}

    code, refused = desk.post("/orders/cancel-all", document)
    assert (code, refused["error"]["code"]) == (422, "bad_signature")
    assert {desk.get(f"/orders/{o.order_id}")[1]["status"] for o in orders} == {"open"}

    code, body = desk.post("/orders/cancel-all", sign_cancel_all(request, desk.maker).to_json())

    assert code == 200, body
    assert body["cancelled"] == sorted(order.order_id for order in orders)
    assert {desk.get(f"/orders/{o.order_id}")[1]["status"] for o in orders} == {"cancelled"}
    for order in orders:  # the signed cancel-all is stored with each, and holds
        assert_cancel_holds(desk.engine, order.order_id)
