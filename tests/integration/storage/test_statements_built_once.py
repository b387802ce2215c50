"""The statements of the hot paths are built once and run with bind parameters.

Building a SQLAlchemy statement per call (its clauses, then its cache key) cost more
than running it: ~100-350 us a call on SQLite against ~40 us for the run itself
(OrderMonitor's poll reads, SettlementActor's claim and its reads of the claimed rows,
the clock read of each match batch). Here each is called twice, with different values,
and must have run the very same statement object both times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from storage import read_transaction, settlement_queue
from storage.clock import read_db_now
from storage.fills import fills_in
from storage.journeys import trace_ids_in
from storage.orders import departure_reasons, orders_by_id, standings_in
from storage.settlements import attempts_by_settlement_in


@contextmanager
def _executed(engine: Engine) -> Iterator[list[Any]]:
    """The statement objects run through ``engine`` while inside."""
    ran: list[Any] = []

    def before(_conn: object, clauseelement: Any, *_args: object) -> None:
        ran.append(clauseelement)

    event.listen(engine, "before_execute", before)
    try:
        yield ran
    finally:
        event.remove(engine, "before_execute", before)


READS: dict[str, Callable[[Connection, str], Any]] = {
    "standings_in": lambda c, v: standings_in(c, v, statuses=("open", "unfunded")),
    "orders_by_id": lambda c, v: orders_by_id(c, [v, "other"]),
    "departure_reasons": lambda c, v: departure_reasons(c, [v]),
    "fills_in": lambda c, v: fills_in(c, [v]),
    "attempts_by_settlement_in": lambda c, v: attempts_by_settlement_in(c, [v, "other"]),
    "trace_ids_in": lambda c, v: trace_ids_in(c, "settlement", [v]),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_hot_read_runs_the_same_statement_object_each_call(engine: Engine, read: str) -> None:
    """(What each returns is checked by the storage tests of each; an empty database here.)"""
    with _executed(engine) as ran, read_transaction(engine) as connection:
        READS[read](connection, "a")
        READS[read](connection, "b")
    assert len(ran) == 2 and ran[0] is ran[1]


def test_the_clock_read_runs_one_statement_with_the_offset_bound(engine: Engine) -> None:
    with _executed(engine) as ran, read_transaction(engine) as connection:
        now = read_db_now(connection)
        hour_ago = read_db_now(connection, -3600.0)
    assert ran[0] is ran[1]
    assert 3599 < (now - hour_ago).total_seconds() < 3601


def test_claiming_settlements_runs_one_statement_for_every_queue_object(engine: Engine) -> None:
    """SettlementActor makes a queue object per claim (its clock offset may move); the
    claim statement is built once for all of them, the claimer, limit and clock offsets
    bound. (An empty table: storage's claim tests check what a claim takes.)"""
    with _executed(engine) as ran:
        assert settlement_queue(engine, "node-a").claim(128, 15.0) == []
        assert settlement_queue(engine, "node-b", clock_offset_s=60.0).claim(1, 5.0) == []
    assert len(ran) == 2 and ran[0] is ran[1]
