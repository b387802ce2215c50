"""The two listeners' limits over real sockets: header, body and idle timeouts, the
connection cap (refused early, logged once per interval, /health still answering),
per-client and per-maker rate limits, and the operator listener's exposure rules.

Timeouts are set short (0.5 s) and every wait is bounded well past them (5-10 s):
a loaded machine makes these slower, never wrong."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

from crank_node.node.health import HealthServer
from crank_node.node.http_server import (
    DESCRIPTOR_RESERVE,
    HttpLimits,
    OperatorTokenError,
    descriptor_budget,
    read_token_file,
)
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_http import IntakeLimits
from market import Order, Side, SignedOrder, sign_order
from tests.integration.intake import wire
from tests.integration.intake.conftest import StandInNode

SHORT = HttpLimits(header_timeout_s=0.5, body_timeout_s=0.5, idle_timeout_s=0.5)
BOUND_S = 10.0
TOKEN = "t" * 48


@pytest.fixture
def database_url(sqlite_file_url: str) -> str:
    """HTTP limits do not depend on the database: SQLite only."""
    return sqlite_file_url


@pytest.fixture
def intake(engine: Engine) -> OrderIntake:
    return OrderIntake(engine, rpc=None)


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=BOUND_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _order(maker: Keypair, nonce: int, claimed: Keypair | None = None) -> bytes:
    """A signed order by ``maker`` (for no stored market: intake answers 404), or one
    claiming to be ``claimed``'s but signed by ``maker`` (a forged signature)."""
    order = Order(
        market_id="M",
        side=Side.BUY,
        price_atoms=1_000,
        size_atoms=1_000,
        maker=(claimed or maker).pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=nonce,
        expiry_s=int(time.time()) + 3_600,
        nonce=nonce,
    )
    if claimed is None:
        return json.dumps(sign_order(order, maker).to_json()).encode()
    forged = SignedOrder(order, maker.sign_message(order.encode()))
    return json.dumps(forged.to_json()).encode()


# -- timeouts -------------------------------------------------------------------------------


def test_a_request_head_sent_slowly_is_answered_408_and_closed_at_the_header_timeout(
    serve: Any, intake: OrderIntake
) -> None:
    """Half a request head and then nothing: aiohttp alone would hold the connection
    until its keep-alive timer (75 s by default); the header deadline closes it."""
    server = serve(intake, limits=HttpLimits(header_timeout_s=0.5, idle_timeout_s=60.0))
    with wire.connect(server.intake_port) as sock:
        sock.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Ty")
        answer = wire.read_answer(sock)
        assert answer.status == 408
        assert wire.closed_within(sock, BOUND_S)
    assert server.wait_for_count("header_timeouts", 1, timeout_s=BOUND_S)


def test_a_body_sent_slowly_is_answered_408_and_closed_at_the_body_timeout(
    serve: Any, intake: OrderIntake
) -> None:
    """A Content-Length of 500 and 10 bytes sent: 408 naming ``body``, connection closed."""
    server = serve(intake, limits=SHORT)
    with wire.connect(server.intake_port) as sock:
        sock.sendall(wire.post("/orders", b"{" + b" " * 499)[:-490])
        answer = wire.read_answer(sock)
        assert answer.status == 408
        assert answer.json()["error"]["field"] == "body"
        assert wire.closed_within(sock, BOUND_S)
    assert server.wait_for_count("body_timeouts", 1, timeout_s=BOUND_S)


def test_an_idle_connection_is_closed_at_the_idle_timeout(serve: Any, intake: OrderIntake) -> None:
    """A connection that sends nothing, and one idle after a first answer (keep-alive),
    are both closed by the server within the idle bound."""
    server = serve(intake, limits=SHORT)
    with wire.connect(server.intake_port) as silent:
        assert wire.closed_within(silent, BOUND_S)
    with wire.connect(server.intake_port) as kept:
        kept.sendall(wire.request_head("GET", "/orders/nope", {}))
        assert wire.read_answer(kept).status in (404, 503)
        assert wire.closed_within(kept, BOUND_S)


