"""supervision.otel: traced actor messages as OpenTelemetry spans (the SDK's in-memory
exporter here; tests/integration/supervision/test_otel_export.py sends them over OTLP/HTTP)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from supervision import ChildSpec, CrankActor, set_tracing, trace
from supervision.otel import SpanExport, link_span_id, otel_trace_id, start_export, traces_url
from supervision.tracing import flush_traces
from tests.conftest import Recorder
from tests.unit.supervision.doubles import LinkedBatch, SettleBatch, start_tree


class Settler(CrankActor):
    def __init__(self, record: Recorder) -> None:
        super().__init__()
        self.record = record

    def on_receive(self, message: Any) -> Any:
        self.record(message)
        return None


@pytest.fixture
def exported() -> Iterator[tuple[InMemorySpanExporter, SpanExport]]:
    memory = InMemorySpanExporter()
    export = start_export(instance_id="node-test", exporter=memory)
    set_tracing(True)
    try:
        yield memory, export
    finally:
        set_tracing(False)
        flush_traces(5)
        export.shutdown()


def test_a_trace_id_of_ours_maps_to_the_same_readable_otel_id_on_every_node() -> None:
    """``<prefix>-<counter>`` keeps its digits (prefix high, counter low); any other string
    is hashed; the same input always gives the same 128-bit id, never 0."""
    assert f"{otel_trace_id('a35daa57-2'):032x}" == "a35daa57000000000000000000000002"
    assert otel_trace_id("order-42") == otel_trace_id("order-42") != otel_trace_id("order-43")
    assert 0 < otel_trace_id("order-42") < 2**128
    assert otel_trace_id("00000000-0") == 1


def test_the_collector_endpoint_gets_the_otlp_traces_path_once() -> None:
    """A collector's base URL gets /v1/traces; a URL already ending in it is kept."""
    assert traces_url("http://127.0.0.1:4318/") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("https://c.example/v1/traces") == "https://c.example/v1/traces"


def test_each_handled_message_becomes_a_span_under_the_mapped_trace_with_its_domain_keys(
    recorder: Recorder, exported: tuple[InMemorySpanExporter, SpanExport]
) -> None:
    """A message sent under trace ``order-9`` carrying two settlements: one span named by
    receiver and type, in the OTel trace derived from ``order-9``, with sender, outcome
    and the settlement ids as attributes, lasting as long as its handler."""
    memory, export = exported
    spec = ChildSpec(id="settle", factory=lambda: Settler(recorder), liveness_timeout_s=None)
    runner = start_tree([spec], events=lambda _e: None, name="node")
    with trace("order-9"):
        spec.handle.tell(SettleBatch(("s-1", "s-2")))
    recorder.wait_for(lambda events: len(events) == 1)
    assert runner.stop(10) == 0
    assert flush_traces(5) and export.flush()
    (span,) = [s for s in memory.get_finished_spans() if s.name == "node/settle SettleBatch"]
    assert span.context.trace_id == otel_trace_id("order-9")
    assert span.status.status_code is StatusCode.OK
    attributes = dict(span.attributes or {})
    assert attributes["crank.trace_id"] == "order-9"
    assert attributes["crank.sender"] == "external"
    assert list(attributes["crank.settlement_ids"]) == ["s-1", "s-2"]
    assert attributes["crank.settlement_count"] == 2
    assert span.resource.attributes["service.instance.id"] == "node-test"
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time >= span.start_time


