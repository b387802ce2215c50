"""One order's (fill's, settlement's, signature's) journey, put back together from logs.

Reads JSON-lines logs (``configure_logging(json_path=...)``, what ``crank-node run``
writes), several nodes' files and rotated files at once, and keeps the lines that
carry the journey's ids: the always-on step lines (``log_step``: accepted, funded or
not, fill written, claimed, sent; ``storage.attempts_recorded``,
``storage.settlements_confirmed``...) and, with tracing on, the trace lines whose
domain keys name them. Pure: no I/O here, the CLI reads the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["JourneyEntry", "JourneyQuery", "follow", "format_journey", "parse_entry"]

# Which log fields name which kind of domain id (single values or lists).
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "order": ("order_id", "order_ids", "maker_order_id", "taker_order_id"),
    "fill": ("fill_id", "fill_ids"),
    "settlement": ("settlement_id", "settlement_ids"),
    "signature": ("signature", "signatures", "signature_ids"),
}
# Lines whose ``settlement_ids`` and ``signatures`` (and ``slots``...) go in pairs.
PAIRED_ACTIONS = ("storage.attempts_recorded", "storage.settlements_confirmed")


@dataclass(frozen=True)
class JourneyEntry:
    """One log line of some journey: when, which node's log, what, and its fields."""

    at: float
    source: str
    action: str
    message: str
    fields: dict[str, Any] = field(compare=False)

    def ids(self, kind: str) -> list[str]:
        found: list[str] = []
        for name in KEY_FIELDS[kind]:
            value = self.fields.get(name)
            if isinstance(value, list):
                found.extend(str(item) for item in value)
            elif value is not None:
                found.append(str(value))
        return found