# -- connections ----------------------------------------------------------------------------


def test_past_the_connection_cap_intake_refuses_at_once_logs_once_and_health_answers(
    serve: Any, intake: OrderIntake, captured_logs: list[dict[str, Any]]
) -> None:
    """4 connections held open fill a cap of 4: the next 20 get 503 (JSON) at once and
    are closed; the refusals are counted (20) and logged once, not 20 times; the
    operator listener's /health answers 200 throughout; a slot freed is usable again."""
    server = serve(intake, limits=HttpLimits(max_connections=4, idle_timeout_s=60.0))
    held = [wire.connect(server.intake_port) for _ in range(4)]
    try:
        for sock in held:  # each answered: each accepted and counted by the server
            sock.sendall(wire.request_head("GET", "/orders/nope", {}))
            wire.read_answer(sock)
        refused = [wire.exchange(server.intake_port, b"") for _ in range(20)]
        assert {answer.status for answer in refused} == {503}
        assert refused[0].json()["error"]["type"] == "Overloaded"
        assert server.wait_for_count("connections_refused", 20, timeout_s=BOUND_S)
        assert _get(server.port, "/health")[0] == 200
    finally:
        for sock in held:
            sock.close()
    lines = [r for r in captured_logs if r["extra"].get("action") == "http.connection_refused"]
    assert len(lines) == 1, [r["message"] for r in lines]
    assert lines[0]["exception"] is None

    # The closed connections free their slots (the server notices within a loop turn).
    deadline = time.monotonic() + BOUND_S
    while True:
        status = wire.exchange(server.intake_port, wire.request_head("GET", "/orders/x", {}))
        if status.status != 503 or time.monotonic() > deadline:
            break
    assert status.status in (404, 503) and status.json()["error"]["type"] != "Overloaded"


# -- rate limits ----------------------------------------------------------------------------


def test_a_client_address_past_its_burst_gets_429_with_retry_after(
    serve: Any, intake: OrderIntake
) -> None:
    """Burst 3 and a refill too slow to matter: the 4th request is 429 naming
    ``client``, with a Retry-After in whole seconds."""
    limits = IntakeLimits(client_rate_per_s=0.001, client_burst=3)
    server = serve(intake, intake_limits=limits)
    answers = [
        wire.exchange(server.intake_port, wire.request_head("GET", "/orders/x", {}))
        for _ in range(4)
    ]
    assert [a.status for a in answers[:3]] == [404, 404, 404]
    assert answers[3].status == 429
    assert answers[3].json()["error"]["field"] == "client"
    assert int(answers[3].headers["retry-after"]) >= 1


def test_a_maker_past_its_burst_gets_429_and_another_maker_is_not_held_up(
    serve: Any, intake: OrderIntake
) -> None:
    """Maker A's third signed order is 429 naming ``maker``; maker B's order goes on to
    intake (404: no such market). Orders claiming to be B's but not signed by B (a
    forger spending B's budget) are not charged to B."""
    limits = IntakeLimits(maker_rate_per_s=0.001, maker_burst=2)
    port = serve(intake, intake_limits=limits).intake_port
    flooder, other = Keypair(), Keypair()

    first = [wire.exchange(port, wire.post("/orders", _order(flooder, n))) for n in (1, 2, 3)]
    forged = [
        wire.exchange(port, wire.post("/orders", _order(flooder, n, claimed=other)))
        for n in (4, 5, 6)
    ]
    honest = wire.exchange(port, wire.post("/orders", _order(other, 1)))

    assert [a.status for a in first] == [404, 404, 429]
    assert first[2].json()["error"]["field"] == "maker"
    assert "retry-after" in first[2].headers
    # Refused later by intake (no such market; the signature is checked after), and,
    # not signed by the maker they name, charged to no maker: B's burst of 2 is intact.
    assert {a.status for a in forged} == {404}
    assert honest.status == 404


