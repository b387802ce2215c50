"""A chaos run's audit, once the nodes have stopped: the facts from the node
database (fills and their settlements, orders and what filled them, the fencing
tokens issued and used), the chain (:mod:`localnet.audit`) and the monitor
(:mod:`crank_node.chaos.monitor`), and the five checks run on them (:func:`audit`).

Each read is one read-only transaction over whole tables: a chaos run's database
is small (minutes of orders), and the checks must see every row.

How far a fill's time may pass the grant of a later token of its market
(:func:`clock_tolerance_s`): SQLite serialises every write transaction and each
reads the clock inside it, so the order is exact and nothing is allowed. On
PostgreSQL a fill carries the time its transaction began, and a lease upsert the
time its statement began, before it waited for a table lock (a ``LOCK TABLE``
fault) and then a row lock (a fenced write's ``FOR SHARE``); each wait is bounded
by ``lock_timeout`` (the nodes' busy timeout), so a legitimate fill can seem up to
twice that late, and only a later one proves a stale write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

import storage
from crank_node.chaos.checks import (
    InvariantResult,
    OrderFilling,
    check_balances,
    check_no_overfill,
    check_settled_once,
)
from crank_node.chaos.faults import FaultKind
from crank_node.chaos.lease_checks import (
    AttemptFence,
    FencingFacts,
    FillFence,
    NodeDown,
    check_fencing,
    check_no_dead_holders,
)
from crank_node.chaos.marker_checks import FillMarker, MarkerAccounting
from crank_node.chaos.monitor import MonitorRecord
from crank_node.chaos.scheduler import InjectedFault
from localnet.audit import ChainSettlements
from market import Fill
from storage.engine import DEFAULT_BUSY_TIMEOUT_MS
from storage.models import (
    FencingSequence,
    Market,
    Order,
    Settlement,
    SettlementAttempt,
    SettlementMarker,
    table_of,
)
from storage.models import Fill as FillRow
from supervision.errors import CrankError

__all__ = [
    "POSTGRESQL_CLOCK_TOLERANCE_S",
    "audit",
    "clock_tolerance_s",
    "down_intervals",
    "monitor_notes",
    "read_fencing_facts",
    "read_fill_markers",
    "read_fills",
    "read_order_fillings",
    "read_settlement_statuses",
    "refuse_used",
]

POSTGRESQL_CLOCK_TOLERANCE_S = 2 * DEFAULT_BUSY_TIMEOUT_MS / 1000
_FILLS, _ORDERS = table_of(FillRow), table_of(Order)
_SETTLEMENTS, _ATTEMPTS = table_of(Settlement), table_of(SettlementAttempt)
_SEQUENCES = table_of(FencingSequence)
_MARKERS = table_of(SettlementMarker)


def audit(
    engine: Engine,
    *,
    market_ids: Sequence[str],
    balances: tuple[Mapping[str, int], Mapping[str, int]],
    chain: ChainSettlements,
    record: MonitorRecord,
    down: Sequence[NodeDown],
    ttl_s: float,
    slack_s: float,
    markers: MarkerAccounting | None = None,
) -> list[InvariantResult]:
    """The five invariants, in order. ``balances``: the token accounts before and after;
    ``markers``: the fills accounted for against their markers (:func:`read_fill_markers`)."""
    before, after = balances
    return [
        check_settled_once(read_settlement_statuses(engine), chain, markers),
        check_no_overfill(read_order_fillings(engine)),
        check_balances(before, after, read_fills(engine, market_ids)),
        check_fencing(
            read_fencing_facts(engine), record.leases, clock_tolerance_s=clock_tolerance_s(engine)
        ),
        check_no_dead_holders(record.leases, down, ttl_s=ttl_s, slack_s=slack_s),
    ]


def down_intervals(
    injected: Sequence[InjectedFault], node_ids: Sequence[str], stopped_at_s: float
) -> list[NodeDown]:
    """When each node was killed or frozen, and, for all, from the final stop on."""
    down = []
    for fault in injected:
        if fault.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP) and fault.applied_at_s:
            why = "killed" if fault.kind is FaultKind.NODE_KILL else "frozen"
            node = node_ids[fault.planned.target - 1]
            down.append(NodeDown(node, fault.applied_at_s, fault.healed_at_s, why))
    return down + [NodeDown(node, stopped_at_s, None, "stopped at the end") for node in node_ids]


def monitor_notes(record: MonitorRecord) -> list[str]:
    if not record.failed_polls:
        return []
    return [f"{record.failed_polls} of {record.polls} lease polls failed ({record.last_error})"]


def refuse_used(engine: Engine) -> None:
    """Every row is checked afterwards: the database must hold no markets yet."""
    with storage.read_transaction(engine, "chaos.database_empty") as connection:
        markets = connection.execute(select(func.count()).select_from(table_of(Market))).scalar()
    if markets:
        raise CrankError(
            f"the database already holds {markets} markets: chaos checks every row it holds, "
            "so give it an empty one (PostgreSQL: a new database or schema)"
        )


def clock_tolerance_s(engine: Engine) -> float:
    return POSTGRESQL_CLOCK_TOLERANCE_S if engine.dialect.name == "postgresql" else 0.0


def read_settlement_statuses(engine: Engine) -> dict[str, str]:
    """Every fill id, with its settlement's status ("none" if it has no settlement)."""
    stmt = select(_FILLS.c.id, _SETTLEMENTS.c.status).outerjoin(
        _SETTLEMENTS, _SETTLEMENTS.c.fill_id == _FILLS.c.id
    )
    with storage.read_transaction(engine, "chaos.settlement_statuses") as connection:
        return {row.id: row.status or "none" for row in connection.execute(stmt)}


