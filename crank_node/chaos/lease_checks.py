"""Invariants 4 and 5 of a chaos run (see :mod:`crank_node.chaos.checks` for 1 to 3):

4. per lock key, fencing tokens strictly increase, and no write under an old
   token was accepted: checked on the fills (per market, in sequence order), the
   settlement attempts (per settlement, in attempt order, under claim tokens),
   the fencing sequences, and the leases the monitor saw;
5. no lease is held by a dead node once its TTL has passed: checked on the
   leases the monitor saw against when each node was down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from crank_node.chaos.checks import InvariantResult, invariant_result
from crank_node.chaos.monitor import LeaseSpan
from storage import market_key

__all__ = [
    "AttemptFence",
    "FencingFacts",
    "FillFence",
    "NodeDown",
    "check_fencing",
    "check_no_dead_holders",
]


# -- 4 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillFence:
    fill_id: str
    market_id: str
    sequence: int
    fencing_token: int
    created_at: datetime  # the database's clock


@dataclass(frozen=True)
class AttemptFence:
    settlement_id: str
    attempt_number: int
    claim_token: int
    state: str


@dataclass(frozen=True)
class FencingFacts:
    fills: Sequence[FillFence]
    last_tokens: Mapping[str, int]  # fencing_sequences: lock key -> last token issued
    attempts: Sequence[AttemptFence]
    claim_tokens: Mapping[str, int]  # settlement id -> its claim token now


def check_fencing(
    facts: FencingFacts, leases: Sequence[LeaseSpan], *, clock_tolerance_s: float = 0.0
) -> InvariantResult:
    """``clock_tolerance_s``: how far a fill's time may pass the next lease's grant
    (0 on SQLite, where writes are serialised; see :mod:`crank_node.chaos.audit`)."""
    problems = _fill_tokens(facts) + _attempt_tokens(facts) + _lease_tokens(leases)
    problems += _stale_fills(facts.fills, leases, timedelta(seconds=clock_tolerance_s))
    keys = {span.key for span in leases}
    summary = (
        f"{len(facts.fills)} fills, {len(facts.attempts)} settlement attempts, "
        f"{len(leases)} lease holdings on {len(keys)} keys seen; "
        f"{len(problems)} tokens out of order"
    )
    checked = len(facts.fills) and len(leases)
    return invariant_result(4, "fencing tokens only increase", checked, summary, problems)


def _fill_tokens(facts: FencingFacts) -> list[str]:
    problems = []
    by_market: defaultdict[str, list[FillFence]] = defaultdict(list)
    for fill in facts.fills:
        by_market[fill.market_id].append(fill)
    for market, fills in sorted(by_market.items()):
        fills.sort(key=lambda fill: fill.sequence)
        for earlier, later in pairwise(fills):
            if later.fencing_token < earlier.fencing_token:
                problems.append(
                    f"{market}: fill #{later.sequence} under token {later.fencing_token} "
                    f"after fill #{earlier.sequence} under token {earlier.fencing_token}"
                )
        highest = max(fill.fencing_token for fill in fills)
        issued = facts.last_tokens.get(market_key(market), 0)
        if issued < highest:
            problems.append(f"{market}: fills under token {highest}, only {issued} ever issued")
    return problems


def _attempt_tokens(facts: FencingFacts) -> list[str]:
    problems = []
    by_settlement: defaultdict[str, list[AttemptFence]] = defaultdict(list)
    for attempt in facts.attempts:
        by_settlement[attempt.settlement_id].append(attempt)
    for settlement, attempts in sorted(by_settlement.items()):
        attempts.sort(key=lambda attempt: attempt.attempt_number)
        for earlier, later in pairwise(attempts):
            if later.claim_token < earlier.claim_token:
                problems.append(
                    f"settlement {settlement}: attempt {later.attempt_number} under claim "
                    f"{later.claim_token} after attempt {earlier.attempt_number} under "
                    f"claim {earlier.claim_token}"
                )
        confirmed = [a.attempt_number for a in attempts if a.state == "confirmed"]
        if len(confirmed) > 1:
            problems.append(f"settlement {settlement}: attempts {confirmed} all confirmed")
        claim = facts.claim_tokens.get(settlement, 0)
        if claim < attempts[-1].claim_token:
            problems.append(
                f"settlement {settlement}: an attempt under claim {attempts[-1].claim_token}, "
                f"the settlement's claim is only {claim}"
            )
    return problems


def _lease_tokens(leases: Sequence[LeaseSpan]) -> list[str]:
    problems = []
    highest: dict[str, LeaseSpan] = {}
    holders: dict[tuple[str, int], str] = {}
    for span in sorted(leases, key=lambda span: span.first_seen_s):
        top = highest.get(span.key)
        if top is not None and span.fencing_token < top.fencing_token:
            problems.append(
                f"{span.key}: token {span.fencing_token} ({span.holder}) seen at "
                f"+{span.first_seen_s:.1f}s after token {top.fencing_token} ({top.holder})"
            )
        holder = holders.setdefault((span.key, span.fencing_token), span.holder)
        if holder != span.holder:
            problems.append(
                f"{span.key}: token {span.fencing_token} held by {holder} and {span.holder}"
            )
        if top is None or span.fencing_token > top.fencing_token:
            highest[span.key] = span
    return problems


def _stale_fills(
    fills: Sequence[FillFence], leases: Sequence[LeaseSpan], tolerance: timedelta
) -> list[str]:
    """A fill written under token t after a later token of its market was granted."""
    granted: defaultdict[str, dict[int, datetime]] = defaultdict(dict)
    for span in leases:
        granted[span.key][span.fencing_token] = span.acquired_at
    problems = []
    for fill in fills:
        later = [
            acquired_at
            for token, acquired_at in granted[market_key(fill.market_id)].items()
            if token > fill.fencing_token
        ]
        if later and fill.created_at > min(later) + tolerance:
            problems.append(
                f"{fill.market_id}: fill {fill.fill_id} written at {fill.created_at:%H:%M:%S.%f} "
                f"under token {fill.fencing_token}, after a later token was granted at "
                f"{min(later):%H:%M:%S.%f}"
            )
    return problems


# -- 5 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeDown:
    """``node`` was dead or frozen from ``start_s`` to ``end_s`` (None: to the end)."""

    node: str
    start_s: float
    end_s: float | None
    why: str  # killed, frozen, stopped


def check_no_dead_holders(
    leases: Sequence[LeaseSpan],
    down: Sequence[NodeDown],
    *,
    ttl_s: float,
    slack_s: float,
) -> InvariantResult:
    """A live lease seen held by a node that had been down for longer than the TTL
    (plus ``slack_s`` for the time a poll takes) is a failure."""
    problems = []
    for span in leases:
        if not span.live:
            continue
        for interval in down:
            if interval.node != span.holder:
                continue
            deadline_s = interval.start_s + ttl_s + slack_s
            until_s = interval.end_s if interval.end_s is not None else float("inf")
            if span.last_seen_s >= deadline_s and span.first_seen_s < until_s:
                seen_s = max(span.first_seen_s, deadline_s)
                problems.append(
                    f"{span.key}: live under token {span.fencing_token} of {span.holder} at "
                    f"+{seen_s:.1f}s, {seen_s - interval.start_s:.1f}s after it was "
                    f"{interval.why} (TTL {ttl_s:g}s)"
                )
    summary = (
        f"{len(down)} times a node was down; {len(leases)} lease holdings seen; "
        f"{len(problems)} held past the TTL by a dead node"
    )
    return invariant_result(5, "no lease held by a dead node", len(leases), summary, problems)
