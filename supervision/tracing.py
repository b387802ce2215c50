"""Message tracing: trace ids that follow the work, and one log line per hop.

Every message sent through an :class:`~supervision.handle.ActorHandle` is
wrapped in a :class:`Delivery` carrying a trace id. An actor handling a
message runs with that trace id as its *current* trace, so whatever it sends
while handling inherits it: one order's journey (order, fill, settlement,
signature) is one trace without any actor passing ids by hand.

With tracing on, each send and each handled message is one line, written in
batches by one tracer thread (one loguru record per batch, rendered by the
sinks' format functions; a delivered message's send line is written with its
receive):

    trace.send    at=... trace_id=... sender=... receiver=... type=...
    trace.receive at=... trace_id=... sender=... receiver=... type=...
                  mailbox_ms=... handler_ms=... outcome=...

(each also carries ``at=``, the event's own Unix time). The same fields are
bound as ``extra`` for the JSON sink, and ``crank-node trace`` reads either
form back.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from loguru import logger

__all__ = [
    "MAX_IDS_PER_LINE",
    "STEPS_BATCH_ACTION",
    "TRACE_ENV_VAR",
    "Delivery",
    "add_trace_sink",
    "batch_steps",
    "begin_steps",
    "bounded_ids",
    "continued",
    "current_actor_name",
    "current_trace_id",
    "domain_keys",
    "end_steps",
    "flush_steps",
    "flush_traces",
    "journey_fields",
    "log_receive",
    "log_send",
    "log_step",
    "mark_send_logged",
    "new_trace_id",
    "remove_trace_sink",
    "render_steps_json",
    "render_steps_text",
    "set_tracing",
    "trace",
    "trace_links",
    "tracing_enabled",
    "unlogged_send",
]

TRACE_ENV_VAR = "CRANK_TRACE"
EXTERNAL_SENDER = "external"


TraceId = int | str
"""A trace id: a str given by the caller (``trace("order-42")``), or an int
from this process's counter, formatted as ``<prefix>-<hex>`` only when read
or logged (formatting every id on the send path cost more than the send)."""


class Delivery(NamedTuple):
    """A user message in flight, with the context tracing needs."""

    message: Any
    trace_id: TraceId
    sender: str
    # perf_counter_ns at send when tracing is on, else 0; negated once the
    # send's own line is written (a buffered send): see log_receive.
    sent_at_ns: int


class _TraceSwitch:
    """Kept as a mutable object, not a module global, so the hot path reads
    one attribute and tests can flip it without reloading modules.

    ``enabled``: trace events are made (send and receive timings, on the hot path);
    ``lines``: the tracer writes them as log lines. Spans alone (an OTel export without
    ``trace``) make events and write no line. ``steps_batched``: an actor's journey step
    lines for one message go to loguru as one record (:func:`batch_steps`)."""

    __slots__ = ("enabled", "lines", "steps_batched")

    def __init__(self) -> None:
        self.lines = True
        self.steps_batched = False
        self.enabled = os.environ.get(TRACE_ENV_VAR, "").strip().lower() in {
            "1",
            "true",
            "yes",
            "on",
        }


SWITCH = _TraceSwitch()


def set_tracing(enabled: bool, *, lines: bool = True) -> None:
    """Turn per-message trace events on or off for the whole process; with ``lines``
    False they only reach the sinks (:func:`add_trace_sink`: the OTel export), no log."""
    SWITCH.enabled = enabled
    SWITCH.lines = lines


def tracing_enabled() -> bool:
    return SWITCH.enabled


# Trace ids: a random per-process prefix plus a counter. Unique across nodes
# for all practical purposes and ~20x cheaper than uuid4 on the send path.
_TRACE_PREFIX = secrets.token_hex(4)
_trace_counter = itertools.count(1)


def new_trace_id() -> str:
    return format_trace_id(next(_trace_counter))


def next_trace_number() -> int:
    """A new trace id in its cheap, unformatted form."""
    return next(_trace_counter)


def format_trace_id(trace_id: TraceId) -> str:
    return trace_id if isinstance(trace_id, str) else f"{_TRACE_PREFIX}-{trace_id:x}"


class _ThreadContext(threading.local):
    trace_id: TraceId | None = None
    actor_name: str = EXTERNAL_SENDER
    # The journey step lines of the message being handled, written when it is done
    # (:func:`begin_steps`); None: log_step writes each line at once.
    steps: list[tuple[float, str, dict[str, Any]]] | None = None


CONTEXT = _ThreadContext()


def current_trace_id() -> str | None:
    """The trace of the message this thread is handling, if any."""
    trace_id = CONTEXT.trace_id
    return None if trace_id is None else format_trace_id(trace_id)


def current_actor_name() -> str:
    """The actor whose thread this is, or ``external``."""
    return CONTEXT.actor_name


@contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Run a block (outside any actor, e.g. HTTP intake) as part of a trace;
    a new one is started when no id is given."""
    previous = CONTEXT.trace_id
    CONTEXT.trace_id = trace_id or new_trace_id()
    try:
        yield format_trace_id(CONTEXT.trace_id)
    finally:
        CONTEXT.trace_id = previous


