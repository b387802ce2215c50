"""The live stream (``GET /stream``): Server-Sent Events of a market's fills and book
changes, or of one maker's fills, settlement states and order states.

Why SSE and not WebSocket: the stream flows one way (node to client); SSE is plain
HTTP, so it passes through the intake listener's limits, proxies and load balancers
as any answer does; it has resumption built in (each event's ``id`` is a cursor that
browsers and SSE clients send back as ``Last-Event-ID``); aiohttp serves it with a
``StreamResponse`` and no extra dependency; and a client needs no library beyond
``fetch`` or ``EventSource``.

Every event comes from the database (never from this node's actors), so any node of
a cluster serves any market's stream, whichever node matches and settles it. Each
client has a poller (one short read transaction per ``stream_poll_interval_s``, in
the executor) and a bounded buffer of ``stream_buffer_events`` events; when a slow
reader lets it fill, the client is dropped with a last ``dropped`` event saying why
(sent with a short timeout) and the connection is closed: it never slows the node or
the other clients. It reconnects with its last event id and misses nothing: fills
are resent from the cursor, settlement and order states are sent as they are now.

Events (``data`` is JSON, u64s as strings):

* ``fill``: a fill (as ``/orders/{id}/fills`` has it); ``id`` is the cursor after it.
* ``settlement``: ``{fill_id, order_id, settlement}`` when a fill's settlement state
  changes (and on connect for fills not settled yet).
* ``book``: the market's depth (as ``/markets/{id}/book``) on connect and on change.
* ``order``: ``{order_id, market_id, status, remaining_atoms}`` of the maker's orders
  on connect (open ones) and on change.
* ``dropped``: ``{reason}``, the last event of a client that fell behind.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web
from loguru import logger
from solders.pubkey import Pubkey

import market as domain
from crank_node.node.http_server import ListenerEvents
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_fills import advance_cursor, encode_cursor, fill_json
from storage.maker_fills import (
    MakerFill,
    fills_by_id,
    fills_of_maker,
    fills_of_market,
    orders_of_maker,
    unsettled_fills,
)

__all__ = [
    "ClientBuffer",
    "SharedBooks",
    "StreamEvent",
    "StreamLimits",
    "StreamState",
    "serve_stream",
    "sse_frame",
    "stream_topic",
]

_FINAL = ("confirmed", "failed")
_LIVE_ORDER = ("open", "unfunded")


@dataclass(frozen=True)
class StreamLimits:
    """Per client: a poll every ``poll_interval_s``, ``buffer_events`` buffered. For the
    node: at most ``max_streams`` at once (503 past it), all polling on ``poll_threads``
    threads of their own, so streams never take the threads that answer orders."""

    poll_interval_s: float = 0.5
    buffer_events: int = 256
    heartbeat_s: float = 15.0
    page_fills: int = 200
    drop_write_timeout_s: float = 1.0
    max_streams: int = 256
    poll_threads: int = 2


class StreamEvent(NamedTuple):
    kind: str
    data: dict[str, Any]
    cursor: str | None = None


def sse_frame(event: StreamEvent) -> bytes:
    """One Server-Sent Event: ``id`` (when the event moves the cursor), ``event``, ``data``."""
    lines = [] if event.cursor is None else [f"id: {event.cursor}"]
    lines += [f"event: {event.kind}", "data: " + json.dumps(event.data, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()


class ClientBuffer:
    """A client's bounded buffer: :meth:`offer` says why the client must be dropped
    (a reason) when it cannot take every event, else None."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queue: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize=capacity)

    def offer(self, events: list[StreamEvent]) -> str | None:
        for event in events:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                return (
                    f"the client fell behind: its buffer of {self.capacity} events is full; "
                    "reconnect with the last event id"
                )
        return None


@dataclass(frozen=True)
class Topic:
    market_id: str | None
    maker: str | None


