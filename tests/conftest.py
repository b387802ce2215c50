"""Fixtures shared by every test: actor clean-up, log capture, a recorder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from loguru import logger

from supervision import set_tracing
from supervision.logs import route_stdlib_logging
from supervision.tracing import batch_steps

# The fixtures the integration and e2e tiers share, defined once: a real database
# (SQLite file, PostgreSQL) and a real localnet.
pytest_plugins = ("tests.support.databases", "tests.support.localnets")

# Threads of the runtime itself, shared by every test: not leaks.
_SERVICE_THREADS = ("crank-clock", "crank-tracer")


class Recorder:
    """A thread-safe list of events that tests wait on without sleeping."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.record(event)

    def record(self, event: Any) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 5.0) -> list[Any]:
        """Block until ``predicate(events)`` holds; fail the test after ``timeout_s``."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.events), timeout_s):
                pytest.fail(f"timed out after {timeout_s}s waiting; events so far: {self.events}")
            return list(self.events)

    def wait_count(self, event: Any, count: int = 1, timeout_s: float = 5.0) -> list[Any]:
        return self.wait_for(lambda events: events.count(event) >= count, timeout_s)

    def snapshot(self) -> list[Any]:
        with self._condition:
            return list(self.events)


# Test tiers by directory (the README's fast loop is `pytest tests/unit`): a test's
# folder says what it needs, so no test can forget its marker and none is marked by hand.
# tests/e2e (crank-node started as processes) needs real I/O too, so it is also
# `integration`: `-m "not integration"` is exactly tests/unit, `-m e2e` exactly tests/e2e.
_TIERS = {
    "integration": ("integration",),
    "clients": ("integration",),
    "e2e": ("integration", "e2e"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration and tests/clients ``integration``, and
    every test under tests/e2e ``integration`` and ``e2e``."""
    for item in items:
        parts = item.path.parts
        tier = parts[parts.index("tests") + 1] if "tests" in parts else ""
        for marker in _TIERS.get(tier, ()):
            item.add_marker(marker)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test, as loguru's record dicts."""
    records: list[dict[str, Any]] = []
    handler_id = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(handler_id)


@pytest.fixture(autouse=True)
def _stop_actors_and_check_threads() -> Iterator[None]:
    """Stop every actor a test left running, and fail it if an actor thread
    outlives the test (a leaked thread is a bug in the code or the test)."""
    route_stdlib_logging()
    before = set(threading.enumerate())
    yield
    set_tracing(False)
    batch_steps(False)  # a test that ran configure_logging turned it on
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    leaked = []
    for thread in set(threading.enumerate()) - before:
        if thread.name in _SERVICE_THREADS or thread is threading.current_thread():
            continue
        thread.join(timeout=5)
        if thread.is_alive():
            leaked.append(thread.name)
    assert not leaked, f"threads still running after the test: {leaked}"
