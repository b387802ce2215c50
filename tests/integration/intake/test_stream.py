"""GET /stream over a real HTTP listener and a real database (issue 17): a market's
fills and book, resumed from a cursor; settlement states as they change; a client
that falls behind is dropped with a reason."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from crank_node.node.health import HealthServer
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_http import IntakeLimits
from crank_node.node.intake_stream import StreamLimits
from tests.integration.storage.test_pipeline_repositories import (  # the shared fixture
    Matched,
    _attempt,
    _claim,
    _record,
    matched,
)

__all__ = ["matched"]  # the fixture, imported to be found by pytest
READ_BOUND_S = 10.0


class Stream:
    """One SSE connection, read event by event (each read bounded by the socket timeout)."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=READ_BOUND_S)
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()

    def next(self) -> tuple[str, dict[str, Any], str | None]:
        """The next event (kind, data, id), heartbeats skipped."""
        while True:
            fields: dict[str, str] = {}
            while (line := self.response.readline().decode()) not in ("\n", ""):
                name, _, value = line.rstrip("\n").partition(": ")
                fields[name] = value
            if not fields:
                raise EOFError("the stream ended")
            if fields.get("event") != "heartbeat":
                return fields["event"], json.loads(fields["data"]), fields.get("id")

    def until(self, kind: str) -> tuple[dict[str, Any], str | None]:
        for _ in range(50):
            got, data, event_id = self.next()
            if got == kind:
                return data, event_id
        raise AssertionError(f"no {kind} event in 50")

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def node(engine: Engine, serve: Any) -> Iterator[Any]:
    def start(**stream: Any) -> HealthServer:
        limits = IntakeLimits(stream=StreamLimits(poll_interval_s=0.02, **stream))
        server: HealthServer = serve(OrderIntake(engine, rpc=None), intake_limits=limits)
        return server

    yield start


def test_a_market_stream_sends_fills_with_cursors_and_resumes_after_one(
    engine: Engine, matched: Matched, node: Any
) -> None:
    """Fills come in sequence, each with an id; reconnecting with the first one's id as
    Last-Event-ID sends only the second (and the first's settlement state, not final
    yet), and the book comes on connect."""
    _record(engine, matched)
    port = node().intake_port
    market = matched.market.market_id
    first = Stream(port, f"/stream?market_id={market}")
    try:
        fill, cursor = first.until("fill")
        assert fill["sequence"] == "0" and cursor
        second_fill, _ = first.until("fill")
        assert second_fill["sequence"] == "1"
    finally:
        first.close()

    resumed = Stream(port, f"/stream?market_id={market}", {"Last-Event-ID": cursor or ""})
    try:
        kinds = [resumed.next() for _ in range(3)]
    finally:
        resumed.close()
    fills = [data["sequence"] for kind, data, _ in kinds if kind == "fill"]
    assert fills == ["1"]
    assert "book" in [kind for kind, _, _ in kinds]


def test_a_makers_stream_tells_a_settlement_state_when_it_changes(
    engine: Engine, matched: Matched, node: Any
) -> None:
    """carol's stream sends her fills pending, then ``sent`` once an attempt is written."""
    _record(engine, matched)
    stream = Stream(node().intake_port, f"/stream?maker={matched.carol.order.maker}")
    try:
        fill, _ = stream.until("fill")
        assert fill["settlement"]["state"] == "pending"
        queue, claim = _claim(engine)
        _attempt(queue, claim)
        change, _ = stream.until("settlement")
    finally:
        stream.close()
    assert (change["fill_id"], change["settlement"]["state"]) == (str(claim.row_id), "sent")


def test_a_client_that_falls_behind_is_dropped_with_a_reason(
    engine: Engine, matched: Matched, node: Any
) -> None:
    """With a buffer of one event, a poll giving three (two fills and the book) drops the
    client: its last event is ``dropped`` with the reason, then the stream ends."""
    _record(engine, matched)
    server = node(buffer_events=1)
    stream = Stream(server.intake_port, f"/stream?market_id={matched.market.market_id}")
    try:
        kinds = []
        with pytest.raises(EOFError):
            for _ in range(10):
                kinds.append(stream.next())
    finally:
        stream.close()
    assert kinds[-1][0] == "dropped"
    assert "buffer of 1 events is full" in kinds[-1][1]["reason"]


def test_a_stream_of_nothing_or_of_an_unknown_market_is_refused_in_the_error_shape(
    engine: Engine, node: Any
) -> None:
    """No topic is 400 naming market_id; an unknown market 404 unknown_market."""
    port = node().intake_port
    for path, status, code in (
        ("/stream", 400, "invalid_field"),
        ("/stream?market_id=NOPE", 404, "unknown_market"),
    ):
        stream = Stream(port, path)
        try:
            body = json.loads(stream.response.read())
        finally:
            stream.close()
        assert (stream.response.status, body["error"]["code"]) == (status, code)
