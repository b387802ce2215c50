"""SettlementActor paced by a slot feed: a status round as each slot arrives, the
timer only while the feed is silent, and a feed that lies changes nothing decided
(the real localnet's chain answers are the only evidence)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from actors.settlement.actor import _Tick
from localnet import LocalnetServer
from tests.integration.actors.test_settlement_actor import (  # noqa: F401  (the fixture)
    FAST,
    SLOT_MS,
    Settler,
    _expected_after,
    settler,
)
from tests.integration.storage.conftest import poll_until
from tests.support.chain_audit import settled_fill_ids
from tests.support.scripted_pubsub import ScriptedPubSub, slot_note

pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(120)]


@pytest.fixture
def desk(settler: Settler) -> Settler:  # noqa: F811  (test_settlement_actor's fixture)
    return settler


# A timer that never fires within a test: every round must come from the feed.
NO_TIMER = dataclasses.replace(FAST, status_interval_s=600.0)


def _settled_once(desk: Settler, before: dict[str, int]) -> None:
    trade = desk.trade
    finished = desk.finished()
    assert finished.outcome == "confirmed"
    assert trade.balances() == _expected_after(trade, before)
    assert [(a.attempt_number, a.state) for a in desk.attempts()] == [(1, "confirmed")]
    assert settled_fill_ids(trade.localnet.url, trade.authority.pubkey()) == {trade.fill.fill_id: 1}


def test_slots_from_the_endpoints_pubsub_drive_the_rounds_that_confirm(
    desk: Settler, localnet: LocalnetServer
) -> None:
    """With the timer out of reach, the settlement is confirmed by rounds started on
    slots: the feed is followed, and every round was one of its."""
    before = desk.trade.balances()
    desk.start(dataclasses.replace(NO_TIMER, slot_feed_urls=(localnet.pubsub_urls[0],)))
    _settled_once(desk, before)
    state = desk.state()
    assert state.slot_feed is not None and state.slot_feed["connected"]
    assert state.rounds_on_slots >= 1
    assert state.status_rounds == state.rounds_on_slots


def test_a_feed_that_lies_about_slots_decides_nothing_and_a_flood_is_one_round_at_a_time(
    desk: Settler,
) -> None:
    """A feed announcing slots far ahead of the chain (up to 2^64 - 1), in a flood,
    before anything landed: every round it starts is judged on the chain's own answers,
    so the settlement is confirmed once, with one attempt, and the flood is coalesced
    (one round in flight, one more asked after it) instead of a round per notification."""
    before = desk.trade.balances()
    flood = [slot_note(slot) for slot in (10**9, 2**64 - 1, 2**64 - 1, 3)] * 250
    with ScriptedPubSub(flood) as lying:
        desk.start(dataclasses.replace(NO_TIMER, slot_feed_urls=(lying.url,)))
        poll_until(lambda: desk.state().slot_feed["notifications"] == 1000 or None, 20)  # type: ignore[index]
        # Keep it talking until the settlement is decided: only its slots start rounds.
        done = False
        while not done:
            lying.next_frames([slot_note(2**64 - 1)])
            done = desk.state().confirmed == 1
        _settled_once(desk, before)
        state = desk.state()
    assert state.status_rounds == state.rounds_on_slots
    notified = state.slot_feed["notifications"]  # type: ignore[index]
    # One cue waits in the mailbox at a time, one round runs at a time: a flood is a few.
    assert state.rounds_on_slots <= state.slot_cues < notified / 2


def test_a_feed_gone_silent_hands_the_rounds_back_to_the_timer(desk: Settler) -> None:
    """One slot, then nothing: past slot_feed_stale_s the timer's rounds confirm."""
    before = desk.trade.balances()
    with ScriptedPubSub([slot_note(1)]) as silent:
        desk.start(dataclasses.replace(FAST, slot_feed_urls=(silent.url,), slot_feed_stale_s=0.3))
        _settled_once(desk, before)
        state = desk.state()
    assert state.slot_feed is not None and state.slot_feed["notifications"] == 1
    assert state.status_rounds > state.rounds_on_slots


def test_an_instance_that_failed_leaves_no_feed_behind(
    desk: Settler, localnet: LocalnetServer
) -> None:
    """A tell that fails the actor skips on_stop (the failure policy): the feed's
    thread and connection must end with the failed instance, not stay for good (one
    more per restart of a crash-looping actor)."""
    desk.start(dataclasses.replace(NO_TIMER, slot_feed_urls=(localnet.pubsub_urls[0],)))
    poll_until(lambda: desk.state().slot_feed["connected"] or None, 10)  # type: ignore[index]
    assert _feed_threads() == ["settlement-slots"]
    assert desk.handle is not None
    desk.handle.tell(_Tick("no such tick"))  # a KeyError in the handler: the actor fails
    poll_until(lambda: not _feed_threads() or None, 10)


def _feed_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-slots") and t.is_alive()]
