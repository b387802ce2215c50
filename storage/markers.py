"""Settlement markers known to exist on chain, and the reclaim of their rent.

A row of ``settlement_markers`` (revision 0005) is written by :func:`discover_markers`
for each confirmed settlement whose attempts carry a ``marker_address`` (each
attempt of one settlement names the same marker: its seed depends on the fill
only). It goes ``open`` -> ``reclaiming`` (a reclaim transaction written ahead
of sending it: :func:`write_reclaims_ahead`) -> ``reclaimed`` (the marker seen
gone at finalized: :func:`mark_reclaimed`). ``reclaiming`` may be written again
with a new signature when the one before expired.

The writes that follow a decision are fenced by the market's lease: only the
node holding ``market:<id>`` reclaims that market's markers, and a node that
lost the lease writes nothing (LeaseLost). Discovery is not fenced: it only
records facts (the settlement is confirmed), and a second insert of the same
marker is refused by the primary key.

Lamports are counted once: ``reclaimed`` is reached by one UPDATE from
``reclaiming`` (or from ``open`` for a marker found gone without a reclaim of
ours, which keeps ``reclaim_signature`` null and is counted apart as missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loguru import logger
from sqlalchemy import BigInteger, and_, cast, exists, func, insert, literal, select
from sqlalchemy import update as update_
from sqlalchemy.engine import Engine

from market.marker import MARKER_RENT_LAMPORTS, RECLAIM_MARGIN_BLOCKS
from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.fencing import fenced_update
from storage.leases import Lease
from storage.models import Settlement, SettlementAttempt, SettlementMarker, table_of
from storage.types import U64

__all__ = [
    "MarkerRecord",
    "MarkerTotals",
    "ReclaimAhead",
    "discover_markers",
    "mark_gone",
    "mark_reclaimed",
    "marker_totals",
    "markers_to_check",
    "write_reclaims_ahead",
]

_MARKERS = table_of(SettlementMarker)
_SETTLEMENTS = table_of(Settlement)
_ATTEMPTS = table_of(SettlementAttempt)
_LIVE_STATES = ("open", "reclaiming")


@dataclass(frozen=True)
class MarkerRecord:
    """A marker to look at, with the last valid block height of every attempt of its
    settlement (read now, not the one stored at discovery: nothing is trusted stale)."""

    settlement_id: str
    fill_id: str
    market_id: str
    address: str
    lamports: int
    state: str
    max_last_valid_block_height: int
    reclaim_signature: str | None
    reclaim_last_valid_block_height: int | None
    attempt_last_valid_block_heights: tuple[int, ...]


@dataclass(frozen=True)
class ReclaimAhead:
    """A reclaim about to be sent: which marker, under which signature, until when."""

    settlement_id: str
    signature: str
    last_valid_block_height: int
    lamports: int


@dataclass(frozen=True)
class MarkerTotals:
    """Markers by state, for /status and /metrics (lamports as integers)."""

    open: int
    reclaiming: int
    lamports_held: int  # of open and reclaiming markers
    reclaimed: int  # closed by a reclaim of ours
    lamports_reclaimed: int
    missing: int  # found gone at finalized with no reclaim of ours written ahead


def discover_markers(engine: Engine, market_ids: Iterable[str]) -> int:
    """Insert an ``open`` row for every confirmed settlement of ``market_ids`` whose
    attempts name a marker and that has no row yet; the number inserted.
    ``max_last_valid_block_height`` is the highest over *all* its attempts."""
    markets = sorted(set(market_ids))
    if not markets:
        return 0
    has_row = exists().where(_MARKERS.c.settlement_id == _SETTLEMENTS.c.id)
    found = (
        select(
            _SETTLEMENTS.c.id,
            _SETTLEMENTS.c.market_id,
            func.max(_ATTEMPTS.c.marker_address),
            literal(MARKER_RENT_LAMPORTS, type_=U64()),
            literal("open"),
            func.max(_ATTEMPTS.c.last_valid_block_height),
            db_now(),
            db_now(),
        )
        .join(_ATTEMPTS, _ATTEMPTS.c.settlement_id == _SETTLEMENTS.c.id)
        .where(_SETTLEMENTS.c.status == "confirmed")
        .where(_SETTLEMENTS.c.market_id.in_(markets))
        .where(~has_row)
        .group_by(_SETTLEMENTS.c.id, _SETTLEMENTS.c.market_id)
        .having(func.max(_ATTEMPTS.c.marker_address).is_not(None))
    )
    columns = [
        "settlement_id",
        "market_id",
        "address",
        "lamports",
        "state",
        "max_last_valid_block_height",
        "created_at",
        "updated_at",
    ]
    with write_transaction(engine, "storage.markers_discover") as connection:
        inserted = int(connection.execute(insert(_MARKERS).from_select(columns, found)).rowcount)
    if inserted:
        logger.bind(action="storage.markers_discovered", count=inserted).info(
            f"{inserted} settlement markers to reclaim later"
        )
    return inserted


def markers_to_check(
    engine: Engine, market_ids: Iterable[str], finalized_block_height: int, limit: int = 1000
) -> list[MarkerRecord]:
    """The markers of ``market_ids`` worth asking the chain about at this finalized
    height: every ``reclaiming`` one, and the ``open`` ones whose stored highest
    attempt height is past the margin (the decision rereads every attempt)."""
    markets = sorted(set(market_ids))
    if not markets:
        return []
    due = (_MARKERS.c.state == "reclaiming") | (
        (_MARKERS.c.state == "open")
        & (_MARKERS.c.max_last_valid_block_height + RECLAIM_MARGIN_BLOCKS < finalized_block_height)
    )
    rows_query = (
        select(_MARKERS, _SETTLEMENTS.c.fill_id)
        .join(_SETTLEMENTS, _SETTLEMENTS.c.id == _MARKERS.c.settlement_id)
        .where(_MARKERS.c.market_id.in_(markets))
        .where(due)
        .order_by(_MARKERS.c.max_last_valid_block_height, _MARKERS.c.settlement_id)
        .limit(limit)
    )
    with read_transaction(engine, "storage.markers_to_check") as connection:
        rows = connection.execute(rows_query).mappings().all()
        ids = [row["settlement_id"] for row in rows]
        heights: dict[str, list[int]] = {settlement_id: [] for settlement_id in ids}
        if ids:
            attempts = select(_ATTEMPTS.c.settlement_id, _ATTEMPTS.c.last_valid_block_height).where(
                _ATTEMPTS.c.settlement_id.in_(ids)
            )
            for settlement_id, height in connection.execute(attempts):
                heights[settlement_id].append(int(height))
    return [
        MarkerRecord(
            row["settlement_id"],
            row["fill_id"],
            row["market_id"],
            row["address"],
            int(row["lamports"]),
            row["state"],
            int(row["max_last_valid_block_height"]),
            row["reclaim_signature"],
            row["reclaim_last_valid_block_height"],
            tuple(sorted(heights[row["settlement_id"]])),
        )
        for row in rows
    ]


def write_reclaims_ahead(
    engine: Engine, lease: Lease, market_id: str, reclaims: Sequence[ReclaimAhead]
) -> list[str]:
    """Record ``reclaims`` (one transaction's markers) ahead of sending, under the market's
    lease, in one database transaction; the settlement ids written (a marker already
    reclaimed is left alone and not returned). Raises LeaseLost, writing nothing."""
    written: list[str] = []
    with write_transaction(engine, "storage.marker_reclaims_ahead") as connection:
        for reclaim in reclaims:
            statement = (
                update_(_MARKERS)
                .where(_MARKERS.c.settlement_id == reclaim.settlement_id)
                .where(_MARKERS.c.market_id == market_id)
                .where(_MARKERS.c.state.in_(_LIVE_STATES))
                .values(
                    state="reclaiming",
                    reclaim_signature=reclaim.signature,
                    reclaim_last_valid_block_height=reclaim.last_valid_block_height,
                    lamports=reclaim.lamports,
                    updated_at=db_now(),
                )
            )
            if fenced_update(connection, lease, statement):
                written.append(reclaim.settlement_id)
    return written


def _finish(
    engine: Engine,
    lease: Lease,
    market_id: str,
    settlement_ids: Sequence[str],
    *,
    source: str,
    slot: int,
    action: str,
) -> list[str]:
    finished: list[str] = []
    with write_transaction(engine, f"storage.{action}") as connection:
        for settlement_id in settlement_ids:
            statement = (
                update_(_MARKERS)
                .where(
                    and_(
                        _MARKERS.c.settlement_id == settlement_id,
                        _MARKERS.c.market_id == market_id,
                        _MARKERS.c.state == source,
                    )
                )
                .values(state="reclaimed", reclaimed_slot=slot, updated_at=db_now())
            )
            if fenced_update(connection, lease, statement):
                finished.append(settlement_id)
    return finished


def mark_reclaimed(
    engine: Engine, lease: Lease, market_id: str, settlement_ids: Sequence[str], slot: int
) -> list[str]:
    """``reclaiming`` -> ``reclaimed`` (seen gone at finalized by the answer of ``slot``),
    under the market's lease; the ids moved (each exactly once, ever)."""
    return _finish(
        engine,
        lease,
        market_id,
        settlement_ids,
        source="reclaiming",
        slot=slot,
        action="markers_reclaimed",
    )


def mark_gone(
    engine: Engine, lease: Lease, market_id: str, settlement_ids: Sequence[str], slot: int
) -> list[str]:
    """``open`` -> ``reclaimed`` with no reclaim signature: gone at finalized without a
    reclaim of ours (counted as missing, never as lamports we reclaimed)."""
    return _finish(
        engine,
        lease,
        market_id,
        settlement_ids,
        source="open",
        slot=slot,
        action="markers_gone",
    )


def marker_totals(engine: Engine) -> MarkerTotals:
    """Counts and lamports by state, over every market (one grouped query)."""
    lamports = func.coalesce(func.sum(cast(_MARKERS.c.lamports, BigInteger)), 0)
    ours = _MARKERS.c.reclaim_signature.is_not(None)
    query = select(_MARKERS.c.state, ours.label("ours"), func.count(), lamports).group_by(
        _MARKERS.c.state, ours
    )
    counts: dict[tuple[str, bool], tuple[int, int]] = {}
    with read_transaction(engine, "storage.marker_totals") as connection:
        for state, by_us, count, total in connection.execute(query):
            counts[(state, bool(by_us))] = (int(count), int(total))

    def of(state: str, *flags: bool) -> tuple[int, int]:
        picked = [counts.get((state, flag), (0, 0)) for flag in flags]
        return sum(c for c, _ in picked), sum(t for _, t in picked)

    open_count, open_lamports = of("open", True, False)
    reclaiming, reclaiming_lamports = of("reclaiming", True, False)
    reclaimed, reclaimed_lamports = of("reclaimed", True)
    missing, _ = of("reclaimed", False)
    return MarkerTotals(
        open_count,
        reclaiming,
        open_lamports + reclaiming_lamports,
        reclaimed,
        reclaimed_lamports,
        missing,
    )
