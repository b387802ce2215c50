"""storage.judge_clocks: which peers' heartbeats prove a clock disagreement, and when a
node must stop taking work. Pure: readings are built by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import ClockReading, judge_clocks

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BOUND_S = 2.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_heartbeat_stamped_beyond_the_bound_in_the_future_is_a_peer_ahead_even_at_start() -> None:
    """With no earlier reading, a heartbeat later than now plus the bound proves the peer's
    clock is ahead (by at least that much); one within the bound proves nothing."""
    verdict = judge_clocks(None, ClockReading(at(0), {"a": at(3600), "b": at(1)}), BOUND_S)
    assert dict(verdict.skews_s) == {"a": 3600.0}
    assert verdict.disagree and "a 3600.0s ahead" in verdict.reason()


def test_only_a_heartbeat_that_changed_between_readings_can_prove_a_peer_behind() -> None:
    """A beat written between two readings but stamped before the first one minus the bound
    is a peer behind; an unchanged old beat (a dead peer) is not judged at all."""
    previous = ClockReading(at(0), {"behind": at(-3610), "dead": at(-3610), "fine": at(-4)})
    current = ClockReading(at(5), {"behind": at(-3605), "dead": at(-3610), "fine": at(1)})
    verdict = judge_clocks(previous, current, BOUND_S)
    assert dict(verdict.skews_s) == {"behind": -3605.0, "fine": 0.0}
    assert not verdict.disagree, "one of two judged peers is not more than half"


@pytest.mark.parametrize(
    ("beats", "disagree"),
    [
        ({"a": at(3600)}, True),  # one peer: cannot tell which clock is wrong, both stop
        ({"a": at(3600), "b": at(3600)}, True),  # this node is the odd one out
        ({"a": at(3600), "b": at(1), "c": at(1)}, False),  # the peer is the odd one out
        ({"a": at(1)}, False),
    ],
)
def test_a_node_disagrees_when_more_than_half_of_the_judged_peers_are_off(
    beats: dict[str, datetime], disagree: bool
) -> None:
    """Peers that beat between the readings are judged; the node stops taking work only when
    more than half of them are off by more than the bound."""
    previous = ClockReading(at(0), {peer: at(-10) for peer in beats})
    assert judge_clocks(previous, ClockReading(at(5), beats), BOUND_S).disagree is disagree


def test_a_bound_that_is_not_positive_is_refused_naming_it() -> None:
    """max_skew_s must be positive."""
    with pytest.raises(ValueError, match="max_skew_s must be positive"):
        judge_clocks(None, ClockReading(at(0)), 0)
