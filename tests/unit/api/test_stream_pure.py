"""The stream's pure parts: an SSE frame's bytes and the bounded client buffer."""

from __future__ import annotations

import asyncio

from crank_node.node.intake_stream import ClientBuffer, StreamEvent, sse_frame


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
