"""BlockhashActor over a router the test answers by hand, on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.blockhash import (
    BlockhashActor,
    BlockhashClient,
    BlockhashSettings,
    GetBlockhashState,
)
from actors.rpc import ErrorKind, InvalidRpcConfig, Priority, RpcFailure, RpcSuccess
from actors.rpc.errors import BlockhashUnavailable
from actors.rpc.messages import RpcRequest
from supervision import ActorHandle, ManualClock, launch

from .fakes import FakeRouter


class Harness:
    def __init__(self, settings: BlockhashSettings) -> None:
        self.clock = ManualClock()
        self.router = FakeRouter()
        self.actor = BlockhashActor(self.router, settings, clock=self.clock)
        launch(self.actor)
        self.handle = ActorHandle("blockhash")
        self.handle.attach(self.actor.actor_inbox)
        self.client = BlockhashClient(self.handle)
        self.answered = 0

    def answer_refresh(self, blockhash: str, last_valid: int, height: int) -> None:
        """Answer the next refresh (its two requests)."""
        requests = self.router.wait_requests(self.answered + 2)[self.answered : self.answered + 2]
        self.answered += 2
        for request in requests:
            if request.method == "getLatestBlockhash":
                value = {"blockhash": blockhash, "lastValidBlockHeight": last_valid}
                request.reply(
                    RpcSuccess({"context": {"slot": height}, "value": value}, "e", height, 1, 0)
                )
            else:
                request.reply(RpcSuccess(_epoch_info(height), "e", None, 1, 0.0))

    def fail_refresh(self) -> None:
        requests = self.router.wait_requests(self.answered + 2)[self.answered : self.answered + 2]
        self.answered += 2
        for request in requests:
            request.reply(RpcFailure(ErrorKind.DEADLINE_EXCEEDED, "all down", 3, 5.0))


@pytest.fixture
def harness() -> Iterator[Harness]:
    harness = Harness(BlockhashSettings(refresh_interval_s=2.0, max_age_s=10.0))
    yield harness
    harness.actor.actor_ref.stop()


def test_it_refreshes_at_start_and_every_interval_at_critical_priority_and_confirmed(
    harness: Harness,
) -> None:
    """Two requests (getLatestBlockhash, getEpochInfo) at start and after each 2 s."""
    harness.answer_refresh("A", 200, 50)
    harness.clock.advance(2.0)
    harness.answer_refresh("B", 201, 51)
    harness.clock.advance(2.0)
    requests: list[RpcRequest] = harness.router.wait_requests(6)
    assert [request.method for request in requests].count("getLatestBlockhash") == 3
    assert all(request.priority is Priority.CRITICAL for request in requests)
    assert all(request.params == ({"commitment": "confirmed"},) for request in requests)


def test_a_fresh_cached_blockhash_is_served_without_asking_the_router(harness: Harness) -> None:
    """Within max age, answers come from the cache."""
    harness.answer_refresh("A", 200, 50)
    served = harness.client.latest().get(timeout=5)
    assert (served.blockhash, served.last_valid_block_height, served.block_height) == ("A", 200, 50)
    assert len(harness.router.requests) == 2


def test_a_blockhash_older_than_max_age_is_refreshed_before_it_is_handed_out() -> None:
    """Past max age (refreshes far apart), a request waits for a refresh made at once."""
    harness = Harness(BlockhashSettings(refresh_interval_s=60.0, max_age_s=10.0))
    harness.answer_refresh("A", 200, 50)
    harness.clock.advance(11.0)
    future = harness.client.latest()
    harness.answer_refresh("B", 210, 60)
    assert future.get(timeout=5).blockhash == "B"
    assert harness.handle.ask(GetBlockhashState()).get(timeout=5).refreshes == 2
    harness.actor.actor_ref.stop()


def test_a_blockhash_the_chain_has_passed_is_never_handed_out(harness: Harness) -> None:
    """Block height 201 > lastValidBlockHeight 200: the cached one is dropped for a refresh;
    if the refresh fails there is no blockhash to hand out."""
    harness.answer_refresh("A", 200, 50)
    harness.clock.advance(2.0)
    requests = harness.router.wait_requests(4)
    requests[3 if requests[3].method == "getEpochInfo" else 2].reply(
        RpcSuccess(_epoch_info(201), "e", None, 1, 0)
    )
    other = requests[2 if requests[3].method == "getEpochInfo" else 3]
    other.reply(RpcFailure(ErrorKind.TIMEOUT, "slow", 1, 1.0))
    harness.answered = 4
    future = harness.client.latest()
    harness.fail_refresh()
    with pytest.raises(BlockhashUnavailable):
        future.get(timeout=5)


def test_expiry_is_judged_against_the_confirmed_block_height(harness: Harness) -> None:
    """Expired means the block height is past lastValidBlockHeight, not at it."""
    harness.answer_refresh("A", 300, 150)
    assert harness.client.is_expired(149).get(timeout=5).expired
    verdict = harness.client.is_expired(150).get(timeout=5)
    assert not verdict.expired and verdict.block_height == 150


def test_without_any_block_height_an_expiry_question_fails_rather_than_guessing(
    harness: Harness,
) -> None:
    """The first refresh failed: the answer is BlockhashUnavailable, never 'not expired'."""
    future = harness.client.is_expired(10)
    harness.fail_refresh()
    with pytest.raises(BlockhashUnavailable):
        future.get(timeout=5)


def test_invalid_settings_are_refused_by_field_name() -> None:
    """A zero refresh interval names the field."""
    with pytest.raises(InvalidRpcConfig, match=r"^refresh_interval_s"):
        BlockhashSettings(refresh_interval_s=0)


def _epoch_info(height: int) -> dict[str, int]:
    """getEpochInfo's answer at block height ``height`` (slot = height + 7: skipped slots)."""
    return {
        "absoluteSlot": height + 7,
        "blockHeight": height,
        "epoch": 0,
        "slotIndex": height + 7,
        "slotsInEpoch": 432_000,
        "transactionCount": 1,
    }


def test_an_expiry_verdict_carries_the_slot_its_block_height_was_read_at(
    harness: Harness,
) -> None:
    """getEpochInfo gives the height and its slot in one answer; the verdict keeps both,
    which the settlement protocol's context-slot rule needs."""
    harness.answer_refresh("A", 200, 150)
    verdict = harness.client.is_expired(100).get(timeout=5)
    assert (verdict.expired, verdict.block_height, verdict.slot) == (True, 150, 157)
