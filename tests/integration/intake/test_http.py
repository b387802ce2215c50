"""Order intake over HTTP: the node's real aiohttp server, a real database (SQLite and
PostgreSQL), real token accounts on localnet read through a real RpcRouter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import update

import storage
from actors.rpc import RpcClient
from actors.rpc.classify import ErrorKind
from actors.rpc.messages import RpcFailure
from crank_node.node.http_server import STATUS_CODES
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_errors import ERROR_CODES
from market import CancelRequest, SignedCancel, SignedOrder, sign_cancel
from storage.models import Market as MarketRow
from storage.models import Order as OrderRow
from tests.integration.intake.conftest import (
    LOT_ATOMS,
    MARKET_ID,
    PRICE_ATOMS,
    SIZE_ATOMS,
    TICK_ATOMS,
    Desk,
)
from tests.signed_cancels import UNCHECKED, assert_cancel_holds

pytestmark = pytest.mark.localnet(advance_slots=10)


Changes = Callable[[Desk], dict[str, Any]]


def assert_refused(answer: tuple[int, Any], status: int, field: str | None, kind: str) -> None:
    code, body = answer
    assert code == status, body
    assert set(body) == {"error"}
    assert body["error"]["field"] == field
    assert body["error"]["type"] == kind
    assert body["error"]["reason"]
    assert body["error"]["code"] in ERROR_CODES + tuple(STATUS_CODES.values()), body
    assert "Traceback" not in body["error"]["reason"]


# -- submitting ----------------------------------------------------------------------------


def test_a_valid_signed_order_is_stored_open_and_answered_201(desk: Desk) -> None:
    """POST /orders with a good order answers 201 with the stored order: its id (from
    its terms), status open, nothing filled yet, and every signed term; it is in the table."""
    signed = desk.signed()

    code, body = desk.post("/orders", signed.to_json())

    assert code == 201, body
    assert body["order_id"] == signed.order_id
    assert (body["status"], body["remaining_atoms"]) == ("open", str(SIZE_ATOMS))
    assert SignedOrder.from_json({key: body[key] for key in signed.to_json()}) == signed
    assert body["price_atoms"] == str(signed.order.price_atoms)  # u64s answered as strings
    stored = storage.get_order(desk.engine, signed.order_id)
    assert stored is not None and stored.signed == signed


ORDER_REFUSALS = [
    pytest.param(
        lambda d: {"market_id": "NO-SUCH"}, "market_id", 404, "UnknownMarket", id="unknown_market"
    ),
    pytest.param(lambda d: {"price_atoms": 0}, "price_atoms", 422, "InvalidPrice", id="zero_price"),
    pytest.param(
        lambda d: {"price_atoms": PRICE_ATOMS + 1},
        "price_atoms",
        422,
        "InvalidPrice",
        id="price_off_the_tick",
    ),
    pytest.param(lambda d: {"size_atoms": 0}, "size_atoms", 422, "InvalidSize", id="zero_size"),
    pytest.param(
        lambda d: {"size_atoms": SIZE_ATOMS + 1},
        "size_atoms",
        422,
        "InvalidSize",
        id="size_off_the_lot",
    ),
    pytest.param(lambda d: {"expiry_s": 1}, "expiry_s", 422, "OrderExpired", id="expired"),
    pytest.param(
        lambda d: {"pay_account": d.base_account},
        "pay_account",
        422,
        "WrongAccountMint",
        id="pay_account_of_the_wrong_mint",
    ),
    pytest.param(
        lambda d: {"receive_account": d.quote_account},
        "receive_account",
        422,
        "WrongAccountMint",
        id="receive_account_of_the_wrong_mint",
    ),
    pytest.param(
        lambda d: {"pay_account": d.stranger_quote_account},
        "pay_account",
        422,
        "WrongAccountOwner",
        id="pay_account_of_another_owner",
    ),
    pytest.param(
        lambda d: {"receive_account": Keypair().pubkey()},
        "receive_account",
        422,
        "InvalidTokenAccount",
        id="receive_account_missing_on_chain",
    ),
]


@pytest.mark.parametrize(("changes", "field", "status", "kind"), ORDER_REFUSALS)
def test_an_invalid_order_is_refused_naming_the_field_and_nothing_is_stored(
    desk: Desk, changes: Changes, field: str, status: int, kind: str
) -> None:
    """Each validation error answers its 4xx with a JSON error naming the field, and
    the orders table is exactly as before."""
    before = desk.orders_table()

    answer = desk.post("/orders", desk.signed(**changes(desk)).to_json())

    assert_refused(answer, status, field, kind)
    assert desk.orders_table() == before


def test_an_order_signed_by_another_key_is_refused_naming_the_signature(desk: Desk) -> None:
    """A signature that does not verify against the maker's key (another key signed the
    terms) is 422 BadSignature naming ``signature``; nothing is stored."""
    order = desk.buy()
    forged = SignedOrder(order, Keypair().sign_message(order.encode()))

    answer = desk.post("/orders", forged.to_json())

    assert_refused(answer, 422, "signature", "BadSignature")
    assert desk.orders_table() == []


def test_an_order_whose_terms_were_changed_after_signing_is_refused(desk: Desk) -> None:
    """The maker's signature of other terms (the price raised in transit) does not
    verify: 422 naming ``signature``."""
    document = desk.signed().to_json()
    document["price_atoms"] = PRICE_ATOMS + TICK_ATOMS

    assert_refused(desk.post("/orders", document), 422, "signature", "BadSignature")
    assert desk.orders_table() == []


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        pytest.param({"lot_size_atoms": 1}, "a field was changed after signing", id="lot_edited"),
        pytest.param({"definition_signature": None}, "is not signed", id="signature_removed"),
    ],
)
def test_an_order_for_a_market_whose_row_its_authority_did_not_sign_is_refused(
    desk: Desk, edit: dict[str, Any], why: str
) -> None:
    """A markets row edited in the shared database after it was signed (the lot cut to
    one atom: 1000 times the price per atom) is a market no node matches or settles
    (OrderMonitor and MatchActor refuse it): intake refuses its orders as of an unknown
    market, saying why, instead of storing orders that can never trade."""
    with desk.engine.begin() as connection:
        connection.execute(update(MarketRow).where(MarketRow.id == MARKET_ID).values(**edit))

    code, body = desk.post("/orders", desk.signed(size_atoms=SIZE_ATOMS).to_json())

    assert_refused((code, body), 404, "market_id", "UnknownMarket")
    assert why in body["error"]["reason"], body
    assert desk.orders_table() == []


def test_a_second_order_with_the_same_client_order_id_is_refused_as_a_duplicate(
    desk: Desk,
) -> None:
    """The maker's second order with a client order id already used (other terms, other
    nonce) is 409 naming ``client_order_id``; only the first is stored."""
    assert desk.post("/orders", desk.signed().to_json())[0] == 201
    before = desk.orders_table()

    answer = desk.post("/orders", desk.signed(nonce=2, price_atoms=2 * PRICE_ATOMS).to_json())

    assert_refused(answer, 409, "client_order_id", "DuplicateClientOrderId")
    assert desk.orders_table() == before


def test_a_second_order_with_the_same_nonce_is_refused_naming_the_nonce(desk: Desk) -> None:
    """A nonce the maker already used (with another client order id) is 409 naming
    ``nonce``, found by the database's unique index; nothing more is stored."""
    assert desk.post("/orders", desk.signed().to_json())[0] == 201
    before = desk.orders_table()

    answer = desk.post("/orders", desk.signed(client_order_id=2).to_json())

    assert_refused(answer, 409, "nonce", "DuplicateEntry")
    assert desk.orders_table() == before


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


