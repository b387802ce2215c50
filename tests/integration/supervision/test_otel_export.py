"""The OpenTelemetry export over the wire: spans of traced actor messages reach a real
OTLP/HTTP receiver (protobuf, decoded with opentelemetry-proto) on a local socket."""

from __future__ import annotations

from typing import Any

import pytest

from supervision import ChildSpec, CrankActor, set_tracing, trace
from supervision.otel import otel_trace_id, start_export
from supervision.tracing import flush_traces
from tests.conftest import Recorder
from tests.support.otlp_receiver import OtlpReceiver
from tests.unit.supervision.doubles import SettleBatch, start_tree

pytestmark = [pytest.mark.timeout(120)]


class Relay(CrankActor):
    """Passes each batch on to ``next_hop`` (if any), and records it."""

    def __init__(self, record: Recorder, next_hop: ChildSpec | None) -> None:
        super().__init__()
        self.record = record
        self.next_hop = next_hop

    def on_receive(self, message: Any) -> Any:
        if self.next_hop is not None:
            self.next_hop.handle.tell(message)
        self.record((self.name, message))
        return None


def test_spans_reach_an_otlp_http_receiver_under_the_trace_id_derived_from_ours(
    recorder: Recorder,
) -> None:
    """Two hops under trace ``order-9`` (match -> settle, carrying settlement ids) become
    two spans posted to /v1/traces: both in the OTel trace derived from ``order-9``, named
    by receiver and type, with the ids and the node's instance id on the wire."""
    with OtlpReceiver() as receiver:
        export = start_export(receiver.endpoint, instance_id="node-wire")
        set_tracing(True)
        try:
            settle = ChildSpec(
                id="settle", factory=lambda: Relay(recorder, None), liveness_timeout_s=None
            )
            match = ChildSpec(
                id="match", factory=lambda: Relay(recorder, settle), liveness_timeout_s=None
            )
            runner = start_tree([settle, match], events=lambda _e: None, name="node")
            with trace("order-9"):
                match.handle.tell(SettleBatch(("s-1", "s-2")))
            recorder.wait_for(lambda events: len(events) == 2)
            assert runner.stop(10) == 0
        finally:
            set_tracing(False)
            assert flush_traces(5)
            export.shutdown()  # exports what is queued, over HTTP
        wanted = otel_trace_id("order-9")
        spans = receiver.wait_for(lambda got: sum(s.trace_id == wanted for s in got) >= 2)
    ours = sorted((s for s in spans if s.trace_id == wanted), key=lambda s: s.start_ns)
    assert [s.name for s in ours] == ["node/match SettleBatch", "node/settle SettleBatch"]
    assert [s.attributes["crank.sender"] for s in ours] == ["external", "node/match"]
    assert all(s.attributes["crank.settlement_ids"] == ["s-1", "s-2"] for s in ours)
    assert all(s.resource["service.instance.id"] == "node-wire" for s in ours)
    assert all(s.end_ns >= s.start_ns > 0 for s in ours)
