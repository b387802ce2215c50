"""Routers over the test's localnet (three endpoints, manual slots, 200 slots advanced:
``pytest.mark.localnet`` in each module), stopped after the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.rpc import GetRouterState, RouterState, RpcClient, RpcRouter, RpcRouterConfig
from supervision import ActorHandle, launch


class RunningRouter:
    def __init__(self, router: RpcRouter) -> None:
        self.router = router
        launch(router)
        self.handle = ActorHandle(router.name)
        self.handle.attach(router.actor_inbox)
        self.client = RpcClient(self.handle)

    def state(self) -> RouterState:
        state: RouterState = self.handle.ask(GetRouterState()).get(timeout=5)
        return state

    def stop(self) -> None:
        self.router.actor_ref.stop(timeout=10)


@pytest.fixture
def start_router() -> Iterator[Callable[..., RunningRouter]]:
    """Start a router (stopped before the localnet stops)."""
    started: list[RunningRouter] = []

    def start(config: RpcRouterConfig, **options: Any) -> RunningRouter:
        running = RunningRouter(RpcRouter(config, **options))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, re-checking every 10 ms; fail after ``timeout_s``.

    For state that has no event to wait on (a copy of a send still travelling
    to the localnet after the first copy was answered).
    """
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout_s}s")
        pause.wait(0.01)
