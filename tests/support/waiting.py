"""Waiting for a condition with no event to wait on: asked again every 50 ms, up to a
deadline (a bounded pause between checks, never a bare sleep)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``predicate`` came true within ``timeout_s`` (asked every 50 ms)."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()  # never set: its wait is a bounded pause between checks
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.05)
    return True
