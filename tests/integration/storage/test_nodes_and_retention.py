"""Node heartbeats, live-node and market listing, and retention, on both engines."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from storage import NodeRegistry, RetentionPolicy, prune, read_transaction, write_transaction
from storage.clock import db_now
from storage.models import PendingOperation, TransactionHistory
from tests.integration.storage import seed

DAY_S = 86_400


def test_heartbeats_keep_a_node_live_and_silence_makes_it_stale(engine: Engine) -> None:
    """A node is live while its heartbeat is younger than the staleness window, by the database clock."""
    registry = NodeRegistry(engine)
    registry.register("node-a", "host-1", 101, state="running")
    registry.register("node-b", "host-2", 202, state="running")
    assert [node.id for node in registry.live_nodes(stale_after_s=10)] == ["node-a", "node-b"]
    # Twenty seconds on, node-b heartbeats and node-a has not.
    later = NodeRegistry(engine, clock_offset_s=20)
    assert later.heartbeat("node-b") is True
    assert [node.id for node in later.live_nodes(stale_after_s=10)] == ["node-b"]


def test_heartbeat_of_an_unknown_node_reports_false(engine: Engine) -> None:
    """Heartbeating a node that never registered changes nothing and says so."""
    assert NodeRegistry(engine).heartbeat("ghost") is False


def test_stopped_nodes_are_not_live_and_reregistering_restarts_them(engine: Engine) -> None:
    """A node marked stopped drops out at once; registering again brings it back as a fresh start."""
    registry = NodeRegistry(engine)
    registry.register("node-a", "host-1", 101, state="running")
    registry.heartbeat("node-a", state="stopped")
    assert registry.live_nodes(stale_after_s=60) == []
    registry.register("node-a", "host-1", 102, state="running")
    (node,) = registry.live_nodes(stale_after_s=60)
    assert (node.pid, node.state) == (102, "running")


def test_node_state_is_checked_before_the_database(engine: Engine) -> None:
    """An unknown node state is refused with a ValueError naming the allowed ones."""
    with pytest.raises(ValueError, match="running"):
        NodeRegistry(engine).register("node-a", "host-1", 1, state="asleep")


def test_active_markets_lists_only_active_ones(engine: Engine) -> None:
    """Paused and closed markets are not handed out as leases."""
    seed.market(engine, "B-USDC")
    seed.market(engine, "A-USDC")
    seed.market(engine, "C-USDC", status="paused")
    assert NodeRegistry(engine).active_markets() == ["A-USDC", "B-USDC"]


def _history(engine: Engine, signature: str, status: str, age_days: float) -> None:
    with write_transaction(engine) as connection:
        connection.execute(
            insert(TransactionHistory).values(
                signature=signature,
                type="settlement",
                status=status,
                updated_at=db_now(-age_days * DAY_S),
            )
        )


def _operation(engine: Engine, key: str, status: str, age_days: float) -> None:
    with write_transaction(engine) as connection:
        connection.execute(
            insert(PendingOperation).values(
                type="t",
                unique_key=key,
                payload={},
                status=status,
                updated_at=db_now(-age_days * DAY_S),
            )
        )


def test_retention_deletes_only_old_finished_rows(
    engine: Engine, log_records: list[dict[str, Any]]
) -> None:
    """Confirmed/failed history past 30 days and completed operations past 7 days go; the rest stays."""
    _history(engine, "old-confirmed", "confirmed", 31)
    _history(engine, "old-failed", "failed", 31)
    _history(engine, "old-pending", "pending", 31)
    _history(engine, "recent-confirmed", "confirmed", 29)
    _operation(engine, "old-completed", "completed", 8)
    _operation(engine, "old-failed", "failed", 8)
    _operation(engine, "recent-completed", "completed", 6)
    report = prune(engine)
    assert (report.history_deleted, report.operations_deleted) == (2, 1)
    with read_transaction(engine) as connection:
        history = set(connection.execute(select(TransactionHistory.signature)).scalars())
        operations = set(connection.execute(select(PendingOperation.unique_key)).scalars())
    assert history == {"old-pending", "recent-confirmed"}
    assert operations == {"old-failed", "recent-completed"}
    assert any(record.get("action") == "storage.retention_pruned" for record in log_records)


def test_retention_windows_are_configurable(engine: Engine) -> None:
    """A shorter policy deletes younger rows."""
    _history(engine, "two-days", "confirmed", 2)
    _operation(engine, "two-days", "completed", 2)
    report = prune(engine, RetentionPolicy(history_days=1, completed_operations_days=1))
    assert (report.history_deleted, report.operations_deleted) == (1, 1)


def test_retention_policy_refuses_non_positive_windows() -> None:
    """A zero or negative window is a configuration error, named."""
    with pytest.raises(ValueError, match="history_days"):
        RetentionPolicy(history_days=0)