def parse_entry(line: str, source: str) -> JourneyEntry | None:
    """The entry of a JSON log line, or None (not JSON, torn, or no action)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        fields = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(fields, dict) or "action" not in fields:
        return None
    at = fields.get("at", fields.get("time"))
    if not isinstance(at, int | float):
        return None
    return JourneyEntry(
        float(at), source, str(fields["action"]), str(fields.get("message", "")), fields
    )


@dataclass(frozen=True)
class JourneyQuery:
    """What to follow: exactly one of the four."""

    order: str | None = None
    fill: str | None = None
    settlement: str | None = None
    signature: str | None = None


@dataclass
class _Known:
    order: set[str] = field(default_factory=set)
    fill: set[str] = field(default_factory=set)
    settlement: set[str] = field(default_factory=set)
    signature: set[str] = field(default_factory=set)

    def of(self, kind: str) -> set[str]:
        found: set[str] = getattr(self, kind)
        return found


def _pairs(entry: JourneyEntry) -> list[tuple[str, str]]:
    settlements = entry.fields.get("settlement_ids") or []
    signatures = entry.fields.get("signatures") or []
    return list(zip(map(str, settlements), map(str, signatures), strict=False))


def _expand(entries: list[JourneyEntry], known: _Known, *, from_orders: bool) -> None:
    """Grow ``known`` along the chain: order -> fills -> settlements -> signatures
    (and back from a signature or settlement to its fill and orders)."""
    for _ in range(4):
        size = sum(len(known.of(kind)) for kind in KEY_FIELDS)
        for entry in entries:
            if entry.action == "match.fill_written":
                orders, fills = set(entry.ids("order")), set(entry.ids("fill"))
                if (from_orders and orders & known.order) or fills & (
                    known.fill | known.settlement
                ):
                    known.fill |= fills
                    known.settlement |= fills  # a settlement's id is its fill's id
                    known.order |= orders if not from_orders else set()
            elif entry.action in PAIRED_ACTIONS:
                for settlement_id, signature in _pairs(entry):
                    if settlement_id in known.settlement or signature in known.signature:
                        known.settlement.add(settlement_id)
                        known.signature.add(signature)
            elif entry.fields.get("settlement_id") is not None:
                settlement_id = str(entry.fields["settlement_id"])
                signatures = set(entry.ids("signature"))
                if settlement_id in known.settlement or signatures & known.signature:
                    known.settlement.add(settlement_id)
                    known.signature |= signatures
        known.fill |= known.settlement
        if sum(len(known.of(kind)) for kind in KEY_FIELDS) == size:
            return


def _relevant(entry: JourneyEntry, known: _Known, query: JourneyQuery) -> bool:
    if entry.action in PAIRED_ACTIONS:
        return any(s in known.settlement for s, _ in _pairs(entry))
    downstream = any(
        set(entry.ids(kind)) & known.of(kind) for kind in ("fill", "settlement", "signature")
    )
    if downstream:
        return True
    if not set(entry.ids("order")) & known.order:
        return False
    # Following a fill: its orders' own steps, not their other fills.
    return query.order is not None or not entry.ids("fill")


def follow(lines: Iterable[tuple[str, str]], query: JourneyQuery) -> list[JourneyEntry]:
    """Every entry of the journey in ``lines`` ((source, line) pairs), in time order."""
    entries = [e for source, line in lines if (e := parse_entry(line, source)) is not None]
    known = _Known()
    if query.order is not None:
        known.order.add(query.order)
    for kind in ("fill", "settlement"):
        value = getattr(query, kind)
        if value is not None:
            known.fill.add(value)
            known.settlement.add(value)
    if query.signature is not None:
        known.signature.add(query.signature)
    _expand(entries, known, from_orders=query.order is not None)
    chosen = [entry for entry in entries if _relevant(entry, known, query)]
    chosen += _hops_by_trace(entries, chosen)
    return sorted(chosen, key=lambda entry: entry.at)


def _hops_by_trace(entries: list[JourneyEntry], chosen: list[JourneyEntry]) -> list[JourneyEntry]:
    """The trace lines that name no id but run under one of the journey's traces: the
    hops a step caused (an RPC request and its reply, the router's work for it). The
    journey's traces are those of its own steps (accepted, funded, matched, claimed,
    recovering, sent); a batch's line (attempts recorded, settlements confirmed) runs
    under the batch's trace and names every settlement it covers, so its trace is not
    taken: it would pull in the hops of every other settlement of the batch."""
    traces = {
        entry.fields["trace_id"]
        for entry in chosen
        if entry.fields.get("trace_id")
        and not entry.action.startswith("trace.")
        and entry.action not in PAIRED_ACTIONS
    }
    return [
        entry
        for entry in entries
        if entry.action.startswith("trace.")
        and entry.fields.get("trace_id") in traces
        and not any(entry.ids(kind) for kind in KEY_FIELDS)
    ]


# -- the printout -----------------------------------------------------------------------


def _mine(entry: JourneyEntry, known: set[str]) -> list[int]:
    return [i for i, (s, _) in enumerate(_pairs(entry)) if s in known]


def describe(entry: JourneyEntry, settlements: set[str]) -> str:  # noqa: PLR0911  (one return per kind of step reads best)
    """One entry as a step of the journey, naming only the journey's own ids."""
    f = entry.fields
    action = entry.action
    if action == "intake.order_accepted":
        return (
            f"accepted: order {f.get('order_id')} {f.get('side', '')} "
            f"{f.get('size_atoms', '?')} at {f.get('price_atoms', '?')} "
            f"in {f.get('market_id')} ({f.get('status', 'open')})"
        )
    if action == "order_monitor.order_funded":
        return f"judged funded: order {f.get('order_id')} is in play"
    if action == "order_monitor.order_unfunded":
        return f"judged NOT funded: order {f.get('order_id')}: {f.get('problem')}"
    if action == "match.fill_written":
        return (
            f"matched and written: fill {f.get('fill_ids', ['?'])[0]}: taker "
            f"{f.get('taker_order_id')} with maker {f.get('maker_order_id')} at price "
            f"{f.get('price_atoms')} for {f.get('base_atoms')} base atoms; settlement pending"
        )
    if action == "settlement.claimed":
        return (
            f"claimed: settlement {f.get('settlement_id')} by {f.get('claimer')} "
            f"(claim token {f.get('claim_token')}, {f.get('recorded_attempts', 0)} "
            "attempts already recorded)"
        )
    if action == "settlement.recovering":
        return (
            f"recovering: settlement {f.get('settlement_id')} has {f.get('attempts', '?')} "
            "attempts recorded; asking the chain about them first"
        )
    if action == "storage.attempts_recorded":
        numbers, signatures = f.get("attempt_numbers") or [], f.get("signatures") or []
        parts = [
            f"attempt {numbers[i] if i < len(numbers) else '?'} {signatures[i]}"
            for i in _mine(entry, settlements)
        ]
        return (
            f"signed and written ahead: {', '.join(parts)} (valid to block height "
            f"<= {f.get('last_valid_block_height')})"
        )
    if action == "settlement.sent":
        return f"{'resent' if f.get('resend') else 'sent'}: {f.get('signature')}"
    if action == "settlement.attempts_expired":
        return f"expired (provably dead): {', '.join(map(str, f.get('signatures') or []))}"
    if action == "storage.settlements_confirmed":
        signatures, slots = f.get("signatures") or [], f.get("slots") or []
        parts = [
            f"{signatures[i]} at slot {slots[i] if i < len(slots) else '?'}"
            for i in _mine(entry, settlements)
        ]
        return f"landed and confirmed: {', '.join(parts)}"
    if action.startswith("trace."):
        return (
            f"{action.removeprefix('trace.')}: {f.get('sender')} -> {f.get('receiver')} "
            f"{f.get('message_type')}"
        )
    return f"{action}: {entry.message}"


