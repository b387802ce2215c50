"""/health's judgements: can this node do its job now? Pure functions of what the
node read, so each rule is tested without a node (tests/unit/cli).

Healthy means "this node can do its job now" (docs/ARCHITECTURE.md, "The HTTP
surfaces"); each rule gives ``(status, detail)`` with a ``reason`` whenever the
status is not healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SettlementProgress", "judge_polls", "judge_settlement_progress", "judge_work"]

# A heartbeat older than this many membership intervals (and at least one lease
# TTL) means this node's writes are failing: a full disk, a lost connection, a
# write lock held elsewhere.
STALE_HEARTBEAT_INTERVALS = 3
# Order polls whose database read failed one after the other: a few are a blip (a
# busy lock, a restart of the server); this many mean the node cannot see orders.
DEGRADED_POLL_FAILURES = 3
UNHEALTHY_POLL_FAILURES = 10
# Settlements in flight with none finished for this long (and at least twice the
# claim TTL, so a takeover's wait is not mistaken for a stall) is a stall.
MIN_SETTLEMENT_STALL_S = 60.0


def judge_work(
    *,
    uptime_s: float,
    lease_ttl_s: float,
    membership_interval_s: float,
    heartbeat_age_s: float | None,
    held_markets: int,
    active_markets: int,
    unheld_markets: tuple[str, ...],
) -> tuple[str, dict[str, Any]]:
    """Writes and market coverage. Unhealthy when this node's heartbeat is not being
    written, or when it holds no market while markets exist that no node holds once
    it has run past one lease TTL and one membership round (time to take its share);
    degraded when some markets are held by nobody while it holds others."""
    detail: dict[str, Any] = {
        "heartbeat_age_s": None if heartbeat_age_s is None else round(heartbeat_age_s, 3),
        "held_markets": held_markets,
        "active_markets": active_markets,
        "unheld_markets": len(unheld_markets),
    }
    settled_in = uptime_s >= lease_ttl_s + membership_interval_s
    stale_after_s = max(STALE_HEARTBEAT_INTERVALS * membership_interval_s, lease_ttl_s)
    if settled_in and (heartbeat_age_s is None or heartbeat_age_s > stale_after_s):
        age = "never written" if heartbeat_age_s is None else f"{heartbeat_age_s:.1f} s old"
        detail["reason"] = (
            f"this node's heartbeat is {age} (bound {stale_after_s:.1f} s): "
            "its database writes are failing"
        )
        return "unhealthy", detail
    if settled_in and unheld_markets:
        shown = ", ".join(unheld_markets[:5]) + (" ..." if len(unheld_markets) > 5 else "")
        if held_markets == 0:
            detail["reason"] = (
                f"holds no market while {len(unheld_markets)} of {active_markets} active "
                f"markets are held by no node ({shown}): leases cannot be taken or kept"
            )
            return "unhealthy", detail
        detail["reason"] = f"{len(unheld_markets)} active markets are held by no node ({shown})"
        return "degraded", detail
    return "healthy", detail


@dataclass
class SettlementProgress:
    """What the last /health saw of the settlements: finished count, and when
    (on the node's monotonic clock) it last changed."""

    finished: int = -1
    changed_at_s: float = 0.0


def judge_settlement_progress(
    progress: SettlementProgress,
    *,
    now_s: float,
    in_flight: int,
    finished: int,
    claim_ttl_s: float,
) -> tuple[str, dict[str, Any]]:
    """Degraded when settlements are in flight and none has finished (confirmed or
    failed) for longer than the bound; updates ``progress``."""
    if finished != progress.finished or in_flight == 0:
        progress.finished, progress.changed_at_s = finished, now_s
    stalled_s = now_s - progress.changed_at_s
    bound_s = max(MIN_SETTLEMENT_STALL_S, 2 * claim_ttl_s)
    detail: dict[str, Any] = {"in_flight": in_flight, "finished": finished}
    if in_flight and stalled_s > bound_s:
        detail["reason"] = (
            f"{in_flight} settlements in flight and none finished for {stalled_s:.0f} s "
            f"(bound {bound_s:.0f} s)"
        )
        return "degraded", detail
    return "healthy", detail


def judge_polls(failed_polls_in_a_row: int) -> tuple[str, dict[str, Any]]:
    """Degraded after a few order polls failed in a row, unhealthy after many: the
    node can no longer see new orders or cancels."""
    detail: dict[str, Any] = {"failed_polls_in_a_row": failed_polls_in_a_row}
    if failed_polls_in_a_row >= DEGRADED_POLL_FAILURES:
        detail["reason"] = f"the last {failed_polls_in_a_row} order polls failed"
        bad = failed_polls_in_a_row >= UNHEALTHY_POLL_FAILURES
        return ("unhealthy" if bad else "degraded"), detail
    return "healthy", detail