def _setting(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        pytest.param(_without("nonce"), "nonce", "MissingField", id="missing_field"),
        pytest.param(_setting("colour", "red"), "colour", "UnknownField", id="unknown_field"),
        pytest.param(
            _setting("price_atoms", "1e4"),
            "price_atoms",
            "WrongFieldType",
            id="price_as_a_non_decimal_string",
        ),
        pytest.param(
            _setting("size_atoms", 1.5), "size_atoms", "WrongFieldType", id="size_as_a_float"
        ),
        pytest.param(
            _setting("price_atoms", -1), "price_atoms", "NumberOutOfRange", id="negative_price"
        ),
        pytest.param(
            _setting("pay_account", "not-base58!"),
            "pay_account",
            "BadBase58",
            id="pay_account_not_base58",
        ),
        pytest.param(_setting("side", "short"), "side", "InvalidField", id="unknown_side"),
        pytest.param(
            _setting("signature", "1111"), "signature", "BadBase58", id="signature_too_short"
        ),
    ],
)
def test_a_malformed_order_document_is_400_naming_the_field(
    desk: Desk, change: Callable[[dict[str, Any]], None], field: str, kind: str
) -> None:
    """JSON that does not read as a signed order is 400 naming the key at fault."""
    document = desk.signed().to_json()
    change(document)

    assert_refused(desk.post("/orders", document), 400, field, kind)
    assert desk.orders_table() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"{not json", "body", id="not_json"),
        pytest.param(b"\xff\xfe", "body", id="not_utf8"),
        pytest.param(b'{"nonce": ' + b"9" * 5_000 + b"}", "body", id="integer_of_5000_digits"),
        # Within the 16 KiB body bound (a bigger body is 413: test_http_abuse.py).
        pytest.param(b"[" * 8_000 + b"]" * 8_000, "body", id="nested_8000_deep"),
        pytest.param(b"[1, 2]", "order", id="an_array"),
        pytest.param(b"null", "order", id="null"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(desk: Desk, body: bytes, field: str) -> None:
    """Not JSON at all names ``body``; JSON that is not an object names ``order``."""
    code, answer = desk.raw_request("POST", "/orders", body)

    assert code == 400
    assert answer["error"]["field"] == field
    assert desk.orders_table() == []


def test_a_nonce_too_large_for_the_table_is_refused_naming_the_nonce(desk: Desk) -> None:
    """A u64 nonce past 2^63-1 (the column is a signed BIGINT) is 400 naming ``nonce``,
    not a database error."""
    answer = desk.post("/orders", desk.signed(nonce=2**63).to_json())

    assert_refused(answer, 400, "nonce", "NumberOutOfRange")
    assert desk.orders_table() == []


class FailingRouter:
    """A router that answers every request with a failure (the chain is unreachable)."""

    def tell(self, message: Any) -> None:
        message.reply(RpcFailure(ErrorKind.UNAVAILABLE, "injected by the test", 1, 0.0))


def test_when_the_chain_cannot_be_read_the_order_is_503_and_not_stored(
    desk: Desk, serve: Any
) -> None:
    """An RPC failure while checking the token accounts is 503 IntakeUnavailable (retry
    later), never a refusal of the order, and nothing is stored."""
    server = serve(OrderIntake(desk.engine, rpc=RpcClient(FailingRouter())))
    desk.server = server

    answer = desk.post("/orders", desk.signed().to_json())

    assert_refused(answer, 503, None, "IntakeUnavailable")
    assert "retry" in answer[1]["error"]["reason"]
    assert desk.orders_table() == []


def test_without_an_rpc_client_intake_stores_without_the_chain_checks(
    desk: Desk, serve: Any
) -> None:
    """Intake built with rpc=None skips the token account checks (the rest still holds)."""
    desk.server = serve(OrderIntake(desk.engine, rpc=None))

    assert desk.post("/orders", desk.signed(pay_account=desk.base_account).to_json())[0] == 201
    assert_refused(
        desk.post("/orders", desk.signed(nonce=2, price_atoms=0).to_json()),
        422,
        "price_atoms",
        "InvalidPrice",
    )


def test_every_order_route_is_503_until_the_node_sets_intake(desk: Desk, serve: Any) -> None:
    """Before the node sets ``intake`` (None), each order route answers 503 saying
    intake is not running; nothing is stored."""
    desk.server = serve(None)

    for answer in (
        desk.post("/orders", desk.signed().to_json()),
        desk.get(f"/orders/{desk.signed().order_id}"),
        desk.get(f"/markets/{MARKET_ID}/book"),
        desk.get(f"/orders?market_id={MARKET_ID}"),
    ):
        assert_refused(answer, 503, None, "IntakeClosed")
        assert "not running" in answer[1]["error"]["reason"]
    assert desk.orders_table() == []


def test_a_closed_intake_refuses_orders_with_503(desk: Desk) -> None:
    """After close() (the stop-intake phase) a submit is 503: the node is stopping."""
    desk.intake.close()

    answer = desk.post("/orders", desk.signed().to_json())

    assert_refused(answer, 503, None, "IntakeClosed")
    assert "stopping" in answer[1]["error"]["reason"]
    assert desk.intake.closed
    assert desk.orders_table() == []


# -- reading --------------------------------------------------------------------------------


def test_get_order_answers_the_stored_order_and_404_for_an_unknown_one(desk: Desk) -> None:
    """GET /orders/{id} answers what POST stored; an id never stored is 404 naming order_id."""
    signed = desk.signed()
    _, stored = desk.post("/orders", signed.to_json())

    assert desk.get(f"/orders/{signed.order_id}") == (200, stored)
    assert_refused(
        desk.get(f"/orders/{desk.signed(nonce=9).order_id}"), 404, "order_id", "OrderNotFound"
    )


def test_the_book_shows_open_orders_as_price_levels_best_first(desk: Desk) -> None:
    """GET /markets/{id}/book sums the open orders per price, best first on each side;
    an unknown market is 404 naming market_id."""
    for nonce, price in ((1, PRICE_ATOMS), (2, PRICE_ATOMS), (3, PRICE_ATOMS + TICK_ATOMS)):
        order = desk.signed(nonce=nonce, client_order_id=nonce, price_atoms=price)
        assert desk.post("/orders", order.to_json())[0] == 201

    code, book = desk.get(f"/markets/{MARKET_ID}/book")

    assert code == 200
    assert book == {
        "market_id": MARKET_ID,
        "bids": [
            {
                "price_atoms": str(PRICE_ATOMS + TICK_ATOMS),
                "size_atoms": str(SIZE_ATOMS),
                "order_count": 1,
            },
            {"price_atoms": str(PRICE_ATOMS), "size_atoms": str(2 * SIZE_ATOMS), "order_count": 2},
        ],
        "asks": [],
    }
    assert_refused(desk.get("/markets/NO-SUCH/book"), 404, "market_id", "UnknownMarket")


def test_list_orders_filters_by_market_and_status_newest_first(desk: Desk) -> None:
    """GET /orders?market_id=M lists the market's orders newest first; status= filters;
    a missing market_id, an unknown market or status, or a bad limit are refused."""
    ids = []
    for nonce in (1, 2):
        signed = desk.signed(nonce=nonce, client_order_id=nonce, size_atoms=nonce * LOT_ATOMS)
        assert desk.post("/orders", signed.to_json())[0] == 201
        ids.append(signed.order_id)
    assert storage.mark_order_cancelled(desk.engine, ids[0], UNCHECKED)

    _, everything = desk.get(f"/orders?market_id={MARKET_ID}")
    _, open_only = desk.get(f"/orders?market_id={MARKET_ID}&status=open")
    _, limited = desk.get(f"/orders?market_id={MARKET_ID}&limit=1")

    assert sorted(o["order_id"] for o in everything["orders"]) == sorted(ids)
    assert [o["order_id"] for o in open_only["orders"]] == [ids[1]]
    assert len(limited["orders"]) == 1
    assert_refused(desk.get("/orders"), 400, "market_id", "MissingField")
    assert_refused(desk.get("/orders?market_id=NO-SUCH"), 404, "market_id", "UnknownMarket")
    assert_refused(
        desk.get(f"/orders?market_id={MARKET_ID}&status=gone"), 400, "status", "InvalidField"
    )
    assert_refused(
        desk.get(f"/orders?market_id={MARKET_ID}&limit=x"), 400, "limit", "WrongFieldType"
    )
    assert_refused(
        desk.get(f"/orders?market_id={MARKET_ID}&limit=0"), 400, "limit", "NumberOutOfRange"
    )


# -- cancelling -----------------------------------------------------------------------------


def _cancel(
    desk: Desk, order_id: str, *, signer: Keypair | None = None, timestamp_s: int | None = None
) -> SignedCancel:
    signer = signer or desk.maker
    now_s = int(desk.intake.now_s())
    request = CancelRequest(
        order_id, signer.pubkey(), now_s if timestamp_s is None else timestamp_s
    )
    return sign_cancel(request, signer)


def test_the_maker_cancels_an_open_order_and_it_leaves_the_book(desk: Desk) -> None:
    """POST /orders/{id}/cancel signed by the maker answers the order cancelled; the
    book no longer has it; cancelling again answers the same (a replay is harmless)."""
    signed = desk.signed()
    desk.post("/orders", signed.to_json())

    code, body = desk.post(
        f"/orders/{signed.order_id}/cancel", _cancel(desk, signed.order_id).to_json()
    )

    assert (code, body["status"]) == (200, "cancelled")
    assert desk.get(f"/markets/{MARKET_ID}/book")[1]["bids"] == []
    again = desk.post(f"/orders/{signed.order_id}/cancel", _cancel(desk, signed.order_id).to_json())
    assert again == (200, body)
    assert_cancel_holds(desk.engine, signed.order_id)  # any node reading it can check it


def test_cancel_refusals_name_the_field_and_change_nothing(desk: Desk) -> None:
    """A cancel signed by someone else (maker), forged (signature), too old (timestamp_s),
    naming another order (order_id), for an unknown order (404) or a filled one (409) is
    refused and the order stays as it was."""
    signed = desk.signed()
    desk.post("/orders", signed.to_json())
    order_id = signed.order_id
    before = desk.orders_table()
    stranger = Keypair()
    request = _cancel(desk, order_id).request
    forged = SignedCancel(request, stranger.sign_message(request.encode()))
    other_id = desk.signed(nonce=5).order_id
    path = f"/orders/{order_id}/cancel"

    refusals = [
        (
            desk.post(path, _cancel(desk, order_id, signer=stranger).to_json()),
            422,
            "maker",
            "WrongSigner",
        ),
        (desk.post(path, forged.to_json()), 422, "signature", "BadSignature"),
        (
            desk.post(path, _cancel(desk, order_id, timestamp_s=1).to_json()),
            422,
            "timestamp_s",
            "CancelExpired",
        ),
        (desk.post(path, _cancel(desk, other_id).to_json()), 400, "order_id", "InvalidField"),
        (
            desk.post(f"/orders/{other_id}/cancel", _cancel(desk, other_id).to_json()),
            404,
            "order_id",
            "OrderNotFound",
        ),
        (desk.post(path, {"order_id": order_id}), 400, "maker", "MissingField"),
    ]

    for answer, status, field, kind in refusals:
        assert_refused(answer, status, field, kind)
    assert desk.orders_table() == before


def test_cancelling_a_filled_order_is_a_409_conflict(desk: Desk) -> None:
    """An order that has filled cannot be cancelled: 409 naming order_id, saying it is filled."""
    signed = desk.signed()
    desk.post("/orders", signed.to_json())
    with storage.write_transaction(desk.engine) as connection:
        connection.execute(
            update(OrderRow)
            .where(OrderRow.id == signed.order_id)
            .values(status="filled", remaining_atoms=0)
        )
    before = desk.orders_table()

    answer = desk.post(
        f"/orders/{signed.order_id}/cancel", _cancel(desk, signed.order_id).to_json()
    )

    assert_refused(answer, 409, "order_id", "OrderNotCancellable")
    assert "filled" in answer[1]["error"]["reason"]
    assert desk.orders_table() == before


class BrokenIntake(OrderIntake):
    """An intake with a bug: reading an order raises something no refusal covers."""

    def get(self, order_id: str) -> storage.StoredOrder:
        raise RuntimeError(f"bug while reading {order_id} from /secret/path")


def test_a_bug_in_intake_is_a_500_with_a_json_error_and_no_details(
    desk: Desk, serve: Any, captured_logs: list[dict[str, Any]]
) -> None:
    """An unexpected exception answers 500 as JSON without its message or a stack trace;
    the details go to the log (action intake.http_failed)."""
    desk.server = serve(BrokenIntake(desk.engine, rpc=None))

    code, body = desk.get(f"/orders/{desk.signed().order_id}")

    assert code == 500
    assert body == {
        "error": {
            "field": None,
            "reason": "the node failed to handle the request",
            "type": "InternalError",
            "code": "internal",
        }
    }
    failures = [r for r in captured_logs if r["extra"].get("action") == "intake.http_failed"]
    assert len(failures) == 1 and "/secret/path" in failures[0]["message"]


def test_listeners_hear_of_each_stored_order_and_a_failing_one_changes_nothing(
    desk: Desk, serve: Any, captured_logs: list[dict[str, Any]]
) -> None:
    """Each listener is called once with every stored order (not with refused ones); one
    that raises is logged and the order stays accepted."""
    heard: list[str] = []

    def failing(_stored: storage.StoredOrder) -> None:
        raise ValueError("listener bug")

    intake = OrderIntake(
        desk.engine, rpc=None, listeners=(failing, lambda s: heard.append(s.order_id))
    )
    desk.server = serve(intake)
    signed = desk.signed()

    assert desk.post("/orders", signed.to_json())[0] == 201
    assert desk.post("/orders", desk.signed(nonce=2, price_atoms=0).to_json())[0] == 422

    assert heard == [signed.order_id]
    assert [
        r["extra"]["order_id"]
        for r in captured_logs
        if r["extra"].get("action") == "intake.listener_failed"
    ] == [signed.order_id]