def test_a_batch_span_links_to_the_trace_of_each_item_it_covers(
    recorder: Recorder, exported: tuple[InMemorySpanExporter, SpanExport]
) -> None:
    """A batch sent in trace ``tick-1`` for settlements of ``order-1``, ``order-2`` and its
    own trace: one span in tick-1's OTel trace with one link to each other trace (the
    same span id on every node, named by ``crank.trace_id``), none to its own."""
    memory, export = exported
    spec = ChildSpec(id="settle", factory=lambda: Settler(recorder), liveness_timeout_s=None)
    runner = start_tree([spec], events=lambda _e: None, name="node")
    with trace("tick-1"):
        spec.handle.tell(LinkedBatch(("s-1", "s-2", "s-3"), ("order-1", "order-2", "tick-1")))
    recorder.wait_for(lambda events: len(events) == 1)
    assert runner.stop(10) == 0
    assert flush_traces(5) and export.flush()
    (span,) = [s for s in memory.get_finished_spans() if s.name == "node/settle LinkedBatch"]
    assert span.context.trace_id == otel_trace_id("tick-1")
    linked = [
        (link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
        for link in span.links
    ]
    assert linked == [
        (otel_trace_id(t), link_span_id(t), {"crank.trace_id": t}) for t in ("order-1", "order-2")
    ]
    assert all(link.context.is_valid and link.context.is_remote for link in span.links)
    assert dict(span.attributes or {})["crank.linked_trace_count"] == 3
    assert link_span_id("order-1") == link_span_id("order-1") != link_span_id("order-2")


def test_spans_without_trace_lines_export_every_message_and_log_none(
    recorder: Recorder, captured_logs: list[Any]
) -> None:
    """An OTel export without ``trace`` (as `crank-node run` sets it up): the message is a
    span, and no trace line reaches the log."""
    memory = InMemorySpanExporter()
    export = start_export(instance_id="node-test", exporter=memory)
    set_tracing(True, lines=False)
    try:
        spec = ChildSpec(id="settle", factory=lambda: Settler(recorder), liveness_timeout_s=None)
        runner = start_tree([spec], events=lambda _e: None, name="node")
        with trace("order-5"):
            spec.handle.tell(SettleBatch(("s-5",)))
        recorder.wait_for(lambda events: len(events) == 1)
        assert runner.stop(10) == 0
        assert flush_traces(5) and export.flush()
    finally:
        set_tracing(False)
        export.shutdown()
    assert [s.name for s in memory.get_finished_spans() if s.name.endswith("SettleBatch")] == [
        "node/settle SettleBatch"
    ]
    actions = {str(r["extra"].get("action", "")) for r in captured_logs}
    assert not {a for a in actions if a.startswith("trace.")}, actions


def test_run_turns_trace_lines_on_with_the_export_only_when_trace_is_set() -> None:
    """`crank-node run`'s set-up: otel_endpoint alone makes spans, not lines; with
    ``trace`` both."""
    from crank_node.cli.run import _start_otel  # noqa: PLC0415
    from crank_node.node.settings_layers import load_settings  # noqa: PLC0415
    from supervision.tracing import SWITCH  # noqa: PLC0415

    for trace_on in (False, True):
        flags: dict[str, Any] = {"otel_endpoint": "http://127.0.0.1:9", "trace": trace_on}
        export = _start_otel(load_settings(environ={}, flags=flags))
        try:
            assert export is not None
            assert (SWITCH.enabled, SWITCH.lines) == (True, trace_on)
        finally:
            set_tracing(False)
            assert export is not None
            export.shutdown(timeout_s=0.5)


def test_a_handler_that_raises_is_an_error_span() -> None:
    """The receive line's outcome other than ok sets the span's status to error."""
    memory = InMemorySpanExporter()
    export = start_export(instance_id="n", exporter=memory)
    try:
        export(
            {
                "action": "trace.send",
                "at": 1.0,
                "trace_id": "t",
                "sender": "a",
                "receiver": "b",
                "message_type": "M",
                "result": "ok",
            }
        )
        export(
            {
                "action": "trace.receive",
                "at": 1.0,
                "trace_id": "t",
                "sender": "a",
                "receiver": "b",
                "message_type": "M",
                "outcome": "error",
                "mailbox_ms": 0.5,
                "handler_ms": 2.0,
            }
        )
        assert export.flush()
    finally:
        export.shutdown()
    (span,) = memory.get_finished_spans()  # the send made none
    assert span.status.status_code is StatusCode.ERROR
    assert (span.start_time, span.end_time) == (1_000_000_000, 1_002_000_000)


def test_without_an_otel_endpoint_the_node_never_imports_opentelemetry() -> None:
    """Loading the node and its run command (and tracing) imports no OpenTelemetry
    module: off costs nothing."""
    code = (
        "import sys, crank_node.cli.run, supervision.tracing; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
