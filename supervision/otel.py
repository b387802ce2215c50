"""OpenTelemetry export: each traced actor message as a span, sent over OTLP/HTTP.

Optional (the ``otel`` extra: ``opentelemetry-sdk``, ``opentelemetry-exporter-otlp-proto-http``)
and off unless the node's ``otel_endpoint`` is set: ``crank-node run`` imports this
module only then, so a node without it never loads the SDK, and the tracer's hook
(:func:`supervision.tracing.add_trace_sink`) is an empty tuple on its thread.

What becomes what:

* **A span per handled message** (each ``trace.receive`` line): named
  ``<receiver> <message type>``, from when handling began for ``handler_ms``; its
  attributes are the line's fields (``crank.sender``, ``crank.receiver``,
  ``crank.message_type``, ``crank.outcome``, ``crank.mailbox_ms``) and its domain keys
  (``crank.order_ids`` (first 32), ``crank.order_count``, and the same for fills,
  settlements, signatures). An outcome other than ``ok`` is an error status. Sends
  are not spans of their own: the receiving span names its sender and mailbox time.
* **The trace id** is derived from ours, deterministically, so every node maps a
  stored trace id (an order's, continued by another node after a takeover) to the
  same OTel trace: ``<8 hex prefix>-<hex counter>`` (the ids this runtime makes) maps
  to ``prefix << 96 | counter``, readable in a backend (``a35daa57-2`` is
  ``a35daa57000000000000000000000002``); any other string (``trace("order-42")``)
  to the first 16 bytes of its SHA-256.
* **No parent spans**: a delivery does not carry its sender's span id (that would
  cost the send path), so a trace's spans are siblings, ordered by time.
* **Span links for batches**: a message covering many orders, fills or settlements is
  one span in the trace it was sent in, with the ids as attributes, and a link to the
  trace of each item it covers besides its own (the line's ``linked_trace_ids``:
  :func:`supervision.tracing.trace_links`; at most 32, ``crank.linked_trace_count``
  says how many there were). A link names a trace, not one of its spans (no span ids
  travel: above), so its span id is derived from the trace id (:func:`link_span_id`),
  the same on every node, with the trace id as ``crank.trace_id``: a backend follows
  the link to the trace.

Spans go through the SDK's BatchSpanProcessor (a bounded queue, exported on its own
thread; when the collector is slower than the node, spans are dropped, never the
node slowed). The provider is this module's own, not the global one.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from supervision.tracing import DOMAIN_KINDS, add_trace_sink, remove_trace_sink

__all__ = ["SpanExport", "link_span_id", "otel_trace_id", "start_export", "traces_url"]

TRACES_PATH = "/v1/traces"
_OUR_ID = re.compile(r"^([0-9a-f]{8})-([0-9a-f]{1,24})$")
_SCOPE = InstrumentationScope("crank-node.supervision")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def otel_trace_id(trace_id: str) -> int:
    """The 128-bit OTel trace id of one of ours (module docstring); never 0."""
    ours = _OUR_ID.match(trace_id)
    if ours is not None:
        derived = int(ours.group(1), 16) << 96 | int(ours.group(2), 16)
    else:
        derived = int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:16], "big")
    return derived or 1


def link_span_id(trace_id: str) -> int:
    """The span id a link to ``trace_id`` names (module docstring): the first 8 bytes of
    the SHA-256 of ``link:<trace_id>``; never 0."""
    digest = hashlib.sha256(f"link:{trace_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _links(fields: Mapping[str, Any], own: str) -> list[Link]:
    return [
        Link(
            SpanContext(
                otel_trace_id(linked),
                link_span_id(linked),
                is_remote=True,
                trace_flags=_SAMPLED,
            ),
            {"crank.trace_id": linked},
        )
        for linked in (str(value) for value in fields.get("linked_trace_ids") or ())
        if linked != own
    ]


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector endpoint (``http://host:4318`` gets
    ``/v1/traces``; a URL already ending in it is kept)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class SpanExport:
    """Turns trace events (the fields of a ``trace.receive`` line) into finished spans
    handed to ``processor``. Called on the tracer thread only."""

    def __init__(self, processor: SpanProcessor, resource: Resource) -> None:
        self._processor = processor
        self._resource = resource
        self._span_ids = RandomIdGenerator()

    def __call__(self, fields: Mapping[str, Any]) -> None:
        if fields.get("action") != "trace.receive":
            return
        start_ns = int(float(fields["at"]) * 1e9)
        outcome = str(fields.get("outcome", "ok"))
        trace_id = str(fields["trace_id"])
        span = ReadableSpan(
            name=f"{fields['receiver']} {fields['message_type']}",
            context=SpanContext(
                otel_trace_id(trace_id),
                self._span_ids.generate_span_id(),
                is_remote=False,
                trace_flags=_SAMPLED,
            ),
            resource=self._resource,
            attributes=_attributes(fields),
            links=_links(fields, trace_id),
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.OK if outcome == "ok" else StatusCode.ERROR),
            start_time=start_ns,
            end_time=start_ns + int(float(fields.get("handler_ms", 0.0)) * 1e6),
            instrumentation_scope=_SCOPE,
        )
        self._processor.on_end(span)

    def shutdown(self, timeout_s: float = 3.0) -> bool:
        """Stop taking events, export what is queued, close the exporter; False if that
        took over ``timeout_s`` (a collector that is down: the exporter retries for up
        to its own timeout, 10 s, and a stopping node does not wait for it)."""
        remove_trace_sink(self)
        closing = threading.Thread(
            target=self._processor.shutdown, name="crank-otel-shutdown", daemon=True
        )
        closing.start()
        closing.join(timeout_s)
        return not closing.is_alive()

    def flush(self, timeout_ms: int = 10_000) -> bool:
        return self._processor.force_flush(timeout_ms)


def _attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "crank.trace_id": str(fields["trace_id"]),
        "crank.sender": str(fields["sender"]),
        "crank.receiver": str(fields["receiver"]),
        "crank.message_type": str(fields["message_type"]),
        "crank.outcome": str(fields.get("outcome", "")),
        "crank.mailbox_ms": float(fields.get("mailbox_ms", 0.0)),
    }
    for kind in DOMAIN_KINDS:
        ids = fields.get(f"{kind}_ids")
        if ids:
            attributes[f"crank.{kind}_ids"] = [str(value) for value in ids]
            attributes[f"crank.{kind}_count"] = int(fields.get(f"{kind}_count", len(ids)))
    if fields.get("linked_trace_ids"):
        attributes["crank.linked_trace_count"] = int(fields["linked_trace_count"])
    return attributes


def start_export(
    endpoint: str | None = None,
    *,
    instance_id: str,
    exporter: SpanExporter | None = None,
) -> SpanExport:
    """Export every traced message from now on: to the OTLP/HTTP collector at
    ``endpoint`` (:func:`traces_url`), or to ``exporter`` (tests: the SDK's
    InMemorySpanExporter). Trace events only flow while tracing is on
    (:func:`supervision.tracing.set_tracing`): the caller turns it on."""
    if exporter is None:
        if endpoint is None:
            raise ValueError("give an endpoint or an exporter")
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint))
    resource = Resource.create({"service.name": "crank-node", "service.instance.id": instance_id})
    export = SpanExport(BatchSpanProcessor(exporter), resource)
    add_trace_sink(export)
    return export