def make_delivery(message: Any) -> Delivery:
    """Wrap ``message`` with the sender's current trace (or a new one)."""
    context = CONTEXT
    # tuple.__new__ directly: NamedTuple's generated __new__ costs twice as much.
    return tuple.__new__(
        Delivery,
        (
            message,
            context.trace_id or next(_trace_counter),
            context.actor_name,
            time.perf_counter_ns() if SWITCH.enabled else 0,
        ),
    )


# -- trace lines ---------------------------------------------------------------
#
# The send and receive paths only put a tuple on a queue; one tracer thread
# writes every line. Measured on a 2-core machine, two busy threads logging
# straight into one loguru handler convoy on its lock under the GIL (tell
# throughput fell to 0.03x of raw pykka); through one thread making one loguru
# call per line, the ceiling was loguru's own cost per call (about 0.10x raw
# tells with two lines per message). So the tracer drains the queue in batches
# and hands each batch to loguru as ONE record (action ``trace.batch``): the
# log sinks' format functions (supervision.logs) render its lines, text or JSON,
# only for the sinks that exist, and loguru's file sink writes the whole batch
# in one write, keeping its rotation and retention. Each line carries the
# event's own wall-clock time (``at=``), so order and timings do not depend on
# when the line is written.

TRACE_BATCH_ACTION = "trace.batch"
"""The action of the one loguru record that carries a batch of trace events
(``extra["trace_events"]``); :func:`render_trace_text` and
:func:`render_trace_json` turn it into one line per event."""
MAX_BATCH = 2048
BATCH_PAUSE_S = 0.005
"""At most this long between batches (a flush does not wait for it): a trace
line reaches its file at most about this late."""


class _Tracer:
    """Writes trace events, in batches, on its own daemon thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...] | threading.Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Event()  # cuts the pause between batches short

    def submit(self, event: tuple[Any, ...]) -> None:
        if self._thread is None:
            self._start()
        self._queue.put(event)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every event submitted so far is written."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._flushing.set()
        return done.wait(timeout_s)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._serve, name="crank-tracer", daemon=True)
                thread.start()
                self._thread = thread

    def _serve(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            taken = [get()]
            # Whatever else is queued joins the batch: under load batches grow
            # and the cost per line falls; when idle a line goes out at once.
            try:
                while len(taken) < MAX_BATCH:
                    taken.append(get_nowait())
            except queue.Empty:
                pass
            events = [event for event in taken if type(event) is tuple]
            if events:
                try:
                    _write(events)
                except Exception:  # noqa: BLE001  (a bad event must not kill tracing)
                    logger.bind(action="trace.write_failed").exception("could not write traces")
            for event in taken:  # flush markers: set once what came before is written
                if type(event) is not tuple:
                    event.set()  # type: ignore[union-attr]
            if len(taken) < MAX_BATCH:
                # A pause lets the next batch gather: waking for every message of a
                # slow trickle (sequential asks) cost the senders more than the lines.
                self._flushing.wait(BATCH_PAUSE_S)
                self._flushing.clear()


TRACER = _Tracer()
atexit.register(TRACER.flush, 2.0)


def flush_traces(timeout_s: float = 10.0) -> bool:
    """Block until every trace line submitted so far has reached loguru."""
    return TRACER.flush(timeout_s)


def log_send(delivery: Delivery, receiver: str, result: str, sent_at: float) -> None:
    """``sent_at`` is the Unix time the send began (before the put).

    Only for a send that will not be followed by its receive's line (full
    mailbox, dead letter) or that should say so at once (buffered): a delivered
    message's send line is written with its receive (:func:`log_receive`)."""
    TRACER.submit(
        (
            "send",
            sent_at,
            delivery.trace_id,
            delivery.sender,
            receiver,
            type(delivery.message).__name__,
            result,
            delivery.message,
        )
    )


