"""Watching the leases and settlement claims while a chaos run goes on.

:class:`LeaseMonitor` reads, every ``poll_s`` on a thread of its own and in one
read-only transaction, every lease row (``distributed_locks``: key, holder,
fencing token, when acquired, whether it is live by the database's clock) and
every unfinished settlement with a live claim. It keeps what it saw as spans:
one :class:`LeaseSpan` per (key, holder, token, live) for as long as a poll
after poll saw it unchanged, one :class:`ClaimSpan` per (settlement, holder),
and when each watched settlement stopped being unfinished.

The takeover times and invariants 4 and 5 (:mod:`crank_node.chaos.checks`) are worked
out from these spans afterwards. A poll that fails (the database is locked, say)
is counted and the next one tried.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine, Row

from storage import StorageError, db_now, read_transaction
from storage.models import DistributedLock, Settlement, table_of

__all__ = ["ClaimSpan", "LeaseMonitor", "LeaseSpan", "MonitorRecord"]

POLL_S = 0.1
UNFINISHED = ("pending", "submitted")
_LOCKS, _SETTLEMENTS = table_of(DistributedLock), table_of(Settlement)
_LEASES = select(
    _LOCKS.c.key,
    _LOCKS.c.holder,
    _LOCKS.c.fencing_token,
    _LOCKS.c.acquired_at,
    (_LOCKS.c.expires_at > db_now()).label("live"),
)
_CLAIMS = select(
    _SETTLEMENTS.c.id,
    _SETTLEMENTS.c.claimed_by,
    (_SETTLEMENTS.c.claim_expires_at > db_now()).label("live"),
).where(_SETTLEMENTS.c.status.in_(UNFINISHED))


@dataclass
class LeaseSpan:
    """A lease row seen unchanged from ``first_seen_s`` to ``last_seen_s`` (run seconds).
    ``acquired_at`` is the database's clock; ``live``: not expired when seen."""

    key: str
    holder: str
    fencing_token: int
    acquired_at: datetime
    live: bool
    first_seen_s: float
    last_seen_s: float


@dataclass
class ClaimSpan:
    """An unfinished settlement seen under a live claim of ``holder``."""

    settlement_id: str
    holder: str
    first_seen_s: float
    last_seen_s: float


@dataclass
class MonitorRecord:
    """Everything a monitor saw: spans in the order they began; when each settlement it
    saw claimed was first seen finished; polls made and failed, and when each
    successful one was made."""

    leases: list[LeaseSpan]
    claims: list[ClaimSpan]
    finished_at_s: dict[str, float]
    polls: int
    failed_polls: int
    last_error: str
    polled_at_s: list[float] = field(default_factory=list)  # every successful poll

    def to_json(self) -> dict[str, Any]:
        """Everything, for a post-mortem (the run writes it to ``monitor.json``)."""
        return {
            "leases": [
                {**span.__dict__, "acquired_at": span.acquired_at.isoformat()}
                for span in self.leases
            ],
            "claims": [span.__dict__ for span in self.claims],
            "finished_at_s": self.finished_at_s,
            "polled_at_s": self.polled_at_s,
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "last_error": self.last_error,
        }


class LeaseMonitor:
    """See the module docstring. ``clock`` gives the run's seconds."""

    def __init__(self, engine: Engine, clock: Callable[[], float], poll_s: float = POLL_S) -> None:
        self._engine = engine
        self._clock = clock
        self._poll_s = poll_s
        self._record = MonitorRecord([], [], {}, 0, 0, "")
        self._leases: dict[str, LeaseSpan] = {}
        self._claims: dict[str, ClaimSpan] = {}
        self._watched: set[str] = set()  # seen claimed, not seen finished yet
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> MonitorRecord:
        """Stop polling (after one last poll); everything seen."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        with self._lock:
            return self._record

    def poll(self) -> None:
        """One poll (the thread calls it; so can a caller that wants a fresh look)."""
        at_s = self._clock()
        try:
            with read_transaction(self._engine, "chaos.monitor") as connection:
                leases = connection.execute(_LEASES).all()
                claims = connection.execute(_CLAIMS).all()
        except StorageError as error:
            with self._lock:
                self._record.polls += 1
                self._record.failed_polls += 1
                self._record.last_error = str(error)
            return
        with self._lock:
            self._record.polls += 1
            self._record.polled_at_s.append(at_s)
            self._see_leases(at_s, leases)
            self._see_claims(at_s, claims)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._poll_s)
        self.poll()

    def _see_leases(self, at_s: float, rows: Sequence[Row[Any]]) -> None:
        seen = set()
        for row in rows:
            seen.add(row.key)
            state = (row.holder, int(row.fencing_token), bool(row.live))
            span = self._leases.get(row.key)
            if span is not None and (span.holder, span.fencing_token, span.live) == state:
                span.last_seen_s = at_s
                continue
            span = LeaseSpan(row.key, *state[:2], row.acquired_at, state[2], at_s, at_s)
            self._leases[row.key] = span
            self._record.leases.append(span)
        for key in set(self._leases) - seen:  # released: the row is gone
            del self._leases[key]

    def _see_claims(self, at_s: float, rows: Sequence[Row[Any]]) -> None:
        unfinished = set()
        for row in rows:
            unfinished.add(row.id)
            if row.claimed_by is None or not row.live:
                self._claims.pop(row.id, None)
                continue
            span = self._claims.get(row.id)
            if span is not None and span.holder == row.claimed_by:
                span.last_seen_s = at_s
                continue
            span = ClaimSpan(row.id, row.claimed_by, at_s, at_s)
            self._claims[row.id] = span
            self._record.claims.append(span)
            self._watched.add(row.id)
        for settlement_id in self._watched - unfinished:
            self._record.finished_at_s[settlement_id] = at_s
            self._claims.pop(settlement_id, None)
        self._watched &= unfinished
