"""actors.rpc.reach: since when no RPC endpoint answers, from the router's events."""

from __future__ import annotations

from actors.rpc.reach import ChainReach
from actors.rpc.state import RouterEvent


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_chain_is_cut_from_when_the_last_endpoints_breaker_opened() -> None:
    clock = Clock()
    reach = ChainReach(("a", "b"), clock)
    reach.observe(RouterEvent("breaker_opened", "a"))
    clock.now_s += 5
    assert reach.cut_for_s() == 0.0  # b still answers
    reach.observe(RouterEvent("breaker_opened", "b"))
    clock.now_s += 7
    assert reach.cut_for_s() == 7.0
    reach.observe(RouterEvent("breaker_opened", "b"))  # re-opened after a failed trial
    reach.observe(RouterEvent("breaker_half_open", "a"))  # not an answer yet
    reach.observe(RouterEvent("probe_failed", "a", "timeout"))
    clock.now_s += 1
    assert reach.cut_for_s() == 8.0


def test_one_endpoint_answering_ends_the_cut() -> None:
    for answer in ("breaker_closed", "probe_ok"):
        clock = Clock()
        reach = ChainReach(("a", "b"), clock)
        reach.observe(RouterEvent("breaker_opened", "a"))
        reach.observe(RouterEvent("breaker_opened", "b"))
        clock.now_s += 3
        reach.observe(RouterEvent(answer, "b"))
        assert reach.cut_for_s() == 0.0
        reach.observe(RouterEvent("breaker_opened", "b"))  # cut again: counted anew
        clock.now_s += 2
        assert reach.cut_for_s() == 2.0


def test_events_of_no_known_endpoint_change_nothing() -> None:
    """Router-wide events (all_breakers_open, load_status) and unknown names are ignored;
    a node with no endpoint is never cut (the node's default before its tree is built)."""
    clock = Clock()
    reach = ChainReach(("a",), clock)
    reach.observe(RouterEvent("all_breakers_open", None, "a"))
    reach.observe(RouterEvent("breaker_opened", "elsewhere"))
    assert reach.cut_for_s() == 0.0
    empty = ChainReach((), clock)
    empty.observe(RouterEvent("breaker_opened", "a"))
    assert empty.cut_for_s() == 0.0