def mark_send_logged(delivery: Delivery) -> Delivery:
    """``delivery``, marked so that its receive does not write its send line again."""
    if delivery.sent_at_ns <= 0:
        return delivery
    return delivery._replace(sent_at_ns=-delivery.sent_at_ns)


def log_receive(  # noqa: PLR0917  (hot path: positional on purpose)
    delivery: Delivery,
    receiver: str,
    started_at: float,
    dequeued_ns: int,
    finished_ns: int,
    outcome: str,
) -> None:
    """``started_at`` is the Unix time handling began: a receive is placed in
    the trace before the sends its handler made.

    One event for both sides of the hop: a message sent with tracing on, whose
    send line was not written yet (``sent_at_ns`` > 0), gets its
    ``trace.send ... result=delivered`` line from here, dated ``mailbox_ms``
    before the receive on the same monotonic clock. One queue put per message
    instead of two is most of what tracing costs a tell."""
    sent_at_ns = delivery.sent_at_ns
    mailbox_ns = dequeued_ns - abs(sent_at_ns) if sent_at_ns else 0
    TRACER.submit(
        (
            "delivered" if sent_at_ns > 0 else "receive",
            started_at,
            delivery.trace_id,
            delivery.sender,
            receiver,
            type(delivery.message).__name__,
            outcome,
            mailbox_ns / 1e6,
            (finished_ns - dequeued_ns) / 1e6,
            delivery.message,
        )
    )


def unlogged_send(delivery: Delivery, receiver: str, result: str) -> None:
    """Write the send line of a delivery that was accepted but will never be
    handled (a dead letter after all), if it is still unwritten."""
    if delivery.sent_at_ns > 0:
        elapsed_s = (time.perf_counter_ns() - delivery.sent_at_ns) / 1e9
        log_send(delivery, receiver, result, time.time() - elapsed_s)


def _write(events: list[tuple[Any, ...]]) -> None:
    if SWITCH.lines:
        logger.bind(action=TRACE_BATCH_ACTION, trace_events=events).info(
            f"{len(events)} trace events"
        )
    if _SINKS:
        for event in events:
            for side in _sides(event):
                fields = _sink_fields(side)
                for sink in _SINKS:
                    sink(fields)


# -- sinks: other consumers of trace events (supervision/otel.py) ----------------
#
# Each gets the fields of every trace line (as the JSON line has them), on the tracer
# thread, after the batch is written. None by default: then this is one test of an
# empty tuple per batch.

TraceSink = Callable[[Mapping[str, Any]], None]
_SINKS: tuple[TraceSink, ...] = ()


def add_trace_sink(sink: TraceSink) -> None:
    global _SINKS  # noqa: PLW0603  (a tuple swapped whole: the tracer thread reads it unlocked)
    _SINKS = (*_SINKS, sink)


def remove_trace_sink(sink: TraceSink) -> None:
    global _SINKS  # noqa: PLW0603
    _SINKS = tuple(other for other in _SINKS if other is not sink)


def _sink_fields(event: tuple[Any, ...]) -> dict[str, Any]:
    kind, at, raw_trace_id, sender, receiver, message_type, outcome = event[:7]
    fields: dict[str, Any] = {
        "action": f"trace.{kind}",
        "at": at,
        "trace_id": format_trace_id(raw_trace_id),
        "sender": sender,
        "receiver": receiver,
        "message_type": message_type,
    }
    if kind == "send":
        fields["result"] = outcome
    else:
        fields.update(outcome=outcome, mailbox_ms=event[7], handler_ms=event[8])
    fields.update(_domain_fields(event[-1]))
    return fields


