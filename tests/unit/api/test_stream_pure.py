"""The stream's pure parts: an SSE frame's bytes and the bounded client buffer."""

from __future__ import annotations

import asyncio

from crank_node.node.intake_stream import ClientBuffer, SharedBooks, StreamEvent, sse_frame
from market import Book
from tests.unit.market.factories import make_market


def test_an_event_is_framed_with_its_cursor_as_id_and_compact_json_data() -> None:
    """``id`` only when the event moves the cursor; one ``data`` line; a blank line ends it."""
    assert sse_frame(StreamEvent("fill", {"a": "1"}, "abc")) == (
        b'id: abc\nevent: fill\ndata: {"a":"1"}\n\n'
    )
    assert sse_frame(StreamEvent("book", {})) == b"event: book\ndata: {}\n\n"


def test_a_full_buffer_gives_the_reason_to_drop_the_client_and_takes_no_more() -> None:
    """Up to ``capacity`` events are kept; the next is refused with a reason naming the
    buffer's size and saying to reconnect from the last event id."""

    async def fill() -> tuple[str | None, str | None, int]:
        buffer = ClientBuffer(2)
        first = buffer.offer([StreamEvent("a", {}), StreamEvent("b", {})])
        second = buffer.offer([StreamEvent("c", {})])
        return first, second, buffer.queue.qsize()

    first, second, kept = asyncio.run(fill())

    assert first is None and kept == 2
    assert second is not None and "buffer of 2 events is full" in second
    assert "last event id" in second


class _CountingIntake:
    """An intake stand-in whose book reads are counted (SharedBooks reads nothing else)."""

    def __init__(self) -> None:
        self.reads = 0

    def book(self, market_id: str) -> Book:
        self.reads += 1
        return Book(make_market(market_id=market_id))


def test_every_stream_of_a_market_shares_one_book_read_per_interval() -> None:
    """Within ``max_age_s`` of a read, other streams get the same book without a read;
    past it, the next one reads again (time from an injected clock)."""
    clock = [100.0]
    books = SharedBooks(0.25, now_s=lambda: clock[0])
    intake = _CountingIntake()

    first = [books.get(intake, "SOL-USDC") for _ in range(10)]  # type: ignore[arg-type]
    clock[0] += 0.3
    books.get(intake, "SOL-USDC")  # type: ignore[arg-type]

    assert intake.reads == 2
    assert first[0] == {"market_id": "SOL-USDC", "bids": [], "asks": []}
