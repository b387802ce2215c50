"""BlockhashActor through a real router to localnet: fresh blockhashes and expiry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors.blockhash import BlockhashActor, BlockhashClient, BlockhashSettings
from actors.rpc import RpcRouterConfig
from localnet import LocalnetServer
from supervision import ActorHandle, ManualClock, launch

from .conftest import RunningRouter

pytestmark = pytest.mark.localnet(endpoints=3, advance_slots=200)


def test_expiry_is_detected_once_localnet_has_advanced_past_last_valid_block_height(
    localnet: LocalnetServer, start_router: Callable[..., RunningRouter]
) -> None:
    """A blockhash is not expired while the confirmed block height is at most its
    lastValidBlockHeight, and is once localnet has produced the blocks past it; the next
    blockhash handed out is a new, valid one."""
    running = start_router(RpcRouterConfig.from_urls(localnet.urls))
    clock = ManualClock()
    actor = BlockhashActor(running.handle, BlockhashSettings(max_age_s=10.0), clock=clock)
    launch(actor)
    handle = ActorHandle("blockhash")
    handle.attach(actor.actor_inbox)
    blockhashes = BlockhashClient(handle)
    try:
        first = blockhashes.latest().get(timeout=5)
        assert first.block_height is not None
        assert not blockhashes.is_expired(first.last_valid_block_height).get(timeout=5).expired

        localnet.advance_slots(first.last_valid_block_height - first.block_height + 3)
        clock.advance(
            11.0
        )  # the known height is now too old to say "not expired" without a refresh
        verdict = blockhashes.is_expired(first.last_valid_block_height).get(timeout=5)
        assert verdict.expired
        assert verdict.block_height > first.last_valid_block_height

        second = blockhashes.latest().get(timeout=5)
        assert second.blockhash != first.blockhash
        assert second.last_valid_block_height >= verdict.block_height
    finally:
        actor.actor_ref.stop()
