"""Named crash points: kill this process with SIGKILL at an exact step, for recovery tests.

Like FoundationDB's or TiKV's fail points, but with one action only: the
crash. ``CRANK_CRASH_AT=name`` (or ``name:N``, the Nth time that point is
reached) makes :func:`crash_point` send SIGKILL to the process the moment code
passes that point, so a test can stop a real node between two writes that a
clean stop would never separate (a fill written but not yet claimed, an
attempt written but not yet sent, a transaction landed but not yet recorded).

Unset (always, outside such tests) it costs one attribute read. The
environment is read once, at import.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from supervision.tracing import flush_steps

__all__ = ["CRASH_ENV", "CRASH_POINTS", "crash_point"]

CRASH_ENV = "CRANK_CRASH_AT"
CRASH_POINTS = (
    "fill_written",  # MatchActor wrote fills and pending settlements, nobody claimed them
    "attempt_written",  # SettlementActor wrote an attempt ahead and has not sent it
    "attempt_landed",  # the chain reports the attempt landed; not yet recorded confirmed
    "marker_reclaim_written",  # a marker reclaim written ahead (reclaiming), not sent yet
    "marker_reclaim_sent",  # a marker reclaim sent, not yet seen landed
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in CRASH_POINTS or (count and not count.isdigit()):
        raise ValueError(f"{CRASH_ENV}={value!r}: expected one of {CRASH_POINTS}, optionally ':N'")
    return name, int(count or 1)


_ARMED = _parse(os.environ.get(CRASH_ENV))
_lock = threading.Lock()
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if ``CRANK_CRASH_AT`` names this point (module docstring)."""
    if _ARMED is None or _ARMED[0] != name:
        return
    with _lock:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] < _ARMED[1]:
            return
    # The journey steps of the message being handled are written first, as they were
    # when each step was its own record (supervision.tracing: step lines in batches).
    flush_steps()
    # One line on stderr so the test's log shows where the process died.
    sys.stderr.write(f"crash point {name!r} reached: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