def current_state(entries: list[JourneyEntry]) -> str:  # noqa: PLR0911  (one return per state)
    """Where the journey stands after its last entry."""
    actions = [entry.action for entry in entries if not entry.action.startswith("trace.")]
    if not actions:
        return "nothing found"
    fills = {e.ids("fill")[0] for e in entries if e.action == "match.fill_written"}
    confirmed = {
        s
        for e in entries
        if e.action in ("storage.settlements_confirmed", "storage.settlement_confirmed")
        for s in e.ids("settlement")
    }
    unsettled = sorted(fills - confirmed)
    if unsettled:
        last = {e.action for e in entries if set(e.ids("settlement")) & {unsettled[0]}}
        if "storage.attempts_recorded" in last or "settlement.sent" in last:
            what = "an attempt is out, waiting for it to land or expire"
        elif "settlement.claimed" in last:
            what = "claimed, waiting for a blockhash to sign an attempt"
        else:
            what = "written, waiting to be claimed"
        waiting = f"{len(unsettled)} of {len(fills)} fills not confirmed"
        return f"settling: {waiting} ({unsettled[0]}: {what})"
    funding = [e for e in entries if e.action.startswith("order_monitor.order_")]
    if funding and funding[-1].action == "order_monitor.order_unfunded":
        return f"waiting for funding: {funding[-1].fields.get('problem')}"
    accepted = next((e for e in entries if e.action == "intake.order_accepted"), None)
    filled = sum(
        int(e.fields.get("base_atoms") or 0) for e in entries if e.action == "match.fill_written"
    )
    if accepted is not None and filled >= int(accepted.fields.get("size_atoms") or 0) > 0:
        return f"ended: filled ({filled} base atoms) and every fill confirmed"
    if fills:
        return (
            f"{len(fills)} fills confirmed; the rest rests in the book ({filled} base atoms filled)"
        )
    if funding:
        return "funded, resting in the book: waiting for a crossing order"
    return "accepted, waiting for its funding check"


def format_journey(entries: list[JourneyEntry]) -> str:
    """Time, time since the previous step, which log, the step; then the state now."""
    if not entries:
        return ""
    settlements = {s for e in entries if e.action == "match.fill_written" for s in e.ids("fill")}
    settlements |= {
        s for e in entries if e.action == "settlement.claimed" for s in e.ids("settlement")
    }
    rows = [f"{'time (UTC)':26} {'+ms':>9}  {'log':14} step"]
    previous = entries[0].at
    for entry in entries:
        when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        trace_id = entry.fields.get("trace_id")
        suffix = f"  [trace {trace_id}]" if trace_id else ""
        rows.append(
            f"{when:26} {(entry.at - previous) * 1e3:9.1f}  {entry.source:14} "
            f"{describe(entry, settlements)}{suffix}"
        )
        previous = entry.at
    total_s = entries[-1].at - entries[0].at
    rows.append(f"state: {current_state(entries)} ({len(entries)} steps over {total_s:.3f} s)")
    return "\n".join(rows)
