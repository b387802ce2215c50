"""Node membership: heartbeats into ``nodes``, and who is alive by the database's clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from storage.clock import db_now, read_db_now
from storage.clock_skew import ClockReading
from storage.engine import read_transaction, write_transaction
from storage.models import NODE_STATES, Market, Node, table_of

__all__ = ["NodeRecord", "NodeRegistry"]

_NODES = table_of(Node)


@dataclass(frozen=True)
class NodeRecord:
    """One node as the ``nodes`` table last saw it."""

    id: str
    host: str
    pid: int
    state: str
    started_at: datetime
    heartbeat_at: datetime


def _record(row: Sequence[Any]) -> NodeRecord:
    # Rows come back in NodeRecord's field order (see live_nodes).
    return NodeRecord(*row)


def _check_state(state: str) -> None:
    if state not in NODE_STATES:
        raise ValueError(f"node state must be one of {NODE_STATES}, got {state!r}")


class NodeRegistry:
    """Register this node, heartbeat it, and list live nodes and active markets."""

    def __init__(self, engine: Engine, *, clock_offset_s: float = 0.0) -> None:
        self.engine = engine
        self.clock_offset_s = clock_offset_s

    def _now(self, plus_s: float = 0.0) -> Any:
        return db_now(self.clock_offset_s + plus_s)

    def register(self, node_id: str, host: str, pid: int, state: str = "starting") -> None:
        """Insert or restart ``node_id``: started and heartbeat now."""
        _check_state(state)
        with write_transaction(self.engine, "storage.node_register") as connection:
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(_NODES).values(
                id=node_id,
                host=host,
                pid=pid,
                state=state,
                started_at=self._now(),
                heartbeat_at=self._now(),
            )
            fresh = {
                name: stmt.excluded[name]
                for name in ("host", "pid", "state", "started_at", "heartbeat_at")
            }
            connection.execute(
                stmt.on_conflict_do_update(
                    index_elements=[_NODES.c.id], set_=fresh | {"updated_at": self._now()}
                )
            )
        logger.bind(action="storage.node_registered", node_id=node_id, host=host, pid=pid).info(
            "node registered"
        )

    def heartbeat(self, node_id: str, state: str | None = None) -> bool:
        """Stamp ``node_id``'s heartbeat (and state); False if it is not registered."""
        values: dict[str, Any] = {"heartbeat_at": self._now()}
        if state is not None:
            _check_state(state)
            values["state"] = state
        stmt = update(Node).where(Node.id == node_id).values(**values)
        with write_transaction(self.engine, "storage.node_heartbeat") as connection:
            return connection.execute(stmt).rowcount > 0

    def live_nodes(self, stale_after_s: float) -> list[NodeRecord]:
        """Nodes not stopped whose heartbeat is younger than ``stale_after_s``, by id."""
        stmt = (
            select(Node.id, Node.host, Node.pid, Node.state, Node.started_at, Node.heartbeat_at)
            .where(Node.state != "stopped", Node.heartbeat_at > self._now(-stale_after_s))
            .order_by(Node.id)
        )
        with read_transaction(self.engine, "storage.node_list") as connection:
            return [_record(row) for row in connection.execute(stmt)]

    def read_clocks(self, node_id: str) -> ClockReading:
        """This node's clock (the database's, as this registry sees it) and every other
        node's last heartbeat (not stopped), in one read: :func:`storage.judge_clocks`."""
        stmt = select(Node.id, Node.heartbeat_at).where(Node.state != "stopped", Node.id != node_id)
        with read_transaction(self.engine, "storage.node_clocks") as connection:
            now = read_db_now(connection, self.clock_offset_s)
            beats = {peer: beat for peer, beat in connection.execute(stmt)}
        return ClockReading(now, beats)

    def active_markets(self) -> list[str]:
        """Ids of the markets open for matching, sorted."""
        stmt = select(Market.id).where(Market.status == "active").order_by(Market.id)
        with read_transaction(self.engine, "storage.market_list") as connection:
            return list(connection.execute(stmt).scalars())
