"""SlotFeed: slotSubscribe over a real localnet's PubSub, and over a scripted server
for what a real endpoint does not do on demand (refuse, lie, send garbage)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from actors.rpc.slot_feed import SlotFeed, SlotFeedState, pubsub_url_for
from localnet import Faults, LocalnetServer
from tests.conftest import Recorder
from tests.integration.storage.conftest import poll_until
from tests.support.scripted_pubsub import ScriptedPubSub, slot_note

pytestmark = [pytest.mark.localnet(slot_ms=20), pytest.mark.timeout(60)]


@contextmanager
def following(url: str, recorder: Recorder) -> Iterator[SlotFeed]:
    feed = SlotFeed(url, recorder.record, reconnect_first_s=0.05, reconnect_max_s=0.2)
    feed.start()
    try:
        yield feed
    finally:
        feed.close()


def _state_when(
    feed: SlotFeed, wanted: Callable[[SlotFeedState], bool], timeout_s: float = 10.0
) -> SlotFeedState:
    def probe() -> SlotFeedState | None:
        state = feed.state()
        return state if wanted(state) else None

    return poll_until(probe, timeout_s)


def test_the_pubsub_url_is_derived_as_web3js_derives_it() -> None:
    """ws for http, wss for https, an explicit port plus one, path and query kept."""
    assert pubsub_url_for("http://127.0.0.1:8899") == "ws://127.0.0.1:8900"
    assert (
        pubsub_url_for("https://rpc.example.com/v1/?api-key=k")
        == "wss://rpc.example.com/v1/?api-key=k"
    )
    assert pubsub_url_for("http://[::1]:8899/") == "ws://[::1]:8900/"
    with pytest.raises(ValueError, match="not an http"):
        pubsub_url_for("ftp://example.com")
    with pytest.raises(ValueError, match="ws:// or wss://"):
        SlotFeed("http://127.0.0.1:8899", print)
    with pytest.raises(ValueError, match="ws:// or wss://"):
        SlotFeed(["ws://127.0.0.1:8900", "http://127.0.0.1:8899"], print)
    with pytest.raises(ValueError, match="at least one URL"):
        SlotFeed([], print)


def test_it_follows_a_real_endpoints_slots_in_order(
    localnet: LocalnetServer, recorder: Recorder
) -> None:
    url = localnet.pubsub_urls[0]
    assert url is not None
    with following(url, recorder) as feed:
        slots = recorder.wait_for(lambda seen: len(seen) >= 5, 10)
        state = feed.state()
    assert slots == sorted(slots) and len(set(slots)) == len(slots)
    assert state.connected and state.connects == 1 and state.malformed == 0
    assert state.slot is not None and state.slot >= slots[4]


def test_it_comes_back_after_its_endpoint_went_down(
    localnet: LocalnetServer, recorder: Recorder
) -> None:
    """Down closes the PubSub connection; the feed retries until the endpoint is back,
    subscribes again and goes on with newer slots."""
    url = localnet.pubsub_urls[0]
    assert url is not None
    with following(url, recorder) as feed:
        recorder.wait_for(lambda seen: len(seen) >= 2, 10)
        localnet.set_faults(0, Faults(down=True))
        down = _state_when(feed, lambda s: not s.connected)
        assert down.last_error is not None
        before = len(recorder.snapshot())
        localnet.clear_faults(0)
        back = _state_when(feed, lambda s: s.connected and s.connects == 2)
        slots = recorder.wait_for(lambda seen: len(seen) >= before + 3, 10)
    assert back.connects == 2
    assert slots[-1] > slots[before - 1]


@pytest.mark.localnet(slot_ms=20, endpoints=2)
def test_it_follows_the_next_endpoint_while_the_first_is_down(
    localnet: LocalnetServer, recorder: Recorder
) -> None:
    """Given every endpoint's PubSub (a node's 'auto'), a feed whose first endpoint is
    down subscribes at the second and passes its slots on; when the second goes down
    too and the first is back, it moves back to the first."""
    first, second = localnet.pubsub_urls
    assert first is not None and second is not None
    localnet.set_faults(0, Faults(down=True))
    feed = SlotFeed([first, second], recorder.record, reconnect_first_s=0.05, reconnect_max_s=0.2)
    feed.start()
    try:
        at_second = _state_when(feed, lambda s: s.connected and s.notifications >= 3)
        assert at_second.url == second
        localnet.clear_faults(0)
        localnet.set_faults(1, Faults(down=True))
        seen = at_second.notifications
        back = _state_when(feed, lambda s: s.connected and s.url == first)
        assert back.connects == 2
        _state_when(feed, lambda s: s.notifications >= seen + 3)
    finally:
        feed.close()
        localnet.clear_faults(1)
    slots = recorder.snapshot()
    assert len(slots) >= 6


def test_a_refused_subscription_is_an_error_and_retried_not_a_feed(recorder: Recorder) -> None:
    def refuse(request: dict[str, object]) -> dict[str, object]:
        error = {"code": -32601, "message": "Method not found"}
        return {"jsonrpc": "2.0", "error": error, "id": request.get("id")}

    with (
        ScriptedPubSub([slot_note(5)], answer=refuse) as server,
        following(server.url, recorder) as feed,
    ):
        poll_until(lambda: server.connections >= 2 or None, 10)  # it tried again
        state = feed.state()
    assert server.requests[0] == {"jsonrpc": "2.0", "id": 1, "method": "slotSubscribe"}
    assert not state.connected and state.connects == 0
    assert state.last_error is not None and "slotSubscribe refused" in state.last_error
    assert recorder.snapshot() == []  # nothing after a refusal is taken as a slot


def test_malformed_notifications_are_counted_and_never_passed_on(recorder: Recorder) -> None:
    """Slots that are not u64 numbers, other methods and broken JSON are skipped."""
    garbage = [
        slot_note(-1),
        slot_note(2**64),
        slot_note("12"),
        slot_note(True),
        slot_note(1.5),
        "{not json",
        json.dumps({"jsonrpc": "2.0", "method": "rootNotification", "params": {"result": 3}}),
        json.dumps([1, 2, 3]),
    ]
    with (
        ScriptedPubSub([*garbage, slot_note(2**64 - 1), slot_note(41)]) as server,
        following(server.url, recorder) as feed,
    ):
        recorder.wait_for(lambda seen: len(seen) == 2, 10)
        state = feed.state()
    assert recorder.snapshot() == [2**64 - 1, 41]
    assert state.malformed == len(garbage)
    assert state.notifications == 2
    assert state.slot == 2**64 - 1  # the newest is the highest seen, not the last


def test_a_callback_that_raises_does_not_end_the_feed(recorder: Recorder) -> None:
    def explode(slot: int) -> None:
        recorder.record(slot)
        raise RuntimeError("listener broke")

    with ScriptedPubSub([slot_note(1), slot_note(2)]) as server:
        feed = SlotFeed(server.url, explode)
        feed.start()
        try:
            recorder.wait_for(lambda seen: seen == [1, 2], 10)
            server.next_frames([slot_note(3)])
            recorder.wait_for(lambda seen: seen == [1, 2, 3], 10)
            assert feed.state().connected
        finally:
            feed.close()