# -- exposure -------------------------------------------------------------------------------


def test_each_listener_serves_only_its_own_routes(serve: Any, intake: OrderIntake) -> None:
    """/status and /metrics are not on the intake listener; /orders is not on the
    operator listener (404 as JSON on intake)."""
    server = serve(intake)
    assert _get(server.intake_port, "/status")[0] == 404
    assert _get(server.intake_port, "/metrics")[0] == 404
    assert _get(server.port, "/status")[0] == 200
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/orders/x", timeout=BOUND_S)
    caught.value.close()
    assert caught.value.code == 404


def test_a_non_loopback_operator_listener_without_a_token_is_refused(
    intake: OrderIntake,
) -> None:
    """HealthServer itself refuses to put /status and /metrics on 0.0.0.0 without a
    bearer token (defence in depth behind the settings' check)."""
    with pytest.raises(OperatorTokenError, match="needs a bearer token"):
        HealthServer(StandInNode(intake), "0.0.0.0", 0)  # type: ignore[arg-type]


def test_with_a_token_every_operator_route_needs_it_compared_exactly(
    serve: Any, intake: OrderIntake
) -> None:
    """No header, another scheme, a wrong or a prefix of the token: 401 JSON with
    WWW-Authenticate; the right bearer token: 200."""
    server = serve(intake, operator_token=TOKEN)
    for headers in (
        {},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ):
        code, body = _get(server.port, "/status", headers)
        assert (code, body["error"]["type"]) == (401, "Unauthorized"), headers
    assert _get(server.port, "/health", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert _get(server.port, "/metrics")[0] == 401


@pytest.mark.parametrize(
    ("mode", "content", "reason"),
    [
        (0o644, TOKEN, "chmod 600"),
        (0o640, TOKEN, "chmod 600"),
        (0o600, "short", "32 to 4096"),
    ],
)
def test_a_token_file_others_can_read_or_too_short_is_refused_naming_it(
    tmp_path: Path, mode: int, content: str, reason: str
) -> None:
    """The token file must be the owner's alone and hold a real token; the error names
    the file and what to change."""
    path = tmp_path / "operator.token"
    path.write_text(content + "\n")
    path.chmod(mode)
    with pytest.raises(OperatorTokenError) as caught:
        read_token_file(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)


def test_a_0600_token_file_is_read_without_its_newline(tmp_path: Path) -> None:
    """The token is the file's content, trimmed."""
    path = tmp_path / "operator.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert read_token_file(path) == TOKEN
    with pytest.raises(OperatorTokenError, match="cannot be read"):
        read_token_file(tmp_path / "missing")


# -- asyncio's own errors and descriptors ---------------------------------------------------


def test_asyncio_errors_on_a_listener_loop_are_one_line_per_interval_without_tracebacks(
    serve: Any, intake: OrderIntake, captured_logs: list[dict[str, Any]]
) -> None:
    """What asyncio reports when accept() runs out of descriptors, 500 times over: one
    WARNING line (no traceback), all 500 counted, where asyncio's default handler
    writes 500 tracebacks."""
    server = serve(intake)
    listener = server.intake
    context = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(24, "Too many open files"),
    }
    for _ in range(500):
        listener._loop_exception(None, context)

    assert server.stats()["intake"]["loop_errors"] == 500
    lines = [r for r in captured_logs if r["extra"].get("action") == "http.loop_error"]
    assert len(lines) == 1 and lines[0]["exception"] is None
    assert "Too many open files" in lines[0]["message"]


def test_the_connection_cap_stays_below_the_descriptor_limit() -> None:
    """Asked for more connections than the process may open, the budget is the soft
    descriptor limit less the reserve kept for the database, RPC and logs."""
    import resource  # noqa: PLC0415

    budget = descriptor_budget(10**7)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert budget == soft - DESCRIPTOR_RESERVE
    assert descriptor_budget(100) == 100