class StreamState:
    """What one client has been told; :meth:`poll` (blocking: the database) gives what
    is new since."""

    def __init__(
        self, topic: Topic, seen: dict[str, int], page_fills: int, books: SharedBooks
    ) -> None:
        self.topic = topic
        self.books = books
        self.seen = dict(seen)
        self.page_fills = page_fills
        self.watching: dict[str, str] = {}  # fill id -> settlement state told
        self.book: dict[str, Any] | None = None
        self.orders: dict[str, tuple[str, int]] = {}
        self.started = False

    def poll(self, intake: OrderIntake) -> list[StreamEvent]:
        engine = intake.engine
        events: list[StreamEvent] = []
        if not self.started:
            self.started = True
            ids = unsettled_fills(engine, market_id=self.topic.market_id, maker=self.topic.maker)
            for fill in fills_by_id(engine, ids, self.topic.maker):
                if fill.sequence <= self.seen.get(fill.market_id, -1):  # told before
                    events.append(self._settlement(fill))
        events += self._new_fills(intake)
        events += self._settlement_changes(intake)
        if self.topic.market_id is not None:
            book = self.books.get(intake, self.topic.market_id)
            if book != self.book:
                self.book = book
                events.append(StreamEvent("book", book))
        if self.topic.maker is not None:
            events += self._order_changes(intake, self.topic.maker)
        return events

    def _new_fills(self, intake: OrderIntake) -> list[StreamEvent]:
        market_id, maker = self.topic.market_id, self.topic.maker
        if market_id is not None:
            after = self.seen.get(market_id, -1)
            fills = fills_of_market(intake.engine, market_id, after, self.page_fills)
        else:
            assert maker is not None
            fills = fills_of_maker(intake.engine, maker, self.seen, self.page_fills)
        events = []
        for fill in fills:
            self.seen = advance_cursor(self.seen, [fill])
            events.append(StreamEvent("fill", fill_json(fill), encode_cursor(self.seen)))
            if fill.settlement_state not in _FINAL:
                self.watching[fill.fill_id] = fill.settlement_state
        return events

    def _settlement_changes(self, intake: OrderIntake) -> list[StreamEvent]:
        events = []
        for fill in fills_by_id(intake.engine, list(self.watching), self.topic.maker):
            if fill.settlement_state != self.watching.get(fill.fill_id):
                events.append(self._settlement(fill))
        return events

    def _settlement(self, fill: MakerFill) -> StreamEvent:
        if fill.settlement_state in _FINAL:
            self.watching.pop(fill.fill_id, None)
        else:
            self.watching[fill.fill_id] = fill.settlement_state
        told = fill_json(fill)
        return StreamEvent(
            "settlement", {key: told[key] for key in ("fill_id", "order_id", "settlement")}
        )

    def _order_changes(self, intake: OrderIntake, maker: str) -> list[StreamEvent]:
        events = []
        for order in orders_of_maker(intake.engine, maker, also=list(self.orders)):
            state = (order.status, order.remaining_atoms)
            if self.orders.get(order.order_id) == state:
                continue
            if order.status in _LIVE_ORDER:
                self.orders[order.order_id] = state
            else:
                self.orders.pop(order.order_id, None)
            events.append(
                StreamEvent(
                    "order",
                    {
                        "order_id": order.order_id,
                        "market_id": order.market_id,
                        "status": order.status,
                        "remaining_atoms": str(order.remaining_atoms),
                    },
                )
            )
        return events


class SharedBooks:
    """Each market's depth, read at most once per ``max_age_s`` whatever the number of
    streams of it (the book is the heavy read: every open order of the market)."""

    def __init__(self, max_age_s: float, now_s: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.now_s = now_s
        self._lock = threading.Lock()
        self._books: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, intake: OrderIntake, market_id: str) -> dict[str, Any]:
        from crank_node.node.intake_http import book_json  # noqa: PLC0415  (it imports us)

        with self._lock:  # one reader at a time: the others wait for its answer
            read_at, book = self._books.get(market_id, (float("-inf"), {}))
            if self.now_s() - read_at >= self.max_age_s:
                book = book_json(intake.book(market_id))
                self._books[market_id] = (self.now_s(), book)
            return book


def stream_topic(intake: OrderIntake, market_id: str | None, maker: str | None) -> Topic:
    """The topic the query names (exactly one of ``market_id`` and ``maker``), checked."""
    if (market_id is None) == (maker is None):
        raise domain.InvalidField("market_id", "give exactly one of market_id and maker")
    if market_id is not None:
        intake.market(market_id)
    if maker is not None:
        try:
            Pubkey.from_string(maker)
        except ValueError:
            raise domain.BadBase58("maker", "must be a base58 public key (32 bytes)") from None
    return Topic(market_id, maker)


async def serve_stream(
    request: web.Request,
    intake: OrderIntake,
    state: StreamState,
    limits: StreamLimits,
    events: ListenerEvents,
    *,
    stopping: Callable[[], bool] = lambda: False,
    executor: Executor | None = None,
) -> web.StreamResponse:
    """Stream ``state``'s events to the client until it leaves, falls behind, intake
    closes or the listener stops (``stopping()``)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    buffer = ClientBuffer(limits.buffer_events)
    writer = asyncio.create_task(_write(response, buffer))
    loop = asyncio.get_running_loop()
    quiet_s = 0.0
    events.count("streams_opened")
    try:
        while not (writer.done() or intake.closed or stopping() or _client_gone(request)):
            polled = await loop.run_in_executor(executor, state.poll, intake)
            quiet_s = 0.0 if polled else quiet_s + limits.poll_interval_s
            if quiet_s >= limits.heartbeat_s:
                quiet_s, polled = 0.0, [StreamEvent("heartbeat", {})]
            reason = buffer.offer(polled)
            if reason is not None:
                writer.cancel()
                await _drop(request, response, reason, limits, events)
                break
            await asyncio.sleep(limits.poll_interval_s)  # the poll's period, not a wait
    finally:
        writer.cancel()
    return response


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _write(response: web.StreamResponse, buffer: ClientBuffer) -> None:
    try:
        while True:
            event = await buffer.queue.get()
            await response.write(sse_frame(event))
    except (ConnectionError, RuntimeError):
        return  # the client left


async def _drop(
    request: web.Request,
    response: web.StreamResponse,
    reason: str,
    limits: StreamLimits,
    events: ListenerEvents,
) -> None:
    events.count("streams_dropped_slow")
    logger.bind(action="intake.stream_dropped", client=request.remote).info(
        f"stream client dropped: {reason}"
    )
    try:
        async with asyncio.timeout(limits.drop_write_timeout_s):
            await response.write(sse_frame(StreamEvent("dropped", {"reason": reason})))
    except (TimeoutError, ConnectionError, RuntimeError):
        pass
    if request.transport is not None:
        request.transport.close()
