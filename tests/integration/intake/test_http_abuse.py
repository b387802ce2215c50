"""The public intake listener under abuse, over real sockets: bodies declared and never
sent, bad Content-Length, strict JSON and query parsing, echoed input cut, a client
that leaves mid-body. The node's real HTTP server over a real SQLite database; the
database backend plays no part here, so these run on SQLite only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

from crank_node.node.http_server import HttpLimits
from crank_node.node.intake import OrderIntake
from market import Order, Side, sign_order
from tests.integration.intake import wire


@pytest.fixture
def database_url(sqlite_file_url: str) -> str:
    """HTTP limits do not depend on the database: SQLite only."""
    return sqlite_file_url


@pytest.fixture
def server(engine: Engine, serve: Any) -> Any:
    """A node server over an intake without chain checks."""
    return serve(OrderIntake(engine, rpc=None))


@pytest.fixture
def port(server: Any) -> int:
    """The server's public intake port."""
    return int(server.intake_port)


@pytest.fixture
def roomy_port(engine: Engine, serve: Any) -> int:
    """The intake port of a server whose body bound is the most settings allow (1 MiB):
    echoed input must be cut even where a big body is let in."""
    limits = HttpLimits(max_body_bytes=1024 * 1024)
    return int(serve(OrderIntake(engine, rpc=None), limits=limits).intake_port)


def _signed_order_json() -> dict[str, Any]:
    """A well-formed signed order's JSON (for no stored market: refused after parsing)."""
    maker = Keypair()
    order = Order(
        market_id="M",
        side=Side.BUY,
        price_atoms=1_000,
        size_atoms=1_000,
        maker=maker.pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=1,
        expiry_s=int(time.time()) + 3_600,
        nonce=1,
    )
    return dict(sign_order(order, maker).to_json())


def _refusal(answer: wire.Answer) -> dict[str, Any]:
    assert answer.headers["content-type"].startswith("application/json"), answer
    body = answer.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# -- bodies ---------------------------------------------------------------------------------


def test_a_declared_one_gigabyte_body_never_sent_is_413_at_once_without_reading_it(
    port: int,
) -> None:
    """A Content-Length over the body bound is answered 413 (JSON, naming the header)
    as soon as the head arrives: the server does not wait for a body that never comes."""
    head = wire.request_head(
        "POST", "/orders", {"Content-Type": "application/json", "Content-Length": str(2**30)}
    )
    started = time.monotonic()

    answer = wire.exchange(port, head, timeout_s=5.0)

    assert answer.status == 413
    assert _refusal(answer)["field"] == "Content-Length"
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("length", ["abc", "-1", "1_0", "\u0665"])  # an Arabic-Indic five
def test_a_bad_content_length_gets_the_json_error_shape_not_text(port: int, length: str) -> None:
    """A Content-Length that is not a decimal count is 400 with the JSON error naming it."""
    head = f"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"

    answer = wire.exchange(port, head.encode("utf-8"))

    assert answer.status == 400
    assert _refusal(answer)["field"] == "Content-Length"


# -- strict parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b'{"nonce": 1, "nonce": 2}', "nonce", id="duplicate_key"),
        pytest.param(b'{"price_atoms": NaN}', "price_atoms", id="nan"),
        pytest.param(b'{"size_atoms": Infinity}', "size_atoms", id="infinity"),
        pytest.param(b'{"size_atoms": -Infinity}', "size_atoms", id="minus_infinity"),
        pytest.param(b"NaN", "body", id="nan_alone"),
    ],
)
def test_duplicate_keys_and_non_finite_numbers_are_refused_naming_the_key(
    port: int, body: bytes, field: str
) -> None:
    """JSON that Python would read leniently (last duplicate wins, NaN/Infinity as
    floats) is refused 400 as malformed, naming the key at fault."""
    answer = wire.exchange(port, wire.post("/orders", body))

    assert answer.status == 400
    refusal = _refusal(answer)
    assert (refusal["field"], refusal["type"]) == (field, "MalformedJson")


@pytest.mark.parametrize("limit", ["%205", "5%20", "1_000", "%D9%A5", "+5", "0x10", "5.0"])
def test_a_limit_that_is_not_plain_ascii_digits_is_refused_naming_limit(
    port: int, limit: str
) -> None:
    """``limit`` takes ASCII digits only: no spaces, underscores, signs or other scripts'
    digits (which int() would accept)."""
    answer = wire.exchange(port, wire.request_head("GET", f"/orders?market_id=M&limit={limit}", {}))

    assert answer.status == 400
    assert _refusal(answer)["field"] == "limit"


# -- echoed input ---------------------------------------------------------------------------


def test_a_huge_bad_value_is_not_echoed_whole_in_the_answer_or_the_log(
    roomy_port: int, captured_logs: list[dict[str, Any]]
) -> None:
    """A 200 kB market_id is refused naming the field; the answer and every log line
    carry at most a cut of it (64 characters and a marker), not the value whole."""
    document = _signed_order_json()
    document["market_id"] = "A" * 200_000
    answer = wire.exchange(roomy_port, wire.post("/orders", json.dumps(document).encode()))

    assert answer.status == 400
    assert len(answer.body) < 1_000, len(answer.body)
    assert "characters cut" in _refusal(answer)["reason"]
    longest = max(len(str(record["message"])) for record in captured_logs)
    assert longest < 1_000, longest


def test_a_huge_unknown_key_is_cut_in_the_field_named(roomy_port: int) -> None:
    """The field named in a refusal is itself input (an unknown key): it is cut too."""
    key = "k" * 50_000
    answer = wire.exchange(roomy_port, wire.post("/orders", json.dumps({key: 1}).encode()))

    assert answer.status == 400
    assert len(answer.body) < 1_000
    assert _refusal(answer)["field"].startswith("k" * 64)


# -- a client that leaves -------------------------------------------------------------------


def test_a_client_that_disconnects_mid_body_is_debug_and_counted_not_an_error(
    server: Any, port: int, captured_logs: list[dict[str, Any]]
) -> None:
    """Half a body, then the client closes: a normal event, logged at DEBUG (action
    http.client_disconnected) and counted; no ERROR, no traceback."""
    with wire.connect(port) as sock:
        sock.sendall(wire.post("/orders", b'{"nonce": 1}' + b" " * 100)[:-60])

    assert server.wait_for_count("client_disconnects", 1, timeout_s=10)
    levels = [(r["level"].name, r["extra"].get("action")) for r in captured_logs]
    assert not [lv for lv in levels if lv[0] in ("ERROR", "CRITICAL")], levels
    assert ("DEBUG", "http.client_disconnected") in levels
    assert not [r for r in captured_logs if r["exception"] is not None]