def read_fill_markers(engine: Engine) -> list[FillMarker]:
    """Every fill, with its settlement's status, the marker addresses its attempts carry
    (none before markers) and whether that marker's rent was reclaimed."""
    stmt = (
        select(
            _FILLS.c.id,
            _SETTLEMENTS.c.status,
            _ATTEMPTS.c.marker_address,
            _MARKERS.c.state.label("marker_state"),
        )
        .outerjoin(_SETTLEMENTS, _SETTLEMENTS.c.fill_id == _FILLS.c.id)
        .outerjoin(_ATTEMPTS, _ATTEMPTS.c.settlement_id == _SETTLEMENTS.c.id)
        .outerjoin(_MARKERS, _MARKERS.c.settlement_id == _SETTLEMENTS.c.id)
    )
    statuses: dict[str, str] = {}
    addresses: dict[str, set[str]] = {}
    reclaimed: set[str] = set()
    with storage.read_transaction(engine, "chaos.fill_markers") as connection:
        for row in connection.execute(stmt):
            statuses[row.id] = row.status or "none"
            found = addresses.setdefault(row.id, set())
            if row.marker_address is not None:
                found.add(row.marker_address)
            # 'reclaiming': its reclaim was written and sent; the account is gone only if
            # that reclaim landed (the reclaim actor's own rule for 'reclaimed').
            if row.marker_state in ("reclaiming", "reclaimed"):
                reclaimed.add(row.id)
    return [
        FillMarker(fill_id, status, frozenset(addresses[fill_id]), fill_id in reclaimed)
        for fill_id, status in statuses.items()
    ]


def read_order_fillings(engine: Engine) -> list[OrderFilling]:
    """Every order, with the base atoms of every fill it was maker or taker of."""
    with storage.read_transaction(engine, "chaos.order_fillings") as connection:
        fills = connection.execute(
            select(_FILLS.c.maker_order_id, _FILLS.c.taker_order_id, _FILLS.c.base_atoms)
        ).all()
        orders = connection.execute(
            select(_ORDERS.c.id, _ORDERS.c.size_atoms, _ORDERS.c.remaining_atoms)
        ).all()
    filled: Counter[str] = Counter()
    for fill in fills:
        filled[fill.maker_order_id] += fill.base_atoms
        filled[fill.taker_order_id] += fill.base_atoms
    return [
        OrderFilling(row.id, row.size_atoms, row.remaining_atoms, filled[row.id]) for row in orders
    ]


def read_fencing_facts(engine: Engine) -> FencingFacts:
    columns = _FILLS.c
    with storage.read_transaction(engine, "chaos.fencing_facts") as connection:
        fills = connection.execute(
            select(
                columns.id,
                columns.market_id,
                columns.sequence,
                columns.fencing_token,
                columns.created_at,
            )
        ).all()
        sequences = connection.execute(select(_SEQUENCES.c.key, _SEQUENCES.c.last_token)).all()
        attempts = connection.execute(
            select(
                _ATTEMPTS.c.settlement_id,
                _ATTEMPTS.c.attempt_number,
                _ATTEMPTS.c.claim_token,
                _ATTEMPTS.c.state,
            )
        ).all()
        claims = connection.execute(select(_SETTLEMENTS.c.id, _SETTLEMENTS.c.claim_token)).all()
    return FencingFacts(
        fills=[
            FillFence(row.id, row.market_id, row.sequence, row.fencing_token, row.created_at)
            for row in fills
        ],
        last_tokens={row.key: row.last_token for row in sequences},
        attempts=[
            AttemptFence(row.settlement_id, row.attempt_number, row.claim_token, row.state)
            for row in attempts
        ],
        claim_tokens={row.id: row.claim_token for row in claims},
    )


def read_fills(engine: Engine, market_ids: Sequence[str]) -> list[Fill]:
    """Every fill of the markets, with the accounts its settlement moves tokens between."""
    return [fill for market in market_ids for fill in storage.list_fills(engine, market)]
