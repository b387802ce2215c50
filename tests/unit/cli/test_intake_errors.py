"""Order intake's pure edges: which HTTP status answers which error, what a client is
told of it, and where ``crank-node order`` sends its requests."""

from __future__ import annotations

import pytest

import market as domain
from crank_node.harness.node_client import NodeUnreachable, node_base_url
from crank_node.node.intake_errors import (
    IntakeClosed,
    IntakeUnavailable,
    OrderNotCancellable,
    OrderNotFound,
    Refusal,
    refusal,
)
from crank_node.node.intake_http import BodyTooLarge, error_status
from storage import DatabaseBusy, DuplicateEntry


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (domain.MissingField("nonce"), 400),
        (domain.BadBase58("pay_account"), 400),
        (domain.NumberOutOfRange("nonce"), 400),
        (domain.InvalidField("order_id"), 400),
        (BodyTooLarge("body"), 413),
        (domain.UnknownMarket("market_id"), 404),
        (OrderNotFound("order_id"), 404),
        (domain.DuplicateClientOrderId("client_order_id"), 409),
        (DuplicateEntry("nonce", 1), 409),
        (OrderNotCancellable("order_id", "the order is filled"), 409),
        (domain.InvalidPrice("price_atoms"), 422),
        (domain.OrderExpired("expiry_s"), 422),
        (domain.BadSignature("signature"), 422),
        (domain.WrongAccountOwner("pay_account"), 422),
        (IntakeClosed(), 503),
        (IntakeUnavailable(None), 503),
        (DatabaseBusy(), 503),
        (RuntimeError("a bug"), 500),
    ],
)
def test_each_error_has_its_http_status(error: BaseException, status: int) -> None:
    """Malformed input 400, unknown things 404, duplicates and state 409, invalid orders
    422, the node unable to answer now 503; only a bug is a 500."""
    assert error_status(error) == status


def test_a_refusal_names_the_field_the_reason_and_the_type() -> None:
    """Domain and intake errors give their field and reason; a duplicate says what is
    taken; a storage failure says only its kind; anything else says nothing of itself."""
    assert refusal(domain.InvalidPrice("price_atoms", "too low")) == Refusal(
        "price_atoms", "too low", "InvalidPrice", "invalid_price"
    )
    assert refusal(DuplicateEntry("nonce", 7)) == Refusal(
        "nonce", "the maker already used this nonce (7)", "DuplicateEntry", "duplicate"
    )
    assert refusal(DatabaseBusy("database locked at /var/lib/x.db")).field is None
    assert "/var/lib" not in refusal(DatabaseBusy("database locked at /var/lib/x.db")).reason
    assert refusal(KeyError("secret")) == Refusal(
        None, "the node failed to handle the request", "InternalError", "internal"
    )


def test_intake_errors_default_to_their_docstring() -> None:
    """An intake error raised without a reason reads its class's docstring."""
    assert str(OrderNotFound("order_id")) == "order_id: no such order."
    assert IntakeClosed().field is None
    assert "not running" in str(IntakeClosed())


@pytest.mark.parametrize(
    ("given", "environ", "expected"),
    [
        (None, {}, "http://127.0.0.1:8786"),
        (None, {"CRANK_INTAKE_ADDR": "10.0.0.5:9000"}, "http://10.0.0.5:9000"),
        (None, {"CRANK_HTTP_ADDR": "10.0.0.5:9000"}, "http://127.0.0.1:8786"),
        ("127.0.0.1:9", {"CRANK_INTAKE_ADDR": "10.0.0.5:9000"}, "http://127.0.0.1:9"),
        ("https://node.example/", {}, "https://node.example"),
    ],
)
def test_the_order_url_comes_from_the_flag_then_crank_intake_addr_then_the_default(
    given: str | None, environ: dict[str, str], expected: str
) -> None:
    """--url wins over CRANK_INTAKE_ADDR, which wins over 127.0.0.1:8786 (the intake
    listener's default); CRANK_HTTP_ADDR is the operator listener's, not for orders."""
    assert node_base_url(given, environ) == expected


def test_a_node_url_that_is_not_http_is_refused() -> None:
    """file:// and the like are never opened."""
    with pytest.raises(NodeUnreachable, match="use http://HOST:PORT"):
        node_base_url("file:///etc/passwd", {})