# Message types and actor names repeat: their JSON strings are kept, boundedly.
_QUOTED: dict[str, str] = {}


def _quoted(value: str) -> str:
    found = _QUOTED.get(value)
    if found is None:
        found = encode_basestring_ascii(value)
        if len(_QUOTED) < 4096:
            _QUOTED[value] = found
    return found


def _domain_fields(message: Any) -> dict[str, Any]:
    # Domain keys are read on the tracer thread, not on the send path:
    # messages are immutable, so reading them later is safe.
    if type(message) in _KEYLESS:
        return {}
    if not hasattr(message, "trace_keys") and not hasattr(message, "trace_links"):
        _KEYLESS.add(type(message))
        return {}
    fields = journey_fields(domain_keys(message))
    links = trace_links(message)
    if links:
        fields["linked_trace_ids"] = bounded_ids(links)
        fields["linked_trace_count"] = len(links)
    return fields


_KEYLESS: set[type] = set()
"""Message types without ``trace_keys`` or ``trace_links`` (most): skipped without a lookup."""


def _sides(event: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
    """A ``delivered`` event as its send and its receive; any other as itself."""
    if event[0] != "delivered":
        return (event,)
    _, at, trace_id, sender, receiver, message_type, _outcome, mailbox_ms = event[:8]
    message = event[-1]
    return (
        (
            "send",
            at - mailbox_ms / 1e3,
            trace_id,
            sender,
            receiver,
            message_type,
            "delivered",
            message,
        ),
        ("receive", *event[1:]),
    )


def _text_line(event: tuple[Any, ...]) -> str:
    kind, at, raw_trace_id, sender, receiver, message_type, outcome = event[:7]
    text = (
        f"trace.{kind} at={at:.6f} trace_id={format_trace_id(raw_trace_id)} sender={sender} "
        f"receiver={receiver} type={message_type}"
    )
    if kind == "send":
        text += f" result={outcome}"
    else:
        text += f" mailbox_ms={event[7]:.3f} handler_ms={event[8]:.3f} outcome={outcome}"
    for name, value in _domain_fields(event[-1]).items():
        text += f" {name}={','.join(value) if isinstance(value, list) else value}"
    return text


def _json_lines(event: tuple[Any, ...]) -> str:
    """The event's JSON line(s): the fields ``logs.json_format`` would write,
    without ``message`` (nothing reads a trace line's text from JSON; leaving it
    out halves the cost of a line). A ``delivered`` event's two lines share
    everything but kind, time and outcome, so that part is built once."""
    kind, at, raw_trace_id, sender, receiver, message_type, outcome = event[:7]
    # A counter id is hex after a hex prefix: nothing in it to escape.
    trace_id = (
        f'"{_TRACE_PREFIX}-{raw_trace_id:x}"'
        if type(raw_trace_id) is int
        else encode_basestring_ascii(raw_trace_id)
    )
    hop = (
        f'"trace_id":{trace_id},'
        f'"sender":{_quoted(sender)},"receiver":{_quoted(receiver)},'
        f'"message_type":{_quoted(message_type)}'
    )
    for name, value in _domain_fields(event[-1]).items():
        hop += f",{_quoted(name)}:{json.dumps(value)}"
    # Fixed-point, not repr(): valid JSON numbers at a third of the cost.
    if kind == "send":
        stamp = f"{at:.6f}"
        return (
            f'{{"time":{stamp},"level":"INFO","action":"trace.send","at":{stamp},{hop},'
            f'"result":{_quoted(outcome)}}}'
        )
    mailbox_ms = event[7]
    stamp = f"{at:.6f}"
    receive = (
        f'{{"time":{stamp},"level":"INFO","action":"trace.receive","at":{stamp},{hop},'
        f'"outcome":{_quoted(outcome)},"mailbox_ms":{mailbox_ms:.3f},'
        f'"handler_ms":{event[8]:.3f}}}'
    )
    if kind == "receive":
        return receive
    stamp = f"{at - mailbox_ms / 1e3:.6f}"
    return (
        f'{{"time":{stamp},"level":"INFO","action":"trace.send","at":{stamp},{hop},'
        f'"result":"delivered"}}\n{receive}'
    )


def render_trace_text(record: Any) -> str:
    """The text lines of a ``trace.batch`` record, one per event (no trailing newline)."""
    events = record["extra"]["trace_events"]
    return "\n".join([_text_line(side) for event in events for side in _sides(event)])


def render_trace_json(record: Any) -> str:
    """The JSON lines of a ``trace.batch`` record, one per event (no trailing
    newline): ``time`` (= ``at``), ``level`` and the trace fields at the top
    level, as ``logs.json_format`` writes other records."""
    return "\n".join([_json_lines(event) for event in record["extra"]["trace_events"]])


# -- domain keys -----------------------------------------------------------------
#
# A message that carries orders, fills, settlements or signatures says which
# with a ``trace_keys()`` method returning ``{"order": ids, "fill": ids, ...}``;
# its trace lines then carry ``order_ids=... order_count=...`` (and so on), so
# a journey can be found from any of them (``crank-node trace --order``).

DOMAIN_KINDS = ("order", "fill", "settlement", "signature")
MAX_IDS_PER_LINE = 32
"""At most this many ids of one kind on one line; ``<kind>_count`` says how many
there were, so a batch of thousands keeps its lines short."""


def domain_keys(message: Any) -> dict[str, tuple[str, ...]]:
    """The domain ids ``message`` carries, by kind ({} when it says none)."""
    keys = getattr(message, "trace_keys", None)
    if keys is None or not callable(keys):
        return {}
    try:
        found = keys()
    except Exception:  # noqa: BLE001  (a message's keys must never break tracing)
        return {}
    return {kind: tuple(found[kind]) for kind in DOMAIN_KINDS if found.get(kind)}


def trace_links(message: Any) -> tuple[str, ...]:
    """The traces a batch message works for besides its own, without repeats.

    A message covering many orders, fills or settlements travels in one trace (the
    sender's), but each item has its own stored trace: such a message says which with
    ``trace_links()``, and its trace lines carry them (``linked_trace_ids``, the first
    :data:`MAX_IDS_PER_LINE`, and ``linked_trace_count``), as OpenTelemetry span links
    do; ``crank-node trace TRACE_ID`` shows those lines in each linked trace too."""
    links = getattr(message, "trace_links", None)
    if links is None or not callable(links):
        return ()
    try:
        found = links()
    except Exception:  # noqa: BLE001  (a message's links must never break tracing)
        return ()
    return tuple(dict.fromkeys(str(trace_id) for trace_id in found if trace_id))


def bounded_ids(ids: Any) -> list[str]:
    """The first :data:`MAX_IDS_PER_LINE` of ``ids``, as strings."""
    if type(ids) in (tuple, list) and len(ids) <= MAX_IDS_PER_LINE:  # the usual case, quickly
        return [value if type(value) is str else str(value) for value in ids]
    return [str(value) for _, value in zip(range(MAX_IDS_PER_LINE), ids, strict=False)]


def journey_fields(keys: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """``{"order_ids": [...first 32], "order_count": n, ...}`` for each kind given."""
    fields: dict[str, Any] = {}
    for kind in DOMAIN_KINDS:
        ids = keys.get(kind)
        if ids:
            fields[f"{kind}_ids"] = bounded_ids(ids)
            fields[f"{kind}_count"] = len(ids)
    return fields


# -- journey steps ---------------------------------------------------------------
#
# The always-on lines of an order's journey (accepted, funded, fill written,
# claimed, attempt recorded, sent, expired, confirmed) go through log_step, so
# each carries the same keys as trace lines do and the current trace id, with
# tracing on or off: ``crank-node trace --order`` reads them back.


def log_step(
    action: str,
    text: str,
    *,
    orders: tuple[str, ...] | list[str] = (),
    fills: tuple[str, ...] | list[str] = (),
    settlements: tuple[str, ...] | list[str] = (),
    signatures: tuple[str, ...] | list[str] = (),
    **context: Any,
) -> None:
    """One INFO line for a step of a journey, keyed by its domain ids."""
    keys = {"order": orders, "fill": fills, "settlement": settlements, "signature": signatures}
    fields = {"action": action, "trace_id": current_trace_id(), **journey_fields(keys), **context}
    steps = CONTEXT.steps
    if steps is not None:
        steps.append((time.time(), text, fields))
        return
    logger.bind(**fields).opt(depth=1).info(text)


# -- step lines in batches ---------------------------------------------------------
#
# A busy node writes about seven step lines per fill, and loguru's own cost per
# record (its timestamp, the record, each handler's lock and rotation check) was
# most of what they cost: 0.24 ms of the 1.52 ms of CPU per fill in
# benchmarks/pipeline_bench.py's burst. So, once configure_logging has set up
# the node's sinks (batch_steps(True)), the step lines an actor makes while
# handling one message are kept (each with its own time) and handed to loguru as
# ONE record when the handler is done (action ``steps.batch``); the sinks' format
# functions (supervision.logs) render it as the same lines, text or JSON, that
# one record per step would have made. What changes: a step line is written when
# its message is done, after any other line that message's handler wrote (a
# reader orders by time); a process killed (SIGKILL) in the middle of a message
# loses that message's step lines (crash points write them first: see
# supervision.crashpoints). Outside an actor's handler (HTTP intake, commands)
# a step line is written at once, as before.

STEPS_BATCH_ACTION = "steps.batch"
"""The action of the one loguru record carrying a handler's step lines
(``extra["step_lines"]``: ``(unix time, message, fields)`` each)."""


def batch_steps(enabled: bool) -> None:
    """Write journey step lines per handled message (True; configure_logging's sinks
    render such a batch) or one loguru record per line (False: any sink works)."""
    SWITCH.steps_batched = enabled


def begin_steps() -> None:
    """The current thread starts handling a message: keep its step lines until
    :func:`end_steps` (when batching is on)."""
    if SWITCH.steps_batched:
        CONTEXT.steps = []


def end_steps() -> None:
    """Write the step lines kept since :func:`begin_steps`, as one record, and stop keeping."""
    flush_steps()
    CONTEXT.steps = None


def flush_steps() -> None:
    """Write the step lines kept so far and go on keeping (before the process may die)."""
    steps = CONTEXT.steps
    if steps:
        CONTEXT.steps = []
        logger.bind(action=STEPS_BATCH_ACTION, step_lines=steps).info(f"{len(steps)} journey steps")


def _step_time(at: float) -> datetime:
    """``at`` as loguru dates a record: local time, with the UTC offset."""
    return datetime.fromtimestamp(at).astimezone()


def _step_extra(record: Any) -> dict[str, Any]:
    """The batch record's own ``extra`` that each line would have had (contextualized
    and configured keys), without the batch's."""
    return {
        key: value
        for key, value in record["extra"].items()
        if key not in ("action", "step_lines") and not key.startswith("_")
    }


def render_steps_text(record: Any, line_format: str) -> str:
    """The text lines of a ``steps.batch`` record (no trailing newline), each as
    ``line_format`` (``{time}``, ``{action}``, ``{message}``) renders it."""
    return "\n".join(
        [
            line_format.format(
                time=_step_time(at).isoformat(timespec="microseconds"),
                action=fields.get("action", ""),
                message=text,
            )
            for at, text, fields in record["extra"]["step_lines"]
        ]
    )


def render_steps_json(record: Any) -> str:
    """The JSON lines of a ``steps.batch`` record (no trailing newline), each as
    ``logs.json_format`` writes a record: time, level, message, then the extra keys."""
    base = _step_extra(record)
    lines = []
    for at, text, fields in record["extra"]["step_lines"]:
        entry: dict[str, Any] = {"time": at, "level": "INFO", "message": text}
        entry.update(base)
        entry.update(fields)
        lines.append(json.dumps(entry, default=str))
    return "\n".join(lines)


@contextmanager
def continued(trace_id: str | None) -> Iterator[str | None]:
    """Run a block as part of the stored trace ``trace_id`` (one read back from the
    database: the hop through it keeps the chain); with None, in the current one."""
    if trace_id is None:
        yield current_trace_id()
        return
    with trace(trace_id) as continued_id:
        yield continued_id
